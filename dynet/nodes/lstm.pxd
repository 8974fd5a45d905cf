from dynet.core.graph cimport Expression

# Autobatching (dynet/core/execution.pyx): the group key of LSTM gates that can run batched with
# others (0 if they cannot), the exact test for one group, and a group's forward and backward.
cdef Py_ssize_t batch_key(Expression node) noexcept
cdef bint same_batch(Expression x, Expression y) noexcept
# ... the steps a node adds to its recurrence and the argument that carries it on (the schedule
# lines up the same steps of recurrences that start at different depths)
cdef int recurrence(Expression node, int* chain_arg) noexcept
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
# ... and a group's forward or backward through the generic implementation (GPU): 1 if it ran as
# one call, 0 if the caller must run the nodes one by one
cdef int generic_batch(list group, bint backward) except -1
