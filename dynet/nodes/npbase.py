"""Small helpers shared by the operations written on the generic array path (see pyop.pyx)."""
import sys

import numpy as np


def array_module(a):
    """The array module of `a`: cupy for a CuPy array, numpy otherwise (cupy is never imported here:
    a CuPy array can only exist where it already is)."""
    if type(a).__module__.startswith("cupy"):
        return sys.modules["cupy"]
    return np


def fmt(shape, bd):
    """DyNet's way of printing a dimension: {3,4}X2."""
    return "{" + ",".join(map(str, shape)) + "}" + (f"X{bd}" if bd > 1 else "")


def strip(shape):
    """The shape without trailing 1s ({3,1} is {3}), keeping at least one dimension."""
    shape = tuple(shape)
    while len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def batch_of(name, dims):
    """The batch size of an operation on `dims` (each batch must be 1 or the largest)."""
    bd = max(b for _, b in dims)
    if any(b not in (1, bd) for _, b in dims):
        raise ValueError(f"{name}: batch sizes must be 1 or equal, got "
                         + ", ".join(fmt(s, b) for s, b in dims))
    return bd


def acc(dxi, d):
    """dxi += d, summing over the batch where the argument was broadcast (batch 1)."""
    if dxi.shape[-1] == 1 and d.shape[-1] != 1:
        d = d.sum(axis=-1, keepdims=True)
    dxi += d.reshape(dxi.shape, order="F")


def as_matrix(a):
    """A (rows, cols, batch) view of a vector or matrix value."""
    return a.reshape((a.shape[0], -1, a.shape[-1]), order="F")


def batch_first(a):
    """A (batch, rows, cols) view for the stacked linear algebra routines."""
    return as_matrix(a).transpose(2, 0, 1)
