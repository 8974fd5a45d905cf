from dynet.core.graph cimport Expression

# The coupled LSTM's cells (the builders' steps, dynet/builders/cells.pyx, make them directly):
# c from the pre-activations of i and w (c_tm1 None: the start of a sequence), h from o's and c.
cdef Expression make_c(object pre_i, object pre_w, object c_tm1)
cdef Expression make_h(object pre_o, object c_t)

# Autobatching (dynet/core/execution.pyx): the group key (0: runs alone), the exact test, a
# group's forward and backward, and its one-call run on a device without the typed loops.
cdef Py_ssize_t batch_key(Expression node) noexcept
cdef bint same_batch(Expression x, Expression y) noexcept
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
cdef int generic_batch(list group, bint backward) except -1
