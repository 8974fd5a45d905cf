"""Expression's arithmetic operators, as DyNet defines them: `*` of two expressions is the matrix
product; with a number on either side, `+ - * /` are elementwise scalar operations."""
import numbers
from dynet.core.graph cimport Expression, set_operators
from dynet.core.graph import register_operators
from dynet.nodes.elementwise cimport unary, binary, U_AFFINE, U_RDIV, U_POWC, B_ADD, B_SUB, B_DIV, B_POW
from dynet.nodes.matmul cimport matmul
from dynet.nodes.select cimport make_pick
from dynet.core.errors import IndexOutOfRange


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


def _slice_range(key, n, what):
    """(start, stop, step) of a slice over n entries (negative bounds count from the end)."""
    if key.step is not None and key.step <= 0:
        raise ValueError(f"expression slicing: the step must be positive, got {key.step} for {what}")
    start, stop, step = key.indices(n)
    if start >= stop:
        raise IndexOutOfRange(f"expression slicing: [{key.start}:{key.stop}] selects nothing from {what} "
                         f"of size {n}")
    return start, stop, step


def _int_key(key, n, what):
    try:
        i = key.__index__()
    except TypeError:               # (an array of several ints has __index__, which refuses)
        raise TypeError(f"expression index must be an int, a slice or a tuple of them, got "
                        f"{type(key).__name__} {key!r:.40}") from None
    if not -n <= i < n:
        raise IndexOutOfRange(f"expression index {i} is out of range for {what} of size {n}")
    return i + n if i < 0 else i


def getitem(Expression e, key):
    """e[i] picks row i (dimension 0); e[a:b:s] selects rows a, a+s, ... < b; a tuple indexes
    dimension 0, 1, ... in turn, one entry more indexing the batch (as DyNet 2.1)."""
    cdef Py_ssize_t i, n
    if type(key) is int:          # the common case (and iterating over an expression) in C
        e._live("indexing")
        n = e.d.d[0] if e.d.nd else 1
        if not -n <= key < n:
            raise IndexOutOfRange(f"expression index {key} is out of range for dimension 0 of size {n}")
        i = key
        return make_pick(e, i + n if i < 0 else i, 0, False, "pick")
    from dynet.nodes import select
    shape, bd = e.dim()
    if isinstance(key, slice):
        a, b, s = _slice_range(key, shape[0] if shape else 1, "dimension 0")
        return select.strided_select(e, [s], [a], [b])
    if not isinstance(key, tuple):
        if isinstance(key, bool) or not hasattr(key, "__index__"):
            raise TypeError(f"expression index must be an int, a slice or a tuple of them, got "
                            f"{type(key).__name__}")
        return select.pick(e, _int_key(key, shape[0] if shape else 1, "dimension 0"))
    sizes = list(shape) + [bd]
    if len(key) > len(sizes):
        raise IndexOutOfRange(f"expression index {key} has {len(key)} entries, but the expression has "
                         f"{len(shape)} dimensions and a batch")
    strides, starts, stops, picks = [], [], [], []
    for i, k in enumerate(key):
        what = f"dimension {i}" if i < len(shape) else "the batch"
        if isinstance(k, slice):
            a, b, s = _slice_range(k, sizes[i], what)
        elif not isinstance(k, bool) and hasattr(k, "__index__"):
            a = _int_key(k, sizes[i], what)
            b, s = a + 1, 1
            picks.append(i)
        else:
            raise TypeError(f"expression index entries must be ints or slices, got {type(k).__name__}")
        strides.append(s)
        starts.append(a)
        stops.append(b)
    out = select.strided_select(e, strides, starts, stops)
    for i in reversed(picks):       # highest first, so the lower dimensions keep their numbers
        out = select.pick_batch_elem(out, 0) if i == len(shape) else select.pick(out, 0, i)
    return out


set_operators(add, sub, mul, div, neg)
register_operators(pow=power, getitem=getitem)


def add_(a, b):
    """The `+` of expressions (for code that wants it as a function)."""
    return add(a, b)
