"""Losses and sparse softmaxes on the generic array path (see pyop.pyx): binary_log_loss,
sparsemax, constrained_softmax, pairwise_rank_loss, poisson_loss, hinge, hinge_batch, hinge_dim.
These are the device-neutral implementations of the typed CPU nodes in losses_cpu.pyx (which makes
the public operations); the arrays' module `xp` is NumPy or CuPy.
Vectors are handled per batch element (the last axis); a batch-1 argument is broadcast."""
import numpy as np

from dynet.nodes.npbase import fmt, strip, batch_of, acc, array_module
from dynet.core.errors import IndexOutOfRange


def _gammaln(xp, a):
    if xp is np:
        from scipy.special import gammaln
    else:
        from cupyx.scipy.special import gammaln
    return gammaln(a)


def _same_dims(name, dims):
    (sa, ba), (sb, bb) = dims
    if strip(sa) != strip(sb):
        raise ValueError(f"{name}: arguments must have the same dimensions, got {fmt(sa, ba)} and {fmt(sb, bb)}")
    return batch_of(name, dims)


class BinaryLogLoss:
    """-sum_i (y_i ln x_i + (1 - y_i) ln(1 - x_i)) per batch element; x is clipped away from 0 and 1
    as DyNet does, so a saturated sigmoid gives a large finite loss."""
    name = "binary_log_loss"
    eps = np.float32(1e-7)

    def dim(self, dims):
        return (1,), _same_dims(self.name, dims)

    def _clipped(self, x):
        return x.clip(self.eps, 1 - self.eps)

    def forward(self, xs, out):
        xp = array_module(out)
        x, y = self._clipped(xs[0]), xs[1]
        loss = -(y * xp.log(x) + (1 - y) * xp.log1p(-x))
        out[...] = loss.reshape(-1, loss.shape[-1], order="F").sum(axis=0)

    def backward(self, xs, out, dout, i, dxi):
        xp = array_module(out)
        x, y = self._clipped(xs[0]), xs[1]
        g = dout.reshape(-1)                       # one value per batch element
        if i == 0:
            d = (x - y) / (x * (1 - x))
        else:
            d = xp.log1p(-x) - xp.log(x)
        d = d * g
        if dxi.shape[-1] == 1 and d.shape[-1] > 1:
            d = d.sum(axis=-1, keepdims=True)
        dxi += d


def _vector(name, shape, bd):
    if len(strip(shape)) != 1:
        raise ValueError(f"{name}: expects a vector, got {fmt(shape, bd)}")


class Sparsemax:
    """The Euclidean projection of x onto the probability simplex (Martins and Astudillo, 2016)."""
    name = "sparsemax"

    def dim(self, dims):
        (shape, bd), = dims
        _vector(self.name, shape, bd)
        return shape, bd

    def forward(self, xs, out):
        xp = array_module(out)
        z = xs[0].reshape(xs[0].shape[0], -1)
        s = -xp.sort(-z, axis=0)
        k = xp.arange(1, z.shape[0] + 1)[:, None]
        cs = xp.cumsum(s, axis=0)
        support = (1 + k * s > cs).sum(axis=0)               # size of the support, per column
        tau = (cs[support - 1, xp.arange(z.shape[1])] - 1) / support
        out[...] = xp.maximum(z - tau, 0).reshape(out.shape)

    def backward(self, xs, out, dout, i, dxi):
        p, g = out.reshape(out.shape[0], -1), dout.reshape(out.shape[0], -1)
        on = p > 0
        mean = (g * on).sum(axis=0) / on.sum(axis=0)
        acc(dxi, (on * (g - mean)).reshape(dout.shape))


class ConstrainedSoftmax:
    """softmax(x) with upper bounds u (Martins and Kreutzer, 2017): p_i = min(u_i, exp(x_i) / Z),
    Z chosen so that p sums to 1. Capped entries get no gradient from x. Where the bounds sum to
    less than 1, every entry is capped and p = u, as in DyNet (the loop below caps them all)."""
    name = "constrained_softmax"

    def dim(self, dims):
        (sx, bx), (su, bu) = dims
        if len(strip(sx)) != 1 or strip(sx) != strip(su):
            raise ValueError(f"{self.name}: expects scores and upper bounds, two vectors of the same "
                             f"size, got {fmt(sx, bx)} and {fmt(su, bu)}")
        return sx, batch_of(self.name, dims)

    def _solve(self, xs, bd):
        xp = array_module(xs[0])
        n = xs[0].shape[0]
        x = xp.broadcast_to(xs[0].reshape(n, -1), (n, bd)).astype(xp.float64)
        u = xp.broadcast_to(xs[1].reshape(n, -1), (n, bd)).astype(xp.float64)
        e = xp.exp(x - x.max(axis=0))
        capped = xp.zeros((n, bd), dtype=bool)
        while True:
            # the free entries share what the capped ones leave, in proportion to exp(x)
            mass = 1 - (u * capped).sum(axis=0)
            free_e = (e * ~capped).sum(axis=0)
            p = xp.where(capped, u, e * mass / xp.where(free_e > 0, free_e, 1))
            over = ~capped & (p > u)
            if not bool(over.any()):
                return p, capped, mass
            capped |= over

    def forward(self, xs, out):
        out[...] = self._solve(xs, out.shape[-1])[0].reshape(out.shape)

    def backward(self, xs, out, dout, i, dxi):
        p, capped, mass = self._solve(xs, out.shape[-1])
        g = dout.reshape(p.shape)
        # p_F = mass * softmax(x_F), mass = 1 - sum_A u: both gradients share sum_F p_j g_j / mass
        xp = array_module(out)
        r = (p * g * ~capped).sum(axis=0) / xp.where(mass > 0, mass, 1)
        d = xp.where(capped, 0, p * (g - r)) if i == 0 else xp.where(capped, g - r, 0)
        acc(dxi, d.reshape(dout.shape).astype(xp.float32))


class PairwiseRankLoss:
    """max(0, m - x + y) elementwise: x should exceed y by the margin m."""
    name = "pairwise_rank_loss"

    def __init__(self, m):
        self.m = m

    def dim(self, dims):
        (sx, bx), (sy, by) = dims
        if strip(sx) != strip(sy):
            raise ValueError(f"{self.name}: arguments must have the same dimensions, got "
                             f"{fmt(sx, bx)} and {fmt(sy, by)}")
        return sx, batch_of(self.name, dims)

    def forward(self, xs, out):
        out[...] = array_module(out).maximum(0, self.m - xs[0] + xs[1])

    def backward(self, xs, out, dout, i, dxi):
        d = dout * (out > 0)
        acc(dxi, -d if i == 0 else d)


def _targets(name, v, bd, limit=None):
    """Integer targets, one per batch element: an int (used for every element) or a list."""
    vs = list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v]
    try:
        vs = [int(t.__index__()) for t in vs]
    except AttributeError:
        raise TypeError(f"{name}: targets must be integers, got {v!r:.60}") from None
    if len(vs) == 1:
        vs = vs * bd
    if len(vs) != bd:
        raise ValueError(f"{name}: {len(vs)} targets for a batch of {bd}")
    for t in vs:
        if t < 0 or (limit is not None and t >= limit):
            raise IndexOutOfRange(f"{name}: target {t} is out of range" + (f" [0, {limit})" if limit else ""))
    return np.array(vs)                  # host memory: the op moves it to the arrays' device


class PoissonLoss:
    """-log Poisson(x | lambda = exp(log_lambda)) = exp(ll) - x ll + log(x!)."""
    name = "poisson_loss"

    def __init__(self, x):
        self.x = x

    def dim(self, dims):
        (shape, bd), = dims
        if strip(shape) != (1,):
            raise ValueError(f"{self.name}: log_lambda must be a scalar, got {fmt(shape, bd)}")
        self.k = _targets(self.name, self.x, bd).astype(np.float64)
        return (1,), bd

    def forward(self, xs, out):
        xp = array_module(out)
        k = xp.asarray(self.k)
        ll = xs[0].reshape(-1).astype(xp.float64)
        out[...] = (xp.exp(ll) - k * ll + _gammaln(xp, k + 1)).reshape(out.shape)

    def backward(self, xs, out, dout, i, dxi):
        xp = array_module(out)
        ll = xs[0].reshape(-1)
        d = dout.reshape(-1) * (xp.exp(ll) - xp.asarray(self.k))
        acc(dxi, d.reshape(dout.shape).astype(xp.float32))


class Hinge:
    """sum_{i != v} max(0, x_i - x_v + m) over the classes axis, for each group (a column, or a row
    with d=1) and batch element."""

    def __init__(self, name, v, m, d=None):
        self.name, self.v, self.m, self.d = name, v, m, d

    def dim(self, dims):
        (shape, bd), = dims
        if self.d is None:                       # hinge / hinge_batch: a vector of scores
            _vector(self.name, shape, bd)
            self.idx = _targets(self.name, self.v, bd, shape[0])[None, :]
            return (1,), bd
        if len(shape) > 2 or self.d not in (0, 1):
            raise ValueError(f"{self.name}: expects a matrix and d in (0, 1), got {fmt(shape, bd)} "
                             f"and d={self.d}")
        full = tuple(shape) + (1,) * (2 - len(shape))
        n, groups = full[self.d], full[1 - self.d]
        vs = list(self.v)
        per_batch = vs and isinstance(vs[0], (list, tuple, np.ndarray))
        rowsets = vs if per_batch else [vs] * bd
        if len(rowsets) != bd or any(len(r) != groups for r in rowsets):
            raise ValueError(f"{self.name}: needs {groups} targets (the size of the other dimension) "
                             f"per batch element for {fmt(shape, bd)} with d={self.d}")
        self.idx = np.array([_targets(self.name, r, groups, n) for r in rowsets]).T
        return (groups,), bd

    def _scores(self, a):
        """(classes, groups, batch) view."""
        a = a.reshape((a.shape[0], -1, a.shape[-1]), order="F")
        return a.transpose(1, 0, 2) if self.d == 1 else a

    def _margins(self, xs):
        xp = array_module(xs[0])
        x = self._scores(xs[0])
        g, b = xp.meshgrid(xp.arange(x.shape[1]), xp.arange(x.shape[2]), indexing="ij")
        idx = xp.asarray(self.idx)
        correct = x[idx, g, b]
        viol = xp.maximum(0, x - correct[None] + self.m)
        viol[idx, g, b] = 0
        return viol, idx, g, b

    def forward(self, xs, out):
        out[...] = self._margins(xs)[0].sum(axis=0).reshape(out.shape)

    def backward(self, xs, out, dout, i, dxi):
        viol, idx, g, b = self._margins(xs)
        active = (viol > 0) * dout.reshape(1, viol.shape[1], -1)
        d = active.astype(dout.dtype)
        d[idx, g, b] -= active.sum(axis=0)
        if self.d == 1:
            d = d.transpose(1, 0, 2)
        acc(dxi, d.reshape(dxi.shape[:-1] + (-1,), order="F"))
