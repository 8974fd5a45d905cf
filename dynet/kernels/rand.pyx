"""Typed draws from the library's random generator (see rand.pxd).

The generator is whatever `config._rng` is at the time of the draw (reseed replaces it, tests swap
it), so each draw looks it up and reuses the C pointer of its bit generator while it is the same
object. Draws hold the bit generator's lock, as NumPy's own methods do (they draw with the GIL
released), so a thread drawing through NumPy meanwhile cannot interleave with a draw here. The
lock's acquire and release are called directly: a `with` statement looks both up at every draw,
and nothing between them can raise.
"""
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.math cimport sqrtf
from dynet.kernels.cpu cimport fast_log, copy
from dynet.core import config


cdef extern from "numpy/random/distributions.h":
    void random_standard_uniform_fill(bitgen_t* state, Py_ssize_t n, double* out) noexcept nogil


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


cdef bitgen_t* hold_generator() except NULL:
    """The current generator's bit generator, its lock taken: for a run of draws (an autobatched
    group's masks) that looks the generator up and locks it once. release_generator() after."""
    cdef bitgen_t* bg = current()
    _acquire()
    return bg


cdef int release_generator() except -1:
    _release()
    return 0


cdef void fill_keep_mask(bitgen_t* bg, float* mask, Py_ssize_t n, double p) noexcept nogil:
    """mask[i] = 1/(1-p) with probability 1-p, else 0 (inverted dropout); as
    `(rng.random(n) >= p) * (1 / (1 - p))`, so the generic path draws the same mask. The
    generator held (hold_generator)."""
    cdef float keep = <float>(1.0 / (1.0 - p)) if p < 1 else 0.0
    cdef double u[CHUNK]
    cdef Py_ssize_t start, i, m
    # the uniforms first, then the comparisons in a loop of their own: that loop vectorises
    # (compares and selects), where comparing each draw as it comes is a branch on a coin flip,
    # mispredicted every other value (5x slower)
    start = 0
    while start < n:
        m = min(<Py_ssize_t>CHUNK, n - start)
        random_standard_uniform_fill(bg, m, u)
        for i in range(m):
            mask[start + i] = keep if u[i] >= p else 0.0
        start += m


cdef int draw_keep_mask(float* mask, Py_ssize_t n, double p) except -1:
    fill_keep_mask(hold_generator(), mask, n, p)
    return release_generator()


cdef inline void cos_sin_turn(double t, float* c, float* s) noexcept nogil:
    """cos and sin of the angle 2 pi t for t in [0, 1): t moved to [-1/2, 1/2), then Taylor
    polynomials to x^18 and x^17 on [-pi, pi] (below float32 rounding there); no branches."""
    cdef float x = <float>(6.283185307179586 * (t - (1.0 if t >= 0.5 else 0.0)))
    cdef float q = x * x
    c[0] = 1 + q * (<float>-0.5 + q * (<float>4.1666666666666664e-02 + q * (<float>-1.3888888888888889e-03
           + q * (<float>2.4801587301587302e-05 + q * (<float>-2.7557319223985888e-07
           + q * (<float>2.0876756987868100e-09 + q * (<float>-1.1470745597729725e-11
           + q * (<float>4.7794773323873853e-14 + q * <float>-1.5619206968586225e-16))))))))
    s[0] = x * (1 + q * (<float>-1.6666666666666666e-01 + q * (<float>8.3333333333333332e-03
           + q * (<float>-1.9841269841269841e-04 + q * (<float>2.7557319223985893e-06
           + q * (<float>-2.5052108385441720e-08 + q * (<float>1.6059043836821613e-10
           + q * (<float>-7.6471637318198164e-13 + q * <float>2.8114572543455206e-15))))))))


cdef void fill_normal(bitgen_t* bg, float* out, Py_ssize_t n, float stddev) noexcept nogil:
    """out[i] ~ N(0, stddev^2) by Box-Muller, vectorised: with h = ceil(n / 2) and 2h uniforms u,
    radius r_i = sqrt(-2 ln(1 - u_i)) and angle 2 pi u_(h+i) give out[i] = stddev r_i cos and
    out[h+i] = stddev r_i sin (the last sine dropped for odd n). kernels/generic.py gaussian_noise
    computes the same from rng.random(2h) (NumPy's ziggurat draws one value at a time through
    branches, 3-4x slower). The generator held (hold_generator)."""
    cdef Py_ssize_t h = (n + 1) // 2, start, i, m
    cdef double u[CHUNK]
    cdef float sines[CHUNK]
    cdef float c, s, r
    start = 0                      # the radii, kept in out[:h] until the angles come
    while start < h:
        m = min(<Py_ssize_t>CHUNK, h - start)
        random_standard_uniform_fill(bg, m, u)
        for i in range(m):
            out[start + i] = sqrtf(-2 * fast_log(<float>(1.0 - u[i])))
        start += m
    start = 0
    while start < h:
        m = min(<Py_ssize_t>CHUNK, h - start)
        random_standard_uniform_fill(bg, m, u)
        for i in range(m):
            cos_sin_turn(u[i], &c, &s)
            r = stddev * out[start + i]
            out[start + i] = r * c
            sines[i] = r * s
        copy(min(m, n - h - start), sines, out + h + start)
        start += m


cdef int draw_normal(float* out, Py_ssize_t n, float stddev) except -1:
    fill_normal(hold_generator(), out, n, stddev)
    return release_generator()
