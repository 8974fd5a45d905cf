from dynet.core.graph cimport Expression

# Autobatching (dynet/core/execution.pyx): the group key of LSTM gates that can run batched with
# others (None if they cannot), and the batched forward of one group.
cdef object batch_signature(Expression node)
cdef int forward_batch(list group) except -1
cdef int backward_batch(list group) except -1
