"""Lowered forward passes: a run of nodes as an array of C steps, run without the GIL.

A node type that can be lowered overrides `Expression.lower(L)`: with the GIL held, it appends zero
or more steps to `L` (each a `noexcept nogil` kernel and the pointers and sizes it reads) and returns
1; one that cannot (a kernel that may fail, or that calls Python) returns 0, and the forward loop
(graph.pyx's forward_to) runs the steps lowered so far, then that node with the GIL. Lowering reads
only pointers and sizes fixed when the node was added, never values: a step runs after the steps
before it, as the nodes would have.
"""
from libc.stdlib cimport realloc, free
from dynet.kernels.cpu cimport copy, fill

# A run with less work than this keeps the GIL (releasing costs 0.1-0.2 us, more when contended).
cdef Py_ssize_t MIN_RELEASE_WORK = 2048

cdef extern from *:
    """
    #include <time.h>
    /* The GIL hand-off between threads that serve side by side: thread A's GIL-free run ends while
       thread B, holding the GIL, builds its next graph; B will let the GIL go when its own run
       starts, tens of microseconds later. Waiting for it the usual way puts A to sleep on CPython's
       condition variable, and the wake-up after B lets go cost more than the run saved (on this
       machine the two threads' forward passes took 2-3x their time). So A spins, without the GIL,
       while a builder that took the GIL after its own run has held it for less than
       DN_HANDOFF_SPIN_NS, then takes the GIL as usual (free by then, or a sleep as before). */
    #define DN_HANDOFF_SPIN_NS 200000
    static long long dn_builder_since = 0;     /* when the GIL's holder took it after a run; 0: none */
    static inline long long dn_now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
    }
    static inline void dn_building(int yes) {
        __atomic_store_n(&dn_builder_since, yes ? dn_now_ns() : 0, __ATOMIC_RELEASE);
    }
    static inline void dn_wait_for_builder(void) {
        long long since = __atomic_load_n(&dn_builder_since, __ATOMIC_ACQUIRE);
        while (since != 0 && dn_now_ns() - since < DN_HANDOFF_SPIN_NS) {
    #if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
    #endif
            since = __atomic_load_n(&dn_builder_since, __ATOMIC_ACQUIRE);
        }
    }
    """
    void building "dn_building"(int yes) noexcept nogil
    void wait_for_builder "dn_wait_for_builder"() noexcept nogil


cdef class Lowering:
    """Lowering()\n--\n\n
    One thread's buffer of lowered steps (kept by its graph; reused from pass to pass)."""

    def __dealloc__(self):
        free(self.steps)
        free(self.parts)

    cdef Step* add(self, step_kernel run, Py_ssize_t work) except NULL:
        cdef Step* grown
        if self.n_steps == self.cap_steps:
            grown = <Step*>realloc(self.steps, (2 * self.cap_steps + 64) * sizeof(Step))
            if grown == NULL:
                raise MemoryError("forward: cannot grow the lowered steps' buffer")
            self.steps = grown
            self.cap_steps = 2 * self.cap_steps + 64
        cdef Step* s = self.steps + self.n_steps
        self.n_steps += 1
        s.run = run
        s.nparts = 0
        self.work += work
        return s

    cdef Part* add_parts(self, Step* s, Py_ssize_t n) except NULL:
        """n side entries for the step s (the last one added)."""
        cdef Part* grown
        cdef Py_ssize_t cap
        if self.n_parts + n > self.cap_parts:
            cap = 2 * self.cap_parts + n + 64
            grown = <Part*>realloc(self.parts, cap * sizeof(Part))
            if grown == NULL:
                raise MemoryError("forward: cannot grow the lowered steps' side array")
            self.parts = grown
            self.cap_parts = cap
        s.part0 = self.n_parts
        s.nparts = n
        self.n_parts += n
        return self.parts + s.part0

    cdef void run_steps(self) noexcept nogil:
        cdef Py_ssize_t i
        cdef const Step* s
        for i in range(self.n_steps):
            s = self.steps + i
            s.run(s, self.parts + s.part0)

    cdef void clear(self) noexcept:
        self.n_steps = 0
        self.n_parts = 0
        self.work = 0

    cdef int flush(self) except -1:
        """Run the steps lowered so far (without the GIL when there is enough work), and empty."""
        if self.n_steps == 0:
            return 0
        if self.work >= MIN_RELEASE_WORK:
            building(0)
            with nogil:
                self.run_steps()
                wait_for_builder()
            building(1)
        else:
            self.run_steps()
        self.clear()
        return 0


cdef void copy_step(const Step* s, const Part* parts) noexcept nogil:
    copy(s.n0, s.x0, s.y)


cdef void fill_step(const Step* s, const Part* parts) noexcept nogil:
    fill(s.n0, s.a, s.y)
