"""Reductions over chosen dimensions (sum/mean/moment/std/logsumexp/max/min along dimensions or the
batch), elementwise reductions of lists (average, emax, logsumexp), and the rarer sums cumsum,
fold_rows and kmh_ngram (typed nodes whose generic implementations are the op classes CumSum,
FoldRows and KMHNGram, on xp).

One node type, DimReduce, does every reduction over dimensions. Its input is walked in blocks: the
axes (the batch included) are merged into runs of adjacent reduced or kept axes (size-1 axes
dropped), the innermost run is the block, and the output offset of each block is kept while
stepping over the outer runs (a reduced run has output stride 0). A block whose axes are reduced
is summed into one output value; a block of kept axes is added into a contiguous run of outputs.
Either way the inner loop runs over contiguous memory and vectorises, so any set of dimensions
costs about one pass over the input, with the per-block bookkeeping amortised over the block.
Each pass applies one elementwise function f(x; c) (c: a per-output centre such as the mean or
the maximum); the backward pass is the same walk adding k[o] * f'(x; c) into the gradient, with
the per-output factors k computed first.
"""
cimport cython
from libc.math cimport sqrtf, powf, INFINITY
from libc.string cimport memset
from dynet.core.dim cimport Dim, make_dim, total_size, batch_size, dim_str, same_shape, truncated, MAX_DIMS
from dynet.core.graph cimport Expression, add_node, as_expr, as_expr_tuple, fwd_scratch, to_index
from dynet.kernels.cpu cimport fill, copy, add_to, axpy, sum_of, fast_exp, fast_log
from dynet.kernels import generic
from dynet.core.lowering cimport Lowering, Step, Part

from dynet.nodes.pyop cimport GenericOpNode
from dynet.nodes.npbase import fmt as _fmt

cdef enum ReduceKind:
    K_SUM, K_MOMENT, K_STD, K_LSE, K_MAX, K_MIN

# the elementwise functions a pass applies: f(x; c) for a centre c of the value's output
cdef enum Fn:
    F_ONE, F_ID, F_SQ, F_POW, F_DEV, F_DEV2, F_EXP

cdef enum:
    CHUNK = 256          # values transformed at a time (stack buffers)


cdef inline void advance(int* idx, const int* sizes, const Py_ssize_t* ostr, int na,
                         Py_ssize_t* o) noexcept nogil:
    """Step the multi-index idx (column-major) by one element, keeping the output offset o."""
    cdef int k = 0
    while k < na:
        idx[k] += 1
        o[0] += ostr[k]
        if idx[k] < sizes[k]:
            return
        o[0] -= ostr[k] * sizes[k]
        idx[k] = 0
        k += 1


cdef inline const float* transform(int fn, int r, Py_ssize_t n, const float* x, const float* c,
                                   float* t) noexcept nogil:
    """f(x_i; c_i) for i < n, in t (or x itself for the identity). One loop per function, each
    vectorising."""
    cdef Py_ssize_t i
    cdef int _k
    cdef float d
    if fn == F_ID:
        return x
    if fn == F_ONE:
        fill(n, 1.0, t)
    elif fn == F_SQ:
        for i in range(n):
            t[i] = x[i] * x[i]
    elif fn == F_POW and r <= 16:      # x^r as r - 1 vectorised products (powf is a call per value)
        copy(n, x, t)
        for _k in range(r - 1):
            for i in range(n):
                t[i] *= x[i]
    elif fn == F_POW:
        for i in range(n):
            t[i] = powf(x[i], r)
    elif fn == F_DEV:
        for i in range(n):
            t[i] = x[i] - c[i]
    elif fn == F_DEV2:
        for i in range(n):
            d = x[i] - c[i]
            t[i] = d * d
    else:
        for i in range(n):
            t[i] = fast_exp(x[i] - c[i])
    return t


@cython.final
@cython.no_gc
cdef class DimReduce(Expression):
    cdef str name
    cdef int kind
    cdef int r                  # moment order
    cdef float scale            # K_SUM/K_MOMENT: multiplier of the sum (1/n for means)
    cdef float n_eff            # K_STD: the n of the formula (reduced count, or the user's n)
    cdef int reduced            # bit k: axis k is reduced (k = the input's nd: the batch)
    cdef int nd                 # the input's dimensions (its batch is axis nd)
    cdef Py_ssize_t n_in        # the input's values
    cdef Py_ssize_t block       # values in the innermost run
    cdef bint block_reduced     # the innermost run is reduced (else kept: contiguous outputs)
    cdef int nouter             # the outer runs
    cdef int sizes[8]
    cdef Py_ssize_t ostr[8]
    cdef float* aux             # 2M floats: K_STD means / K_LSE maxima / K_MAX, K_MIN arg offsets
                                # (as int); then the backward pass's factors

    cpdef str op_name(self):
        return self.name

    cdef void walk(self, bint backward, int fn, int power, const float* x, const float* c,
                   const float* k, float* out) noexcept nogil:
        """Forward: out[o(i)] += f(x_i; c[o(i)]) for every input value i, o(i) its output.
        Backward: out[i] += k[o(i)] * f(x_i; c[o(i)]). (power: F_POW's exponent)"""
        cdef Py_ssize_t L = self.block, nblocks, blk, start, n, i, o = 0, base
        cdef float tbuf[CHUNK]
        cdef float cbuf[CHUNK]
        cdef const float* t
        cdef const float* cp = NULL
        cdef int idx[8]
        cdef bint red = self.block_reduced, centred = fn == F_DEV or fn == F_DEV2 or fn == F_EXP
        cdef float acc
        memset(idx, 0, sizeof(idx))
        nblocks = self.n_in // L
        for blk in range(nblocks):
            base = blk * L
            if red and centred:
                fill(min(L, <Py_ssize_t>CHUNK), c[o], cbuf)
            acc = 0
            start = 0
            while start < L:
                n = min(L - start, <Py_ssize_t>CHUNK)
                if centred:
                    cp = <const float*>cbuf if red else c + o + start
                t = transform(fn, power, n, x + base + start, cp, tbuf)
                if not backward:
                    if red:
                        acc += sum_of(n, t)
                    else:
                        add_to(n, t, out + o + start)
                elif red:
                    axpy(n, k[o], t, out + base + start)
                else:
                    for i in range(n):
                        out[base + start + i] += k[o + start + i] * t[i]
                start += n
            if red and not backward:
                out[o] += acc
            advance(idx, self.sizes, self.ostr, self.nouter, &o)

    cdef void extremes(self, const float* x, float* y, int* arg) noexcept nogil:
        """y[o] = the max (K_MAX, K_LSE) or min (K_MIN) of the values of each output; arg[o] its
        first offset in the input, if arg is not NULL (0 where every value is NaN)."""
        cdef Py_ssize_t L = self.block, nblocks = self.n_in // L, blk, i, o = 0, base, best
        cdef Py_ssize_t M = total_size(&self.d)
        cdef int idx[8]
        cdef float s = -1.0 if self.kind == K_MIN else 1.0, v   # min as the max of -x
        memset(idx, 0, sizeof(idx))
        fill(M, -INFINITY, y)
        if arg != NULL:
            memset(arg, 0, M * sizeof(int))
        for blk in range(nblocks):
            base = blk * L
            if self.block_reduced:
                best = 0
                for i in range(1, L):
                    if s * x[base + i] > s * x[base + best]:
                        best = i
                v = s * x[base + best]
                if v > y[o]:
                    y[o] = v
                    if arg != NULL:
                        arg[o] = <int>(base + best)
            else:
                for i in range(L):
                    v = s * x[base + i]
                    if v > y[o + i]:
                        y[o + i] = v
                        if arg != NULL:
                            arg[o + i] = <int>(base + i)
            advance(idx, self.sizes, self.ostr, self.nouter, &o)
        if s < 0:
            for i in range(M):
                y[i] = -y[i]

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t N = total_size(&x.d), M = total_size(&self.d), i
        cdef float* y = self.val
        cdef float* aux = self.aux
        cdef float v, cnt = <float>(N // M), mu
        cdef int kind = self.kind
        with nogil:
            if kind == K_MAX or kind == K_MIN:
                self.extremes(x.val, y, <int*>aux)
                return 0
            fill(M, 0.0, y)
            if kind == K_SUM or kind == K_MOMENT:
                self.walk(False, F_ID if self.r == 1 else (F_SQ if self.r == 2 else F_POW), self.r,
                          x.val, NULL, NULL, y)
                if self.scale != 1:
                    for i in range(M):
                        y[i] *= self.scale
            elif kind == K_STD:
                fill(M, 0.0, aux)
                self.walk(False, F_ID, 1, x.val, NULL, NULL, aux)
                for i in range(M):
                    aux[i] /= self.n_eff
                self.walk(False, F_DEV2, 2, x.val, aux, NULL, y)
                for i in range(M):
                    # sum_i x_i^2 / n - mu^2 over the n values (masked values being 0), two-pass
                    mu = aux[i]
                    v = (y[i] - (cnt - self.n_eff) * mu * mu) / self.n_eff
                    y[i] = sqrtf(v) if v > 0 else 0.0
            else:
                self.extremes(x.val, aux, NULL)
                self.walk(False, F_EXP, 1, x.val, aux, NULL, y)
                for i in range(M):
                    y[i] = aux[i] + fast_log(y[i])     # sums >= 1 (the largest term is 1)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t M = total_size(&self.d), i
        cdef const float* y = self.val
        cdef const float* g = self.grad
        cdef const int* arg = <const int*>self.aux
        cdef float* k = self.aux + M        # the per-output factors
        cdef int r = self.r, kind = self.kind
        with nogil:
            if kind == K_MAX or kind == K_MIN:
                for i in range(M):
                    x.grad[arg[i]] += g[i]
                return 0
            if kind == K_SUM or kind == K_MOMENT:
                # d(scale * x^r) = scale * r * x^(r-1): a constant, x, or a power
                for i in range(M):
                    k[i] = g[i] * self.scale * r
                self.walk(True, F_ONE if r == 1 else (F_ID if r == 2 else F_POW), r - 1, x.val, NULL,
                          k, x.grad)
            elif kind == K_STD:
                for i in range(M):
                    k[i] = g[i] / (self.n_eff * y[i]) if y[i] > 0 else 0.0
                self.walk(True, F_DEV, 1, x.val, self.aux, k, x.grad)
            else:
                self.walk(True, F_EXP, 1, x.val, y, g, x.grad)
        return 0

    cdef tuple generic_args(self):
        """(kind, reduced axes of the (dims..., batch) layout, r, scale, n_eff) for the kernels."""
        axes = tuple([a for a in range(self.nd + 1) if self.reduced >> a & 1])
        kind = ("sum", "moment", "std", "lse", "max", "min")[self.kind]
        return kind, axes, self.r, self.scale, self.n_eff

    def generic_forward(self, xp, list xs, out):
        kind, axes, r, scale, n_eff = self.generic_args()
        generic.dim_reduce_forward(xp, kind, xs[0], axes, out, r, scale, n_eff)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        kind, axes, r, scale, n_eff = self.generic_args()
        generic.dim_reduce_backward(xp, kind, xs[0], axes, out, dout, dxi, r, scale, n_eff)


cdef int reduced_mask(object d, str op, Expression x) except -1:
    """A dimension argument (an int or a sequence of ints) as a bit mask; dimensions past x's last
    are size 1 (a {3} vector is a {3,1} matrix, as in DyNet)."""
    cdef long k
    cdef int mask = 0
    if type(d) is int or (hasattr(d, "__index__") and not isinstance(d, bool)
                          and getattr(d, "ndim", 0) == 0):
        ds = [to_index(d, op)]
    else:
        try:
            ds = [to_index(v, op) for v in d]
        except TypeError:
            raise TypeError(f"{op}: dimensions must be an int or a list of ints, got {d!r:.40}")
    for k in ds:
        if k < 0 or k >= MAX_DIMS:
            raise ValueError(f"{op}: dimension {k} is out of range for {dim_str(&x.d)}")
        if mask >> k & 1:
            raise ValueError(f"{op}: dimension {k} is given twice in {ds}")
        mask |= 1 << k
    return mask


cdef Expression dim_reduce(object x, object dims, bint over_batch, int kind, str name,
                           int r=1, int n=0, int mask=-1):
    """Reduce x over the dimensions `dims` (or the bit mask `mask`, when given) and over the batch
    if over_batch."""
    cdef Expression ex = as_expr(x, name)
    cdef int a, nd = ex.d.nd
    if mask < 0:
        mask = reduced_mask(dims, name, ex)
    if n < 0:
        raise ValueError(f"{name}: n must be >= 0, got {n}")
    mask &= (1 << nd) - 1          # dimensions past the last are size 1: nothing to reduce
    if over_batch:
        mask |= 1 << nd
    cdef DimReduce node = DimReduce.__new__(DimReduce)
    node.kind = kind
    node.r = r
    node.name = name
    node.nd = nd
    node.n_in = total_size(&ex.d)
    node.reduced = mask
    # the output's dimensions: the kept ones in order ((1,) if none)
    cdef Dim d
    memset(&d, 0, sizeof(Dim))
    cdef Py_ssize_t count = 1, stride = 1
    for a in range(nd):
        if mask >> a & 1:
            count *= ex.d.d[a]
        else:
            d.d[d.nd] = ex.d.d[a]
            d.nd += 1
    if d.nd == 0:
        d.d[0] = 1
        d.nd = 1
    d.bd = 1 if over_batch else ex.d.bd
    if over_batch:
        count *= ex.d.bd
    # the runs: adjacent axes of one kind merged, size-1 axes dropped; the first is the block
    cdef int size, nrun = 0, run_red = -1, red
    cdef int sizes[8]
    cdef int reds[8]
    cdef Py_ssize_t ostr[8]
    for a in range(nd + 1):
        size = ex.d.d[a] if a < nd else ex.d.bd
        if size == 1:
            continue
        red = mask >> a & 1
        if nrun > 0 and red == run_red:
            sizes[nrun - 1] *= size
        else:
            sizes[nrun] = size
            reds[nrun] = red
            ostr[nrun] = 0 if red else stride
            nrun += 1
            run_red = red
        if not red:
            stride *= size
    node.block = 1
    node.block_reduced = False
    node.nouter = 0
    if nrun > 0:
        node.block = sizes[0]
        node.block_reduced = reds[0]
        node.nouter = nrun - 1
        for a in range(1, nrun):
            node.sizes[a - 1] = sizes[a]
            # a step of the outer run moves the output by its stride (the block's outputs before)
            node.ostr[a - 1] = ostr[a]
    node.n_eff = n if n > 0 else count
    node.scale = 1.0 / node.n_eff if kind == K_MOMENT else 1.0
    node.aux = fwd_scratch(2 * total_size(&d))
    return add_node(node, (ex,), d)


cdef int all_dims(object x, str op) except -1:
    """The mask of all of x's dimensions."""
    cdef Expression ex = as_expr(x, op)
    return (1 << ex.d.nd) - 1


def sum_dim(x, d, b=False, n=0):
    """The sum over the dimensions d (an int or a list), and over the batch if b.
    (n is accepted for DyNet's signature; a sum has nothing to rescale.)"""
    return dim_reduce(x, d, b, K_SUM, "sum_dim")


def sum_cols(x):
    """The sum of the columns of a matrix: a column vector."""
    return dim_reduce(x, None, False, K_SUM, "sum_cols", 1, 0, 2)


def mean_elems(x):
    """The mean of all values of each batch element."""
    return dim_reduce(x, None, False, K_MOMENT, "mean_elems", 1, 0, all_dims(x, "mean_elems"))


def mean_dim(x, d, b=False, n=0):
    """The mean over the dimensions d (and the batch if b); n > 0 replaces the count (masking)."""
    return dim_reduce(x, d, b, K_MOMENT, "mean_dim", 1, n)


def mean_batches(x):
    """The mean over the batch."""
    return dim_reduce(x, None, True, K_MOMENT, "mean_batches", 1, 0, 0)


def std_elems(x):
    """sqrt(1/n sum_i (x_i - mean)^2) over all values of each batch element."""
    return dim_reduce(x, None, False, K_STD, "std_elems", 1, 0, all_dims(x, "std_elems"))


def std_dim(x, d, b=False, n=0):
    """The standard deviation (1/n normalisation) over the dimensions d (and the batch if b).
    n > 0 replaces the count as in mean_dim: sqrt(sum x^2 / n - (sum x / n)^2), so padding zeros
    drop out (the reference ignores n here)."""
    return dim_reduce(x, d, b, K_STD, "std_dim", 1, n)


def std_batches(x):
    """The standard deviation over the batch."""
    return dim_reduce(x, None, True, K_STD, "std_batches", 1, 0, 0)


cdef int moment_order(object r, str op) except -1:
    cdef long k = to_index(r, op)
    if k < 1:
        raise ValueError(f"{op}: the moment order r must be >= 1, got {k}")
    return k


def moment_elems(x, r):
    """1/n sum_i x_i^r over all values of each batch element."""
    return dim_reduce(x, None, False, K_MOMENT, "moment_elems", moment_order(r, "moment_elems"), 0,
                      all_dims(x, "moment_elems"))


def moment_dim(x, d, r, b=False, n=0):
    """1/n sum_i x_i^r over the dimensions d (and the batch if b); n > 0 replaces the count."""
    return dim_reduce(x, d, b, K_MOMENT, "moment_dim", moment_order(r, "moment_dim"), n)


def moment_batches(x, r):
    """1/n sum_i x_i^r over the batch."""
    return dim_reduce(x, None, True, K_MOMENT, "moment_batches", moment_order(r, "moment_batches"),
                      0, 0)


cdef int one_dim(object x, object d, str op) except -1:
    """The mask of d, which must name an existing dimension of x (the single-dimension
    reductions)."""
    cdef Expression ex = as_expr(x, op)
    cdef long k = to_index(d, op)
    if k < 0 or k >= max(ex.d.nd, 1):
        raise ValueError(f"{op}: dimension {k} is out of range for {dim_str(&ex.d)}")
    return 1 << k


def logsumexp_dim(x, d=0):
    """log(sum_i exp(x_i)) along the dimension d."""
    return dim_reduce(x, None, False, K_LSE, "logsumexp_dim", 1, 0, one_dim(x, d, "logsumexp_dim"))


def max_dim(x, d=0):
    """The largest value along the dimension d."""
    return dim_reduce(x, None, False, K_MAX, "max_dim", 1, 0, one_dim(x, d, "max_dim"))


def min_dim(x, d=0):
    """The smallest value along the dimension d."""
    return dim_reduce(x, None, False, K_MIN, "min_dim", 1, 0, one_dim(x, d, "min_dim"))


# ---- elementwise reductions of a list of expressions ------------------------------------------

cdef enum NaryKind:
    N_AVERAGE, N_MAX, N_LSE, N_SUM


cdef void nary_start(int kind, Py_ssize_t M, float* y) noexcept nogil:
    fill(M, 0.0 if kind == N_AVERAGE or kind == N_SUM else -INFINITY, y)


cdef void nary_add(int kind, int j, const float* x, bint batched, Py_ssize_t per, Py_ssize_t bd,
                   float* y, float* aux) noexcept nogil:
    """Argument j (x) into the running sum or maximum y (N_MAX notes the winner in aux)."""
    cdef Py_ssize_t b, i
    cdef const float* xv
    cdef float* yb
    cdef int* ab
    cdef bint better
    for b in range(bd):
        xv = x + (b * per if batched else 0)
        yb = y + b * per
        if kind == N_AVERAGE or kind == N_SUM:
            add_to(per, xv, yb)
        elif kind == N_MAX:      # selects, not branches: the loops vectorise
            ab = <int*>aux + b * per
            for i in range(per):
                better = xv[i] > yb[i]
                ab[i] = j if better else ab[i]
                yb[i] = xv[i] if better else yb[i]
        else:
            for i in range(per):
                yb[i] = xv[i] if xv[i] > yb[i] else yb[i]


cdef void lse_add(const float* x, bint batched, Py_ssize_t per, Py_ssize_t bd, const float* y,
                  float* sums) noexcept nogil:
    """N_LSE's second pass: e^(x - max) of one argument into sums (y holds the maximum)."""
    cdef Py_ssize_t b, i
    cdef const float* xv
    for b in range(bd):
        xv = x + (b * per if batched else 0)
        for i in range(per):
            sums[b * per + i] += fast_exp(xv[i] - y[b * per + i])


cdef void nary_finish(int kind, int k, Py_ssize_t M, float* y, const float* aux) noexcept nogil:
    cdef Py_ssize_t i
    if kind == N_AVERAGE:
        for i in range(M):
            y[i] /= k
    elif kind == N_LSE:
        for i in range(M):
            y[i] += fast_log(aux[i])     # the sums are >= 1 (the largest term is 1)


cdef void nary_step(const Step* s, const Part* parts) noexcept nogil:
    cdef Py_ssize_t j
    cdef float* aux = <float*>s.x0
    nary_start(s.op, s.n2, s.y)
    for j in range(s.nparts):
        nary_add(s.op, <int>j, parts[j].x, parts[j].flags, s.n0, s.n1, s.y, aux)
    if s.op == N_LSE:
        fill(s.n2, 0.0, aux)
        for j in range(s.nparts):
            lse_add(parts[j].x, parts[j].flags, s.n0, s.n1, s.y, aux)
    nary_finish(s.op, <int>s.nparts, s.n2, s.y, aux)


@cython.final
@cython.no_gc
cdef class NaryReduce(Expression):
    """esum / average / emax / logsumexp of a list, elementwise; batch-1 arguments are broadcast."""
    cdef int kind
    cdef float* aux         # N_MAX: index of the winning argument; N_LSE: sums of exponentials

    cpdef str op_name(self):
        return ("average", "emax", "logsumexp", "esum")[self.kind]

    cdef int forward_impl(self) except -1:
        cdef Py_ssize_t per = batch_size(&self.d), j, k = len(self.args)
        cdef Expression x
        nary_start(self.kind, total_size(&self.d), self.val)
        for j in range(k):
            x = <Expression>self.args[j]
            nary_add(self.kind, <int>j, x.val, x.d.bd > 1, per, self.d.bd, self.val, self.aux)
        if self.kind == N_LSE:
            fill(total_size(&self.d), 0.0, self.aux)
            for j in range(k):
                x = <Expression>self.args[j]
                lse_add(x.val, x.d.bd > 1, per, self.d.bd, self.val, self.aux)
        nary_finish(self.kind, <int>k, total_size(&self.d), self.val, self.aux)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Py_ssize_t j, k = len(self.args)
        cdef Step* s = L.add(nary_step, total_size(&self.d) * k)
        cdef Part* q = L.add_parts(s, k)
        cdef Expression x
        s.y = self.val
        s.x0 = self.aux                  # (written: N_MAX's winners, N_LSE's sums, for backward)
        s.n0, s.n1, s.n2 = batch_size(&self.d), self.d.bd, total_size(&self.d)
        s.op = self.kind
        for j in range(k):
            x = <Expression>self.args[j]
            q[j].x = x.val
            q[j].flags = x.d.bd > 1
        return 1

    cdef int backward_impl(self) except -1:
        cdef Py_ssize_t per = batch_size(&self.d), b, i, oi
        cdef Expression x
        cdef int j, k = len(self.args)
        cdef const float* g = self.grad
        cdef const int* arg = <const int*>self.aux
        cdef const float* xv
        cdef float* dx
        for j in range(k):
            x = <Expression>self.args[j]
            if x.grad == NULL:
                continue
            for b in range(self.d.bd):
                oi = b * per
                dx = x.grad + (oi if x.d.bd > 1 else 0)
                xv = x.val + (oi if x.d.bd > 1 else 0)
                if self.kind == N_SUM:
                    add_to(per, g + oi, dx)
                elif self.kind == N_AVERAGE:
                    for i in range(per):
                        dx[i] += g[oi + i] / k
                elif self.kind == N_MAX:
                    for i in range(per):
                        if arg[oi + i] == j:
                            dx[i] += g[oi + i]
                else:
                    for i in range(per):
                        dx[i] += g[oi + i] * fast_exp(xv[i] - self.val[oi + i])
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.nary_forward(xp, self.op_name(), xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.nary_backward(xp, self.op_name(), xs, out, dout, i, dxi)


cdef Expression nary(object xs, int kind, str name):
    cdef tuple args = as_expr_tuple(xs, name)
    cdef Expression first = <Expression>args[0], x
    cdef Dim d = first.d
    for x in args:
        if x.d.bd > d.bd:
            d.bd = x.d.bd
    for x in args:
        if not same_shape(&x.d, &first.d) or (x.d.bd != 1 and x.d.bd != d.bd):
            raise ValueError(f"{name}: all expressions must have the same dimensions (batch sizes 1 "
                             f"or equal), got " + ", ".join([dim_str(&(<Expression>y).d) for y in args]))
    if kind == N_LSE:
        d = truncated(d)      # as DyNet's LogSumExp: {2,2,1} gives {2,2}
    cdef NaryReduce node = NaryReduce.__new__(NaryReduce)
    node.kind = kind
    node.aux = fwd_scratch(total_size(&d)) if kind == N_MAX or kind == N_LSE else NULL
    return add_node(node, args, d)


def esum(xs):
    """The elementwise sum of a list of expressions of the same dimension."""
    return nary(xs, N_SUM, "esum")


def average(xs):
    """The elementwise mean of a list of expressions of the same dimension."""
    return nary(xs, N_AVERAGE, "average")


def emax(xs):
    """The elementwise maximum of a list of expressions of the same dimension."""
    return nary(xs, N_MAX, "emax")


def logsumexp(xs):
    """log(sum_j exp(xs[j])) elementwise, over a list of expressions of the same dimension."""
    return nary(xs, N_LSE, "logsumexp")


# ---- rarer sums on the generic NumPy path ---------------------------------------------------

class CumSum:
    """y_i = sum_{j <= i} x_j along one dimension."""
    name = "cumsum"

    def __init__(self, d):
        self.d = d

    def dim(self, dims):
        (shape, bd), = dims
        if self.d >= len(shape):
            raise ValueError(f"cumsum: dimension {self.d} is out of range for {_fmt(shape, bd)}")
        return shape, bd

    # (array methods and slicing only, so the same code runs on CuPy arrays)
    def forward(self, xs, out):
        xs[0].cumsum(axis=self.d, out=out)

    def backward(self, xs, out, dout, i, dxi):
        # d/dx_j = sum_{i >= j} g_i: a cumulative sum from the end
        rev = tuple(slice(None, None, -1) if k == self.d else slice(None) for k in range(dout.ndim))
        dxi += dout[rev].cumsum(axis=self.d)[rev]


@cython.final
@cython.no_gc
cdef class Rows(GenericOpNode):
    """The typed cumsum, fold_rows and kmh_ngram: sums of runs of values along one axis, seen as
    (inner, length, outer) with the axis in the middle (inner: the product of the dimensions
    before it, outer: of those after it, the batch included)."""
    cdef int kind            # 0 cumsum, 1 fold_rows, 2 kmh_ngram
    cdef int k               # cumsum's dimension, fold_rows' nrows, kmh_ngram's n
    cdef Py_ssize_t inner, length, outer

    cpdef str op_name(self):
        return ("cumsum", "fold_rows", "kmh_ngram")[self.kind]

    cdef object make_op(self):
        return (CumSum, FoldRows, KMHNGram)[self.kind](self.k)

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0]
        if backward and x.grad == NULL:
            return 0
        # the fields in locals: stores through float pointers would make the compiler reload them
        # (extensions are built with -fno-strict-aliasing)
        cdef int kind = self.kind, k = self.k
        cdef Py_ssize_t inner = self.inner, n = self.length, outer = self.outer, o, i, j, t, m
        cdef Py_ssize_t nout = n // k if kind == 1 else (n - k + 1 if kind == 2 else n)
        cdef Py_ssize_t step = k if kind == 1 else 1     # output run j starts at input run j * step
        cdef const float* xv = x.val
        cdef float* xg = x.grad
        cdef float* y = self.val
        cdef const float* g = self.grad
        cdef float run
        for o in range(outer):
            if kind == 0:                 # cumsum (backward: from the end)
                for i in range(inner):
                    run = 0
                    for t in range(n):
                        j = n - 1 - t if backward else t
                        if backward:
                            run += g[o * n * inner + j * inner + i]
                            xg[o * n * inner + j * inner + i] += run
                        else:
                            run += xv[o * n * inner + j * inner + i]
                            y[o * n * inner + j * inner + i] = run
                continue
            if inner == 1:                # runs of single values (fold_rows): no inner loop
                if backward:
                    for j in range(nout):
                        run = g[o * nout + j]
                        for m in range(k):
                            xg[o * n + j * step + m] += run
                else:
                    for j in range(nout):
                        run = 0
                        for m in range(k):
                            run += xv[o * n + j * step + m]
                        y[o * nout + j] = run
                continue
            for j in range(nout):         # output run j sums input runs j*k.. (fold) or j.. (ngram)
                if not backward:
                    fill(inner, 0.0, y + (o * nout + j) * inner)
                for m in range(k):
                    t = j * step + m
                    if backward:
                        add_to(inner, g + (o * nout + j) * inner, xg + (o * n + t) * inner)
                    else:
                        add_to(inner, xv + (o * n + t) * inner, y + (o * nout + j) * inner)
        return 0

    cdef int forward_impl(self) except -1:
        return self._run(False)

    cdef int backward_impl(self) except -1:
        return self._run(True)


cdef Expression make_rows(Expression x, int kind, int k, int axis, Dim out):
    cdef Rows node = Rows.__new__(Rows)
    cdef int a
    node.kind, node.k = kind, k
    node.inner, node.length, node.outer = 1, (x.d.d[axis] if axis < x.d.nd else 1), x.d.bd
    for a in range(x.d.nd):
        if a < axis:
            node.inner *= x.d.d[a]
        elif a > axis:
            node.outer *= x.d.d[a]
    return add_node(node, (x,), out)


def cumsum(x, d=0):
    """Cumulative sums along the dimension d."""
    cdef Expression ex = as_expr(x, "cumsum")
    cdef long axis = to_index(d, "cumsum")
    if axis < 0 or axis >= ex.d.nd:
        raise ValueError(f"cumsum: dimension {axis} is out of range for {dim_str(&ex.d)}")
    return make_rows(ex, 0, axis, axis, ex.d)


class FoldRows:
    """Sums each group of nrows consecutive rows: y_i = sum_{j < nrows} x_{i*nrows + j}."""
    name = "fold_rows"

    def __init__(self, nrows):
        self.nrows = nrows

    def dim(self, dims):
        (shape, bd), = dims
        if self.nrows < 1 or len(shape) > 2 or shape[0] % self.nrows:
            raise ValueError(f"fold_rows: the number of rows of {_fmt(shape, bd)} must be a multiple "
                             f"of nrows={self.nrows} (a vector or a matrix)")
        return (shape[0] // self.nrows, shape[1] if len(shape) > 1 else 1), bd   # always a matrix, as DyNet

    def _split(self, a):
        return a.reshape((self.nrows, a.shape[0] // self.nrows) + a.shape[1:], order="F")

    def forward(self, xs, out):
        out[...] = self._split(xs[0]).sum(axis=0).reshape(out.shape, order="F")

    def backward(self, xs, out, dout, i, dxi):
        split = self._split(dxi)
        split += dout.reshape(split.shape[1:], order="F")


def fold_rows(x, nrows=2):
    """Sum groups of nrows consecutive rows (rows/nrows rows out)."""
    cdef Expression ex = as_expr(x, "fold_rows")
    cdef long n = to_index(nrows, "fold_rows")
    if n < 1 or ex.d.nd > 2 or ex.d.d[0] % n:
        raise ValueError(f"fold_rows: the number of rows of {dim_str(&ex.d)} must be a multiple "
                         f"of nrows={n} (a vector or a matrix)")
    # rows are runs of length 1 (inner 1) along axis 0, within each column: inner=1, length=rows
    cdef Dim out = make_dim((ex.d.d[0] // n, ex.d.d[1] if ex.d.nd > 1 else 1), ex.d.bd)  # a matrix, as DyNet
    return make_rows(ex, 1, n, 0, out)


class KMHNGram:
    """Sums of n consecutive columns: y[:, j] = sum_{k < n} x[:, j + k]."""
    name = "kmh_ngram"

    def __init__(self, n):
        self.n = n

    def dim(self, dims):
        (shape, bd), = dims
        cols = shape[1] if len(shape) > 1 else 1
        if len(shape) > 2 or self.n < 1 or cols < self.n:
            raise ValueError(f"kmh_ngram: needs a matrix with at least n={self.n} columns, "
                             f"got {_fmt(shape, bd)}")
        return (shape[0], cols - self.n + 1), bd

    def _cols(self, a):
        return a.reshape((a.shape[0], -1, a.shape[-1]), order="F")

    def forward(self, xs, out):
        x, y = self._cols(xs[0]), self._cols(out)
        w = y.shape[1]
        y[...] = 0
        for k in range(self.n):
            y += x[:, k:k + w]

    def backward(self, xs, out, dout, i, dxi):
        dx, g = self._cols(dxi), self._cols(dout)
        w = g.shape[1]
        for k in range(self.n):
            dx[:, k:k + w] += g


def kmh_ngram(x, v):
    """Sums of v consecutive columns of the matrix x (n-gram features)."""
    cdef Expression ex = as_expr(x, "kmh_ngram")
    cdef long n = to_index(v, "kmh_ngram")
    cdef int cols = ex.d.d[1] if ex.d.nd > 1 else 1
    if ex.d.nd > 2 or n < 1 or cols < n:
        raise ValueError(f"kmh_ngram: needs a matrix with at least n={n} columns, got {dim_str(&ex.d)}")
    return make_rows(ex, 2, n, 1, make_dim((ex.d.d[0], cols - n + 1), ex.d.bd))
