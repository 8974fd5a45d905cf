"""Arena allocation for values and gradients (DyNet's forward/backward memory pools).

Every node value (and, in the backward pass, every node gradient) is a slice of an arena; `renew_cg`
releases all of them with one `reset`. When the main block is full we do not move it (nodes hold raw
pointers into it); we take a "spill" block instead, and at the next reset the main block is grown to
the high-water mark so the spill does not recur.
"""
from libc.stdlib cimport free, realloc
from libc.stdint cimport uintptr_t
from cpython.ref cimport PyObject
from cpython.pystate cimport PyThreadState_GetDict
from cpython.pythread cimport PyThread_get_thread_ident
from posix.stdlib cimport posix_memalign

# Keep every slice 64-byte aligned (16 floats): vector loads and BLAS prefer it.
cdef size_t ALIGN = 16


cdef inline size_t round_up(size_t n) noexcept:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


cdef float* aligned_malloc(size_t nfloats) except NULL:
    cdef void* p = NULL
    if posix_memalign(&p, 64, nfloats * sizeof(float) if nfloats else 64) != 0:
        raise MemoryError(f"could not allocate {nfloats * 4} bytes")
    return <float*>p


cdef class Arena:
    def __cinit__(self, str name, size_t megabytes):
        self.name = name
        self.capacity = round_up(max(<size_t>1, megabytes) * (1 << 20) // sizeof(float))
        self.block = aligned_malloc(self.capacity)   # untouched pages cost nothing until used
        self.used = 0
        self.spill = []
        self.spill_total = 0
        self.high_water = 0

    def __dealloc__(self):
        self._free_spill()
        free(self.block)

    cdef void _free_spill(self) noexcept:
        cdef object addr
        if self.spill:
            for addr in self.spill:
                free(<void*><uintptr_t>addr)
            self.spill = []

    cdef float* alloc(self, size_t n) except NULL:
        n = round_up(n)
        cdef float* p
        if self.used + n <= self.capacity:
            p = self.block + self.used
            self.used += n
            return p
        # Main block full: take a separate block for this request.
        p = aligned_malloc(n)
        self.spill.append(<uintptr_t>p)
        self.spill_total += n
        return p

    cdef int reserve(self, size_t n) except -1:
        """Make sure the main block alone can hold n floats from its start (used before a reset)."""
        n = round_up(n)
        if n > self.capacity:
            if self.used:
                raise RuntimeError(f"{self.name} pool: cannot grow while in use")
            free(self.block)
            self.block = NULL
            self.capacity = max(n, self.capacity * 2)
            self.block = aligned_malloc(self.capacity)
        return 0

    cdef void reset(self) noexcept:
        cdef size_t need = self.used + self.spill_total
        if need > self.high_water:
            self.high_water = need
        self._free_spill()
        self.spill_total = 0
        self.used = 0
        if self.high_water > self.capacity:
            # Grow so that a graph like the last one fits in the main block.
            free(self.block)
            self.block = NULL
            self.capacity = round_up(self.high_water + self.high_water // 4)
            if posix_memalign(<void**>&self.block, 64, self.capacity * sizeof(float)) != 0:
                self.block = NULL    # cannot raise here; every request will spill instead
                self.capacity = 0

    @property
    def capacity_bytes(self):
        return self.capacity * sizeof(float)

    @property
    def used_bytes(self):
        return (self.used + self.spill_total) * sizeof(float)


# ---- what each thread has of its own ------------------------------------------------------
# Each thread has its own computation graph and work buffer (threads that build and run graphs
# side by side, as a server's request handlers do). They live in a ThreadState kept in the thread's
# state dict, which CPython clears when the thread ends. The hot path (add_node, once per node)
# reaches it through a one-entry cache: the last thread's ident and a borrowed pointer, cleared by
# ThreadState's __dealloc__ so that a new thread that is given a dead thread's ident never sees it.

cdef str _KEY = "dynet.thread_state"
cdef PyObject* _cached = NULL
cdef long _cached_ident = 0


cdef class ThreadState:
    def __dealloc__(self):
        global _cached, _cached_ident
        if _cached == <PyObject*>self:
            _cached = NULL
            _cached_ident = 0
        free(self.scratch)
        self.scratch = NULL


cdef ThreadState _lookup_thread(long ident):
    global _cached, _cached_ident
    cdef PyObject* dp = PyThreadState_GetDict()
    if dp == NULL:
        raise RuntimeError("dynet: this thread has no Python thread state")
    cdef dict d = <dict><object>dp
    state = d.get(_KEY)
    if state is None:
        state = ThreadState.__new__(ThreadState)
        d[_KEY] = state
    _cached = <PyObject*>state
    _cached_ident = ident
    return <ThreadState>state


cdef ThreadState this_thread():
    """The calling thread's ThreadState (made on first use)."""
    cdef long ident = PyThread_get_thread_ident()
    if ident == _cached_ident and _cached != NULL:
        return <ThreadState>_cached
    return _lookup_thread(ident)


# The work buffer, for temporaries that live only inside one node's forward or backward call (conv2d's
# column matrix, the LSTM cell's pre-activation gradients, kmax_pooling's row, matmul's gathered
# gradients): a thread runs its nodes one at a time, so they can all share its buffer.
cdef float* work_buffer(size_t n) except NULL:
    """A buffer of at least n floats for the calling thread, valid until its next call (reused)."""
    cdef ThreadState t = this_thread()
    cdef float* p
    if n > t.scratch_n or t.scratch == NULL:
        p = <float*>realloc(t.scratch, max(n, <size_t>1) * sizeof(float))
        if p == NULL:
            raise MemoryError(f"cannot allocate a work buffer of {n} floats")
        t.scratch = p
        t.scratch_n = max(n, <size_t>1)
    return t.scratch


def reserve_work_buffer(size_t megabytes):
    """Size the calling thread's work buffer up front (--dynet-mem's fourth number, DyNet's scratch
    pool); it still grows if a node needs more. Other threads' buffers grow as they need."""
    work_buffer(megabytes * (1 << 20) // sizeof(float))


def work_buffer_bytes():
    """The calling thread's work buffer size."""
    return this_thread().scratch_n * sizeof(float)
