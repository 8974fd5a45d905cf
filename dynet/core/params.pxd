# Parameter collections, Parameters, LookupParameters, and the graph nodes that read them.
from dynet.core.dim cimport Dim
from dynet.core.graph cimport Expression
from dynet.core.device cimport Device


cdef class WeightDecay:
    # DyNet's lazy L2 weight decay, one per root collection: the real value of a parameter is
    # `scale` times its stored value; each update multiplies `scale` by (1 - lam).
    cdef public float lam
    cdef public float scale
    cdef bint is_identity(self)


cdef class ParameterStorage:
    # What Parameters and LookupParameters share: their float32 storage and identity.
    cdef readonly object values    # float32, 1-D, column-major contents; never replaced (nodes point in);
                                   # an array of the device's array module (NumPy, CuPy)
    cdef readonly object grads     # same layout; replaced only by Parameters.use_gradient_storage,
                                   # which repoints this graph's expressions of the parameter
    cdef Device dev                # where values and grads live
    cdef float* vptr
    cdef float* gptr
    cdef Dim d                     # of the parameter (of one embedding, for lookup parameters)
    cdef str _name
    cdef object _owner             # a weak reference to the collection (it holds us), or None
    cdef bint updated
    cdef WeightDecay wd            # the collection's weight-decay factor (shared)
    cdef int init_storage(self, object owner, str name, Dim d, Py_ssize_t size, Device dev) except -1
    cdef int check_usable(self, str op) except -1


cdef class Parameters(ParameterStorage):
    cdef bint has_grad             # a backward pass wrote into grads since the last update
    # this graph's expressions (made once per graph, as DyNet 2.1), [const, update]. Borrowed: the
    # graph holds them, and a strong reference would close a Parameters -> node -> Parameters
    # cycle that keeps a deleted collection's storage alive (nodes are outside the GC).
    cdef void* _cached_node[2]
    cdef int _cached_index[2]
    cdef Expression node(self, bint update)


cdef class LookupParameters(ParameterStorage):
    # values: N embeddings of `d` values each, one after another
    cdef int n                     # number of embeddings
    cdef Py_ssize_t row_size
    cdef bint all_rows_touched     # dense gradient (a whole-table expression was used)
    cdef unsigned char* touched    # per row: got a gradient since the last update
    cdef int* touched_list
    cdef int n_touched, touched_cap
    cdef int mark_touched(self, int row) except -1
    cdef int _check_row(self, object index, str op) except -1
    cdef Expression lookup_rows(self, object indices, bint update, bint batched, str op)
