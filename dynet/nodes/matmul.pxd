from dynet.core.graph cimport Expression
cdef Expression matmul(object a, object b)
