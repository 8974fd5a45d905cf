from dynet.core.graph cimport Expression
cdef Expression matmul(object a, object b)
cdef Expression affine(object exprs)         # affine_transform(exprs)
cdef int defer_product_grad(Expression A, Expression B, const float* dC, int ncols,  # no-cython-lint
                            bint want_dA, bint want_dB) except -1
cdef int defer_weight_grad(Expression W, Expression owner, const float* dC, const float* X,
                           int ncols) except -1  # no-cython-lint

# An autobatched group's weight gradient is deferred to the end of the backward pass (one GEMM
# over all its groups' columns) for parameter matrices of at least this many values (256 KB:
# beyond what stays in L2 next to the group's own operands, so that a per-group update goes
# through L3 or memory); smaller ones (a Tree-LSTM's 64 x 128 gates) are updated group by group
# while in cache.
cdef enum:
    DEFER_GROUP_WEIGHT = 65536
cdef bint defers_group_weight(Expression W) noexcept
cdef int group_weight_grad(Expression W, Expression owner, list group, int arg, const float* xs,
                           const float* dC, int ncols, float* buf) except -1  # no-cython-lint

# Autobatching (dynet/core/execution.pyx): the group key of a product or affine transform that can
# run batched with others (0 if it cannot), the exact test for one group, and a group's forward
# and backward.
cdef Py_ssize_t batch_key(Expression node) noexcept
cdef bint same_batch(Expression x, Expression y) noexcept
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
cdef int generic_batch(list group, bint backward) except -1
