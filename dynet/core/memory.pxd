# Memory pools (arenas) for node values and gradients: bump allocation of float32 blocks that are all
# released at once. A pool that runs out grows instead of failing.

cdef class Arena:
    cdef readonly str name
    cdef float* block          # the main block
    cdef size_t capacity       # in floats
    cdef size_t used           # in floats
    cdef list spill            # addresses of extra blocks taken when the main block ran out
    cdef size_t spill_total    # floats handed out from spill blocks since the last reset
    cdef size_t high_water     # the most floats in use at once, to size the main block at reset

    cdef float* alloc(self, size_t n) except NULL
    cdef void reset(self) noexcept
    cdef int reserve(self, size_t n) except -1
    cdef void _free_spill(self) noexcept


cdef class ThreadState:
    # What each thread has of its own: its computation graph (set by graph.pyx) and the work
    # buffer. It lives in the thread's state dict, so it is freed when the thread ends.
    cdef object graph
    cdef float* scratch
    cdef size_t scratch_n


cdef ThreadState this_thread()
cdef float* work_buffer(size_t n) except NULL
