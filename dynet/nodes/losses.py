"""Losses written on the generic NumPy path (see pyop.pyx)."""
import numpy as np

from dynet.nodes.pyop import pyop


def _same_dims(name, dims):
    (sa, ba), (sb, bb) = dims
    strip = lambda s: tuple(s[:max(1, len(s) - next((i for i, v in enumerate(reversed(s)) if v != 1), len(s)))])
    if strip(sa) != strip(sb) or (ba != bb and 1 not in (ba, bb)):
        fmt = lambda s, b: "{" + ",".join(map(str, s)) + "}" + (f"X{b}" if b > 1 else "")
        raise ValueError(f"{name}: arguments must have the same dimensions, got {fmt(sa, ba)} and {fmt(sb, bb)}")
    return max(ba, bb)


class BinaryLogLoss:
    """-sum_i (y_i ln x_i + (1 - y_i) ln(1 - x_i)) per batch element; x is clipped away from 0 and 1
    as DyNet does, so a saturated sigmoid gives a large finite loss."""
    name = "binary_log_loss"
    eps = np.float32(1e-7)

    def dim(self, dims):
        return (1,), _same_dims(self.name, dims)

    def _clipped(self, x):
        return np.clip(x, self.eps, 1 - self.eps)

    def forward(self, xs, out):
        x, y = self._clipped(xs[0]), xs[1]
        loss = -(y * np.log(x) + (1 - y) * np.log1p(-x))
        out[...] = loss.reshape(-1, loss.shape[-1], order="F").sum(axis=0)

    def backward(self, xs, out, dout, i, dxi):
        x, y = self._clipped(xs[0]), xs[1]
        g = dout.reshape(-1)                       # one value per batch element
        if i == 0:
            d = (x - y) / (x * (1 - x))
        else:
            d = np.log1p(-x) - np.log(x)
        d = d * g
        if dxi.shape[-1] == 1 and d.shape[-1] > 1:
            d = d.sum(axis=-1, keepdims=True)
        dxi += d


def binary_log_loss(x, y):
    """The log loss of a binary decision: -sum_i (y_i ln x_i + (1 - y_i) ln(1 - x_i))."""
    return pyop(BinaryLogLoss(), (x, y))
