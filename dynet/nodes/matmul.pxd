from dynet.core.graph cimport Expression
cdef Expression matmul(object a, object b)
cdef int defer_product_grad(Expression A, Expression B, const float* dC, int ncols,  # no-cython-lint
                            bint want_dA, bint want_dB) except -1
cdef int defer_weight_grad(Expression W, Expression owner, const float* dC, const float* X,
                           int ncols) except -1  # no-cython-lint

# Autobatching (dynet/core/execution.pyx): the group key of a product or affine transform that can
# run batched with others (0 if it cannot), the exact test for one group, and a group's forward
# and backward.
cdef Py_ssize_t batch_key(Expression node) noexcept
cdef bint same_batch(Expression x, Expression y) noexcept
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
cdef int generic_batch(list group, bint backward) except -1
