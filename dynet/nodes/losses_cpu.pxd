from dynet.core.graph cimport Expression

# Autobatching (dynet/core/execution.pyx): the group key of a binary_log_loss, pairwise_rank_loss,
# poisson_loss or hinge (vector) that can run batched with others (0 if it cannot), the exact test
# for one group, and a group's forward and backward.
cdef Py_ssize_t batch_key(Expression node) noexcept
cdef bint same_batch(Expression x, Expression y) noexcept
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
