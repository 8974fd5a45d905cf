"""Tensor: a value copied out of the graph (DyNet's Tensor, from Expression.tensor_value()).

DyNet 2.2's Tensor offers as_numpy(), argmax(dim, num), topk(dim, num) and
categorical_sample_log_prob(dim, num). The reductions work along one dimension of the value as
as_numpy() shapes it (a batched value has the batch as its last axis, which is never reduced) and
keep that dimension with size `num`, as DyNet's index tensors do; indices come back as a Tensor
whose as_numpy() is int64.
"""
import numpy as np

from dynet.core import config


class Tensor:
    """A copy of an expression's value that outlives the graph."""

    def __init__(self, array, batched):
        self._array = np.asarray(array)
        self.batched = bool(batched)

    def as_numpy(self):
        """The values as a NumPy array (float64; int64 for index tensors)."""
        return self._array.copy()

    def vec_value(self):
        """The values as a flat list, in column-major order

        Returns:
            list of float: the values
        """
        return list(np.ravel(self._array, order="F"))

    def scalar_value(self):
        """The single value of a one-element tensor

        Returns:
            float: the value

        Raises:
            ValueError: if the tensor has more than one element
        """
        if self._array.size != 1:
            raise ValueError(f"Tensor.scalar_value: tensor of shape {self._array.shape} is not a scalar")
        return float(self._array.ravel()[0])

    def _axis(self, dim, num, op, draws=False):
        """The NumPy axis of DyNet's dimension `dim`, checked with `num` (at most the size of that
        dimension, unless `num` counts random draws)."""
        for what, v in (("dim", dim), ("num", num)):
            if isinstance(v, bool) or not hasattr(v, "__index__"):
                raise TypeError(f"Tensor.{op}: {what} must be an integer, got {v!r}")
        dim, num = int(dim), int(num)
        ndims = self._array.ndim - (1 if self.batched else 0)
        if not 0 <= dim < max(ndims, 1):
            raise ValueError(f"Tensor.{op}: dim {dim} is out of range for a tensor of shape "
                             f"{self._array.shape}{' (batched)' if self.batched else ''}")
        if num < 1 or (num > self._array.shape[dim] and not draws):
            raise ValueError(f"Tensor.{op}: num must be between 1 and {self._array.shape[dim]} (the size "
                             f"of dimension {dim}), got {num}")
        return dim, num

    def _top(self, dim, num, op):
        """Values and indices of the `num` largest entries along `dim`, largest first."""
        axis, num = self._axis(dim, num, op)
        a = np.atleast_1d(self._array)
        order = np.argsort(-a, axis=axis, kind="stable")
        idx = np.take(order, np.arange(num), axis=axis)
        return np.take_along_axis(a, idx, axis=axis), idx.astype(np.int64)

    def argmax(self, dim=0, num=1):
        """The index of the largest value along `dim` (the `num` largest, in order)."""
        return Tensor(self._top(dim, num, "argmax")[1], self.batched)

    def topk(self, dim=0, num=1):
        """(values, indices) of the `num` largest entries along `dim`, largest first."""
        values, idx = self._top(dim, num, "topk")
        return Tensor(values, self.batched), Tensor(idx, self.batched)

    def categorical_sample_log_prob(self, dim=0, num=1):
        """`num` indices drawn along `dim` from the distribution whose log-probabilities the tensor
        holds (each slice along `dim` is one distribution), by the Gumbel-max trick: with the
        library's random generator, so --dynet-seed makes it repeatable."""
        axis, num = self._axis(dim, num, "categorical_sample_log_prob", draws=True)
        a = np.atleast_1d(self._array).astype(np.float64)
        draws = []
        for _ in range(num):
            g = -np.log(-np.log(config.rng().uniform(np.finfo(float).tiny, 1.0, a.shape)))
            draws.append(np.argmax(a + g, axis=axis))
        return Tensor(np.stack(draws, axis=axis).astype(np.int64), self.batched)

    def __repr__(self):
        return f"Tensor({self._array!r})"
