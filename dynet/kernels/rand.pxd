"""Typed draws from the library's random generator (config.rng(): a NumPy Generator seeded by
--dynet-seed) through NumPy's C interface to its bit generator, so a node draws without a NumPy call
per node: dropout masks are the values `rng.random(n)` gives; noise is drawn by a vectorised
Box-Muller that kernels/generic.py repeats on arrays."""


cdef int draw_keep_mask(float* mask, Py_ssize_t n, double p) except -1
cdef int draw_normal(float* out, Py_ssize_t n, float stddev) except -1
