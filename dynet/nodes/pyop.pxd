from dynet.core.graph cimport Expression


cdef class GenericOpNode(Expression):
    cdef object make_op(self)
    cdef object generic_op(self)


cdef int batch_of(str name, tuple args) except -1
