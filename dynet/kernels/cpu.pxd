# Typed CPU kernels on raw float32 buffers, inlined into the node modules that cimport them.
# Column-major throughout (DyNet's layout), so BLAS is called without transposing anything.
from scipy.linalg.cython_blas cimport sgemm, sgemv, sger, saxpy, sdot, sscal
from libc.string cimport memcpy, memset


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, float alpha,
                      const float* A, int lda, const float* B, int ldb,
                      float beta, float* C, int ldc) noexcept nogil:
    """C = alpha * op(A) * op(B) + beta * C, with C m x n and the inner dimension k."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int one = 1, rows_a, cols_a
    if m == 0 or n == 0:
        return
    if n == 1 and not trans_b:
        # matrix-vector: sgemv is markedly cheaper than a degenerate sgemm
        rows_a = k if trans_a else m
        cols_a = m if trans_a else k
        sgemv(&ta, &rows_a, &cols_a, &alpha, <float*>A, &lda, <float*>B, &one, &beta, C, &one)
        return
    sgemm(&ta, &tb, &m, &n, &k, &alpha, <float*>A, &lda, <float*>B, &ldb, &beta, C, &ldc)


cdef inline void axpy(Py_ssize_t n, float a, const float* x, float* y) noexcept nogil:
    """y += a * x"""
    cdef Py_ssize_t i
    for i in range(n):
        y[i] += a * x[i]


cdef inline void add_to(Py_ssize_t n, const float* x, float* y) noexcept nogil:
    """y += x"""
    cdef Py_ssize_t i
    for i in range(n):
        y[i] += x[i]


cdef inline void copy(Py_ssize_t n, const float* x, float* y) noexcept nogil:
    memcpy(y, x, n * sizeof(float))


cdef inline void fill(Py_ssize_t n, float v, float* y) noexcept nogil:
    cdef Py_ssize_t i
    if v == 0:
        memset(y, 0, n * sizeof(float))
    else:
        for i in range(n):
            y[i] = v


cdef inline float dot(Py_ssize_t n, const float* x, const float* y) noexcept nogil:
    # four accumulators so the loop vectorises and rounding error stays small
    cdef float s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
        i += 4
    while i < n:
        s0 += x[i] * y[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef inline float sum_of(Py_ssize_t n, const float* x) noexcept nogil:
    cdef float s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
        i += 4
    while i < n:
        s0 += x[i]
        i += 1
    return (s0 + s1) + (s2 + s3)
