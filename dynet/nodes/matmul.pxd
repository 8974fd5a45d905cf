from dynet.core.graph cimport Expression
cdef Expression matmul(object a, object b)

# Autobatching (dynet/core/execution.pyx): the group key of a product or affine transform that can
# run batched with others (None if it cannot), and the batched forward of one group.
cdef object batch_signature(Expression node)
cdef int forward_batch(list group) except -1
