# Elementwise maps as table rows: one node class per arity, an op code selects the formula.
from dynet.core.graph cimport Expression

cdef enum UnaryOp:
    U_TANH, U_LOGISTIC, U_RECTIFY, U_EXP, U_LOG, U_SQUARE, U_SQRT, U_CUBE, U_ABS,
    U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH, U_ACOSH, U_ATANH,
    U_ERF, U_LGAMMA, U_LOG_SIGMOID, U_ELU, U_SELU, U_SILU, U_SOFTSIGN,
    U_ROUND, U_CEIL, U_FLOOR,
    U_AFFINE,      # alpha * x + beta  (scalar +, -, * and negation)
    U_RDIV,        # alpha / x         (scalar / expression)
    U_POWC,        # x ** alpha        (expression ** scalar)
    U_IDENTITY,    # value unchanged (nobackprop etc. override backward)
    N_UNARY

cdef enum BinaryOp:
    B_ADD, B_SUB, B_MUL, B_DIV, B_MIN, B_MAX, B_POW

cdef class Unary(Expression):
    cdef int op
    cdef float alpha, beta

cdef struct Broadcast:
    # a general broadcast's odometer: per axis (7 + batch) the output's size and each argument's
    # stride (0 where it is broadcast)
    int sizes[8]
    Py_ssize_t sa[8]
    Py_ssize_t sb[8]


cdef class Binary(Expression):
    # (its fields fit in the node's third cache line: every pass over a graph reads them)
    cdef int op
    cdef int mode            # 0: same layout, 1: batch broadcast only, 2: general broadcast
    cdef Py_ssize_t sa, sb   # mode 1: each argument's batch stride (0 for a batch-1 argument)
    cdef Broadcast* general  # mode 2: the odometer (graph memory: lives until renew_cg)
    cdef void _general(self, bint backward) noexcept

cdef Expression unary(object x, int op, float alpha=*, float beta=*)
cdef Expression binary(object a, object b, int op)

# Autobatching (dynet/core/execution.pyx): the group key of a map that can run batched with others
# (0 if it cannot), the exact test for one group, and a group's forward and backward.
cdef Py_ssize_t batch_key(Expression node) noexcept
cdef bint same_batch(Expression x, Expression y) noexcept
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
# ... and a group's forward or backward through the generic implementation (GPU): 1 if it ran as
# one call, 0 if the caller must run the nodes one by one
cdef int generic_batch(list group, bint backward) except -1
