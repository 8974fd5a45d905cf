from dynet.core.graph cimport Expression

cdef int batch_of(str name, tuple args) except -1
