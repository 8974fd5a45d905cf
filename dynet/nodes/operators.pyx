"""Expression's arithmetic operators, as DyNet defines them: `*` of two expressions is the matrix
product; with a number on either side, `+ - * /` are elementwise scalar operations."""
import numbers
from dynet.core.graph cimport Expression, set_operators
from dynet.core.graph import register_operators
from dynet.nodes.elementwise cimport unary, binary, U_AFFINE, U_RDIV, U_POWC, B_ADD, B_SUB, B_DIV, B_POW
from dynet.nodes.matmul cimport matmul


cdef inline bint is_number(object x):
    # Expressions first: the ABC check of numbers.Real is slow, and this is on every `W * x + b`
    if isinstance(x, Expression):
        return False
    return isinstance(x, (float, int)) or (isinstance(x, numbers.Real) and not isinstance(x, bool))


cdef object add(object a, object b):
    if is_number(b):
        return unary(a, U_AFFINE, 1.0, b)
    if is_number(a):
        return unary(b, U_AFFINE, 1.0, a)
    return binary(a, b, B_ADD)


cdef object sub(object a, object b):
    if is_number(b):
        return unary(a, U_AFFINE, 1.0, -b)
    if is_number(a):
        return unary(b, U_AFFINE, -1.0, a)
    return binary(a, b, B_SUB)


cdef object mul(object a, object b):
    if is_number(b):
        return unary(a, U_AFFINE, b, 0.0)
    if is_number(a):
        return unary(b, U_AFFINE, a, 0.0)
    return matmul(a, b)


cdef object div(object a, object b):
    if is_number(b):
        if b == 0:
            raise ZeroDivisionError("expression / 0")
        return unary(a, U_AFFINE, 1.0 / b, 0.0)
    if is_number(a):
        return unary(b, U_RDIV, a)
    return binary(a, b, B_DIV)


cdef object neg(object a):
    return unary(a, U_AFFINE, -1.0, 0.0)


def power(a, b):
    if is_number(b):
        return unary(a, U_POWC, b)
    return binary(a, b, B_POW)


def getitem(e, key):
    from dynet.nodes import select
    if isinstance(key, slice):
        if key.step not in (None, 1):
            raise ValueError(f"expression slicing supports a step of 1 only, got {key.step}")
        start, stop, _ = key.indices(len(e))
        return select.pick_range(e, start, stop)
    return select.pick(e, key)


set_operators(add, sub, mul, div, neg)
register_operators(pow=power, getitem=getitem)


def add_(a, b):
    """The `+` of expressions (for code that wants it as a function)."""
    return add(a, b)
