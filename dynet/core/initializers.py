"""Initializers: how a new parameter's values are drawn. `initialize(array, is_lookup)` fills a float32
array shaped like the parameter (for lookup parameters, (rows,) + embedding shape)."""
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
