"""Reductions over chosen dimensions (sum/mean/moment/std/logsumexp/max/min along dimensions or the
batch), elementwise reductions of lists (average, emax, logsumexp), and the rarer sums cumsum,
fold_rows and kmh_ngram (typed nodes whose generic implementations are the op classes CumSum,
FoldRows and KMHNGram, on xp).

One node type, DimReduce, does every reduction over dimensions: it walks the input once in memory
order keeping the offset of the output element each input value belongs to (a reduced axis has
output stride 0), so any set of dimensions, the batch included, costs the same single loop.
"""
cimport cython
from libc.math cimport expf, logf, sqrtf, powf, INFINITY
from libc.string cimport memset
from dynet.core.dim cimport Dim, make_dim, total_size, batch_size, dim_str, same_shape, MAX_DIMS
from dynet.core.graph cimport Expression, add_node, as_expr, as_expr_tuple, fwd_scratch, to_index
from dynet.kernels.cpu cimport fill, add_to, fast_exp
from dynet.kernels import generic

from dynet.nodes.pyop cimport GenericOpNode
from dynet.nodes.npbase import fmt as _fmt

cdef enum ReduceKind:
    K_SUM, K_MOMENT, K_STD, K_LSE, K_MAX, K_MIN


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


@cython.final
@cython.no_gc
cdef class DimReduce(Expression):
    cdef int kind
    cdef int r                  # moment order
    cdef float scale            # K_SUM/K_MOMENT: multiplier of the sum (1/n for means)
    cdef float n_eff            # K_STD: the n of the formula (reduced count, or the user's n)
    cdef int na                 # axes walked: the input's dims, then the batch
    cdef int sizes[8]
    cdef Py_ssize_t ostr[8]
    cdef float* aux             # K_STD: means; K_LSE: maxima; K_MAX/K_MIN: arg offsets (as int)
    cdef str name

    cpdef str op_name(self):
        return self.name

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t N = total_size(&x.d), M = total_size(&self.d), i, o = 0
        cdef const float* xv = x.val
        cdef float* y = self.val
        cdef float* aux = self.aux
        cdef int* arg = <int*>self.aux
        cdef int idx[8]
        cdef int r = self.r, kind = self.kind
        cdef float v, cnt = <float>(N // M), mu
        memset(idx, 0, sizeof(idx))
        with nogil:
            if kind == K_SUM or kind == K_MOMENT:
                fill(M, 0.0, y)
                for i in range(N):
                    v = xv[i]
                    y[o] += v if r == 1 else (v * v if r == 2 else powf(v, r))
                    advance(idx, self.sizes, self.ostr, self.na, &o)
                for i in range(M):
                    y[i] *= self.scale
            elif kind == K_STD:
                fill(M, 0.0, aux)
                for i in range(N):
                    aux[o] += xv[i]
                    advance(idx, self.sizes, self.ostr, self.na, &o)
                for i in range(M):
                    aux[i] /= self.n_eff
                fill(M, 0.0, y)
                for i in range(N):
                    v = xv[i] - aux[o]
                    y[o] += v * v
                    advance(idx, self.sizes, self.ostr, self.na, &o)
                for i in range(M):
                    # sum_i x_i^2 / n - mu^2 over the n values (masked values being 0), two-pass
                    mu = aux[i]
                    v = (y[i] - (cnt - self.n_eff) * mu * mu) / self.n_eff
                    y[i] = sqrtf(v) if v > 0 else 0.0
            elif kind == K_LSE:
                fill(M, -INFINITY, aux)
                for i in range(N):
                    if xv[i] > aux[o]:
                        aux[o] = xv[i]
                    advance(idx, self.sizes, self.ostr, self.na, &o)
                fill(M, 0.0, y)
                for i in range(N):
                    y[o] += expf(xv[i] - aux[o])
                    advance(idx, self.sizes, self.ostr, self.na, &o)
                for i in range(M):
                    y[i] = aux[i] + logf(y[i])
            else:
                fill(M, INFINITY if kind == K_MIN else -INFINITY, y)
                for i in range(M):
                    arg[i] = 0
                for i in range(N):
                    v = xv[i]
                    if (v > y[o]) if kind == K_MAX else (v < y[o]):
                        y[o] = v
                        arg[o] = <int>i
                    advance(idx, self.sizes, self.ostr, self.na, &o)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t N = total_size(&x.d), M = total_size(&self.d), i, o = 0
        cdef const float* xv = x.val
        cdef const float* y = self.val
        cdef const float* g = self.grad
        cdef float* dx = x.grad
        cdef const float* aux = self.aux
        cdef const int* arg = <const int*>self.aux
        cdef int idx[8]
        cdef int r = self.r, kind = self.kind
        cdef float s = self.scale, v
        memset(idx, 0, sizeof(idx))
        with nogil:
            if kind == K_SUM or kind == K_MOMENT:
                for i in range(N):
                    v = xv[i]
                    dx[i] += g[o] * s * (1.0 if r == 1 else (2 * v if r == 2 else r * powf(v, r - 1)))
                    advance(idx, self.sizes, self.ostr, self.na, &o)
            elif kind == K_STD:
                for i in range(N):
                    if y[o] > 0:
                        dx[i] += g[o] * (xv[i] - aux[o]) / (self.n_eff * y[o])
                    advance(idx, self.sizes, self.ostr, self.na, &o)
            elif kind == K_LSE:
                for i in range(N):
                    dx[i] += g[o] * expf(xv[i] - y[o])
                    advance(idx, self.sizes, self.ostr, self.na, &o)
            else:
                for i in range(M):
                    dx[arg[i]] += g[i]
        return 0

    cdef tuple generic_args(self):
        """(kind, reduced axes of the (dims..., batch) layout, r, scale, n_eff) for the kernels."""
        axes = tuple([k for k in range(self.na) if self.ostr[k] == 0])
        kind = ("sum", "moment", "std", "lse", "max", "min")[self.kind]
        return kind, axes, self.r, self.scale, self.n_eff

    def generic_forward(self, xp, list xs, out):
        kind, axes, r, scale, n_eff = self.generic_args()
        generic.dim_reduce_forward(xp, kind, xs[0], axes, out, r, scale, n_eff)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        kind, axes, r, scale, n_eff = self.generic_args()
        generic.dim_reduce_backward(xp, kind, xs[0], axes, out, dout, dxi, r, scale, n_eff)


cdef list as_dims(object d, str op):
    """A dimension argument as a list of ints (an int or a sequence of ints)."""
    if hasattr(d, "__index__") and not isinstance(d, bool) and getattr(d, "ndim", 0) == 0:
        return [to_index(d, op)]
    try:
        return [to_index(v, op) for v in d]
    except TypeError:
        raise TypeError(f"{op}: dimensions must be an int or a list of ints, got {d!r:.40}")


cdef Expression dim_reduce(object x, object dims, bint over_batch, int kind, str name,
                           int r=1, int n=0):
    """Reduce x over the dimensions `dims` (and the batch if over_batch)."""
    cdef Expression ex = as_expr(x, name)
    cdef list ds = as_dims(dims, name)
    cdef int k, nd = ex.d.nd
    for k in ds:
        # dimensions past the last are size 1 (a {3} vector is a {3,1} matrix, as in DyNet)
        if k < 0 or k >= MAX_DIMS:
            raise ValueError(f"{name}: dimension {k} is out of range for {dim_str(&ex.d)}")
        if ds.count(k) > 1:
            raise ValueError(f"{name}: dimension {k} is given twice in {ds}")
    if n < 0:
        raise ValueError(f"{name}: n must be >= 0, got {n}")
    cdef DimReduce node = DimReduce.__new__(DimReduce)
    node.kind = kind
    node.r = r
    node.name = name
    node.na = nd + 1
    kept = []
    cdef Py_ssize_t stride = 1, count = 1
    for k in range(nd):
        node.sizes[k] = ex.d.d[k]
        if k in ds:
            node.ostr[k] = 0
            count *= ex.d.d[k]
        else:
            node.ostr[k] = stride
            stride *= ex.d.d[k]
            kept.append(ex.d.d[k])
    node.sizes[nd] = ex.d.bd
    cdef int out_bd = ex.d.bd
    if over_batch:
        node.ostr[nd] = 0
        count *= ex.d.bd
        out_bd = 1
    else:
        node.ostr[nd] = stride
    node.n_eff = n if n > 0 else count
    node.scale = 1.0 / node.n_eff if kind == K_MOMENT else 1.0
    cdef Dim d = make_dim(tuple(kept) if kept else (1,), out_bd)
    node.aux = NULL
    if kind in (K_STD, K_LSE, K_MAX, K_MIN):
        node.aux = fwd_scratch(total_size(&d))
    return add_node(node, (ex,), d)


cdef list all_dims(object x, str op):
    cdef Expression ex = as_expr(x, op)
    return list(range(ex.d.nd))


def sum_dim(x, d, b=False, n=0):
    """The sum over the dimensions d (an int or a list), and over the batch if b.
    (n is accepted for DyNet's signature; a sum has nothing to rescale.)"""
    return dim_reduce(x, d, b, K_SUM, "sum_dim")


def sum_cols(x):
    """The sum of the columns of a matrix: a column vector."""
    return dim_reduce(x, [1], False, K_SUM, "sum_cols")


def mean_elems(x):
    """The mean of all values of each batch element."""
    return dim_reduce(x, all_dims(x, "mean_elems"), False, K_MOMENT, "mean_elems")


def mean_dim(x, d, b=False, n=0):
    """The mean over the dimensions d (and the batch if b); n > 0 replaces the count (masking)."""
    return dim_reduce(x, d, b, K_MOMENT, "mean_dim", 1, n)


def mean_batches(x):
    """The mean over the batch."""
    return dim_reduce(x, [], True, K_MOMENT, "mean_batches")


def std_elems(x):
    """sqrt(1/n sum_i (x_i - mean)^2) over all values of each batch element."""
    return dim_reduce(x, all_dims(x, "std_elems"), False, K_STD, "std_elems")


def std_dim(x, d, b=False, n=0):
    """The standard deviation (1/n normalisation) over the dimensions d (and the batch if b).
    n > 0 replaces the count as in mean_dim: sqrt(sum x^2 / n - (sum x / n)^2), so padding zeros
    drop out (the reference ignores n here)."""
    return dim_reduce(x, d, b, K_STD, "std_dim", 1, n)


def std_batches(x):
    """The standard deviation over the batch."""
    return dim_reduce(x, [], True, K_STD, "std_batches")


cdef int moment_order(object r, str op) except -1:
    cdef long k = to_index(r, op)
    if k < 1:
        raise ValueError(f"{op}: the moment order r must be >= 1, got {k}")
    return k


def moment_elems(x, r):
    """1/n sum_i x_i^r over all values of each batch element."""
    return dim_reduce(x, all_dims(x, "moment_elems"), False, K_MOMENT, "moment_elems",
                      moment_order(r, "moment_elems"))


def moment_dim(x, d, r, b=False, n=0):
    """1/n sum_i x_i^r over the dimensions d (and the batch if b); n > 0 replaces the count."""
    return dim_reduce(x, d, b, K_MOMENT, "moment_dim", moment_order(r, "moment_dim"), n)


def moment_batches(x, r):
    """1/n sum_i x_i^r over the batch."""
    return dim_reduce(x, [], True, K_MOMENT, "moment_batches", moment_order(r, "moment_batches"))


cdef object one_dim(object x, object d, str op):
    """Check that d names an existing dimension of x (for the single-dimension reductions)."""
    cdef Expression ex = as_expr(x, op)
    cdef long k = to_index(d, op)
    if k < 0 or k >= max(ex.d.nd, 1):
        raise ValueError(f"{op}: dimension {k} is out of range for {dim_str(&ex.d)}")
    return [k]


def logsumexp_dim(x, d=0):
    """log(sum_i exp(x_i)) along the dimension d."""
    return dim_reduce(x, one_dim(x, d, "logsumexp_dim"), False, K_LSE, "logsumexp_dim")


def max_dim(x, d=0):
    """The largest value along the dimension d."""
    return dim_reduce(x, one_dim(x, d, "max_dim"), False, K_MAX, "max_dim")


def min_dim(x, d=0):
    """The smallest value along the dimension d."""
    return dim_reduce(x, one_dim(x, d, "min_dim"), False, K_MIN, "min_dim")


# ---- elementwise reductions of a list of expressions ------------------------------------------

cdef enum NaryKind:
    N_AVERAGE, N_MAX, N_LSE, N_SUM


@cython.final
@cython.no_gc
cdef class NaryReduce(Expression):
    """esum / average / emax / logsumexp of a list, elementwise; batch-1 arguments are broadcast."""
    cdef int kind
    cdef float* aux         # N_MAX: index of the winning argument; N_LSE: sums of exponentials

    cpdef str op_name(self):
        return ("average", "emax", "logsumexp", "esum")[self.kind]

    cdef int forward_impl(self) except -1:
        cdef Py_ssize_t per = batch_size(&self.d), M = total_size(&self.d), b, i
        cdef Expression x
        cdef int j, k = len(self.args)
        cdef const float* xv
        cdef float* y = self.val
        cdef int* arg = <int*>self.aux
        cdef bint additive = self.kind == N_AVERAGE or self.kind == N_SUM
        if additive:
            fill(M, 0.0, y)
        else:
            fill(M, -INFINITY, y)
        for j in range(k):
            x = <Expression>self.args[j]
            for b in range(self.d.bd):
                xv = x.val + (b * per if x.d.bd > 1 else 0)
                if additive:
                    add_to(per, xv, y + b * per)
                else:
                    for i in range(per):
                        if xv[i] > y[b * per + i]:
                            y[b * per + i] = xv[i]
                            if self.kind == N_MAX:
                                arg[b * per + i] = j
        if self.kind == N_AVERAGE:
            for i in range(M):
                y[i] /= k
        elif self.kind == N_LSE:
            fill(M, 0.0, self.aux)
            for j in range(k):
                x = <Expression>self.args[j]
                for b in range(self.d.bd):
                    xv = x.val + (b * per if x.d.bd > 1 else 0)
                    for i in range(per):
                        self.aux[b * per + i] += fast_exp(xv[i] - y[b * per + i])
            for i in range(M):
                y[i] += logf(self.aux[i])
        return 0

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
        cdef Py_ssize_t inner = self.inner, n = self.length, o, i, j, t, m
        cdef Py_ssize_t nout = n // self.k if self.kind == 1 else (n - self.k + 1 if self.kind == 2 else n)
        cdef float run
        for o in range(self.outer):
            if self.kind == 0:            # cumsum (backward: from the end)
                for i in range(inner):
                    run = 0
                    for t in range(n):
                        j = n - 1 - t if backward else t
                        if backward:
                            run += self.grad[o * n * inner + j * inner + i]
                            x.grad[o * n * inner + j * inner + i] += run
                        else:
                            run += x.val[o * n * inner + j * inner + i]
                            self.val[o * n * inner + j * inner + i] = run
                continue
            if inner == 1:                # runs of single values (fold_rows): no inner loop
                for j in range(nout):
                    for m in range(self.k):
                        t = j * self.k + m if self.kind == 1 else j + m
                        if backward:
                            x.grad[o * n + t] += self.grad[o * nout + j]
                        elif m == 0:
                            self.val[o * nout + j] = x.val[o * n + t]
                        else:
                            self.val[o * nout + j] += x.val[o * n + t]
                continue
            for j in range(nout):         # output run j sums input runs j*k.. (fold) or j.. (ngram)
                if not backward:
                    fill(inner, 0.0, self.val + (o * nout + j) * inner)
                for m in range(self.k):
                    t = j * self.k + m if self.kind == 1 else j + m
                    if backward:
                        add_to(inner, self.grad + (o * nout + j) * inner, x.grad + (o * n + t) * inner)
                    else:
                        add_to(inner, x.val + (o * n + t) * inner, self.val + (o * nout + j) * inner)
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
