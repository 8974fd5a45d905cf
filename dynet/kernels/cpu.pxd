# Typed CPU kernels on raw float32 buffers, inlined into the node modules that cimport them.
# Column-major throughout (DyNet's layout), so BLAS is called without transposing anything.
from scipy.linalg.cython_blas cimport sgemm, sgemv, sger, saxpy, sdot, sscal
from libc.string cimport memcpy, memset
from libc.math cimport logf, floorf


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


cdef enum:
    LANES = 16     # independent accumulators: one AVX-512 register (two AVX2 ones)


cdef inline float lanes_total(float* acc) noexcept nogil:
    """The sum of LANES (16) partial sums, pairwise; constant trip counts, so each step is one
    vector add (a loop over a variable width went through memory, one scalar add at a time)."""
    cdef int l
    for l in range(8):
        acc[l] += acc[l + 8]
    for l in range(4):
        acc[l] += acc[l + 4]
    return (acc[0] + acc[2]) + (acc[1] + acc[3])


cdef inline float dot(Py_ssize_t n, const float* x, const float* y) noexcept nogil:
    # LANES independent partial sums, so the compiler can keep them in one vector register:
    # a single running sum is a chain of dependent scalar adds (the compiler may not reorder float
    # additions), which made A^T v in the backward pass of a 32x32 product three times slower
    cdef float acc[LANES]
    cdef Py_ssize_t i = 0
    cdef int l
    for l in range(LANES):
        acc[l] = 0
    while i + LANES <= n:
        for l in range(LANES):
            acc[l] += x[i + l] * y[i + l]
        i += LANES
    for l in range(n - i):
        acc[l] += x[i + l] * y[i + l]
    return lanes_total(acc)


cdef inline float sum_of(Py_ssize_t n, const float* x) noexcept nogil:
    cdef float acc[LANES]
    cdef Py_ssize_t i = 0
    cdef int l
    for l in range(LANES):
        acc[l] = 0
    while i + LANES <= n:
        for l in range(LANES):
            acc[l] += x[i + l]
        i += LANES
    for l in range(n - i):
        acc[l] += x[i + l]
    return lanes_total(acc)


# ---- exp and tanh written out so that loops over them vectorise (libm calls do not) ----------
cdef inline float fast_exp(float x) noexcept nogil:
    """e^x to about 2 ulp over float32's whole range, as expf: x = n ln2 + r with |r| <= ln2/2, a
    degree-7 polynomial for e^r, times 2^n built in the exponent bits. 2^n is applied as two factors
    2^(n/2) and 2^(n - n/2), each a normal float, so that the result overflows to inf above ~88.72
    and underflows gradually (denormals, rounded once) to 0 below ~-103.97 like expf, instead of
    being clamped. Written with selects, floorf, a memcpy bit-cast and float-typed constants (no
    branches, no union, no double promotion), which is what lets gcc vectorise the loops that call
    it: about 10x faster than libm's expf."""
    # beyond these the result is inf / 0 anyway; the clamp keeps n (and the exponent bits) in range
    cdef float hi = 89.0, lo = -104.0, log2e = 1.4426950408889634, half = 0.5, one = 1.0
    cdef float ln2_hi = 0.693145751953125, ln2_lo = 1.428606765330187e-06
    cdef float c2 = 0.5, c3 = 0.16666666666666666, c4 = 0.041666666666666664
    cdef float c5 = 0.008333333333333333, c6 = 0.001388888888888889, c7 = 0.0001984126984126984
    cdef float n, r, p, scale1, scale2
    cdef int k, k1, bits1, bits2
    x = hi if x > hi else x
    x = lo if x < lo else x
    n = floorf(x * log2e + half)
    r = (x - n * ln2_hi) - n * ln2_lo
    p = one + r * (one + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))))))
    k = <int>n                     # in [-150, 128]
    k1 = k >> 1                    # both halves in [-75, 64]: normal floats
    bits1 = (k1 + 127) << 23
    bits2 = (k - k1 + 127) << 23
    memcpy(&scale1, &bits1, sizeof(float))
    memcpy(&scale2, &bits2, sizeof(float))
    return (p * scale1) * scale2


cdef inline float fast_log(float x) noexcept nogil:
    """ln x for positive normal floats (about 1 ulp; 0, denormals, inf and NaN are not handled):
    x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = f - f^2/2 + f^3 P(f) for f = m - 1 (Cephes'
    logf polynomial), plus e ln 2 in two parts. Selects and bit casts only, so loops over it
    vectorise (libm's logf is a call per value)."""
    cdef float sqrt_half = 0.70710678118654752, one = 1.0, half = 0.5
    cdef float ln2_hi = 0.693359375, ln2_lo = -2.12194440e-4
    cdef int bits, e
    cdef float m, f, z, y, fe
    memcpy(&bits, &x, sizeof(float))
    e = ((bits >> 23) & 0xff) - 126              # x = m 2^e with m in [0.5, 1)
    bits = (bits & 0x007fffff) | 0x3f000000
    memcpy(&m, &bits, sizeof(float))
    e = e - 1 if m < sqrt_half else e
    f = (m + m - one) if m < sqrt_half else (m - one)
    z = f * f
    y = ((((((((<float>7.0376836292e-2 * f - <float>1.1514610310e-1) * f + <float>1.1676998740e-1) * f
              - <float>1.2420140846e-1) * f + <float>1.4249322787e-1) * f - <float>1.6668057665e-1) * f
           + <float>2.0000714765e-1) * f - <float>2.4999993993e-1) * f + <float>3.3333331174e-1) * f * z
    fe = <float>e
    y = y + ln2_lo * fe - half * z
    return (f + y) + ln2_hi * fe


cdef inline float fast_log1p(float u) noexcept nogil:
    """ln(1 + u) for u > -1, accurate also for tiny u: ln(w) u / (w - 1) with w = 1 + u rounded
    (the quotient undoes the rounding of w), u itself where w rounds to 1."""
    cdef float one = 1.0
    cdef float w = one + u
    cdef float r = fast_log(w) * (u / (w - one))
    return u if w == one else r


cdef extern from *:
    """
    #include <math.h>
    /* sin(x + shift pi/2) for |x| <= DN_SIN_FAST_LIMIT, written so that loops over it vectorise
       (libm's sinf/cosf are calls per value: sin and cos of 256 values cost 1.3-1.7x DyNet's).
       x = n pi/2 + r, |r| <= pi/4, with pi/2 split in three parts (Cody and Waite) so that n pi/2 is
       subtracted without rounding for |n| < 2^12; then the quadrant (n + shift) mod 4 picks
       +-sin(r) or +-cos(r), each a minimax polynomial on [-pi/4, pi/4] (the classic single-
       precision coefficients, about 1 ulp). shift 1 gives cos, 2 gives -sin. */
    #define DN_SIN_FAST_LIMIT 6000.0f
    static inline float dn_sin_shifted(float x, int shift) {
        float n = rintf(x * 0.636619772367581343f);
        float r = x - n * 1.5703125f;
        r = r - n * 4.837512969970703125e-4f;
        r = r - n * 7.549789948768648e-8f;
        int q = ((int)n + shift) & 3;
        float r2 = r * r;
        float s = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
        float c = 1.0f - 0.5f * r2 + r2 * r2 * (4.166664568298827e-2f
                  + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
        float v = (q & 1) ? c : s;
        return (q & 2) ? -v : v;
    }
    /* whether every |x[i]| is within the fast range (NaN counts as within: it stays NaN) */
    static inline int dn_sin_fast_range(long n, const float* x) {
        int out = 0;
        long i;
        for (i = 0; i < n; i++)
            out |= fabsf(x[i]) > DN_SIN_FAST_LIMIT;
        return !out;
    }
    """
    float fast_sin_shifted "dn_sin_shifted"(float x, int shift) noexcept nogil
    bint sin_fast_range "dn_sin_fast_range"(Py_ssize_t n, const float* x) noexcept nogil


cdef inline float fast_tanh(float x) noexcept nogil:
    """tanh: an odd Taylor polynomial near 0 (no cancellation), 1 - 2/(e^2|x| + 1) elsewhere."""
    cdef float one = 1.0, two = 2.0, nine = 9.0, switch = 0.55
    cdef float t3 = -0.3333333333333333, t5 = 0.13333333333333333, t7 = -0.05396825396825397
    cdef float t9 = 0.021869488536155203, t11 = -0.008863235529902197, t13 = 0.003592128036572481
    cdef float a = x if x >= 0 else -x
    cdef float s = x * x
    cdef float small = x + x * s * (t3 + s * (t5 + s * (t7 + s * (t9 + s * (t11 + s * t13)))))
    cdef float e = fast_exp(two * (a if a < nine else nine))
    cdef float big = one - two / (e + one)
    big = -big if x < 0 else big
    return small if a < switch else big


cdef inline float fast_sigmoid(float x) noexcept nogil:
    cdef float one = 1.0
    return one / (one + fast_exp(-x))


cdef inline float fast_erf(float x) noexcept nogil:
    """erf to about 3 ulp, as selects over two polynomials so that loops over it vectorise (libm's
    erff is a call per value): x P(x^2) for |x| < 0.875, 1 - e^(Q(|x|) - x^2) above, Q a fit of
    ln erfc(x) + x^2 around 2.4125 (both fitted for this project by least squares in float64 and
    checked against erf at every 1e-5 step in float32); erf rounds to 1 from 3.95 on; NaN stays NaN."""
    cdef float one = 1.0, mid = 2.4125, top = 3.95, switch = 0.875
    cdef float a = x if x >= 0 else -x
    cdef float s = x * x
    cdef float small = x * (<float>1.1283791065216064 + s * (<float>-0.3761254847049713
        + s * (<float>0.11282441020011902 + s * (<float>-0.026790950447320938
        + s * (<float>0.005031426437199116 + s * <float>-0.0006199346971698105)))))
    cdef float c = (a if a < top else top)
    cdef float u = c - mid
    cdef float q = (<float>-1.525518774986267 + u * (<float>-0.3627546429634094
        + u * (<float>0.05905905365943909 + u * (<float>-0.01164942979812622
        + u * (<float>0.00235820678062737 + u * (<float>-0.0004631368792615831
        + u * (<float>8.587456250097603e-05 + u * (<float>-1.436673028365476e-05
        + u * (<float>1.6177311863430077e-06 + u * <float>-1.037594810071596e-08)))))))))
    cdef float big = one - fast_exp(q - c * c)
    big = one if a >= top else big
    big = -big if x < 0 else big
    big = small if a < switch else big
    return x if x != x else big


cdef inline float max_of(Py_ssize_t n, const float* x) noexcept nogil:
    """max(x): 16 running maxima (one vector register's worth) so that the loop vectorises."""
    cdef float acc[16]
    cdef float m
    cdef Py_ssize_t i = 0
    cdef int j
    for j in range(16):
        acc[j] = x[0]
    while i + 16 <= n:
        for j in range(16):
            acc[j] = x[i + j] if x[i + j] > acc[j] else acc[j]
        i += 16
    m = x[0]
    while i < n:
        m = x[i] if x[i] > m else m
        i += 1
    for j in range(16):
        m = acc[j] if acc[j] > m else m
    return m


cdef inline float log_sum_exp(Py_ssize_t n, const float* x) noexcept nogil:
    """log(sum(exp(x))), in two read-only passes (max, then a 16-lane sum of exponentials)."""
    cdef float m = max_of(n, x), s = 0
    cdef float acc[16]
    cdef Py_ssize_t i = 0
    cdef int j
    for j in range(16):
        acc[j] = 0
    while i + 16 <= n:
        for j in range(16):
            acc[j] += fast_exp(x[i + j] - m)
        i += 16
    while i < n:
        s += fast_exp(x[i] - m)
        i += 1
    for j in range(16):
        s += acc[j]
    return m + logf(s)


cdef inline float exp_shifted(Py_ssize_t n, const float* x, float* e, float* inv_sum) noexcept nogil:
    """e = exp(x - max(x)) and *inv_sum = 1 / sum(e), so softmax(x) = e * inv_sum; returns
    log(sum(exp(x))). Separate max / exp / sum passes, so that each one vectorises."""
    cdef float m = max_of(n, x), s
    cdef Py_ssize_t i
    for i in range(n):
        e[i] = fast_exp(x[i] - m)
    s = sum_of(n, e)
    inv_sum[0] = 1.0 / s
    return m + logf(s)


cdef inline float softmax_into(Py_ssize_t n, const float* x, float* p) noexcept nogil:
    """p = softmax(x); returns log(sum(exp(x)))."""
    cdef float inv
    cdef float lse = exp_shifted(n, x, p, &inv)
    cdef Py_ssize_t i
    for i in range(n):
        p[i] *= inv
    return lse


# ---- small matrix products: below this many multiply-adds a typed loop beats a BLAS call ----
cdef enum:
    SMALL_GEMM = 4096


cdef extern from *:
    """
    /* y += A^T x for a column-major m x k matrix A: eight columns at a time, each summed in an
       8-wide running vector over its rows, then the eight vectors reduced together by three rounds
       of pairwise shuffles and adds (a transpose-add): one vector store for eight results. A dot
       product per column ends in a chain of dependent scalar adds (its horizontal sum), which made
       dx = W^T dy of a 32x32 product cost twice its multiply-adds. */
    typedef float dn_v8 __attribute__((vector_size(32)));
    typedef float dn_v8u __attribute__((vector_size(32), aligned(4)));   /* unaligned loads */
    typedef int dn_i8 __attribute__((vector_size(32)));
    #if defined(__clang__)
    #define DN_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
    #else
    #define DN_SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (dn_i8){__VA_ARGS__})
    #endif
    static inline dn_v8 dn_pair_sums(dn_v8 a, dn_v8 b) {      /* [a0+a1, b0+b1, a2+a3, b2+b3, ...] */
        return DN_SHUFFLE(a, b, 0, 8, 2, 10, 4, 12, 6, 14) + DN_SHUFFLE(a, b, 1, 9, 3, 11, 5, 13, 7, 15);
    }
    static inline dn_v8 dn_quad_sums(dn_v8 a, dn_v8 b) {
        return DN_SHUFFLE(a, b, 0, 1, 8, 9, 4, 5, 12, 13) + DN_SHUFFLE(a, b, 2, 3, 10, 11, 6, 7, 14, 15);
    }
    static inline void dn_gemv_t_small(int m, int k, const float* A, const float* x, float* y) {
        int j = 0, i, c;
        int m8 = m & ~7;
        if (m >= 8) {
            for (; j + 8 <= k; j += 8) {
                const float* col = A + (long)j * m;
                dn_v8 acc[8] = {{0}};
                for (i = 0; i < m8; i += 8) {
                    dn_v8 xv = *(const dn_v8u*)(x + i);
                    for (c = 0; c < 8; c++)
                        acc[c] += *(const dn_v8u*)(col + (long)c * m + i) * xv;
                }
                dn_v8 q0 = dn_quad_sums(dn_pair_sums(acc[0], acc[1]), dn_pair_sums(acc[2], acc[3]));
                dn_v8 q1 = dn_quad_sums(dn_pair_sums(acc[4], acc[5]), dn_pair_sums(acc[6], acc[7]));
                dn_v8 s = DN_SHUFFLE(q0, q1, 0, 1, 2, 3, 8, 9, 10, 11)
                        + DN_SHUFFLE(q0, q1, 4, 5, 6, 7, 12, 13, 14, 15);
                for (i = m8; i < m; i++)
                    for (c = 0; c < 8; c++)
                        s[c] += col[(long)c * m + i] * x[i];
                *(dn_v8u*)(y + j) += s;
            }
        }
        for (; j < k; j++) {                  /* the last k % 8 columns: one running vector each */
            const float* col = A + (long)j * m;
            dn_v8 acc = {0};
            float t;
            for (i = 0; i < m8; i += 8)
                acc += *(const dn_v8u*)(col + i) * *(const dn_v8u*)(x + i);
            t = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
            for (i = m8; i < m; i++)
                t += col[i] * x[i];
            y[j] += t;
        }
    }
    /* y = A x + beta y for a column-major m x k matrix A: 32 rows at a time held in four 8-wide
       running vectors over all k columns (an axpy per column, y loaded and stored once), then 8
       rows at a time, then the last m % 8 one by one. */
    static inline void dn_gemv_small(int m, int k, const float* A, const float* x, float beta,
                                     float* y) {
        int i = 0, j;
        for (; i + 32 <= m; i += 32) {
            dn_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            if (beta != 0) {
                a0 = *(dn_v8u*)(y + i) * beta;  a1 = *(dn_v8u*)(y + i + 8) * beta;
                a2 = *(dn_v8u*)(y + i + 16) * beta;  a3 = *(dn_v8u*)(y + i + 24) * beta;
            }
            for (j = 0; j < k; j++) {
                const float* col = A + (long)j * m + i;
                float xj = x[j];
                a0 += *(const dn_v8u*)col * xj;  a1 += *(const dn_v8u*)(col + 8) * xj;
                a2 += *(const dn_v8u*)(col + 16) * xj;  a3 += *(const dn_v8u*)(col + 24) * xj;
            }
            *(dn_v8u*)(y + i) = a0;  *(dn_v8u*)(y + i + 8) = a1;
            *(dn_v8u*)(y + i + 16) = a2;  *(dn_v8u*)(y + i + 24) = a3;
        }
        for (; i + 8 <= m; i += 8) {
            dn_v8 a0 = {0}, a1 = {0};              /* even and odd columns: two chains of adds */
            if (beta != 0)
                a0 = *(dn_v8u*)(y + i) * beta;
            for (j = 0; j + 2 <= k; j += 2) {
                a0 += *(const dn_v8u*)(A + (long)j * m + i) * x[j];
                a1 += *(const dn_v8u*)(A + (long)(j + 1) * m + i) * x[j + 1];
            }
            if (j < k)
                a0 += *(const dn_v8u*)(A + (long)j * m + i) * x[j];
            *(dn_v8u*)(y + i) = a0 + a1;
        }
        for (; i < m; i++) {
            float t = beta != 0 ? beta * y[i] : 0;
            for (j = 0; j < k; j++)
                t += A[i + (long)j * m] * x[j];
            y[i] = t;
        }
    }
    """
    void gemv_t_small "dn_gemv_t_small"(int m, int k, const float* A, const float* x, float* y) noexcept nogil
    void gemv_small "dn_gemv_small"(int m, int k, const float* A, const float* x, float beta, float* y) noexcept nogil


cdef inline void ger_small(int m, int k, const float* u, const float* v, float* A) noexcept nogil:
    """A += u v^T (m x k, column-major)."""
    cdef int i, j
    cdef float vj
    cdef float* col
    for j in range(k):
        vj = v[j]
        col = A + <Py_ssize_t>j * m
        for i in range(m):
            col[i] += u[i] * vj



cdef extern from *:
    """
    #include <stdlib.h>
    #include <strings.h>
    /* 1 where the register-blocked product below beats OpenBLAS at every size: this module was
       built for AVX-512 (-march=native on such a CPU) while OpenBLAS was told to run narrower
       kernels (OPENBLAS_CORETYPE=Haswell, Zen, ...: 2x slower here). Read once per module. */
    static int dn_blas_narrower = -1;
    static int dn_blas_is_narrower(void) {
        if (dn_blas_narrower < 0) {
    #if defined(__AVX512F__)
            const char* core = getenv("OPENBLAS_CORETYPE");
            dn_blas_narrower = core != NULL && *core && strncasecmp(core, "skylakex", 8) != 0
                && strncasecmp(core, "cooperlake", 10) != 0 && strncasecmp(core, "sapphire", 8) != 0;
    #else
            dn_blas_narrower = 0;
    #endif
        }
        return dn_blas_narrower;
    }
    /* The register-blocked product below keeps 32 x 8 of C in registers: 16 vectors of 16 floats,
       which needs AVX-512's 32 vector registers (narrower builds would spill: OpenBLAS instead). */
    #if defined(__AVX512F__)
    #define dn_register_kernel_native 1
    #else
    #define dn_register_kernel_native 0
    #endif
    """
    bint blas_is_narrower "dn_blas_is_narrower"() noexcept nogil
    bint register_kernel_native "dn_register_kernel_native"


cdef extern from *:
    """
    #include <string.h>
    #if defined(__AVX__)
    #include <immintrin.h>
    #endif
    /* dst[q * 32 + r] = src[q + r * lds] for r < 32, q < kc: a 32-row panel of A^T packed by rows
       of A^T (columns of A), so that the product kernel reads 32 consecutive values per step of p.
       8 x 8 blocks are transposed in registers (a scalar transpose costs a third of the product). */
    static void dn_pack_transposed(int kc, const float* src, Py_ssize_t lds, float* dst) {
        int q = 0, r;
    #if defined(__AVX__)
        for (; q + 8 <= kc; q += 8) {
            for (r = 0; r < 32; r += 8) {
                const float* s = src + q + r * lds;
                float* d = dst + q * 32 + r;
                __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds);
                __m256 r2 = _mm256_loadu_ps(s + 2 * lds), r3 = _mm256_loadu_ps(s + 3 * lds);
                __m256 r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds);
                __m256 r6 = _mm256_loadu_ps(s + 6 * lds), r7 = _mm256_loadu_ps(s + 7 * lds);
                __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
                _mm256_storeu_ps(d + 32, _mm256_permute2f128_ps(u1, u5, 0x20));
                _mm256_storeu_ps(d + 64, _mm256_permute2f128_ps(u2, u6, 0x20));
                _mm256_storeu_ps(d + 96, _mm256_permute2f128_ps(u3, u7, 0x20));
                _mm256_storeu_ps(d + 128, _mm256_permute2f128_ps(u0, u4, 0x31));
                _mm256_storeu_ps(d + 160, _mm256_permute2f128_ps(u1, u5, 0x31));
                _mm256_storeu_ps(d + 192, _mm256_permute2f128_ps(u2, u6, 0x31));
                _mm256_storeu_ps(d + 224, _mm256_permute2f128_ps(u3, u7, 0x31));
            }
        }
    #endif
        for (; q < kc; q++)
            for (r = 0; r < 32; r++)
                dst[q * 32 + r] = src[q + r * lds];
    }

    /* dst[q * 32 + r] = src[r + q * lds] for r < 32, q < kc: a full 32-row panel of an untransposed
       A, a column (128 bytes) at a time (the loop over a variable row count did not vectorise:
       2% of the autobatched tagger's step went to packing its gates' matrices). */
    static void dn_pack_columns(int kc, const float* src, Py_ssize_t lds, float* dst) {
        for (int q = 0; q < kc; q++)
            memcpy(dst + q * 32, src + q * lds, 32 * sizeof(float));
    }

    /* C[:mr, :nc] (+)= panel B[:kc, :nc] for nc <= 8, mr <= 32: 32 x 8 of C in 16 vector registers
       (16 floats each), a packed panel row (2 vectors) and 8 broadcasts of B per step of p. Written
       with GCC's vector types and fully unrolled loops, so that every accumulator is a register;
       the loop over p has no branch for a full block of 8 columns. */
    /* The packed panel: one per thread (the products run without the GIL), not on the stack of
       every function the product is inlined into. */
    static __thread float dn_panel[32 * 256] __attribute__((aligned(64)));
    static float* dn_panel_buffer(void) { return dn_panel; }
    typedef float dn_v16 __attribute__((vector_size(64)));
    typedef float dn_v16u __attribute__((vector_size(64), aligned(4)));
    static void dn_kernel_32x8(int kc, int nc, const float* panel, Py_ssize_t ldp, const float* B,
                               Py_ssize_t b_row, Py_ssize_t b_col, int mr, int add, float* C, Py_ssize_t ldc) {
        dn_v16 acc[8][2];
        int p, c, r;
        #pragma GCC unroll 8
        for (c = 0; c < 8; c++)
            acc[c][0] = acc[c][1] = (dn_v16){0};
        if (nc == 8) {
            for (p = 0; p < kc; p++) {
                const dn_v16 a0 = *(const dn_v16u*)(panel + p * ldp), a1 = *(const dn_v16u*)(panel + p * ldp + 16);
                const float* b = B + p * b_row;
                #pragma GCC unroll 8
                for (c = 0; c < 8; c++) {
                    const float bv = b[c * b_col];
                    acc[c][0] += a0 * bv;
                    acc[c][1] += a1 * bv;
                }
            }
        } else {
            for (p = 0; p < kc; p++) {
                const dn_v16 a0 = *(const dn_v16u*)(panel + p * ldp), a1 = *(const dn_v16u*)(panel + p * ldp + 16);
                const float* b = B + p * b_row;
                #pragma GCC unroll 8
                for (c = 0; c < 8; c++) {
                    const float bv = c < nc ? b[c * b_col] : 0.0f;
                    acc[c][0] += a0 * bv;
                    acc[c][1] += a1 * bv;
                }
            }
        }
        #pragma GCC unroll 8
        for (c = 0; c < 8; c++) {
            if (c >= nc)
                break;
            float* dst = C + c * ldc;
            if (mr == 32) {
                if (add) {
                    *(dn_v16u*)dst += acc[c][0];
                    *(dn_v16u*)(dst + 16) += acc[c][1];
                } else {
                    *(dn_v16u*)dst = acc[c][0];
                    *(dn_v16u*)(dst + 16) = acc[c][1];
                }
            } else {
                float col[32];
                *(dn_v16u*)col = acc[c][0];
                *(dn_v16u*)(col + 16) = acc[c][1];
                for (r = 0; r < mr; r++)
                    dst[r] = add ? dst[r] + col[r] : col[r];
            }
        }
    }

    /* C[i, j] (+)= sum_p A[p + i lda] B[p + j ldb] for i < m, j < n: A^T B as dot products, both
       operands read along their contiguous inner dimension (length k), 4 x 4 of them at a time in
       16 vector accumulators, nothing packed. For a long inner dimension and few columns, such as
       an output layer's input gradient W^T dY (W vocabulary x hidden, a few columns of dY), where
       a GEMM's packing of A^T (all of W, for a handful of uses of each value) cost as much as the
       product. Four columns of A (in L1/L2) meet every column of B before the next four; the inner
       dimension goes in chunks of 2048, so that B's chunk stays in L2 across A's columns. */
    static inline float dn_hsum16(dn_v16 v) {
        float s = 0.0f;
        #pragma GCC unroll 16
        for (int l = 0; l < 16; l++)
            s += v[l];
        return s;
    }
    static void dn_tn_dot_chunk(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,
                                Py_ssize_t ldb, int add, float* C, Py_ssize_t ldc) {
        const int kv = k & ~15;
        int i0, j0, r, c, p;
        for (i0 = 0; i0 < m; i0 += 4) {
            const float* a[4];
            for (r = 0; r < 4; r++)      /* rows past m repeat row i0: computed, not stored */
                a[r] = A + (Py_ssize_t)(i0 + r < m ? i0 + r : i0) * lda;
            for (j0 = 0; j0 < n; j0 += 4) {
                const float* b[4];
                dn_v16 acc[4][4];
                for (c = 0; c < 4; c++)
                    b[c] = B + (Py_ssize_t)(j0 + c < n ? j0 + c : j0) * ldb;
                #pragma GCC unroll 4
                for (r = 0; r < 4; r++) {
                    #pragma GCC unroll 4
                    for (c = 0; c < 4; c++)
                        acc[r][c] = (dn_v16){0};
                }
                for (p = 0; p < kv; p += 16) {
                    dn_v16 av[4], bv[4];
                    #pragma GCC unroll 4
                    for (r = 0; r < 4; r++)
                        av[r] = *(const dn_v16u*)(a[r] + p);
                    #pragma GCC unroll 4
                    for (c = 0; c < 4; c++)
                        bv[c] = *(const dn_v16u*)(b[c] + p);
                    #pragma GCC unroll 4
                    for (r = 0; r < 4; r++) {
                        #pragma GCC unroll 4
                        for (c = 0; c < 4; c++)
                            acc[r][c] += av[r] * bv[c];
                    }
                }
                for (r = 0; r < 4 && i0 + r < m; r++) {
                    for (c = 0; c < 4 && j0 + c < n; c++) {
                        float sum = dn_hsum16(acc[r][c]);
                        float* dst = C + (i0 + r) + (Py_ssize_t)(j0 + c) * ldc;
                        for (p = kv; p < k; p++)
                            sum += a[r][p] * b[c][p];
                        *dst = add ? *dst + sum : sum;
                    }
                }
            }
        }
    }
    static void dn_gemm_tn_dot(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,
                               Py_ssize_t ldb, int add, float* C, Py_ssize_t ldc) {
        for (int k0 = 0; k0 < k; k0 += 2048)
            dn_tn_dot_chunk(m, n, k - k0 < 2048 ? k - k0 : 2048, A + k0, lda, B + k0, ldb,
                            add || k0 > 0, C, ldc);
    }
    """
    float* panel_buffer "dn_panel_buffer"() noexcept nogil
    void gemm_tn_dot "dn_gemm_tn_dot"(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,
                                      Py_ssize_t ldb, bint add, float* C, Py_ssize_t ldc) noexcept nogil
    void pack_transposed "dn_pack_transposed"(int kc, const float* src, Py_ssize_t lds, float* dst) noexcept nogil
    void pack_columns "dn_pack_columns"(int kc, const float* src, Py_ssize_t lds, float* dst) noexcept nogil
    void kernel_32x8 "dn_kernel_32x8"(int kc, int nc, const float* panel, Py_ssize_t ldp, const float* B,
                                      Py_ssize_t b_row, Py_ssize_t b_col, int mr, bint add, float* C,
                                      Py_ssize_t ldc) noexcept nogil


cdef enum:
    REGISTER_BLOCK_K = 256     # a packed panel of 32 rows x 256: 32 KB, in L1
    B_IN_L2 = 131072           # floats of op(B) (512 KB) that stay in a 1-2 MB L2 with C's strip
    PACK_MIN_COLUMNS = 16     # up to this many columns of C, A is read in place when not transposed


cdef inline void pack_panel(int mr, int kc, const float* A, Py_ssize_t a_row, Py_ssize_t a_col,
                            float* panel) noexcept nogil:
    """panel[q * 32 + r] = op(A)[r, q] for the mr (<= 32) rows of a panel, rows mr..31 zero (the
    kernel then computes them, and they are not stored). op(A)'s element (i, p) is
    A[i * a_row + p * a_col]: a_row 1 for A, a_col 1 for A^T."""
    cdef int q, r
    cdef const float* col
    if a_row == 1 and mr == 32:
        pack_columns(kc, A, a_col, panel)
    elif a_row == 1:
        for q in range(kc):
            col = A + q * a_col
            for r in range(mr):
                panel[q * 32 + r] = col[r]
            for r in range(mr, 32):
                panel[q * 32 + r] = 0
    elif mr == 32:
        pack_transposed(kc, A, a_row, panel)
    else:
        for q in range(kc):
            for r in range(mr):
                panel[q * 32 + r] = A[r * a_row + q]
            for r in range(mr, 32):
                panel[q * 32 + r] = 0


cdef inline void panel_product(int i0, int p0, int m, int n, int k, const float* A, Py_ssize_t a_row,
                               Py_ssize_t a_col, const float* B, Py_ssize_t b_row, Py_ssize_t b_col,
                               float beta, float* C, int ldc, float* panel) noexcept nogil:
    """C[i0:i0+32, :] (+)= op(A)[i0:i0+32, p0:p0+256] op(B)[p0:p0+256, :] (clipped to m and k): one
    panel of op(A), packed unless read in place, times every column of op(B)."""
    cdef int kc = k - p0 if k - p0 < REGISTER_BLOCK_K else REGISTER_BLOCK_K
    cdef int mr = m - i0 if m - i0 < 32 else 32
    cdef bint add = beta != 0 or p0 > 0
    cdef const float* src
    cdef Py_ssize_t ldp
    cdef int j0 = 0
    if mr == 32 and a_row == 1 and n <= PACK_MIN_COLUMNS:
        src, ldp = A + i0 + p0 * a_col, a_col        # used in place
    else:
        pack_panel(mr, kc, A + i0 * a_row + p0 * a_col, a_row, a_col, panel)
        src, ldp = panel, 32
    while j0 < n:
        kernel_32x8(kc, n - j0 if n - j0 < 8 else 8, src, ldp, B + p0 * b_row + j0 * b_col,
                    b_row, b_col, mr, add, C + i0 + <Py_ssize_t>j0 * ldc, ldc)
        j0 += 8


cdef inline void gemm_register_blocked(int m, int n, int k, const float* A, Py_ssize_t a_row,
                                       Py_ssize_t a_col, const float* B, Py_ssize_t b_row,
                                       Py_ssize_t b_col, float beta, float* C, int ldc) noexcept nogil:
    """C = op(A) op(B) + beta C (beta 0 or 1), C m x n, inner dimension k; op(A)'s element (i, p) at
    A[i * a_row + p * a_col] and op(B)'s (p, j) at B[p * b_row + j * b_col] (so either may be
    transposed). For each chunk of 256 values of p and each 32 rows of C, a panel of op(A) is
    packed (transposed if need be, the rows below m zero-padded) into a per-thread buffer that
    stays in L1 while every column of C is computed from it, in register blocks of 32 rows x 8
    columns (kernel_32x8). Packing costs O(m k) against the product's O(m n k), keeps the panel in
    a few pages (A's columns are lda apart: one TLB entry each), and makes A^T B (the input
    gradient W^T dY) as fast as A B. With at most PACK_MIN_COLUMNS columns, an untransposed A is
    read in place (packing would not pay).
    Loop order: where op(B) fits in L2, 32 rows of C at a time through every chunk of p (that strip
    of C stays in L1/L2; a tall C, the 10000 x 128 weight gradient of an output layer, would
    otherwise go through L3 once per chunk); otherwise chunk by chunk (that chunk of op(B) stays
    in L2 across C's rows). Each C[i, j] adds the chunks in the same order either way."""
    cdef float* panel = panel_buffer()     # 32 x REGISTER_BLOCK_K
    cdef int i0 = 0, p0 = 0
    if <Py_ssize_t>k * n <= B_IN_L2:
        while i0 < m:
            p0 = 0
            while p0 < k:
                panel_product(i0, p0, m, n, k, A, a_row, a_col, B, b_row, b_col, beta, C, ldc, panel)
                p0 += REGISTER_BLOCK_K
            i0 += 32
    else:
        while p0 < k:
            i0 = 0
            while i0 < m:
                panel_product(i0, p0, m, n, k, A, a_row, a_col, B, b_row, b_col, beta, C, ldc, panel)
                i0 += 32
            p0 += REGISTER_BLOCK_K


cdef inline bint register_kernel_pays(int m, int n, int k) noexcept nogil:
    """Whether the register-blocked kernel beats OpenBLAS's own AVX-512 kernels on C (m x n) =
    op(A) op(B) (inner dimension k). Measured on a Xeon with two 512-bit FMA units (products of
    the autobatched tagger and Tree-LSTM, 64-1300 columns): 10-30% faster up to ~30 M
    multiply-adds with at most two 256-deep chunks, where OpenBLAS's packing of both operands
    costs as much as the product; slower on large products (2048 x 2048 x 512: OpenBLAS's
    cache blocking wins) and where the 32-row panels would compute many zero rows (m = 100:
    28 of 128). On AMD's Zen 4 (AVX-512 in two halves) the two were level on these sizes."""
    return (k <= 2 * REGISTER_BLOCK_K and <Py_ssize_t>m * n * k <= 32 * 1024 * 1024
            and (m % 32 == 0 or m >= 256) and n >= 16)


cdef inline void gemm_nogil(bint trans_a, bint trans_b, int m, int n, int k, float alpha,
                            const float* A, int lda, const float* B, int ldb,
                            float beta, float* C, int ldc) noexcept nogil:
    """C = alpha * op(A) * op(B) + beta * C, with C m x n and the inner dimension k."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int one = 1, rows_a, cols_a
    cdef bint blocked
    if m == 0 or n == 0:
        return
    if alpha == 1 and k == 1 and trans_b and not trans_a and beta == 1 and m * n <= SMALL_GEMM:
        ger_small(m, n, A, B, C)       # rank-1 update (e.g. dW += dy x^T)
        return
    if alpha == 1 and n == 1 and not trans_b and m * k <= SMALL_GEMM and lda == (k if trans_a else m):
        if trans_a:   # y = beta y + A^T x, A stored k x m
            if beta == 0:
                fill(m, 0.0, C)
            elif beta != 1:
                for rows_a in range(m):
                    C[rows_a] *= beta
            gemv_t_small(k, m, A, B, C)
        else:
            gemv_small(m, k, A, B, beta, C)
        return
    # the register-blocked kernel (AVX-512 builds): where OpenBLAS runs narrower kernels, every
    # product from 32 x 32 on, A^T B included (2-4x at 32 x 32 x 32, ~2x on W^T dY); otherwise the
    # mid-sized products of per-example and autobatched models and tall products with few columns
    if register_kernel_native and alpha == 1 and (beta == 0 or beta == 1) and m >= 32 and n >= 2:
        if trans_a and not trans_b and k > 2 * REGISTER_BLOCK_K and n <= (64 if k >= 1024 else 16) \
                and <Py_ssize_t>m * n * k >= 1048576:
            # W^T dY over a long inner dimension with few columns: as dot products, nothing packed
            # (OpenBLAS packs all of W here: 1.2-9x slower measured; below ~1 M multiply-adds its
            # small-matrix kernels, which do not pack, are as fast)
            gemm_tn_dot(m, n, k, A, lda, B, ldb, beta != 0, C, ldc)
            return
        if trans_a:
            blocked = not trans_b and <Py_ssize_t>m * n >= 1024 and (
                blas_is_narrower() or register_kernel_pays(m, n, k))
        elif trans_b:
            # dW += dY X^T over many columns (k: a deferred or autobatched weight gradient) too,
            # while dW is at most 128 columns or 2 MB: its strips stay in cache across the chunks
            # of k (1.05-1.6x OpenBLAS measured, 64 x 64 to 10000 x 128 over 300-5000 columns;
            # level or slower from 1024 x 1024 on, where OpenBLAS's cache blocking pays)
            blocked = k >= 8 and <Py_ssize_t>m * n >= 1024 and (
                blas_is_narrower() or k >= 16 and (register_kernel_pays(m, n, k) or n >= 16
                    and (m % 32 == 0 or m >= 256) and (n <= 128 or <Py_ssize_t>m * n <= 524288)))
        else:
            # (under 8 columns the 8-column register blocks compute empty columns: OpenBLAS's
            # small-matrix kernels, which it runs below ~1 M multiply-adds, were up to 2x faster)
            blocked = (<Py_ssize_t>m * k >= 65536 and n <= 64 and m >= 64
                       and (n >= 8 or <Py_ssize_t>m * n * k >= 786432 or blas_is_narrower())
                       or <Py_ssize_t>m * k >= 1024 and (blas_is_narrower() or register_kernel_pays(m, n, k)))
        if blocked:
            # op(A)'s element (i, p): A[i + p lda], or A[p + i lda] when transposed; op(B)'s (p, j):
            # B[p + j ldb], or B[j + p ldb]
            gemm_register_blocked(m, n, k, A, lda if trans_a else 1, 1 if trans_a else lda,
                                  B, ldb if trans_b else 1, 1 if trans_b else ldb, beta, C, ldc)
            return
    if n == 1 and not trans_b:
        # matrix-vector: sgemv is markedly cheaper than a degenerate sgemm
        rows_a = k if trans_a else m
        cols_a = m if trans_a else k
        sgemv(&ta, &rows_a, &cols_a, &alpha, <float*>A, &lda, <float*>B, &one, &beta, C, &one)
        return
    sgemm(&ta, &tb, &m, &n, &k, &alpha, <float*>A, &lda, <float*>B, &ldb, &beta, C, &ldc)


# ---- subnormal numbers ---------------------------------------------------------------------------
# A trainer's moments decay geometrically where a weight's gradient stays zero (a dead unit, an
# input that is always 0): Adam's first moment (x 0.9 a step) is subnormal after ~800 such steps,
# and on Intel CPUs every arithmetic operation on a subnormal float takes a microcode assist
# (~100+ cycles): a minibatched MLP's Adam step went from 2 to 10 ms after 800 steps. The update
# loops run with the CPU's flush-to-zero and denormals-are-zero modes on (MXCSR bits 15 and 6),
# restored after; the values involved are below 1.2e-38, so no weight changes by a representable
# amount. Elsewhere than x86 these do nothing.
cdef extern from *:
    """
    #if defined(__x86_64__) || defined(__SSE__)
    #include <xmmintrin.h>
    static inline unsigned int dn_flush_subnormals(void) {
        unsigned int old = _mm_getcsr();
        _mm_setcsr(old | 0x8040);
        return old;
    }
    static inline void dn_restore_float_mode(unsigned int old) { _mm_setcsr(old); }
    #else
    static inline unsigned int dn_flush_subnormals(void) { return 0; }
    static inline void dn_restore_float_mode(unsigned int old) { (void)old; }
    #endif
    """
    unsigned int flush_subnormals "dn_flush_subnormals"() noexcept nogil
    void restore_float_mode "dn_restore_float_mode"(unsigned int old) noexcept nogil


# ---- releasing the GIL -----------------------------------------------------------------------
# Work of at least this many multiply-adds (or elements, for maps) runs with the GIL released, so
# that other Python threads run meanwhile. Releasing and retaking it costs 0.1-0.2 us, and on a
# contended GIL a thread that gives it up may wait for it, so small nodes keep it.
cdef enum:
    NOGIL_MIN_WORK = 8192


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, float alpha,
                      const float* A, int lda, const float* B, int ldb,
                      float beta, float* C, int ldc) noexcept:
    """gemm_nogil, called with the GIL held; large products release it while they run."""
    if <Py_ssize_t>m * n * k >= NOGIL_MIN_WORK:
        with nogil:
            gemm_nogil(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
    else:
        gemm_nogil(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)


cdef extern from *:
    """
    #include <string.h>
    /* Squared L2 norm of n floats: four 4-float vector accumulators (GCC/Clang vector extensions,
       plain SSE on any x86-64), folded into a double every 4096 values. The order of the sum
       depends only on n, not on the address (unaligned loads): equal arrays give equal bits
       (the trainers' clipping norm; dynet.distributed's norm of lookup rows on every rank). */
    typedef float dn_v4sf __attribute__((vector_size(16)));
    static double dn_sum_squares(const float* g, Py_ssize_t n) {
        double total = 0;
        Py_ssize_t start = 0;
        while (start < n) {
            Py_ssize_t end = start + 4096 < n ? start + 4096 : n, i = start;
            dn_v4sf a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0, x0, x1, x2, x3;
            float tail = 0;
            for (; i + 16 <= end; i += 16) {
                memcpy(&x0, g + i, 16); memcpy(&x1, g + i + 4, 16);
                memcpy(&x2, g + i + 8, 16); memcpy(&x3, g + i + 12, 16);
                a0 += x0 * x0; a1 += x1 * x1; a2 += x2 * x2; a3 += x3 * x3;
            }
            for (; i < end; i++) tail += g[i] * g[i];
            a0 = (a0 + a1) + (a2 + a3);
            total += (double)a0[0] + (double)a0[1] + (double)a0[2] + (double)a0[3] + (double)tail;
            start = end;
        }
        return total;
    }
    """
    double sum_of_squares "dn_sum_squares"(const float* g, Py_ssize_t n) noexcept nogil
