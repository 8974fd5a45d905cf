"""Typed draws from the library's random generator (see rand.pxd).

The generator is whatever `config._rng` is at the time of the draw (reseed replaces it, tests swap
it), so each draw looks it up and reuses the C pointer of its bit generator while it is the same
object. Draws hold the bit generator's lock, as NumPy's own methods do (they draw with the GIL
released), so a thread drawing through NumPy meanwhile cannot interleave with a draw here. The
lock's acquire and release are called directly: a `with` statement looks both up at every draw,
and nothing between them can raise.
"""
from cpython.pycapsule cimport PyCapsule_GetPointer
from dynet.core import config


cdef extern from "numpy/random/bitgen.h":
    ctypedef struct bitgen_t:
        void* state


cdef extern from "numpy/random/distributions.h":
    void random_standard_uniform_fill(bitgen_t* state, Py_ssize_t n, double* out) noexcept nogil
    void random_standard_normal_fill_f(bitgen_t* state, Py_ssize_t n, float* out) noexcept nogil


cdef object _generator = None      # the Generator whose bit generator _bitgen points into
cdef object _acquire = None         # its bit generator's lock.acquire and .release
cdef object _release = None
cdef bitgen_t* _bitgen = NULL


cdef bitgen_t* current() except NULL:
    """The current generator's bit generator (its lock's methods are in _acquire, _release)."""
    global _generator, _acquire, _release, _bitgen
    gen = config._rng
    if gen is not _generator:
        bits = gen.bit_generator
        _bitgen = <bitgen_t*>PyCapsule_GetPointer(bits.capsule, "BitGenerator")
        _acquire, _release = bits.lock.acquire, bits.lock.release
        _generator = gen
    return _bitgen


cdef enum:
    CHUNK = 256       # uniforms drawn at a time into a stack buffer


cdef int draw_keep_mask(float* mask, Py_ssize_t n, double p) except -1:
    """mask[i] = 1/(1-p) with probability 1-p, else 0 (inverted dropout); as
    `(rng.random(n) >= p) * (1 / (1 - p))`, so the generic path draws the same mask."""
    cdef bitgen_t* bg = current()
    cdef float keep = <float>(1.0 / (1.0 - p)) if p < 1 else 0.0
    cdef double u[CHUNK]
    cdef Py_ssize_t start, i, m
    # the uniforms first, then the comparisons in a loop of their own: that loop vectorises
    # (compares and selects), where comparing each draw as it comes is a branch on a coin flip,
    # mispredicted every other value (5x slower)
    _acquire()
    start = 0
    while start < n:
        m = min(<Py_ssize_t>CHUNK, n - start)
        random_standard_uniform_fill(bg, m, u)
        for i in range(m):
            mask[start + i] = keep if u[i] >= p else 0.0
        start += m
    _release()
    return 0


cdef int draw_normal(float* out, Py_ssize_t n, float stddev) except -1:
    """out[i] ~ N(0, stddev^2): the values of `rng.standard_normal(n, dtype=np.float32) *
    np.float32(stddev)` (NumPy's float32 ziggurat)."""
    cdef bitgen_t* bg = current()
    cdef Py_ssize_t i
    _acquire()
    random_standard_normal_fill_f(bg, n, out)
    _release()
    for i in range(n):
        out[i] *= stddev
    return 0
