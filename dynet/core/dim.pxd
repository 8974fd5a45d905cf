# A tensor shape as DyNet has it: up to 7 dimensions of one batch element, plus a batch size.
# Storage is column-major with the batch last, so element (i, j) of batch b of a {R,C} value is at
# i + R*j + R*C*b.

cdef enum:
    MAX_DIMS = 7

cdef struct Dim:
    int d[7]
    int nd
    int bd

cdef inline Py_ssize_t batch_size(const Dim* d) noexcept nogil:
    """Number of values in one batch element."""
    cdef Py_ssize_t n = 1
    cdef int i
    for i in range(d.nd):
        n *= d.d[i]
    return n

cdef inline Py_ssize_t total_size(const Dim* d) noexcept nogil:
    return batch_size(d) * d.bd

cdef inline int rows(const Dim* d) noexcept nogil:
    return d.d[0] if d.nd > 0 else 1

cdef inline int cols(const Dim* d) noexcept nogil:
    return d.d[1] if d.nd > 1 else 1

cdef inline int dim_at(const Dim* d, int i) noexcept nogil:
    return d.d[i] if i < d.nd else 1

cdef inline Dim with_size(Dim d, int axis, int size) noexcept:
    """d with dimension `axis` set to `size` (dimensions up to it are added with size 1)."""
    cdef int i
    if d.nd <= axis:
        for i in range(d.nd, axis + 1):
            d.d[i] = 1
        d.nd = axis + 1
    d.d[axis] = size
    return d

cdef Dim make_dim(object shape, int bd=*, bint allow_empty=*) except *
cdef Dim make_dim2(int a, int b, int bd) noexcept
cdef Dim make_dim1(int a, int bd) noexcept
cdef tuple dim_shape(const Dim* d)
cdef str dim_str(const Dim* d)
cdef bint same_shape(const Dim* a, const Dim* b) noexcept
cdef Dim truncated(Dim d) noexcept
