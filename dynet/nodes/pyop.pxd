cimport cython
from dynet.core.graph cimport Expression


@cython.no_gc
cdef class GenericOpNode(Expression):
    cdef object make_op(self)
    cdef object generic_op(self)


cdef int batch_of(str name, tuple args) except -1
