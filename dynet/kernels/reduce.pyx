"""The shared-memory exchange's kernels (dynet.distributed): averaging float32 buffers in place --
each rank averages its share of every rank's gradient (a reduce-scatter) and writes the result back
into all of them, in one pass that reads each value once and writes each once -- and the rendezvous
of the ranks on int32 stamps in shared memory (spin, then sleep on a futex), without the GIL."""
cimport cython
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef enum:
    BLOCK = 2048            # floats summed in a buffer on the stack (8 KB: stays in L1)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void average_block(float** bufs, int n, Py_ssize_t start, Py_ssize_t count, float scale,
                        float* acc) noexcept nogil:
    cdef Py_ssize_t i
    cdef int r
    cdef float* src = bufs[0] + start
    for i in range(count):
        acc[i] = src[i] * scale
    for r in range(1, n):
        src = bufs[r] + start
        for i in range(count):
            acc[i] += src[i] * scale
    for r in range(n):
        memcpy(bufs[r] + start, acc, count * sizeof(float))


def average_in_place(list buffers, Py_ssize_t start, Py_ssize_t stop, float scale):
    """buffers[r][start:stop] = sum over r of buffers[r][start:stop] * scale, for every r: the
    ranks' values, each multiplied by `scale` (1 / the number of ranks), summed in rank order, so
    every buffer ends with the same bits. buffers: writable contiguous 1-D float32 arrays."""
    cdef int n = len(buffers), r
    if n == 0:
        return
    cdef Py_ssize_t size = -1, pos, count
    for b in buffers:
        if (not isinstance(b, np.ndarray) or b.dtype != np.float32 or b.ndim != 1
                or not b.flags.c_contiguous or not b.flags.writeable):
            raise ValueError(f"average_in_place: expected writable contiguous 1-D float32 arrays, "
                             f"got {b!r:.60}")
        if size >= 0 and b.size != size:
            raise ValueError(f"average_in_place: buffers of {size} and {b.size} values")
        size = b.size
    if not 0 <= start <= stop <= size:
        raise ValueError(f"average_in_place: range {start}:{stop} outside buffers of {size} values")
    cdef float** bufs = <float**>malloc(n * sizeof(float*))
    if bufs == NULL:
        raise MemoryError("average_in_place")
    cdef float acc[BLOCK]
    for r in range(n):
        bufs[r] = <float*>cnp.PyArray_DATA(buffers[r])
    with nogil:
        pos = start
        while pos < stop:
            count = min(BLOCK, stop - pos)
            average_block(bufs, n, pos, count, scale, acc)
            pos += count
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
    """
    int DN_HAVE_FUTEX
    void dn_futex_wait(int* word, int seen, double seconds) nogil
    void dn_futex_wake(int* word) nogil
    void dn_cpu_relax() nogil
    double dn_now() nogil
    int dn_load(int* word) nogil
    void dn_store(int* word, int value) nogil
    void dn_fence() nogil


HAVE_FUTEX = bool(DN_HAVE_FUTEX)


cdef double wait_for_words(int** words, int n, int stamp, double spin, double timeout) noexcept nogil:
    """Wait until every words[i] holds `stamp`; the seconds waited (0 when all were there)."""
    cdef int i, seen
    cdef double start = 0
    for i in range(n):
        if dn_load(words[i]) == stamp:
            continue
        if start == 0:
            start = dn_now()
        while dn_load(words[i]) != stamp and dn_now() - start < spin:
            dn_cpu_relax()
        seen = dn_load(words[i])
        while seen != stamp:
            dn_futex_wait(words[i], seen, timeout)
            seen = dn_load(words[i])
    dn_fence()
    return dn_now() - start if start != 0 else 0.0


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
        cdef double waited
        with nogil:
            dn_store(self.mine, stamp)
            dn_futex_wake(self.mine)
            waited = wait_for_words(self.others, self.n, stamp, self.spin, self.timeout)
        return waited
