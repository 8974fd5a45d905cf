from dynet.core.graph cimport Expression

# Autobatching (dynet/core/execution.pyx): the group key of a dropout or noise node (0 for any other
# node), the exact test for one group, a group's forward and backward on the typed loops, and its
# one-call run on a device without them (0: run it node by node).
cdef Py_ssize_t batch_key(Expression node) noexcept
cdef bint same_batch(Expression x, Expression y) noexcept
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
cdef int generic_batch(list group, bint backward) except -1
