# Parameter collections, Parameters, LookupParameters, and the graph nodes that read them.
from dynet.core.dim cimport Dim
from dynet.core.graph cimport Expression


cdef class WeightDecay:
    # DyNet's lazy L2 weight decay, one per root collection: the real value of a parameter is
    # `scale` times its stored value; each update multiplies `scale` by (1 - lam).
    cdef public float lam
    cdef public float scale


cdef class Parameters:
    cdef readonly object values    # float32, 1-D, column-major contents; never replaced (nodes point in)
    cdef readonly object grads     # same layout
    cdef float* vptr
    cdef float* gptr
    cdef Dim d
    cdef str _name
    cdef object _owner
    cdef bint updated
    cdef bint has_grad             # a backward pass wrote into grads since the last update
    cdef Expression _expr_update   # this graph's expression (cached per graph, as DyNet 2.1)
    cdef Expression _expr_const
    cdef WeightDecay wd            # the collection's weight-decay factor (shared)
    cdef Expression node(self, bint update)


cdef class LookupParameters:
    cdef readonly object values    # float32, 1-D: N embeddings of `d` values each, one after another
    cdef readonly object grads
    cdef float* vptr
    cdef float* gptr
    cdef Dim d                     # of one embedding
    cdef int n                     # number of embeddings
    cdef Py_ssize_t row_size
    cdef str _name
    cdef object _owner
    cdef bint updated
    cdef bint all_rows_touched     # dense gradient (a whole-table expression was used)
    cdef unsigned char* touched    # per row: got a gradient since the last update
    cdef int* touched_list
    cdef int n_touched, touched_cap
    cdef WeightDecay wd
    cdef int mark_touched(self, int row) except -1
    cdef int _check_row(self, object index, str op) except -1
    cdef Expression lookup_rows(self, object indices, bint update, bint batched, str op)
