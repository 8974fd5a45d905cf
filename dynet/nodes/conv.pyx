"""Convolution and pooling: conv2d / conv2d_bias (im2col + one GEMM per batch element),
maxpooling2d, filter1d_narrow and kmax_pooling.

Layouts are DyNet's (column-major): an input feature map is (H x W x C) per batch element, a filter
bank (FH x FW x C x CO). im2col writes, for each batch element, the matrix Col (P x K) with
P = YH*YW output pixels and K = FH*FW*C filter taps, k = i + FH*(j + FW*c). That is exactly the
flat order of the filter's first three axes, so the filter bank *is* the (K x CO) matrix F and
Y = Col * F lands in the output's own (YH x YW x CO) layout: no transposes anywhere.
"""
cimport cython
from libc.stdlib cimport qsort
from libc.string cimport memset
from libc.math cimport ceil
from dynet.core.dim cimport with_size, Dim, MAX_DIMS, total_size, batch_size, dim_str, dim_at
from dynet.core.memory cimport work_buffer
from dynet.core.graph cimport Expression, Mirrored, add_node, as_expr, fwd_scratch, to_index
from dynet.kernels.cpu cimport gemm, axpy, dot, NOGIL_MIN_WORK
from dynet.kernels import generic


# Temporaries (dCol, or a recomputed Col) use memory.work_buffer.

# Col of every batch element is kept from forward for backward up to this many floats (32 MB);
# beyond it backward recomputes Col per batch element instead of holding it all.
cdef size_t KEEP_COL_LIMIT = 8 * 1024 * 1024


def _set_keep_col_limit(n):
    """For tests: the Col size kept from forward (0 makes backward always recompute it)."""
    global KEEP_COL_LIMIT
    old = KEEP_COL_LIMIT
    KEEP_COL_LIMIT = n
    return old


cdef tuple two_positive(object v, str what, str op):
    try:
        vals = [to_index(s, op) for s in v]
    except TypeError:
        raise TypeError(f"{op}: {what} must be a list of two integers, got {v!r}")
    if len(vals) != 2 or vals[0] < 1 or vals[1] < 1:
        raise ValueError(f"{op}: {what} must be two positive integers (rows, columns), got {list(v)}")
    return vals[0], vals[1]


cdef int out_size(int n, int f, int s, bint valid) noexcept:
    """Output length along one axis, and (below) the leading padding, as the reference defines
    them: VALID ceil((n - f + 1) / s); SAME ceil(n / s) with max(0, (out-1)*s + f - n) padding
    split evenly, the odd one at the end."""
    if valid:
        return <int>ceil(<double>(n - f + 1) / s)
    return <int>ceil(<double>n / s)


# (The reference's max-pooling backward skips the max(0, ...) and can pad by -1 when the stride
# exceeds the window, sending gradients beside the maxima its forward found; we stay consistent.)
cdef int pad_before(int n, int f, int s, int out, bint valid) noexcept:
    if valid:
        return 0
    cdef int along = (out - 1) * s + f - n
    return along // 2 if along > 0 else 0


cdef struct ConvGeom:
    int XH, XW, C, FH, FW, CO, YH, YW, sh, sw, pt, pl


cdef dict geom_dict(ConvGeom g):
    """The geometry for the generic kernels' index maps."""
    return dict(XH=g.XH, XW=g.XW, C=g.C, FH=g.FH, FW=g.FW, YH=g.YH, YW=g.YW, sh=g.sh, sw=g.sw,
                pt=g.pt, pl=g.pl)


cdef void im2col(const ConvGeom* g, const float* x, float* col, bint backward) noexcept nogil:
    """backward=False: col[p + P*k] = x at tap k of output pixel p (0 in the padding).
    backward=True: the adjoint, x[...] += col[p + P*k] (col2im)."""
    cdef Py_ssize_t P = <Py_ssize_t>g.YH * g.YW
    cdef int c, i, j, ow, oh, w, lo, hi
    cdef Py_ssize_t k
    cdef float* dst
    cdef const float* src
    for c in range(g.C):
        for j in range(g.FW):
            for i in range(g.FH):
                k = i + g.FH * (j + <Py_ssize_t>g.FW * c)
                # output rows oh whose input row oh*sh + i - pt lies inside [0, XH)
                lo = 0
                while lo < g.YH and lo * g.sh + i - g.pt < 0:
                    lo += 1
                hi = g.YH
                while hi > lo and (hi - 1) * g.sh + i - g.pt >= g.XH:
                    hi -= 1
                for ow in range(g.YW):
                    dst = col + P * k + <Py_ssize_t>g.YH * ow
                    w = ow * g.sw + j - g.pl
                    if w < 0 or w >= g.XW:
                        if not backward:
                            memset(dst, 0, g.YH * sizeof(float))
                        continue
                    src = x + g.XH * (w + <Py_ssize_t>g.XW * c) + i - g.pt
                    if backward:
                        for oh in range(lo, hi):
                            (<float*>src)[oh * g.sh] += dst[oh]
                    else:
                        for oh in range(lo):
                            dst[oh] = 0
                        for oh in range(lo, hi):
                            dst[oh] = src[oh * g.sh]
                        for oh in range(hi, g.YH):
                            dst[oh] = 0


cdef inline void im2col_gil(const ConvGeom* g, const float* x, float* col, bint backward,
                            Py_ssize_t n) noexcept:
    """im2col called with the GIL held: a large one (n values) releases it while it runs."""
    if n >= NOGIL_MIN_WORK:
        with nogil:
            im2col(g, x, col, backward)
    else:
        im2col(g, x, col, backward)


@cython.final
@cython.no_gc
cdef class Conv2D(Expression):
    """y = conv(x, f) (+ b per output channel): args (x, f) or (x, f, b)."""
    cdef ConvGeom g
    cdef float* cols          # Col of every batch element, or NULL (recomputed in backward)
    cdef bint has_bias

    cpdef str op_name(self):
        return "conv2d_bias" if self.has_bias else "conv2d"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], f = <Expression>self.args[1], bias
        cdef Py_ssize_t P = <Py_ssize_t>self.g.YH * self.g.YW, K = <Py_ssize_t>self.g.FH * self.g.FW * self.g.C
        cdef Py_ssize_t xper = batch_size(&x.d), yper = batch_size(&self.d), b, o, p
        cdef float* col
        cdef float bo
        for b in range(self.d.bd):
            col = self.cols + b * P * K if self.cols != NULL else work_buffer(P * K)
            im2col_gil(&self.g, x.val + b * xper, col, False, P * K)
            gemm(False, False, <int>P, self.g.CO, <int>K, 1.0, col, <int>P, f.val, <int>K,
                 0.0, self.val + b * yper, <int>P)
        if self.has_bias:
            bias = <Expression>self.args[2]
            for b in range(self.d.bd):
                for o in range(self.g.CO):
                    bo = bias.val[o]
                    col = self.val + b * yper + o * P
                    for p in range(P):
                        col[p] += bo
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], f = <Expression>self.args[1], bias
        cdef Py_ssize_t P = <Py_ssize_t>self.g.YH * self.g.YW, K = <Py_ssize_t>self.g.FH * self.g.FW * self.g.C
        cdef Py_ssize_t xper = batch_size(&x.d), yper = batch_size(&self.d), b, o, p
        cdef float* col
        cdef float* dcol
        cdef const float* dy
        cdef float s
        if f.grad != NULL:
            # dF += Col^T dY, summed over the batch
            for b in range(self.d.bd):
                if self.cols != NULL:
                    col = self.cols + b * P * K
                else:
                    col = work_buffer(P * K)
                    im2col_gil(&self.g, x.val + b * xper, col, False, P * K)
                gemm(True, False, <int>K, self.g.CO, <int>P, 1.0, col, <int>P, self.grad + b * yper,
                     <int>P, 1.0, f.grad, <int>K)
        if x.grad != NULL:
            # dCol = dY F^T, then scattered back onto the input pixels
            dcol = work_buffer(P * K)
            for b in range(self.d.bd):
                gemm(False, True, <int>P, <int>K, self.g.CO, 1.0, self.grad + b * yper, <int>P,
                     f.val, <int>K, 0.0, dcol, <int>P)
                im2col_gil(&self.g, x.grad + b * xper, dcol, True, P * K)
        if self.has_bias:
            bias = <Expression>self.args[2]
            if bias.grad != NULL:
                for b in range(self.d.bd):
                    for o in range(self.g.CO):
                        dy = self.grad + b * yper + o * P
                        s = 0
                        for p in range(P):
                            s += dy[p]
                        bias.grad[o] += s
        return 0

    cdef object col_index(self, xp):
        """im2col's index map (P x K), made once per node."""
        if self.aux is None:
            self.aux = xp.asarray(generic.conv_index(geom_dict(self.g)))
        return self.aux

    def generic_forward(self, xp, list xs, out):
        generic.conv_forward(xp, xs[0], xs[1], xs[2] if self.has_bias else None,
                             self.col_index(xp), out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.conv_backward(xp, xs, self.col_index(xp), dout, i, dxi)


cdef str dims_of(tuple args):
    return ", ".join([dim_str(&(<Expression>a).d) for a in args])


cdef Expression make_conv(object x, object f, object b, object stride, bint is_valid, str op):
    cdef Expression ex = as_expr(x, op), ef = as_expr(f, op), eb
    cdef tuple args = (ex, ef) if b is None else (ex, ef, as_expr(b, op))
    cdef int sh, sw
    sh, sw = two_positive(stride, "stride", op)
    if ex.d.nd > 3 or ef.d.nd > 4:
        raise ValueError(f"{op}: expected an input (H x W x Ci) and filters (FH x FW x Ci x Co), "
                         f"got {dims_of(args)}")
    if ef.d.bd != 1:
        raise ValueError(f"{op}: the filters cannot be batched, got {dims_of(args)}")
    cdef ConvGeom g
    g.XH = dim_at(&ex.d, 0); g.XW = dim_at(&ex.d, 1); g.C = dim_at(&ex.d, 2)
    g.FH = dim_at(&ef.d, 0); g.FW = dim_at(&ef.d, 1); g.CO = dim_at(&ef.d, 3)
    if dim_at(&ef.d, 2) != g.C:
        raise ValueError(f"{op}: the filters have {dim_at(&ef.d, 2)} input channels but the input "
                         f"has {g.C}, got {dims_of(args)}")
    if is_valid and (g.FH > g.XH or g.FW > g.XW):
        raise ValueError(f"{op}: in VALID convolution the filter ({g.FH}x{g.FW}) must not be larger "
                         f"than the input feature map ({g.XH}x{g.XW}), got {dims_of(args)}")
    if b is not None:
        eb = <Expression>args[2]
        if eb.d.nd != 1 or eb.d.d[0] != g.CO or eb.d.bd != 1:
            raise ValueError(f"{op}: the bias must be a vector of {g.CO} values (one per output "
                             f"channel, not batched), got {dims_of(args)}")
    g.sh = sh; g.sw = sw
    g.YH = out_size(g.XH, g.FH, sh, is_valid)
    g.YW = out_size(g.XW, g.FW, sw, is_valid)
    g.pt = pad_before(g.XH, g.FH, sh, g.YH, is_valid)
    g.pl = pad_before(g.XW, g.FW, sw, g.YW, is_valid)
    cdef Dim d
    memset(&d, 0, sizeof(Dim))
    d.nd = 3
    d.d[0] = g.YH; d.d[1] = g.YW; d.d[2] = g.CO
    d.bd = ex.d.bd
    cdef Conv2D node = Conv2D.__new__(Conv2D)
    node.g = g
    node.has_bias = b is not None
    cdef size_t ncol = <size_t>g.YH * g.YW * g.FH * g.FW * g.C * d.bd
    node.cols = fwd_scratch(ncol) if ncol <= KEEP_COL_LIMIT else NULL
    return add_node(node, args, d)


def conv2d(x, f, stride, is_valid=True):
    """2D convolution of x ((H x W x Ci), optionally batched) with filters f (FH x FW x Ci x Co);
    stride = [row stride, column stride]; is_valid: VALID (True) or SAME (False) padding."""
    return make_conv(x, f, None, stride, bool(is_valid), "conv2d")


def conv2d_bias(x, f, b, stride, is_valid=True):
    """conv2d plus a bias b (one value per output channel, Co)."""
    return make_conv(x, f, b, stride, bool(is_valid), "conv2d_bias")


# ---- max pooling ---------------------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class MaxPooling2D(Expression):
    """Maximum over each window of each channel; the argmax is kept for the backward pass."""
    cdef ConvGeom g           # FH/FW: the window; C: channels; CO unused
    cdef int* where           # per output value, the flat input index (within its batch element)

    cpdef str op_name(self):
        return "maxpooling2d"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef ConvGeom* g = &self.g
        cdef Py_ssize_t xper = batch_size(&x.d), yper = batch_size(&self.d), b, at, o
        cdef int c, ow, oh, i, j, h, w, best
        cdef float m
        cdef const float* xv
        for b in range(self.d.bd):
            xv = x.val + b * xper
            o = b * yper
            for c in range(g.C):
                for ow in range(g.YW):
                    for oh in range(g.YH):
                        best = -1
                        m = 0
                        # rows outer, columns inner, first maximum wins (as the reference's backward)
                        for i in range(g.FH):
                            h = oh * g.sh + i - g.pt
                            if h < 0 or h >= g.XH:
                                continue
                            for j in range(g.FW):
                                w = ow * g.sw + j - g.pl
                                if w < 0 or w >= g.XW:
                                    continue
                                at = h + g.XH * (w + <Py_ssize_t>g.XW * c)
                                if best < 0 or xv[at] > m:
                                    m = xv[at]
                                    best = <int>at
                        self.val[o] = m
                        self.where[o] = best
                        o += 1
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t xper = batch_size(&x.d), yper = batch_size(&self.d), b, o
        for b in range(self.d.bd):
            for o in range(yper):
                if self.where[b * yper + o] >= 0:
                    x.grad[b * xper + self.where[b * yper + o]] += self.grad[b * yper + o]
        return 0

    def generic_forward(self, xp, list xs, out):
        # aux: the windows' index map (made once per node), then where each maximum is
        if self.aux is None:
            self.aux = [xp.asarray(generic.pool_index(geom_dict(self.g))), None]
        self.aux[1] = generic.maxpool_forward(xp, xs[0], self.aux[0], out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.maxpool_backward(xp, self.aux[1], dout, dxi)


def maxpooling2d(x, ksize, stride, is_valid=True):
    """2D max pooling of x ((H x W [x C]), optionally batched) with window ksize = [rows, cols]
    and stride = [row stride, column stride]; is_valid: VALID (True) or SAME (False)."""
    cdef Expression ex = as_expr(x, "maxpooling2d")
    cdef int kh, kw, sh, sw
    kh, kw = two_positive(ksize, "ksize", "maxpooling2d")
    sh, sw = two_positive(stride, "stride", "maxpooling2d")
    if ex.d.nd > 3:
        raise ValueError(f"maxpooling2d: expected an input of 2 or 3 dimensions (H x W x C), "
                         f"got {dim_str(&ex.d)}")
    cdef ConvGeom g
    g.XH = dim_at(&ex.d, 0); g.XW = dim_at(&ex.d, 1); g.C = dim_at(&ex.d, 2)
    g.FH = kh; g.FW = kw; g.CO = g.C; g.sh = sh; g.sw = sw
    if is_valid and (kh > g.XH or kw > g.XW):
        raise ValueError(f"maxpooling2d: in VALID mode the window ({kh}x{kw}) must not be larger "
                         f"than the feature map, got {dim_str(&ex.d)}")
    g.YH = out_size(g.XH, kh, sh, is_valid)
    g.YW = out_size(g.XW, kw, sw, is_valid)
    g.pt = pad_before(g.XH, kh, sh, g.YH, is_valid)
    g.pl = pad_before(g.XW, kw, sw, g.YW, is_valid)
    cdef Dim d = ex.d
    if d.nd < 2:
        d.nd = 2
    d.d[0] = g.YH
    d.d[1] = g.YW
    cdef MaxPooling2D node = MaxPooling2D.__new__(MaxPooling2D)
    node.g = g
    node.where = <int*>fwd_scratch(total_size(&d))
    return add_node(node, (ex,), d)


# ---- 1D filters and k-max pooling ------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class Filter1DNarrow(Mirrored):
    """y[fid, j] = sum_{r,k} x[r, j+k] * f[r, k, fid]: narrow (valid) 1D filtering of the columns
    of x by each of the (R x FC) filters in f. Columns j..j+FC-1 of x are one contiguous block of
    R*FC values, so each output is a single dot product."""
    cpdef str op_name(self):
        return "filter1d_narrow"

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0], f = <Expression>self.args[1]
        cdef Py_ssize_t R = dim_at(&x.d, 0), FC = dim_at(&f.d, 1), NF = self.d.d[0], OC = self.d.d[1]
        cdef Py_ssize_t xper = batch_size(&x.d), fper = batch_size(&f.d), yper = NF * OC
        cdef Py_ssize_t b, j, fid, win = R * FC, xo, fo
        cdef float g
        for b in range(self.d.bd):
            xo = b * xper if x.d.bd > 1 else 0
            fo = b * fper if f.d.bd > 1 else 0
            for j in range(OC):
                for fid in range(NF):
                    if not backward:
                        self.val[b * yper + fid + NF * j] = dot(win, x.val + xo + R * j, f.val + fo + win * fid)
                        continue
                    g = self.grad[b * yper + fid + NF * j]
                    if x.grad != NULL:
                        axpy(win, g, f.val + fo + win * fid, x.grad + xo + R * j)
                    if f.grad != NULL:
                        axpy(win, g, x.val + xo + R * j, f.grad + fo + win * fid)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.filter1d_forward(xp, xs[0], xs[1], out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.filter1d_backward(xp, xs, dout, i, dxi)




def filter1d_narrow(x, y):
    """Narrow 1D filtering of x (R x C) with the filters y (R x FC [x NF]): an (NF x C-FC+1)
    result whose entry (i, j) is the sum of x[:, j:j+FC] * y[:, :, i]."""
    cdef Expression ex = as_expr(x, "filter1d_narrow"), ef = as_expr(y, "filter1d_narrow")
    cdef int ocols = dim_at(&ex.d, 1) - dim_at(&ef.d, 1) + 1
    if ex.d.nd > 2 or ef.d.nd > 3 or dim_at(&ex.d, 0) != dim_at(&ef.d, 0) or ocols < 1:
        raise ValueError(f"filter1d_narrow: expected x (R x C) and filters (R x FC [x NF]) with "
                         f"FC <= C, got {dim_str(&ex.d)} and {dim_str(&ef.d)}")
    if ex.d.bd != ef.d.bd and ex.d.bd != 1 and ef.d.bd != 1:
        raise ValueError(f"filter1d_narrow: batch sizes must be 1 or equal, got {dim_str(&ex.d)} "
                         f"and {dim_str(&ef.d)}")
    cdef Dim d
    memset(&d, 0, sizeof(Dim))
    d.nd = 2
    d.d[0] = dim_at(&ef.d, 2)
    d.d[1] = ocols
    d.bd = ex.d.bd if ex.d.bd > ef.d.bd else ef.d.bd
    return add_node(Filter1DNarrow.__new__(Filter1DNarrow), (ex, ef), d)


cdef int cmp_desc(const void* a, const void* b) noexcept nogil:
    cdef float x = (<const float*>a)[0], y = (<const float*>b)[0]
    return -1 if x > y else (1 if x < y else 0)


cdef inline float kth_largest(const float* x, Py_ssize_t n, Py_ssize_t stride, int k,
                              float* top) noexcept nogil:
    """The k-th largest of x[0], x[stride], ... (n values), keeping the k largest so far sorted
    in top[0..k): O(n k), cheaper than sorting the row when k is small."""
    cdef int t = 0, i
    cdef Py_ssize_t j
    cdef float v
    for j in range(n):
        v = x[j * stride]
        if t == k and v <= top[k - 1]:
            continue
        i = t if t < k else k - 1
        while i > 0 and top[i - 1] < v:
            top[i] = top[i - 1]
            i -= 1
        top[i] = v
        if t < k:
            t += 1
    return top[k - 1]


@cython.final
@cython.no_gc
cdef class KMaxPooling(Expression):
    """The k largest values along one axis, in their original order; their positions are kept."""
    cdef int axis, k
    cdef int* where           # per output value, its index along the axis

    cpdef str op_name(self):
        return "kmax_pooling"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t pre = 1, n = dim_at(&x.d, self.axis), post, q, p, t, j, src, dst
        cdef int i
        for i in range(self.axis):
            pre *= dim_at(&x.d, i)
        post = total_size(&x.d) // (pre * n)          # the batch is folded into post
        cdef float* row = work_buffer(n)
        cdef float top[16]
        cdef float c, v
        for p in range(post):
            for q in range(pre):
                src = p * pre * n + q
                if self.k <= 16:                       # the k-th largest by a k-element insertion
                    c = kth_largest(x.val + src, n, pre, self.k, top)
                else:
                    for j in range(n):
                        row[j] = x.val[src + j * pre]
                    qsort(row, n, sizeof(float), cmp_desc)
                    c = row[self.k - 1]                # the k-th largest value
                t = 0
                dst = p * pre * self.k + q
                for j in range(n):
                    v = x.val[src + j * pre]
                    if v >= c:
                        self.val[dst + t * pre] = v
                        self.where[dst + t * pre] = <int>j
                        t += 1
                        if t == self.k:                # ties: the first ones in order
                            break
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t pre = 1, n = dim_at(&x.d, self.axis), post, q, p, t, dst
        cdef int i
        for i in range(self.axis):
            pre *= dim_at(&x.d, i)
        post = total_size(&x.d) // (pre * n)
        for p in range(post):
            for q in range(pre):
                dst = p * pre * self.k + q
                for t in range(self.k):
                    x.grad[p * pre * n + q + self.where[dst + t * pre] * pre] += self.grad[dst + t * pre]
        return 0

    def generic_forward(self, xp, list xs, out):
        self.aux = generic.ravel(generic.kmax_sources(xp, xs[0], self.axis, self.k))
        generic.ravel(out)[...] = generic.ravel(xs[0])[self.aux]

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.ravel(dxi)[self.aux] += generic.ravel(dout)     # the positions are distinct


def kmax_pooling(x, k, d=1):
    """The k largest values along dimension d (columns by default), kept in their order."""
    cdef Expression ex = as_expr(x, "kmax_pooling")
    k = to_index(k, "kmax_pooling")
    d = to_index(d, "kmax_pooling")
    if d < 0 or d >= MAX_DIMS:
        raise ValueError(f"kmax_pooling: dimension {d} is out of range")
    if k < 1 or k > dim_at(&ex.d, d):
        raise ValueError(f"kmax_pooling: k must be in 1..{dim_at(&ex.d, d)} (the size of dimension "
                         f"{d} of {dim_str(&ex.d)}), got {k}")
    cdef Dim out = with_size(ex.d, d, k)
    cdef KMaxPooling node = KMaxPooling.__new__(KMaxPooling)
    node.axis = d
    node.k = k
    node.where = <int*>fwd_scratch(total_size(&out))
    return add_node(node, (ex,), out)
