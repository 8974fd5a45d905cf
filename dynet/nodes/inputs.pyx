"""Input nodes: values from Python (inputTensor, inputVector, ...), constants, and random inputs.

An input node keeps its own float32 copy of the data and copies it into the graph at forward time,
so `set()` can change it and a static graph can be re-run (the graph recomputes from that node on).
Flat lists of Python numbers (the per-example case: inputVector, scalarInput, set) are copied
without NumPy: a NumPy conversion costs microseconds, more than the rest of a small graph's node.
"""
cimport cython
from libc.string cimport memcpy
from libc.math cimport isfinite
from cpython.float cimport PyFloat_Check
cimport numpy as cnp
import numpy as np

from dynet.core.dim cimport Dim, make_dim, make_dim1, total_size, dim_str
from dynet.core.graph cimport Expression, add_node, the_cg, check_live, np_view, to_index, fwd_scratch
from dynet.core.device cimport resolve
from dynet.core.lowering cimport Lowering, Step, copy_step, fill_step
from dynet.core import config
from dynet.kernels.cpu cimport fill
from dynet.kernels import generic
from dynet.core.errors import IndexOutOfRange

cnp.import_array()


cdef Py_ssize_t flat_numbers(object v) noexcept:
    """len(v) if v is a non-empty list or tuple of floats (NumPy's float64 is one) and (moderate) ints, which are
    copied without NumPy (read_numbers); -1 for anything else, which takes the NumPy path."""
    if type(v) is not list and type(v) is not tuple:
        return -1
    cdef Py_ssize_t i, n = len(v)
    for i in range(n):
        x = v[i]
        if not PyFloat_Check(x) and not (type(x) is int and -(1 << 53) <= x <= (1 << 53)):
            return -1
    return n if n > 0 else -1


cdef void read_numbers(object v, Py_ssize_t n, float* out) noexcept:
    """out[i] = v[i] for a list/tuple that flat_numbers accepted."""
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = <double>v[i]


@cython.final
@cython.no_gc
cdef class InputNode(Expression):
    """The input's own float32 copy of its values lives in the forward pool next to the value
    (`host`, column-major), so making an input from a list takes no NumPy call; forward copies it
    into the value, and `set()` rewrites it."""
    cdef float* host
    cdef str kind

    cpdef str op_name(self):
        return self.kind

    cdef int forward_impl(self) except -1:
        memcpy(self.val, self.host, total_size(&self.d) * sizeof(float))
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Step* s = L.add(copy_step, total_size(&self.d))
        s.y = self.val
        s.x0 = self.host
        s.n0 = total_size(&self.d)
        return 1

    def generic_forward(self, xp, list xs, out):
        generic.ravel(out)[...] = xp.asarray(np_view(self.host, total_size(&self.d)))

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        pass                                  # a leaf: no argument to pass a gradient to

    def set(self, values):
        """New values for this input (same size); the graph recomputes from here on next use."""
        check_live(self, "set")
        cdef Py_ssize_t n = total_size(&self.d), k = flat_numbers(values)
        if k == n:
            read_numbers(values, n, self.host)
        else:
            a = np.ravel(np.asarray(values, dtype=np.float32), order="F")
            if a.size != n:
                raise ValueError(f"set: {a.size} values for an input of dimension {dim_str(&self.d)}")
            np_view(self.host, n)[:] = a
        the_cg().invalidate_from(self.index)


cdef InputNode new_input_node(Dim d, str kind, object device=None):
    """An input node on the device named `device` (None or '': the default device); its host
    copy of the values is in this thread's forward pool."""
    cdef InputNode node = InputNode.__new__(InputNode)
    if device is not None:
        node.dev = resolve(device, kind)
    node.host = fwd_scratch(total_size(&d))
    node.kind = kind
    return node


cdef Expression new_input(object flat, Dim d, str kind, object device=None):
    cdef cnp.ndarray a = np.ascontiguousarray(flat, dtype=np.float32)
    if a.size != total_size(&d):
        raise ValueError(f"{kind}: {a.size} values for dimension {dim_str(&d)}")
    cdef InputNode node = new_input_node(d, kind, device)
    memcpy(node.host, cnp.PyArray_DATA(a), total_size(&d) * sizeof(float))
    return add_node(node, (), d)


cdef Expression input_from_list(object v, Py_ssize_t n, str kind, object device=None):
    """A vector input from a list that flat_numbers accepted (n values)."""
    cdef Dim d = make_dim1(n, 1)
    cdef InputNode node = new_input_node(d, kind, device)
    read_numbers(v, n, node.host)
    return add_node(node, (), d)


cdef object _to_array(object arr, str op):
    if isinstance(arr, np.ndarray):
        a = arr
    else:
        try:
            a = np.array(arr, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{op}: expected a numpy array or (nested) lists of numbers ({e})")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{op}: expected numbers, got an array of {a.dtype}")
    return a


def inputTensor(arr, batched=False, device=None, reusable_expr=False):
    """An input from a numpy array or nested lists; with batched=True the last axis is the batch.
    A list of numpy arrays is a batch whose elements are the arrays. Every input can be given new
    values with set() (DyNet 2.1 asks for reusable_expr=True for that; it is accepted)."""
    cdef Py_ssize_t n = flat_numbers(arr) if not batched else -1
    if n > 0:
        return input_from_list(arr, n, "inputTensor", device)
    if isinstance(arr, (list, tuple)) and arr and all(isinstance(x, np.ndarray) for x in arr):
        shapes = {x.shape for x in arr}
        if len(shapes) != 1:
            raise ValueError(f"inputTensor: the batch elements have different shapes {sorted(shapes)}")
        a = np.stack([np.asarray(x, dtype=np.float64) for x in arr], axis=-1)
        batched = True
    else:
        a = _to_array(arr, "inputTensor")
    if a.ndim == 0:
        a = a.reshape(1)
    cdef Dim d
    if batched:
        if a.ndim < 1:
            raise ValueError("inputTensor: a batched input needs at least one axis")
        shape = a.shape[:-1] or (1,)
        d = make_dim(shape, a.shape[-1])
    else:
        d = make_dim(a.shape)
    return new_input(np.ravel(a, order="F"), d, "inputTensor", device)


def scalarInput(s, device=None):
    """An input expression holding one number

    Args:
        s (float): the value (change it later with set())
        device (str): ignored on the CPU

    Returns:
        dynet.Expression: of dimension {1}

    Raises:
        TypeError: if s is not a number
    """
    cdef float v
    try:
        v = float(s)
    except (TypeError, ValueError):
        raise TypeError(f"scalarInput: expected a number, got {type(s).__name__}")
    cdef Dim d = make_dim1(1, 1)
    cdef InputNode node = new_input_node(d, "scalarInput", device)
    node.host[0] = v
    return add_node(node, (), d)


def vecInput(dim, device=None):
    """An input vector of zeros (DyNet 2.0; fill it with set())

    Args:
        dim (int): the length
        device (str): ignored on the CPU

    Returns:
        dynet.Expression: of dimension {dim}
    """
    cdef Dim d = make_dim((dim,))
    cdef InputNode node = new_input_node(d, "vecInput", device)
    fill(total_size(&d), 0.0, node.host)
    return add_node(node, (), d)


def inputVector(v, device=None):
    """An input expression holding a vector

    Args:
        v (list of float or numpy.ndarray): the values, one-dimensional
        device (str): ignored on the CPU

    Returns:
        dynet.Expression: of dimension {len(v)}

    Raises:
        ValueError: if v is not one-dimensional
    """
    cdef Py_ssize_t n = flat_numbers(v)
    if n > 0:
        return input_from_list(v, n, "inputVector", device)
    a = _to_array(v, "inputVector")
    if a.ndim != 1:
        raise ValueError(f"inputVector: expected a flat list of numbers, got shape {a.shape}")
    return new_input(a, make_dim(a.shape), "inputVector", device)


def matInput(d1, d2, device=None):
    """An input matrix of zeros (DyNet 2.0; fill it with set())

    Args:
        d1 (int): rows
        d2 (int): columns

    Returns:
        dynet.Expression: of dimension {d1, d2}
    """
    cdef Dim d = make_dim((d1, d2))
    return new_input(np.zeros(total_size(&d)), d, "matInput", device)


def inputMatrix(v, d, device=None):
    """A matrix of dimension d from a flat list of values in column-major order."""
    a = _to_array(v, "inputMatrix").ravel()
    cdef Dim dd = make_dim(d)
    if a.size != total_size(&dd):
        raise ValueError(f"inputMatrix: {a.size} values for dimension {dim_str(&dd)}")
    return new_input(a, dd, "inputMatrix", device)


# ---- constants and random inputs ------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class ConstantNode(Expression):
    cdef float value

    cpdef str op_name(self):
        return f"constant({self.value:g})"

    cdef int forward_impl(self) except -1:
        fill(total_size(&self.d), self.value, self.val)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Step* s = L.add(fill_step, total_size(&self.d))
        s.y = self.val
        s.n0 = total_size(&self.d)
        s.a = self.value
        return 1

    def generic_forward(self, xp, list xs, out):
        out[...] = self.value

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        pass                                  # a leaf: no argument to pass a gradient to


def constant(dim, val, batch_size=1):
    """An expression whose every value is val

    Args:
        dim (int or tuple): the dimensions
        val (float): the value
        batch_size (int): the batch size

    Returns:
        dynet.Expression: of dimension dim, batched if batch_size > 1
    """
    cdef ConstantNode node = ConstantNode.__new__(ConstantNode)
    node.value = float(val)
    return add_node(node, (), make_dim(dim, batch_size))


def zeroes(dim, batch_size=1):
    """An expression whose every value is 0

    Args:
        dim (int or tuple): the dimensions
        batch_size (int): the batch size

    Returns:
        dynet.Expression: of dimension dim, batched if batch_size > 1
    """
    return constant(dim, 0.0, batch_size)


def zeros(dim, batch_size=1):
    """An expression whose every value is 0

    Args:
        dim (int or tuple): the dimensions
        batch_size (int): the batch size

    Returns:
        dynet.Expression: of dimension dim, batched if batch_size > 1
    """
    return constant(dim, 0.0, batch_size)


def ones(dim, batch_size=1):
    """An expression whose every value is 1

    Args:
        dim (int or tuple): the dimensions
        batch_size (int): the batch size

    Returns:
        dynet.Expression: of dimension dim, batched if batch_size > 1
    """
    return constant(dim, 1.0, batch_size)


@cython.final
@cython.no_gc
cdef class RandomNode(Expression):
    """Samples at forward time from the library's generator: `sampler(rng, n)` -> n floats."""
    cdef object sampler
    cdef str kind

    cpdef str op_name(self):
        return self.kind

    cdef int forward_impl(self) except -1:
        cdef Py_ssize_t n = total_size(&self.d)
        np_view(self.val, n)[:] = self.sampler(config.rng(), n)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.ravel(out)[...] = xp.asarray(self.sampler(generic.random_source(xp), out.size))

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        pass                                  # a leaf: no argument to pass a gradient to


cdef Expression new_random(object sampler, Dim d, str kind):
    cdef RandomNode node = RandomNode.__new__(RandomNode)
    node.sampler = sampler
    node.kind = kind
    return add_node(node, (), d)


cdef double finite_number(object value, str op, str name) except? -1:
    """A random node's parameter as a float, read now: the sampler runs inside the forward pass,
    where numpy reading an object (an expression, a lookup table) would run the graph again."""
    cdef double x
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__} {value!r:.40}") from None
    if not isfinite(x):
        raise ValueError(f"{op}: {name} must be finite, got {x}")
    return x


def random_normal(dim, mean=0.0, stddev=1.0, batch_size=1):
    """Gaussian noise N(mean, stddev^2) of the given dimension."""
    mean = finite_number(mean, "random_normal", "mean")
    stddev = finite_number(stddev, "random_normal", "stddev")
    if stddev < 0:
        raise ValueError(f"random_normal: stddev must be >= 0, got {stddev}")
    return new_random(lambda r, n: r.normal(mean, stddev, n), make_dim(dim, batch_size), "random_normal")


def random_bernoulli(dim, p, scale=1.0, batch_size=1):
    """scale * Bernoulli(p) values."""
    p = finite_number(p, "random_bernoulli", "p")
    scale = finite_number(scale, "random_bernoulli", "scale")
    if not 0 <= p <= 1:
        raise ValueError(f"random_bernoulli: p must be in [0, 1], got {p}")
    return new_random(lambda r, n: (r.random(n) < p) * scale, make_dim(dim, batch_size), "random_bernoulli")


def random_uniform(dim, left, right, batch_size=1):
    """Values drawn uniformly from [left, right] at forward time

    Args:
        dim (int or tuple): the dimensions
        left (float): the lower bound
        right (float): the upper bound
        batch_size (int): the batch size

    Returns:
        dynet.Expression: of dimension dim

    Raises:
        ValueError: if left > right
    """
    left = finite_number(left, "random_uniform", "left")
    right = finite_number(right, "random_uniform", "right")
    if left > right:
        raise ValueError(f"random_uniform: left {left} > right {right}")
    return new_random(lambda r, n: r.uniform(left, right, n), make_dim(dim, batch_size), "random_uniform")


def random_gumbel(dim, mu=0.0, beta=1.0, batch_size=1):
    """Values drawn from a Gumbel(mu, beta) distribution at forward time

    Args:
        dim (int or tuple): the dimensions
        mu (float): the location
        beta (float): the scale, > 0
        batch_size (int): the batch size

    Returns:
        dynet.Expression: of dimension dim

    Raises:
        ValueError: if beta <= 0
    """
    mu = finite_number(mu, "random_gumbel", "mu")
    beta = finite_number(beta, "random_gumbel", "beta")
    if beta <= 0:
        raise ValueError(f"random_gumbel: beta must be > 0, got {beta}")
    return new_random(lambda r, n: r.gumbel(mu, beta, n), make_dim(dim, batch_size), "random_gumbel")


def one_hot(d, idx, device=None):
    """A vector of dimension d that is 1 at idx and 0 elsewhere; with a list idx, a batch whose
    element b is one hot at idx[b]."""
    cdef long n = to_index(d, "one_hot")
    if n < 1:
        raise ValueError(f"one_hot: the dimension must be positive, got {n}")
    indices = [idx] if not isinstance(idx, (list, tuple, np.ndarray)) else list(np.ravel(idx))
    if not indices:
        raise ValueError("one_hot: the list of indices is empty")
    flat = np.zeros(n * len(indices))
    for b, i in enumerate(indices):
        i = to_index(i, "one_hot")
        if not 0 <= i < n:
            raise IndexOutOfRange(f"one_hot: index {i} is out of range for dimension {n}")
        flat[b * n + i] = 1.0
    return new_input(flat, make_dim((n,), len(indices)), "one_hot", device)


def sparse_inputTensor(idxs, values, shape, batched=False, defval=0, device=None):
    """An input of the given shape that is `defval` everywhere except at the coordinates
    idxs = (indices along axis 0, indices along axis 1, ...), which take `values`; with
    batched=True the last axis of shape (and of idxs) is the batch."""
    try:
        shape = tuple(int(s) for s in ((shape,) if isinstance(shape, int) else shape))
    except (TypeError, ValueError):
        raise TypeError(f"sparse_inputTensor: shape must be a tuple of integers, got {shape!r:.60}")
    vals = _to_array(values, "sparse_inputTensor")
    if vals.ndim != 1:
        raise ValueError(f"sparse_inputTensor: values must be a 1-d list, got shape {vals.shape}")
    if len(idxs) != len(shape):
        raise ValueError(f"sparse_inputTensor: {len(idxs)} index arrays for a shape of "
                         f"{len(shape)} dimensions {shape}")
    coords = [np.asarray(ix, dtype=np.int64).ravel() for ix in idxs]
    for axis, ix in enumerate(coords):
        if ix.size != vals.size:
            raise ValueError(f"sparse_inputTensor: {ix.size} indices along axis {axis} for "
                             f"{vals.size} values")
        if ix.size and (ix.min() < 0 or ix.max() >= shape[axis]):
            raise IndexOutOfRange(f"sparse_inputTensor: index {int(ix.max() if ix.max() >= shape[axis] else ix.min())} "
                             f"is out of range for axis {axis} of shape {shape}")
    cdef Dim d
    if batched:
        d = make_dim(shape[:-1] or (1,), shape[-1])
    else:
        d = make_dim(shape)
    flat = np.full(total_size(&d), float(defval))
    if vals.size:
        flat[np.ravel_multi_index(coords, shape, order="F")] = vals
    return new_input(flat, d, "sparse_inputTensor", device)
