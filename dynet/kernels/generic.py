"""The generic kernels: each primitive written once on an array module `xp` (NumPy or CuPy).

These are what the nodes' `generic_forward` / `generic_backward` are made of (see the contract in
dynet/core/graph.pyx). Every array a node receives is a float32 view of graph memory shaped
(dims..., batch), column-major; results are written into `out` and gradients are *added* into
`dxi`, in place. Only functions that NumPy and CuPy both have are called on the arrays; the few
that differ (scatter-add, special functions, the random source) go through a helper here.

DyNet broadcasting: padding a value to 8 axes (7 dimensions, then the batch) lines up every
argument of an operation, so a dimension or batch of size 1 broadcasts as in NumPy, and the
gradient of a broadcast argument sums over the broadcast axes (`acc`).
"""
import math

import numpy as np

from dynet.kernels import gpu     # fused CuPy kernels for the hot primitives; each declines on NumPy

# ---- layout --------------------------------------------------------------------------------


def axes8(a):
    """A view of a (dims..., batch) array with 7 dimension axes, then the batch."""
    return a.reshape(a.shape[:-1] + (1,) * (8 - a.ndim) + a.shape[-1:])


def flat(a):
    """A (values per batch element, batch) view."""
    return a.reshape((-1, a.shape[-1]), order="F")


def as_matrix(a):
    """A (rows, columns, batch) view of a vector or matrix value."""
    return a.reshape((a.shape[0] if a.ndim > 1 else 1, -1, a.shape[-1]), order="F")


def ravel(a):
    """All values in memory (column-major) order: a view of graph memory."""
    return a.reshape(-1, order="F")


def sum_to(g, shape):
    """g summed over the axes where `shape` has size 1 and g does not (a broadcast's gradient)."""
    axes = tuple(k for k, (n, m) in enumerate(zip(g.shape, shape)) if m == 1 and n != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def acc(dxi, g):
    """dxi += g, where g is laid out like dxi or like a broadcast of it (any dimension or the
    batch of size 1 in dxi): the gradient of a broadcast argument sums over the broadcast axes."""
    d8 = axes8(dxi)
    d8 += sum_to(axes8(g), d8.shape)


def batch_index(xp, nb, bd):
    """Batch element of an argument with `nb` batch elements used for each of `bd` outputs."""
    return xp.arange(bd) if nb > 1 else xp.zeros(bd, dtype=xp.int64)


def scatter_add(xp, target, index, values):
    """target[index] += values, adding every value where an index repeats (np.add.at)."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


def stable_argsort(xp, a, axis):
    """Indices sorting `a` along `axis`, equal values in their original order (CuPy's sort is
    always stable and some versions take no `kind`)."""
    if xp is np:
        return np.argsort(a, axis=axis, kind="stable")
    return xp.argsort(a, axis=axis)


def random_source(xp):
    """What random values are drawn from: the library's seeded NumPy generator on the CPU (so
    --dynet-seed reproduces a run), cupy.random on the GPU. Both have random/normal/uniform/gumbel."""
    if xp is np:
        from dynet.core import config
        return config.rng()
    return xp.random


def host_special(xp, name):
    """erf or lgamma elementwise (not in NumPy itself): the C library's on the host, cupyx's on
    the GPU."""
    if xp is np:
        fn = np.frompyfunc(getattr(math, name), 1, 1)
        return lambda x: fn(x).astype(x.dtype)
    from cupyx.scipy import special
    return getattr(special, {"erf": "erf", "lgamma": "gammaln"}[name])


def digamma(xp, x):
    """psi(x) (the derivative of lgamma), in float64: psi(x) = psi(x+1) - 1/x shifts x to 6 or
    more (at most 6 steps), then the asymptotic series; below 0 the reflection
    psi(x) = psi(1 - x) - pi / tan(pi x) first. NaN at the poles 0, -1, -2, ..."""
    x = x.astype(xp.float64)
    y = xp.where(x < 0, 1 - x, x)
    r = xp.zeros_like(y)
    for _ in range(6):
        low = y < 6
        r -= xp.where(low, 1 / xp.where(low & (y != 0), y, 1), 0)
        y = xp.where(low, y + 1, y)
    f = 1 / (y * y)
    psi = (r + xp.log(y) - 0.5 / y
           - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132)))))
    psi = xp.where(x < 0, psi - math.pi / xp.tan(math.pi * x), psi)
    return xp.where((x <= 0) & (x == xp.floor(x)), xp.nan, psi)


def sigmoid(xp, x):
    """1 / (1 + e^-x) without overflow for large |x|."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


# ---- elementwise maps: one row per op (value, derivative), named as elementwise.pyx names them --

SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772


def _round_half_away(xp, x):
    t = xp.trunc(x)
    return t + xp.sign(x) * (xp.abs(x - t) >= 0.5)


# value(xp, x, a, b) and derivative(xp, x, y, a, b) = dy/dx from the input x and the output y
# (a derivative may be a scalar or a boolean array: it multiplies the incoming gradient)
UNARY = {
    "tanh": (lambda xp, x, a, b: xp.tanh(x), lambda xp, x, y, a, b: 1 - y * y),
    "logistic": (lambda xp, x, a, b: sigmoid(xp, x), lambda xp, x, y, a, b: y * (1 - y)),
    "rectify": (lambda xp, x, a, b: xp.maximum(x, 0), lambda xp, x, y, a, b: x > 0),
    "exp": (lambda xp, x, a, b: xp.exp(x), lambda xp, x, y, a, b: y),
    "log": (lambda xp, x, a, b: xp.log(x), lambda xp, x, y, a, b: 1 / x),
    "square": (lambda xp, x, a, b: x * x, lambda xp, x, y, a, b: 2 * x),
    "sqrt": (lambda xp, x, a, b: xp.sqrt(x), lambda xp, x, y, a, b: 0.5 / y),
    "cube": (lambda xp, x, a, b: x * x * x, lambda xp, x, y, a, b: 3 * x * x),
    "abs": (lambda xp, x, a, b: xp.abs(x), lambda xp, x, y, a, b: xp.sign(x)),
    "sin": (lambda xp, x, a, b: xp.sin(x), lambda xp, x, y, a, b: xp.cos(x)),
    "cos": (lambda xp, x, a, b: xp.cos(x), lambda xp, x, y, a, b: -xp.sin(x)),
    "tan": (lambda xp, x, a, b: xp.tan(x), lambda xp, x, y, a, b: 1 + y * y),
    "asin": (lambda xp, x, a, b: xp.arcsin(x), lambda xp, x, y, a, b: 1 / xp.sqrt(1 - x * x)),
    "acos": (lambda xp, x, a, b: xp.arccos(x), lambda xp, x, y, a, b: -1 / xp.sqrt(1 - x * x)),
    "atan": (lambda xp, x, a, b: xp.arctan(x), lambda xp, x, y, a, b: 1 / (1 + x * x)),
    "sinh": (lambda xp, x, a, b: xp.sinh(x), lambda xp, x, y, a, b: xp.cosh(x)),
    "cosh": (lambda xp, x, a, b: xp.cosh(x), lambda xp, x, y, a, b: xp.sinh(x)),
    "asinh": (lambda xp, x, a, b: xp.arcsinh(x), lambda xp, x, y, a, b: 1 / xp.sqrt(x * x + 1)),
    "acosh": (lambda xp, x, a, b: xp.arccosh(x), lambda xp, x, y, a, b: 1 / xp.sqrt(x * x - 1)),
    "atanh": (lambda xp, x, a, b: xp.arctanh(x), lambda xp, x, y, a, b: 1 / (1 - x * x)),
    "erf": (lambda xp, x, a, b: host_special(xp, "erf")(x),
            lambda xp, x, y, a, b: (2 / math.sqrt(math.pi)) * xp.exp(-x * x)),
    "lgamma": (lambda xp, x, a, b: host_special(xp, "lgamma")(x),
               lambda xp, x, y, a, b: digamma(xp, x).astype(x.dtype)),
    # log(sigmoid(x)) = min(x, 0) - log(1 + e^-|x|): no overflow on either side
    "log_sigmoid": (lambda xp, x, a, b: xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x))),
                    lambda xp, x, y, a, b: 1 - xp.exp(y)),
    "elu": (lambda xp, x, a, b: xp.where(x > 0, x, a * (xp.exp(xp.minimum(x, 0)) - 1)),
            lambda xp, x, y, a, b: xp.where(x > 0, 1, y + a)),
    "selu": (lambda xp, x, a, b: SELU_LAMBDA * xp.where(x > 0, x, SELU_ALPHA * (xp.exp(xp.minimum(x, 0)) - 1)),
             lambda xp, x, y, a, b: xp.where(x > 0, SELU_LAMBDA, y + SELU_LAMBDA * SELU_ALPHA)),
    "silu": (lambda xp, x, a, b: x * sigmoid(xp, a * x),
             lambda xp, x, y, a, b: _silu_derivative(xp, x, a)),
    "softsign": (lambda xp, x, a, b: x / (1 + xp.abs(x)),
                 lambda xp, x, y, a, b: 1 / ((1 + xp.abs(x)) * (1 + xp.abs(x)))),
    # a: 0 (zero gradient) or 1 (straight-through)
    "round": (lambda xp, x, a, b: _round_half_away(xp, x), lambda xp, x, y, a, b: a),
    "ceil": (lambda xp, x, a, b: xp.ceil(x), lambda xp, x, y, a, b: a),
    "floor": (lambda xp, x, a, b: xp.floor(x), lambda xp, x, y, a, b: a),
    "affine": (lambda xp, x, a, b: a * x + b, lambda xp, x, y, a, b: a),
    "scalar_div": (lambda xp, x, a, b: a / x, lambda xp, x, y, a, b: -y / x),
    "pow": (lambda xp, x, a, b: xp.power(x, a), lambda xp, x, y, a, b: a * xp.power(x, a - 1)),
    "identity": (lambda xp, x, a, b: x, lambda xp, x, y, a, b: 1.0),
}


def _silu_derivative(xp, x, a):
    s = sigmoid(xp, a * x)
    return s + a * x * s * (1 - s)


def unary_forward(xp, name, x, out, a, b):
    if not gpu.unary(name, xp, x, out):
        out[...] = UNARY[name][0](xp, x, a, b)


def unary_backward(xp, name, x, y, dy, dx, a, b):
    if not gpu.unary_backward(name, xp, x, y, dy, dx):
        dx += dy * UNARY[name][1](xp, x, y, a, b)


# binary maps: value(xp, a, b), d/da(xp, a, b, y), d/db(xp, a, b, y); a derivative may be a
# scalar or any array that broadcasts to the output
BINARY = {
    "+": (lambda xp, a, b: a + b, lambda xp, a, b, y: 1.0, lambda xp, a, b, y: 1.0),
    "-": (lambda xp, a, b: a - b, lambda xp, a, b, y: 1.0, lambda xp, a, b, y: -1.0),
    "cmult": (lambda xp, a, b: a * b, lambda xp, a, b, y: b, lambda xp, a, b, y: a),
    "cdiv": (lambda xp, a, b: a / b, lambda xp, a, b, y: 1 / b, lambda xp, a, b, y: -y / b),
    "bmin": (lambda xp, a, b: xp.fmin(a, b), lambda xp, a, b, y: a <= b, lambda xp, a, b, y: a > b),
    "bmax": (lambda xp, a, b: xp.fmax(a, b), lambda xp, a, b, y: a >= b, lambda xp, a, b, y: a < b),
    "pow": (lambda xp, a, b: xp.power(a, b), lambda xp, a, b, y: b * xp.power(a, b - 1),
            lambda xp, a, b, y: y * xp.log(a)),
}


def binary_forward(xp, name, a, b, out):
    """out = a (op) b with DyNet broadcasting (each dimension and the batch match or are 1)."""
    axes8(out)[...] = BINARY[name][0](xp, axes8(a), axes8(b))


def binary_backward(xp, name, xs, out, dout, i, dxi):
    a, b, y = axes8(xs[0]), axes8(xs[1]), axes8(out)
    acc(dxi, axes8(dout) * BINARY[name][1 + i](xp, a, b, y))


# ---- matrix products -----------------------------------------------------------------------


def _columns(m):
    """A (rows, columns * batch) view of a (rows, columns, batch) matrix: the whole batch as one."""
    return m.reshape((m.shape[0], -1), order="F")


def bmm(xp, a, b):
    """Batched product of (r, k, ba) and (k, c, bb) matrices (a batch of 1 broadcast): (r, c, bd)."""
    if a.shape[-1] == 1:                       # one GEMM over every batch column of b
        return (a[:, :, 0] @ _columns(b)).reshape((a.shape[0], b.shape[1], b.shape[-1]), order="F")
    r = xp.matmul(xp.moveaxis(a, -1, 0), xp.moveaxis(b, -1, 0))
    return xp.moveaxis(r, 0, -1)


def _t(m):
    """Transpose of each matrix of a (r, c, batch) array."""
    return m.transpose(1, 0, 2)


def matmul_forward(xp, a, b, out, accumulate=False):
    """out (=, or += with accumulate) a * b, a batch-1 side used for every batch element."""
    c = as_matrix(out)
    p = bmm(xp, as_matrix(a), as_matrix(b))
    if accumulate:
        c += p
    else:
        c[...] = p


def matmul_backward(xp, a, b, dout, i, dxi):
    """i = 0: d(a) += dC b^T; i = 1: d(b) += a^T dC; summed over the batch into a batch-1 side."""
    A, B, dC, dX = as_matrix(a), as_matrix(b), as_matrix(dout), as_matrix(dxi)
    if i == 0:
        if dX.shape[-1] == 1 and B.shape[-1] == dC.shape[-1]:
            dX[:, :, 0] += _columns(dC) @ _columns(B).T        # the GEMM sums the batch
        else:
            acc(dX, bmm(xp, dC, _t(B)))
    elif dX.shape[-1] == 1 and A.shape[-1] == 1 and dC.shape[-1] > 1:
        dX[:, :, 0] += A[:, :, 0].T @ dC.sum(axis=-1)          # sum_b A^T dC_b = A^T sum_b dC_b
    else:
        acc(dX, bmm(xp, _t(A), dC))


# ---- softmaxes -----------------------------------------------------------------------------


def log_sum_exp(xp, x, axis=0, keep=None):
    """log(sum(exp(x))) along `axis` (keepdims), over the rows where `keep` is true if given."""
    if keep is not None:
        x = xp.where(keep, x, -xp.inf)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    return m + xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True))


def softmax_forward(xp, x, out, log, keep=None):
    """softmax (or log_softmax) of each column, over the rows where keep (a (rows, 1) bool
    column) is true: excluded rows are 0 (softmax) or -inf (log_softmax)."""
    x = x.reshape((x.shape[0], -1), order="F")
    y = out.reshape(x.shape, order="F")
    if keep is None and gpu.softmax_columns(xp, x, y, log):
        return
    lz = log_sum_exp(xp, x, 0, keep)
    if log:
        r = x - lz
        y[...] = r if keep is None else xp.where(keep, r, -xp.inf)
    else:
        r = xp.exp(x - lz)
        y[...] = r if keep is None else xp.where(keep, r, 0)


def softmax_backward(xp, out, dout, dxi, log, keep=None):
    y = out.reshape((out.shape[0], -1), order="F")
    g = dout.reshape(y.shape, order="F")
    dx = dxi.reshape(y.shape, order="F")
    if log:
        gk = g if keep is None else xp.where(keep, g, 0)
        p = xp.exp(y) if keep is None else xp.where(keep, xp.exp(xp.where(keep, y, 0)), 0)
        dx += gk - p * gk.sum(axis=0, keepdims=True)
    else:
        dx += y * (g - (g * y).sum(axis=0, keepdims=True))


def _columns_log_sum_exp(xp, X):
    lz = gpu.logsumexp_columns(xp, X)
    return lz if lz is not None else log_sum_exp(xp, X, 0)


def pick_neg_log_softmax_forward(xp, x, index, out):
    """-log softmax(x_b)[index[b]] for each output batch element (x of batch 1 broadcast)."""
    X = flat(x)
    bsel = batch_index(xp, X.shape[1], index.shape[0])
    lz = _columns_log_sum_exp(xp, X)[0]
    flat(out)[0] = lz[bsel] - X[index, bsel]


def pick_neg_log_softmax_backward(xp, x, index, dout, dxi):
    X = flat(x)
    bd = index.shape[0]
    g = flat(dout)[0]
    bsel = batch_index(xp, X.shape[1], bd)
    p = xp.exp(X - _columns_log_sum_exp(xp, X))[:, bsel] * g      # (rows, bd)
    p[index, xp.arange(bd)] -= g
    dx = flat(dxi)
    dx += p if dx.shape[1] == bd else p.sum(axis=1, keepdims=True)


# ---- selections: one pure indexing function per op, its backward derived from it ---------------


def select_forward(select, xp, xs, out):
    """out = select(xp, xs, shape): the op's value as an indexing of its arguments."""
    out[...] = select(xp, xs, out.shape)


def select_backward(select, cache, xp, xs, out, dout, i, dxi):
    """The gradient of a pure selection: run `select` on the positions of argument i (and -1 for
    the other arguments) to learn where each output value came from, then add the output gradient
    there (scatter-add where positions repeat). The map depends only on the shapes, so it is
    computed once per node and kept in `cache` (the node's aux dict)."""
    entry = cache.get(i)
    if entry is None:
        ids = [xp.full(x.shape, -1, dtype=xp.int64) for x in xs]
        ids[i] = xp.arange(xs[i].size, dtype=xp.int64).reshape(xs[i].shape, order="F")
        where = ravel(select(xp, ids, out.shape))
        from_i = where >= 0
        src = where[from_i]
        entry = (from_i, src, int(xp.unique(src).size) == int(src.size))
        cache[i] = entry
    from_i, src, distinct = entry
    g = ravel(dout)[from_i]
    dx = ravel(dxi)
    if distinct:
        dx[src] += g
    else:
        scatter_add(xp, dx, src, g)


def pick(xp, x, axis, index, shape):
    """Element index[b] along `axis` of each batch element b (an argument of batch 1 is used for
    every b); the axis is removed."""
    m = xp.moveaxis(axes8(x), axis, 0)
    r = m[index, ..., batch_index(xp, x.shape[-1], index.shape[0])]       # (batch, other axes)
    return xp.moveaxis(r, 0, -1).reshape(shape, order="F")


def pick_range(xp, x, axis, start, stop, shape):
    sl = [slice(None)] * 8
    sl[axis] = slice(start, stop)
    return axes8(x)[tuple(sl)].reshape(shape, order="F")


def gather(xp, x, axis, index, shape):
    """Entries index[0..m-1] (repeats allowed) along `axis`."""
    return xp.take(axes8(x), index, axis=axis).reshape(shape, order="F")


def transpose(xp, x, perm, shape):
    """Output axis k is input axis perm[k], for each batch element."""
    order = tuple(perm) + tuple(range(len(perm), 7)) + (7,)
    return axes8(x).transpose(order).reshape(shape, order="F")


def concatenate(xp, xs, axis, shape):
    """Along `axis`, a batch-1 argument broadcast over the batch."""
    bd = shape[-1]
    parts = []
    for x in xs:
        x8 = axes8(x)
        parts.append(xp.broadcast_to(x8, x8.shape[:-1] + (bd,)))
    return xp.concatenate(parts, axis=axis).reshape(shape, order="F")


def strided(xp, x, start, step, extent, shape):
    """Values at start + sum_k idx_k * step[k] (flat offsets, 7 axes then the batch)."""
    off = xp.full((1,) * 8, start, dtype=xp.int64)
    for k in range(8):
        if extent[k] > 1:
            s = [1] * 8
            s[k] = extent[k]
            off = off + xp.arange(extent[k], dtype=xp.int64).reshape(s) * step[k]
    off = xp.broadcast_to(off, tuple(extent))
    return ravel(x)[ravel(off)].reshape(shape, order="F")


# ---- reductions ----------------------------------------------------------------------------


def reduce_forward(xp, kind, x, out):
    """sum_elems / squared_norm / l2_norm of each batch element, or sum_batches."""
    if kind == "sum_batches":
        out[...] = x.sum(axis=-1, keepdims=True)
        return
    X = flat(x)
    s = X.sum(axis=0) if kind == "sum_elems" else (X * X).sum(axis=0)
    flat(out)[0] = xp.sqrt(s) if kind == "l2_norm" else s


def reduce_backward(xp, kind, x, out, dout, dxi):
    if kind == "sum_batches":
        dxi += dout
        return
    g = flat(dout)[0]
    dx = flat(dxi)
    if kind == "sum_elems":
        dx += g
    elif kind == "squared_norm":
        dx += 2 * g * flat(x)
    else:                                                 # d||x|| = x / ||x||, 0 at 0
        n = flat(out)[0]
        dx += xp.where(n > 0, g / xp.where(n > 0, n, 1), 0) * flat(x)


def dim_reduce_forward(xp, kind, x, axes, out, r=1, scale=1.0, n_eff=1.0):
    """A reduction of x over `axes` (of its (dims..., batch) layout): kind 'sum'/'moment'
    (scale * sum x^r), 'std' (masked by n_eff as the typed node), 'lse', 'max', 'min'."""
    if kind in ("sum", "moment"):
        y = (x if r == 1 else x ** r).sum(axis=axes, keepdims=True) * scale
    elif kind == "std":
        mu = x.sum(axis=axes, keepdims=True) / n_eff
        cnt = x.size // out.size
        v = (((x - mu) ** 2).sum(axis=axes, keepdims=True) - (cnt - n_eff) * mu * mu) / n_eff
        y = xp.sqrt(xp.maximum(v, 0))
    elif kind == "lse":
        y = log_sum_exp(xp, x, axes)
    elif kind == "max":
        y = x.max(axis=axes, keepdims=True)
    else:
        y = x.min(axis=axes, keepdims=True)
    out[...] = y.reshape(out.shape, order="F")


def dim_reduce_backward(xp, kind, x, axes, out, dout, dxi, r=1, scale=1.0, n_eff=1.0):
    kshape = tuple(1 if k in axes else n for k, n in enumerate(x.shape))
    g = dout.reshape(kshape, order="F")
    y = out.reshape(kshape, order="F")
    if kind in ("sum", "moment"):
        dxi += g * scale * (1 if r == 1 else r * x ** (r - 1))
    elif kind == "std":
        mu = x.sum(axis=axes, keepdims=True) / n_eff
        dxi += xp.where(y > 0, g * (x - mu) / (n_eff * xp.where(y > 0, y, 1)), 0)
    elif kind == "lse":
        dxi += g * xp.exp(x - y)
    else:
        # max_dim / min_dim reduce one axis; the first extreme value gets the gradient
        axis = axes[0]
        best = (xp.argmax if kind == "max" else xp.argmin)(x, axis=axis)
        pos = xp.arange(x.shape[axis]).reshape(tuple(-1 if k == axis else 1 for k in range(x.ndim)))
        dxi += (pos == xp.expand_dims(best, axis)) * g


def nary_forward(xp, kind, xs, out):
    """esum / average / emax / logsumexp of arguments of the same shape (batch 1 broadcast)."""
    if kind in ("esum", "average"):
        out[...] = 0
        for x in xs:
            out += x
        if kind == "average":
            out /= len(xs)
        return
    s = xp.stack([xp.broadcast_to(x, out.shape) for x in xs])
    out[...] = s.max(axis=0) if kind == "emax" else log_sum_exp(xp, s, 0)[0]


def nary_backward(xp, kind, xs, out, dout, i, dxi):
    if kind == "esum":
        acc(dxi, dout)
    elif kind == "average":
        acc(dxi, dout / len(xs))
    elif kind == "emax":                       # the first argument holding the maximum
        s = xp.stack([xp.broadcast_to(x, out.shape) for x in xs])
        acc(dxi, dout * (xp.argmax(s, axis=0) == i))
    else:
        acc(dxi, dout * xp.exp(xs[i] - out))


# ---- norms and distances: sum_i f(x_i, y_i) per batch element --------------------------------


def _huber(xp, t, c):
    a = xp.abs(t)
    return xp.where(a <= c, 0.5 * t * t, c * a - 0.5 * c * c)


def _huber_dx(xp, t, c):
    return xp.where(xp.abs(t) <= c, t, c * xp.sign(t))


# term(xp, x, y, c) and its derivative in x; the distances' derivative in y is the negation
PAIR = {
    "dot_product": (lambda xp, x, y, c: x * y, lambda xp, x, y, c: y),
    "squared_distance": (lambda xp, x, y, c: (x - y) ** 2, lambda xp, x, y, c: 2 * (x - y)),
    "l1_distance": (lambda xp, x, y, c: xp.abs(x - y), lambda xp, x, y, c: xp.sign(x - y)),
    "huber_distance": (lambda xp, x, y, c: _huber(xp, x - y, c), lambda xp, x, y, c: _huber_dx(xp, x - y, c)),
}
PAIR["trace_of_product"] = PAIR["dot_product"]         # Tr(x^T y) is the dot product
PRODUCTS = ("dot_product", "trace_of_product")


def pair_forward(xp, kind, xs, out, c):
    x, y = flat(xs[0]), flat(xs[1])
    flat(out)[0] = PAIR[kind][0](xp, x, y, c).sum(axis=0)


def pair_backward(xp, kind, xs, dout, i, dxi, c):
    x, y = flat(xs[0]), flat(xs[1])
    g = flat(dout)
    if i == 1 and kind in PRODUCTS:
        d = g * x
    else:
        d = g * PAIR[kind][1](xp, x, y, c)
        if i == 1:
            d = -d
    acc(flat(dxi), d)


def layer_norm_forward(xp, x, g, b, out, eps):
    """g * (x - mean) / (std + eps) + b over all values of each batch element."""
    X, G, B, Y = flat(x), flat(g), flat(b), flat(out)
    mu = X.mean(axis=0, keepdims=True)
    sigma = xp.sqrt(((X - mu) ** 2).mean(axis=0, keepdims=True))
    Y[...] = G * (X - mu) / (sigma + eps) + B


def layer_norm_backward(xp, xs, dout, i, dxi, eps):
    X, G, dY = flat(xs[0]), flat(xs[1]), flat(dout)
    n = X.shape[0]
    mu = X.mean(axis=0, keepdims=True)
    c = X - mu
    sigma = xp.sqrt((c * c).mean(axis=0, keepdims=True))
    s = sigma + eps
    if i == 2:
        d = dY
    elif i == 1:
        d = dY * c / s
    else:
        # h = g * dy; dx = (h - mean h) / s - (sum_i h_i c_i) c / (n sigma s^2)
        h = G * dY
        hc = (h * c).sum(axis=0, keepdims=True)
        hc = xp.where(sigma > 0, hc / (n * xp.where(sigma > 0, sigma, 1) * s * s), 0)
        d = (h - h.mean(axis=0, keepdims=True)) / s - hc * c
    acc(flat(dxi), d)


# ---- dropout and noise ---------------------------------------------------------------------


def dropout_mask(xp, n, p):
    """n draws of the inverted-dropout mask: 0 with probability p, 1/(1-p) otherwise (drawn as
    the typed node draws them, so a seed gives the same mask on both paths)."""
    r = random_source(xp)
    keep = xp.asarray(r.random(n)) >= p
    return keep.astype(xp.float32) * (1.0 / (1.0 - p) if p < 1 else 0.0)


def gaussian_noise(xp, n, stddev):
    """n draws of N(0, stddev^2) in float32, drawn as the typed node draws them (Box-Muller from
    2 ceil(n/2) uniforms, kernels/rand.pyx draw_normal), so a seed gives the same noise on both
    paths (to float32 rounding)."""
    h = (n + 1) // 2
    u = xp.asarray(random_source(xp).random(2 * h))
    r = xp.float32(stddev) * xp.sqrt(xp.float32(-2) * xp.log((1.0 - u[:h]).astype(xp.float32)))
    a = (2 * np.pi * (u[h:] - (u[h:] >= 0.5))).astype(xp.float32)
    return xp.concatenate([r * xp.cos(a), (r * xp.sin(a))[:n - h]])


def masked(x, mask, pre, rep):
    """x * mask, one mask entry shared by `rep` consecutive blocks of `pre` values: x viewed as
    (pre, rep, rest), the mask as (pre, 1, rest)."""
    v = x.reshape((pre, rep, -1), order="F")
    return (v * mask.reshape((pre, 1, -1), order="F")).reshape(x.shape, order="F")


# ---- convolution and pooling (im2col as an index map, then one batched GEMM) -------------------


def _window_index(g):
    """The flat input index (within one batch element) that tap (i, j) of the window of output
    pixel (oh, ow) reads in channel c, or XH*XW*C (one past the input: a padding value) outside
    the input. g: the geometry (XH, XW, C, FH, FW, YH, YW, sh, sw, pt, pl). Host array over the
    axes (oh, ow, c, i, j)."""
    oh, ow, c, i, j = np.ix_(range(g["YH"]), range(g["YW"]), range(g["C"]), range(g["FH"]), range(g["FW"]))
    h = oh * g["sh"] + i - g["pt"]
    w = ow * g["sw"] + j - g["pl"]
    inside = (h >= 0) & (h < g["XH"]) & (w >= 0) & (w < g["XW"])
    idx = np.where(inside, h + g["XH"] * (w + g["XW"] * c), g["XH"] * g["XW"] * g["C"])
    return np.broadcast_to(idx, (g["YH"], g["YW"], g["C"], g["FH"], g["FW"]))


def conv_index(geom):
    """im2col as an index map (P, K): row p = oh + YH*ow (an output pixel), column
    k = i + FH*(j + FW*c) (a filter tap, the flat order of the filter's first three axes)."""
    idx = _window_index(geom).transpose(0, 1, 3, 4, 2)                  # (oh, ow, i, j, c)
    P, K = geom["YH"] * geom["YW"], geom["FH"] * geom["FW"] * geom["C"]
    return idx.reshape((P, K), order="F")


def _padded(xp, x):
    """(values + 1, batch): one batch element per column, a zero appended to each."""
    X = flat(x)
    return xp.concatenate([X, xp.zeros((1, X.shape[1]), dtype=X.dtype)], axis=0)


def im2col(xp, x, index):
    """Col (P, K, batch) of the input x."""
    return _padded(xp, x)[index]


def conv_forward(xp, x, f, bias, index, out):
    col = im2col(xp, x, index)                                # (P, K, bd)
    F = f.reshape((index.shape[1], -1), order="F")           # (K, CO)
    y = xp.matmul(xp.moveaxis(col, -1, 0), F)                # (bd, P, CO)
    Y = out.reshape((index.shape[0], F.shape[1], out.shape[-1]), order="F")
    Y[...] = xp.moveaxis(y, 0, -1)
    if bias is not None:
        Y += bias.reshape((1, -1, 1))


def conv_backward(xp, xs, index, dout, i, dxi):
    x, f = xs[0], xs[1]
    P, K = index.shape
    F = f.reshape((K, -1), order="F")
    dY = dout.reshape((P, F.shape[1], dout.shape[-1]), order="F")
    if i == 0:                                   # dCol = dY F^T, scattered back onto the input
        dcol = xp.matmul(xp.moveaxis(dY, -1, 0), F.T)        # (bd, P, K)
        dpad = xp.zeros((x.size // x.shape[-1] + 1, x.shape[-1]), dtype=x.dtype)
        bsel = xp.arange(x.shape[-1]).reshape(1, 1, -1)
        scatter_add(xp, dpad, (index[:, :, None], bsel), xp.moveaxis(dcol, 0, -1))
        flat(dxi)[...] += dpad[:-1]
    elif i == 1:                                 # dF += Col^T dY, summed over the batch
        col = im2col(xp, x, index)
        dF = xp.matmul(xp.moveaxis(col, -1, 0).transpose(0, 2, 1), xp.moveaxis(dY, -1, 0)).sum(axis=0)
        dxi.reshape(dF.shape + (1,), order="F")[:, :, 0] += dF
    else:
        flat(dxi)[:, 0] += dY.sum(axis=(0, 2))


def pool_index(geom):
    """Max pooling's windows (O, T): row o = oh + YH*(ow + YW*c) (an output value), column
    t = j + FW*i (a window tap, rows outer as the typed loop scans them, so that the first
    maximum is the same one)."""
    idx = _window_index(geom).transpose(0, 1, 2, 4, 3)                  # (oh, ow, c, j, i)
    O, T = geom["YH"] * geom["YW"] * geom["C"], geom["FH"] * geom["FW"]
    return idx.reshape((O, T), order="F")


def maxpool_forward(xp, x, index, out):
    """The first maximum of each window (0 where a window holds no input value); returns the
    flat input index of each output's maximum (or -1), which backward needs."""
    X = flat(x)
    pad = xp.concatenate([X, xp.full((1, X.shape[1]), -xp.inf, dtype=X.dtype)], axis=0)
    vals = pad[index]                                        # (O, T, bd)
    best = xp.argmax(vals, axis=1)                           # (O, bd), first maximum
    m = xp.take_along_axis(vals, best[:, None, :], axis=1)[:, 0, :]
    where = xp.take_along_axis(xp.broadcast_to(index[:, :, None], vals.shape), best[:, None, :], axis=1)[:, 0, :]
    empty = where == X.shape[0]
    flat(out)[...] = xp.where(empty, 0, m)
    return xp.where(empty, -1, where)


def maxpool_backward(xp, where, dout, dxi):
    dx = flat(dxi)
    g = flat(dout)
    ok = where >= 0
    bsel = xp.broadcast_to(xp.arange(dx.shape[1]).reshape(1, -1), where.shape)
    scatter_add(xp, dx, (where[ok], bsel[ok]), g[ok])


def kmax_sources(xp, x, axis, k):
    """Flat positions in x of the k largest values along `axis` of the 8-axis view, kept in
    their original order (among equal values the first ones), shaped like the output."""
    x8 = axes8(x)
    order = stable_argsort(xp, -x8, axis)
    top = xp.sort(xp.take(order, xp.arange(k), axis=axis), axis=axis)
    ids = xp.arange(x.size, dtype=xp.int64).reshape(x8.shape, order="F")
    return xp.take_along_axis(ids, top, axis=axis)


def filter1d_windows(xp, x, fc, oc):
    """(R, FC, OC, batch): window j of the columns of x is x[:, j:j+FC]."""
    X = as_matrix(x)
    return xp.stack([X[:, k:k + oc] for k in range(fc)], axis=1)


def _filters(f):
    """(R, FC, NF, batch) view of a filter bank (R x FC [x NF])."""
    return axes8(f)[:, :, :, 0, 0, 0, 0, :]


def filter1d_forward(xp, x, f, out):
    F = _filters(f)
    Y = as_matrix(out)                                        # (NF, OC, batch)
    bd = Y.shape[-1]
    W = filter1d_windows(xp, x, F.shape[1], Y.shape[1])
    Y[...] = xp.einsum("rkjb,rkfb->fjb", xp.broadcast_to(W, W.shape[:-1] + (bd,)),
                       xp.broadcast_to(F, F.shape[:-1] + (bd,)))


def filter1d_backward(xp, xs, dout, i, dxi):
    x, f = xs
    F = _filters(f)
    G = as_matrix(dout)
    bd = G.shape[-1]
    fc, oc = F.shape[1], G.shape[1]
    if i == 0:
        dW = xp.einsum("fjb,rkfb->rkjb", G, xp.broadcast_to(F, F.shape[:-1] + (bd,)))   # (R, FC, OC, bd)
        full = xp.zeros((F.shape[0], oc + fc - 1, bd), dtype=dW.dtype)
        for k in range(fc):
            full[:, k:k + oc] += dW[:, k]
        acc(as_matrix(dxi), full)
    else:
        W = filter1d_windows(xp, x, fc, oc)
        dF = xp.einsum("rkjb,fjb->rkfb", xp.broadcast_to(W, W.shape[:-1] + (bd,)), G)
        acc(_filters(dxi), dF)


# ---- the fused LSTM cell -------------------------------------------------------------------


def lstm_activate(xp, pre, H):
    """[i; f; o] rows through the sigmoid, the g rows through tanh (in place)."""
    if gpu.lstm_activate(xp, pre, H):
        return
    pre[:3 * H] = sigmoid(xp, pre[:3 * H])
    pre[3 * H:] = xp.tanh(pre[3 * H:])


def lstm_gates_derivative(xp, y, g, H):
    """d loss / d pre-activation from the gates' values y and gradient g."""
    d = g * (1 - y * y)
    d[:3 * H] = g[:3 * H] * y[:3 * H] * (1 - y[:3 * H])
    return d


def _broadcast_batch(xp, m, bd):
    return xp.broadcast_to(m, (m.shape[0], bd))


def lstm_gates_forward(xp, xs, out, nx, has_h, dropout, forget_bias, noise_std):
    """[i; f; o; g] = activations(Wx x + Wh h + b, 1 added to the forget rows) where x is the
    concatenation of xs[:nx] (times the mask with dropout); returns what backward needs."""
    Y = flat(out)
    H4, bd = Y.shape
    H = H4 // 4
    k = nx + has_h
    state = lstm_gates_state(xp, xs, bd, nx, has_h, dropout)
    X, Hm, Wx, Wh, b = state["X"], state["H"], state["Wx"], state["Wh"], flat(xs[k + 2])
    if noise_std > 0:
        # drawn as the typed node draws it: one vector for Wx, Wh and b (column-major each)
        I = Wx.shape[1]
        noise = xp.asarray(random_source(xp).normal(0.0, noise_std, H4 * (I + H + 1)), dtype=Y.dtype)
        Wx = Wx + noise[:H4 * I].reshape((H4, I), order="F")
        Wh = Wh + noise[H4 * I:H4 * (I + H)].reshape((H4, H), order="F")
        b = b + noise[H4 * (I + H):].reshape((H4, 1))
    pre = Wx @ X + b
    pre[H:2 * H] += forget_bias
    if has_h:
        pre += Wh @ Hm
    lstm_activate(xp, pre, H)
    Y[...] = pre
    state["Wx"], state["Wh"] = Wx, Wh
    return state


def lstm_gates_state(xp, xs, bd, nx, has_h, dropout):
    """What the gates' backward reads besides their arguments: the input (x's concatenated, masked)
    and recurrent columns, unmasked too, and the matrices (without weight noise: forward replaces
    them by the noisy ones)."""
    k = nx + has_h
    if nx == 1 and flat(xs[0]).shape[1] == bd:
        raw_x = flat(xs[0])
    else:
        raw_x = xp.concatenate([_broadcast_batch(xp, flat(x), bd) for x in xs[:nx]], axis=0)
    raw_h = _broadcast_batch(xp, flat(xs[nx]), bd) if has_h else None
    X = raw_x * flat(xs[k + 3]) if dropout else raw_x
    Hm = (raw_h * flat(xs[k + 4]) if dropout else raw_h) if has_h else None
    return {"X": X, "H": Hm, "raw_x": raw_x, "raw_h": raw_h, "Wx": xs[k][:, :, 0], "Wh": xs[k + 1][:, :, 0]}


def lstm_gates_backward(xp, xs, state, out, dout, i, dxi, nx, has_h, dropout):
    """The gradient of argument i into dxi; `state` is what forward returned, or None for gates
    without weight noise (it is then read again from the arguments)."""
    Y, G = flat(out), flat(dout)
    H = Y.shape[0] // 4
    k = nx + has_h
    if state is None:
        state = lstm_gates_state(xp, xs, Y.shape[1], nx, has_h, dropout)
    dpre = lstm_gates_derivative(xp, Y, G, H)
    if i == k + 2:                                             # b
        acc(flat(dxi), dpre)
    elif i == k:                                               # Wx
        dxi[:, :, 0] += dpre @ state["X"].T
    elif i == k + 1:                                           # Wh (no recurrent term: none)
        if has_h:
            dxi[:, :, 0] += dpre @ state["H"].T
    elif i < nx or i == k + 3:                                 # an input x_j or its mask
        dX = state["Wx"].T @ dpre
        if i == k + 3:
            acc(flat(dxi), dX * state["raw_x"])
            return
        if dropout:
            dX = dX * flat(xs[k + 3])
        start = sum(flat(x).shape[0] for x in xs[:i])
        acc(flat(dxi), dX[start:start + flat(xs[i]).shape[0]])
    elif has_h:                                                # h_tm1 or its mask (none without h)
        dH = state["Wh"].T @ dpre
        if i == k + 4:
            acc(flat(dxi), dH * state["raw_h"])
        else:
            acc(flat(dxi), dH * flat(xs[k + 4]) if dropout else dH)


def lstm_c_forward(xp, xs, out):
    """c_t = i * g (+ c_tm1 * f) from the gates [i; f; o; g] (xs: gates, [c_tm1])."""
    G = flat(xs[0])
    H = G.shape[0] // 4
    if gpu.lstm_c(xp, G[:H], G[3 * H:], flat(xs[1]) if len(xs) > 1 else None, G[H:2 * H], flat(out)):
        return
    c = G[:H] * G[3 * H:]
    if len(xs) > 1:
        c = c + flat(xs[1]) * G[H:2 * H]
    flat(out)[...] = c


def lstm_c_backward(xp, xs, dout, i, dxi):
    G, D = flat(xs[0]), flat(dout)
    H = G.shape[0] // 4
    if i == 1:
        acc(flat(dxi), D * G[H:2 * H])
        return
    dG = xp.zeros((4 * H, D.shape[1]), dtype=D.dtype)
    dG[:H] = D * G[3 * H:]
    dG[3 * H:] = D * G[:H]
    if len(xs) > 1:
        dG[H:2 * H] = D * flat(xs[1])
    acc(flat(dxi), dG)


def lstm_h_forward(xp, xs, out):
    """h_t = o * tanh(c_t) (xs: c_t, gates)."""
    C, G = flat(xs[0]), flat(xs[1])
    H = C.shape[0]
    if not gpu.lstm_h(xp, G[2 * H:3 * H], C, flat(out)):
        flat(out)[...] = G[2 * H:3 * H] * xp.tanh(C)


def coupled_lstm_c_forward(xp, xs, out):
    """c_t = (1 - i) * c_tm1 + i * w, i = logistic(pre_i), w = tanh(pre_w) (xs: pre_i, pre_w,
    [c_tm1]); i * w without c_tm1."""
    i, w = sigmoid(xp, flat(xs[0])), xp.tanh(flat(xs[1]))
    flat(out)[...] = i * w if len(xs) < 3 else (1 - i) * flat(xs[2]) + i * w


def coupled_lstm_c_backward(xp, xs, dout, k, dxk):
    i, w, D = sigmoid(xp, flat(xs[0])), xp.tanh(flat(xs[1])), flat(dout)
    if k == 0:
        acc(flat(dxk), D * (w if len(xs) < 3 else w - flat(xs[2])) * i * (1 - i))
    elif k == 1:
        acc(flat(dxk), D * i * (1 - w * w))
    else:
        acc(flat(dxk), D * (1 - i))


def coupled_lstm_h_forward(xp, xs, out):
    """h_t = logistic(pre_o) * tanh(c_t) (xs: pre_o, c_t)."""
    flat(out)[...] = sigmoid(xp, flat(xs[0])) * xp.tanh(flat(xs[1]))


def coupled_lstm_h_backward(xp, xs, dout, k, dxk):
    o, t, D = sigmoid(xp, flat(xs[0])), xp.tanh(flat(xs[1])), flat(dout)
    acc(flat(dxk), D * t * o * (1 - o) if k == 0 else D * o * (1 - t * t))


def lstm_h_backward(xp, xs, dout, i, dxi):
    C, G, D = flat(xs[0]), flat(xs[1]), flat(dout)
    H = C.shape[0]
    t = xp.tanh(C)
    if i == 0:
        acc(flat(dxi), D * G[2 * H:3 * H] * (1 - t * t))
    else:
        dG = xp.zeros((4 * H, D.shape[1]), dtype=D.dtype)
        dG[2 * H:3 * H] = D * t
        acc(flat(dxi), dG)
