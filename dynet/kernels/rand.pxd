"""Typed draws from the library's random generator (config.rng(): a NumPy Generator seeded by
--dynet-seed) through NumPy's C interface to its bit generator, so a node draws without a NumPy call
per node: dropout masks are the values `rng.random(n)` gives; noise is drawn by a vectorised
Box-Muller that kernels/generic.py repeats on arrays."""

cdef extern from "numpy/random/bitgen.h":
    ctypedef struct bitgen_t:
        void* state


cdef int draw_keep_mask(float* mask, Py_ssize_t n, double p) except -1
cdef int draw_normal(float* out, Py_ssize_t n, float stddev) except -1

# A run of draws under one lookup and lock of the generator (an autobatched group's masks draw the
# values that the same nodes drawing one by one in that order would): hold, fill, release.
cdef bitgen_t* hold_generator() except NULL
cdef int release_generator() except -1
cdef void fill_keep_mask(bitgen_t* bg, float* mask, Py_ssize_t n, double p) noexcept nogil
cdef void fill_normal(bitgen_t* bg, float* out, Py_ssize_t n, float stddev) noexcept nogil
