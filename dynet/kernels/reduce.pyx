"""The shared-memory exchange's kernels (dynet.distributed), without the GIL: averaging float32
buffers in place (every rank's values of a range, each scaled, summed in rank order and written back
into every buffer: one pass that reads each value once and writes each once), shared out among the
ranks in chunks that each rank claims from a counter in shared memory (a reduce-scatter whose shares
are not fixed: a rank that arrives early, or whose partner the scheduler set aside, does more of the
work instead of waiting), and the rendezvous of the ranks on int32 stamps (spin, then sleep on a
futex)."""
from libc.stdlib cimport malloc, free
cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from dynet.kernels.cpu cimport sum_of_squares
import numpy as np

cnp.import_array()

cdef enum:
    BLOCK = 2048            # floats whose squared norm is summed in float accumulators


cdef extern from *:
    """
    #include <string.h>
    typedef float dn_v8sf __attribute__((vector_size(32)));
    /* bufs[r][start:start+count] = the sum over r, in rank order, of bufs[r][...] * scale, for
       every r, in one pass (16 values at a time in registers, stored into every buffer); returns
       the squared L2 norm of those values (two 8-float accumulators, folded into a double: the
       order depends only on the positions, so whoever computes the block gets the same bits). */
    static double dn_average_block(float** bufs, int n, Py_ssize_t start, Py_ssize_t count,
                                   float scale) {
        dn_v8sf a0 = {0}, a1 = a0, x0, x1, y0, y1;
        Py_ssize_t i = start, stop = start + count;
        float tail = 0;
        for (; i + 16 <= stop; i += 16) {
            memcpy(&x0, bufs[0] + i, 32); memcpy(&x1, bufs[0] + i + 8, 32);
            x0 *= scale; x1 *= scale;
            for (int r = 1; r < n; r++) {
                memcpy(&y0, bufs[r] + i, 32); memcpy(&y1, bufs[r] + i + 8, 32);
                x0 += y0 * scale; x1 += y1 * scale;
            }
            for (int r = 0; r < n; r++) {
                memcpy(bufs[r] + i, &x0, 32); memcpy(bufs[r] + i + 8, &x1, 32);
            }
            a0 += x0 * x0; a1 += x1 * x1;
        }
        for (; i < stop; i++) {
            float v = bufs[0][i] * scale;
            for (int r = 1; r < n; r++) v += bufs[r][i] * scale;
            for (int r = 0; r < n; r++) bufs[r][i] = v;
            tail += v * v;
        }
        a0 += a1;
        double total = tail;
        for (int k = 0; k < 8; k++) total += (double)a0[k];
        return total;
    }
    """
    double average_block "dn_average_block"(float** bufs, int n, Py_ssize_t start, Py_ssize_t count,
                                            float scale) noexcept nogil


cdef double average_range(float** bufs, int n, Py_ssize_t start, Py_ssize_t stop,
                          float scale) noexcept nogil:
    """average_block over start:stop, block by block; the squared norm of the averages, the
    blocks' norms summed in order."""
    cdef Py_ssize_t pos = start
    cdef double total = 0
    while pos < stop:
        total += average_block(bufs, n, pos, min(<Py_ssize_t>BLOCK, stop - pos), scale)
        pos += BLOCK
    return total


cdef float** buffer_pointers(list buffers, str op, Py_ssize_t* size) except NULL:
    """The data pointers of `buffers` (writable contiguous 1-D float32 arrays of one size, at least
    one; freed by the caller), their size in *size."""
    cdef int n = len(buffers), r
    if n == 0:
        raise ValueError(f"{op}: no buffers")
    size[0] = -1
    for b in buffers:
        if (not isinstance(b, np.ndarray) or b.dtype != np.float32 or b.ndim != 1
                or not b.flags.c_contiguous or not b.flags.writeable):
            raise ValueError(f"{op}: expected writable contiguous 1-D float32 arrays, "
                             f"got {b!r:.60}")
        if size[0] >= 0 and b.size != size[0]:
            raise ValueError(f"{op}: buffers of {size[0]} and {b.size} values")
        size[0] = b.size
    cdef float** bufs = <float**>malloc(n * sizeof(float*))
    if bufs == NULL:
        raise MemoryError(op)
    for r in range(n):
        bufs[r] = <float*>cnp.PyArray_DATA(buffers[r])
    return bufs


def sum_squares(x):
    """The squared L2 norm of a contiguous float32 array, as a float (the order of the sum is fixed
    and does not depend on the array's address: equal arrays give equal bits on every rank)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError(f"sum_squares: expected a contiguous float32 array, got {x!r:.60}")
    cdef float* p = <float*>cnp.PyArray_DATA(x)
    cdef Py_ssize_t n = x.size
    cdef double total
    with nogil:
        total = sum_of_squares(p, n)
    return total


def average_in_place(list buffers, Py_ssize_t start, Py_ssize_t stop, float scale):
    """buffers[r][start:stop] = sum over r of buffers[r][start:stop] * scale, for every r: the
    ranks' values, each multiplied by `scale` (1 / the number of ranks), summed in rank order, so
    every buffer ends with the same bits. buffers: writable contiguous 1-D float32 arrays."""
    if not buffers:
        return
    cdef Py_ssize_t size
    cdef int n = len(buffers)
    cdef float** bufs = buffer_pointers(buffers, "average_in_place", &size)
    if not 0 <= start <= stop <= size:
        free(bufs)
        raise ValueError(f"average_in_place: range {start}:{stop} outside buffers of {size} values")
    with nogil:
        average_range(bufs, n, start, stop, scale)
    free(bufs)


# ---- rendezvous --------------------------------------------------------------------------------
# A rank stamps its own int32 word (in memory shared between the processes) and waits until every
# other rank's word holds the same stamp. The store is sequentially consistent and preceded by a
# full fence, so whatever the rank wrote before (its gradients, the averaged share) is visible to a
# rank that sees the stamp; the waiting side fences after seeing it. Waiting polls for a moment (the
# others are usually about to arrive: waking from a sleep costs 10-50 us), then sleeps in the kernel
# on the word (Linux futex; the stamping rank wakes the sleepers), so that a rank waiting for a slower
# one gives its core away: on a 2-core machine that is the core the slower rank needs. Elsewhere it
# sleeps between polls instead.
cdef extern from *:
    """
    #include <time.h>
    #include <limits.h>
    #if defined(__linux__)
    #include <linux/futex.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #define DN_HAVE_FUTEX 1
    static void dn_futex_wait(int *word, int seen, double seconds) {
        struct timespec ts;
        ts.tv_sec = (time_t)seconds;
        ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
        syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
    }
    static void dn_futex_wake(int *word) {
        syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
    #else
    #define DN_HAVE_FUTEX 0
    static void dn_futex_wait(int *word, int seen, double seconds) {
        struct timespec ts = {0, 50000};      /* no futex: sleep 50 us between polls */
        (void)word; (void)seen; (void)seconds;
        nanosleep(&ts, NULL);
    }
    static void dn_futex_wake(int *word) { (void)word; }
    #endif
    #if defined(__x86_64__) || defined(__i386__)
    #define dn_cpu_relax() __builtin_ia32_pause()
    #elif defined(__aarch64__)
    #define dn_cpu_relax() __asm__ __volatile__("yield")
    #else
    #define dn_cpu_relax() ((void)0)
    #endif
    static double dn_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }
    static int dn_load(int *word) { return __atomic_load_n(word, __ATOMIC_ACQUIRE); }
    static void dn_store(int *word, int value) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        __atomic_store_n(word, value, __ATOMIC_SEQ_CST);
    }
    static void dn_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    /* the next of `count` chunks from `counter` (counting up from `base`, modulo 2^32), or `count`
       when all are taken; never counts past base + count */
    static unsigned dn_claim(int *counter, unsigned base, unsigned count) {
        unsigned *c = (unsigned *)counter;
        unsigned seen = __atomic_load_n(c, __ATOMIC_ACQUIRE);
        while (seen - base < count) {
            if (__atomic_compare_exchange_n(c, &seen, seen + 1, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                return seen - base;
        }
        return count;
    }
    /* counter + 1, fenced after what this thread wrote before; the new value */
    static unsigned dn_count_up(int *counter) {
        return __atomic_add_fetch((unsigned *)counter, 1u, __ATOMIC_SEQ_CST);
    }
    """
    int DN_HAVE_FUTEX
    void dn_futex_wait(int* word, int seen, double seconds) nogil
    void dn_futex_wake(int* word) nogil
    void dn_cpu_relax() nogil
    double dn_now() nogil
    int dn_load(int* word) nogil
    void dn_store(int* word, int value) nogil
    void dn_fence() nogil
    unsigned dn_claim(int* counter, unsigned base, unsigned count) nogil
    unsigned dn_count_up(int* counter) nogil


HAVE_FUTEX = bool(DN_HAVE_FUTEX)


cdef int wait_some(int** words, int n, int stamp, double spin, double timeout,
                   double start) noexcept nogil:
    """Wait until every words[i] holds `stamp`: poll until `spin` seconds after `start`, then sleep
    on each word that does not hold it yet, at most `timeout` seconds. 1 when every word holds the
    stamp (fenced), 0 when a sleep ended without it (the caller checks for signals and calls again)."""
    cdef int i, seen
    for i in range(n):
        while dn_load(words[i]) != stamp and dn_now() - start < spin:
            dn_cpu_relax()
        seen = dn_load(words[i])
        if seen != stamp:
            dn_futex_wait(words[i], seen, timeout)
            if dn_load(words[i]) != stamp:
                return 0
    dn_fence()
    return 1


cdef double wait_for_words(int** words, int n, int stamp, double spin,
                           double timeout) except -1.0:
    """Wait until every words[i] holds `stamp`; the seconds waited (0 when all were there). Called
    with the GIL, released while waiting; a signal (Ctrl-C) interrupts a long wait with its
    exception."""
    cdef int i, there = 1
    cdef double start
    for i in range(n):
        if dn_load(words[i]) != stamp:
            there = 0
    if there:
        dn_fence()
        return 0.0
    with nogil:
        start = dn_now()
        there = wait_some(words, n, stamp, spin, timeout, start)
    while not there:
        PyErr_CheckSignals()
        with nogil:
            there = wait_some(words, n, stamp, spin, timeout, start)
    return dn_now() - start


cdef class Rendezvous:
    """The ranks meeting on one int32 word each, in shared memory (`words`: one writable int32
    array of at least one element per rank; this rank's is words[rank]). meet(stamp) stamps this
    rank's word and waits until every word holds the stamp: poll `spin` seconds, then sleep until a
    rank stamps (re-checking every `timeout` seconds, in case a wake-up was missed)."""
    cdef int** others
    cdef int* mine
    cdef int n
    cdef list keep              # the arrays, alive as long as their pointers are used
    cdef public double spin, timeout

    def __cinit__(self, list words, int rank, double spin=1e-4, double timeout=0.05):
        self.others = NULL
        if not 0 <= rank < len(words):
            raise ValueError(f"Rendezvous: rank {rank} is not one of the {len(words)} words")
        for w in words:
            if (not isinstance(w, np.ndarray) or w.dtype != np.int32 or w.size < 1
                    or not w.flags.writeable or w.ctypes.data % 4):
                raise ValueError(f"Rendezvous: expected writable aligned int32 arrays, got {w!r:.60}")
        if not spin >= 0 or not timeout > 0:
            raise ValueError(f"Rendezvous: spin {spin} must be >= 0 and timeout {timeout} > 0 seconds")
        self.keep = list(words)
        self.n = len(words) - 1
        self.others = <int**>malloc(max(self.n, 1) * sizeof(int*))
        if self.others == NULL:
            raise MemoryError("Rendezvous")
        cdef int i, k = 0
        for i in range(len(words)):
            if i == rank:
                self.mine = <int*>cnp.PyArray_DATA(words[i])
            else:
                self.others[k] = <int*>cnp.PyArray_DATA(words[i])
                k += 1
        self.spin, self.timeout = spin, timeout

    def __dealloc__(self):
        free(self.others)

    def meet(self, int stamp):
        """Stamp this rank's word with `stamp`, wake the ranks sleeping on it, and wait until every
        rank's word holds `stamp`. Returns the seconds spent waiting (0.0 when every rank was
        there already)."""
        with nogil:
            dn_store(self.mine, stamp)
            dn_futex_wake(self.mine)
        return wait_for_words(self.others, self.n, stamp, self.spin, self.timeout)


def average_shared(list buffers, counters, unsigned int base, Py_ssize_t chunk, float scale,
                   double spin=1e-4, double timeout=0.05, sums=None):
    """average_in_place over the whole buffers, shared out among the ranks that call it together:
    the buffers are cut into chunks of `chunk` floats (the last one shorter); each caller claims
    the next chunk from counters[0] and averages it, until none is left, then waits (as
    Rendezvous.meet) until counters[1] says every chunk is done. `counters`: two int32 words in
    memory shared by the callers, counting chunks from `base` up (modulo 2^32): the callers pass
    the same base, the next call base + the number of chunks. Every value is computed by one caller
    as average_in_place computes it, so every buffer ends with the same bits whoever took which
    chunk; one caller alone does every chunk. `sums` (optional): float64 words in the same shared
    memory, one per chunk, where the caller of chunk k writes the squared L2 norm of its averages
    (before counting it done), so that after the call every caller can sum them in chunk order and
    get the norm of the averaged gradient without another pass over it (the same bits everywhere).
    Returns the seconds spent waiting for the others' chunks (0.0 when none was left unfinished)."""
    if chunk <= 0 or chunk % 16:
        raise ValueError(f"average_shared: chunk {chunk} must be a positive multiple of 16 floats")
    if (not isinstance(counters, np.ndarray) or counters.dtype != np.int32 or counters.size < 2
            or not counters.flags.c_contiguous or not counters.flags.writeable):
        raise ValueError(f"average_shared: counters must be 2 writable int32 words, got "
                         f"{counters!r:.60}")
    if not spin >= 0 or not timeout > 0:
        raise ValueError(f"average_shared: spin {spin} must be >= 0 and timeout {timeout} > 0 seconds")
    cdef Py_ssize_t size
    cdef float** bufs = buffer_pointers(buffers, "average_shared", &size)
    cdef unsigned nchunks = <unsigned>((size + chunk - 1) // chunk)
    cdef double* norms = NULL
    if sums is not None:
        if (not isinstance(sums, np.ndarray) or sums.dtype != np.float64 or sums.ndim != 1
                or not sums.flags.c_contiguous or not sums.flags.writeable or sums.size < nchunks):
            free(bufs)
            raise ValueError(f"average_shared: sums must be {nchunks} writable float64 words (one "
                             f"per chunk), got {sums!r:.60}")
        norms = <double*>cnp.PyArray_DATA(sums)
    cdef int n = len(buffers)
    cdef int* claim = <int*>cnp.PyArray_DATA(counters)
    cdef int* done = claim + 1
    cdef int target = <int>(base + nchunks)
    cdef unsigned k
    cdef Py_ssize_t start
    cdef double norm
    with nogil:
        while True:
            k = dn_claim(claim, base, nchunks)
            if k >= nchunks:
                break
            start = k * chunk
            norm = average_range(bufs, n, start, min(start + chunk, size), scale)
            if norms != NULL:
                norms[k] = norm
            if dn_count_up(done) == <unsigned>target:
                dn_futex_wake(done)
    free(bufs)
    return wait_for_words(&done, 1, target, spin, timeout)
