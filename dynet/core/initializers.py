"""Initializers: how a new parameter's values are drawn. `initialize(array, is_lookup)` fills a float32
array shaped like the parameter (for lookup parameters, (rows,) + embedding shape)."""
import warnings
from numbers import Number

import numpy as np

from dynet.core import config


class PyInitializer:
    """Base class of the initializers: `initialize(array, is_lookup)` fills a float32 array shaped like
    the parameter (for lookup parameters, (N,) + embedding shape)."""

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table

        Raises:
            TypeError: in the base class (subclasses define it)
        """
        raise TypeError(f"{type(self).__name__} does not define initialize()")


class NormalInitializer(PyInitializer):
    """Initialise from a Gaussian distribution

    Args:
        mean (float): the mean (default 0)
        var (float): the variance (default 1)

    Raises:
        ValueError: if var < 0
    """
    def __init__(self, mean=0, var=1):
        if var < 0:
            raise ValueError(f"NormalInitializer: variance must be >= 0, got {var}")
        self.mean, self.var = float(mean), float(var)

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table
        """
        array[...] = config.rng().normal(self.mean, np.sqrt(self.var), array.shape)


class UniformInitializer(PyInitializer):
    """Initialise uniformly in [-scale, scale]

    Args:
        scale (float): the bound
    """
    def __init__(self, scale):
        self.scale = float(scale)

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table
        """
        array[...] = config.rng().uniform(-self.scale, self.scale, array.shape)


class ConstInitializer(PyInitializer):
    """Initialise every value to a constant

    Args:
        c (float): the value
    """
    def __init__(self, c):
        self.c = float(c)

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table
        """
        array[...] = self.c


class IdentityInitializer(PyInitializer):
    """Initialise a square matrix to the identity"""
    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table

        Raises:
            ValueError: if the parameter is not a square matrix
        """
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            raise ValueError(f"IdentityInitializer: needs a square matrix, got shape {array.shape}")
        array[...] = np.eye(array.shape[0])


class GlorotInitializer(PyInitializer):
    """DyNet's Glorot rule: uniform in +-gain*sqrt(3k / (sum of the k dimensions)), i.e.
    sqrt(6/(rows+cols)) for a matrix and sqrt(3/d) for a vector; a 4-d convolution filter
    (H, W, In, Out) uses gain*sqrt(6/(H*W*In + H*W*Out)). The dimensions are DyNet's: a lookup
    table's are its embedding's then its row count, and is_lookup=True leaves out the last one (the
    row count of a table; of an ordinary parameter, its last axis, as DyNet does)."""

    def __init__(self, is_lookup=False, gain=1.0):
        self.is_lookup, self.gain = bool(is_lookup), float(gain)

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table
        """
        shape = array.shape
        dims = list(shape[1:]) + [shape[0]] if is_lookup else list(shape)
        if self.is_lookup:
            dims = dims[:-1]
        if not dims:
            raise ValueError(f"GlorotInitializer(is_lookup=True): a parameter of shape {shape} has no "
                             f"dimension left once the last one is left out")
        if len(dims) == 4:
            field = dims[0] * dims[1]
            scale = self.gain * np.sqrt(6.0 / (dims[2] * field + dims[3] * field))
        else:
            scale = self.gain * np.sqrt(3.0 * len(dims) / sum(dims))
        array[...] = config.rng().uniform(-scale, scale, array.shape)


class SaxeInitializer(PyInitializer):
    """A random orthonormal matrix (Saxe et al. 2014), times `scale`."""

    def __init__(self, scale=1.0):
        self.scale = float(scale)

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table

        Raises:
            ValueError: if the parameter is not a square matrix
        """
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            raise ValueError(f"SaxeInitializer: needs a square matrix, got shape {array.shape}")
        q, r = np.linalg.qr(config.rng().normal(0, 1, array.shape))
        array[...] = self.scale * q * np.sign(np.diag(r))


class NumpyInitializer(PyInitializer):
    """Initialise from a numpy array

    Args:
        array (numpy.ndarray): the values, shaped like the parameter
    """
    def __init__(self, array):
        self.array = np.asarray(array, dtype=np.float32)

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table

        Raises:
            ValueError: if the array's shape is not the parameter's
        """
        if self.array.shape != array.shape:
            raise ValueError(f"NumpyInitializer: array of shape {self.array.shape} for a parameter of "
                             f"shape {array.shape}")
        array[...] = self.array


class FromFileInitializer(PyInitializer):
    """Values from a file written by Parameters.save / a model save (DyNet's text format)."""

    def __init__(self, fname):
        self.fname = fname

    def initialize(self, array, is_lookup=False):
        """Fill a parameter's array

        Args:
            array (numpy.ndarray): float32, shaped like the parameter ((N,) + row shape for lookup parameters)
            is_lookup (bool): whether it is a lookup table
        """
        from dynet.io.textformat import read_first_tensor   # (io imports the parameters)
        array[...] = read_first_tensor(self.fname, array.shape, is_lookup)


# init= spellings of add_parameters / add_lookup_parameters (DyNet 2.1): which keyword arguments
# each one takes
_DYNET_DEFAULTS = {"scale": 1.0, "mean": 0.0, "std": 1.0}     # add_parameters' keyword defaults there
_SPELLINGS = {"uniform": ("scale",), "normal": ("mean", "std"), "identity": (), "glorot": ("scale",),
              "he": (), "saxe": ("scale",)}


def initializer_from(init, dim, scale=None, mean=None, std=None, op="add_parameters"):
    """The initializer that `init` spells (DyNet 2.1): None or 'glorot' (DyNet's Glorot over every
    dimension, a table's row count included; as in DyNet, `scale` is accepted there but is not a
    gain), an initializer, a number (that constant), a NumPy array (those values), or one of
    'uniform' (U(-scale, scale), scale 1 by default), 'normal' (N(mean, std^2), 0 and 1 by
    default), 'identity', 'he' (N(0, 1/(2 n)) with n the last dimension, as DyNet draws it) and
    'saxe' (a random orthonormal matrix times `scale`). Keyword arguments the spelling does not
    take are ignored, as DyNet ignores them: silently at DyNet's defaults (scale=1, mean=0, std=1,
    which code that wraps add_parameters passes along), with a warning otherwise. An unknown
    spelling is an error."""
    spelled = init is None or isinstance(init, str)
    if spelled and init is not None and init not in _SPELLINGS:
        raise ValueError(f"{op}: unknown init={init!r}; expected a number, a NumPy array, an "
                         f"initializer or one of {', '.join(map(repr, _SPELLINGS))}")
    takes = ("scale",) if init is None else _SPELLINGS[init] if spelled else ()
    given = {"scale": scale, "mean": mean, "std": std}
    for k, v in given.items():
        if v is not None and k not in takes:
            if v != _DYNET_DEFAULTS[k]:
                what = f"init={init!r}" if spelled else f"an init of type {type(init).__name__}"
                warnings.warn(f"{op}: {k}={v!r} does not apply to {what} and is ignored"
                              + (f" (it takes {', '.join(t + '=' for t in takes)})" if takes else ""),
                              stacklevel=3)
            given[k] = None
    scale, mean, std = given["scale"], given["mean"], given["std"]
    if std is not None and not std >= 0:
        raise ValueError(f"{op}: std must be >= 0, got {std}")
    if spelled:
        if init is None or init == "glorot":
            return GlorotInitializer()
        if init == "uniform":
            return UniformInitializer(1.0 if scale is None else scale)
        if init == "normal":
            return NormalInitializer(0.0 if mean is None else mean, 1.0 if std is None else std * std)
        if init == "identity":
            return IdentityInitializer()
        if init == "he":
            last = dim if isinstance(dim, Number) else tuple(dim)[-1]
            return NormalInitializer(0.0, 1.0 / (2 * max(int(last), 1)))   # (0: an empty parameter)
        return SaxeInitializer(1.0 if scale is None else scale)
    if isinstance(init, PyInitializer):
        return init
    if isinstance(init, np.ndarray):
        return NumpyInitializer(init)
    if isinstance(init, Number) and not isinstance(init, bool):
        return ConstInitializer(init)
    raise TypeError(f"{op}: init must be a number, a string, a NumPy array or an initializer, "
                    f"got {type(init).__name__} ({init!r:.40})")
