# Lowered forward passes (see "Threads" in docs/architecture.md): a run of nodes turned into C steps
# (a kernel function pointer and the raw pointers and sizes it needs), made with the GIL held and
# then run in one stretch without it, so that another thread builds its graph meanwhile.

# Variable-length data of a step (the parts of a concatenation, the products of an affine
# transform): entries of the Lowering's side array.
cdef struct Part:
    const float* x
    const float* w
    Py_ssize_t n0, n1, n2
    int flags

ctypedef void (*step_kernel)(const Step* s, const Part* parts) noexcept nogil

cdef struct Step:
    step_kernel run
    float* y                     # the node's value
    const float* x0              # argument values (which ones, and what they mean, is the kernel's)
    const float* x1
    const float* x2
    const float* x3
    const void* p                # other node data that lives as long as the graph (lookup rows)
    Py_ssize_t n0, n1, n2, n3    # sizes
    int op
    float a, b
    Py_ssize_t part0, nparts     # its entries in the side array

cdef class Lowering:
    cdef Step* steps
    cdef Py_ssize_t n_steps, cap_steps
    cdef Part* parts
    cdef Py_ssize_t n_parts, cap_parts
    cdef Py_ssize_t work         # the run's estimated multiply-adds: worth releasing the GIL?

    cdef Step* add(self, step_kernel run, Py_ssize_t work) except NULL
    cdef Part* add_parts(self, Step* s, Py_ssize_t n) except NULL
    cdef void clear(self) noexcept
    cdef int flush(self) except -1
    cdef void run_steps(self) noexcept nogil

# Steps that several node types share: y = x0 (n0 values), y = a (n0 values).
cdef void copy_step(const Step* s, const Part* parts) noexcept nogil
cdef void fill_step(const Step* s, const Part* parts) noexcept nogil
