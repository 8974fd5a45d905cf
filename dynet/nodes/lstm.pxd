from dynet.core.graph cimport Expression

# The fused cell's nodes (the builders' typed steps, dynet/builders/cells.pyx, make them directly):
# the gates (h_tm1 None: no recurrent term; masks None: no dropout), c (c_tm1 None: none) and h.
cdef Expression make_gates(list xs, object h_tm1, object Wx, object Wh, object b, object mask_x,
                           object mask_h, float weightnoise_std, float forget_bias, str op)
cdef Expression make_c(object c_tm1, object gates_t)
cdef Expression make_h(object c_t, object gates_t)

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
