"""ParameterCollection (DyNet 2.0's Model): a tree of named Parameters and LookupParameters.

A subcollection shares its root's lists, names and weight decay (the objects themselves, not the
root: nothing points back up the tree, and Parameters hold their collection weakly, so that `del m`
frees a collection and its storage at once, without waiting for the cycle collector), so the root's
trainer updates everything. Saving and loading are DyNet's (dynet/io); the parameters themselves are in params.pyx.
"""
import inspect

import numpy as np

from dynet.core import config
from dynet.core.initializers import NumpyInitializer, initializer_from
from dynet.core.params import WeightDecay, create_parameters, create_lookup_parameters
from dynet.core.device import get_device
from dynet import io as dyio


def array_shape_over_dim(init, dim, min_dims):
    """DyNet makes a parameter whose init is a NumPy array with the array's shape, whatever `dim`
    says (its add_parameters calls parameters_from_numpy): DyNet's Tree-LSTM example sizes a table
    by its vocabulary and initialises it from fewer GloVe rows."""
    if isinstance(init, np.ndarray) and init.ndim >= min_dims:
        return tuple(init.shape)
    return dim


class ParameterCollection:
    """Holds Parameters and LookupParameters (DyNet 2.0 calls it Model). Subcollections share the
    root's lists, so the root's trainer updates everything."""

    # users call ParameterCollection(); the private arguments are add_subcollection's
    __signature__ = inspect.Signature()

    def __init__(self, _parent=None, _prefix="/"):
        self._is_root = _parent is None
        self._prefix = _prefix
        self._counter = 0          # names the unnamed parameters and lookups: _0, _1, ...
        self._sub_counter = 0
        if _parent is None:
            self._names = set()
            self._params = []      # the whole tree's, in creation order (shared by subcollections)
            self._lookups = []
            # lambda from --dynet-weight-decay / DynetParams.set_weight_decay, as DyNet does
            self._wd = WeightDecay(float(config.state.get("weight_decay", 0.0)))
        else:
            self._names = _parent._names
            self._params = _parent._params
            self._lookups = _parent._lookups
            self._wd = _parent._wd
        self._own_params = []
        self._own_lookups = []
        self._children = []

    def _new_name(self, name, what):
        if name is None:
            name = f"_{self._counter}"
            self._counter += 1
        else:
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"{what}: a name must be a non-empty string without '/', got {name!r}")
        return self._unique(self._prefix + name, "")

    def _unique(self, full, tail):
        # DyNet appends a running index to a name already taken: /x, /x_1, /x_2 (so that, e.g.,
        # dy.load can rebuild two builders that name their subcollections alike)
        if full + tail in self._names:
            k = 1
            while f"{full}_{k}{tail}" in self._names:
                k += 1
            full = f"{full}_{k}"
        self._names.add(full + tail)
        return full + tail

    def add_parameters(self, dim, init=None, name=None, device=None, scale=None, mean=None, std=None):
        """A new Parameters of shape `dim`, initialised by `init` (default: DyNet's Glorot; the
        spellings of DyNet 2.1: see initializers.initializer_from), on the device named `device`
        ('CPU', 'GPU:0'; default: the default device). As in DyNet, `scale` is the range of
        init='uniform' (and Saxe's factor); it is not a gain of the default Glorot."""
        get_device(device, "add_parameters")      # a bad device name fails before anything is added
        dim = array_shape_over_dim(init, dim, 1)
        init = initializer_from(init, dim, scale, mean, std, "add_parameters")
        p = create_parameters(self, self._new_name(name, "add_parameters"), dim, device)
        arr = np.zeros(p.shape(), dtype=np.float32)
        if arr.size:                        # (an empty parameter has nothing to draw)
            init.initialize(arr, False)
        p.set_value(arr)
        self._params.append(p)
        self._own_params.append(p)
        return p

    def add_lookup_parameters(self, dim, init=None, name=None, device=None, scale=None, mean=None,
                              std=None):
        """A new table: dim[0] embeddings of shape dim[1:]. The default init is DyNet's:
        GlorotInitializer() over the table's dimensions, the row count included (is_lookup=False),
        so a 1000 x 50 table draws from +-sqrt(6/1050); init= spells as for add_parameters."""
        dim = array_shape_over_dim(init, dim, 2)
        if not isinstance(dim, (tuple, list, np.ndarray)) or len(tuple(dim)) < 2:
            raise ValueError(f"add_lookup_parameters: dim must be (number of rows, embedding dims...), "
                             f"got {dim!r}")
        dim = tuple(int(d) if isinstance(d, float) else d for d in dim)   # DyNet truncates floats
        get_device(device, "add_lookup_parameters")
        init = initializer_from(init, dim, scale, mean, std, "add_lookup_parameters")
        p = create_lookup_parameters(self, self._new_name(name, "add_lookup_parameters"),
                                     int(dim[0]), dim[1:], device)
        arr = np.zeros(dim, dtype=np.float32)
        if arr.size:
            init.initialize(arr, True)
        p.init_from_array(arr)
        self._lookups.append(p)
        self._own_lookups.append(p)
        return p

    def parameters_from_numpy(self, array, name=None, device=None):
        """A new Parameters initialised from an array

        Args:
            array (numpy.ndarray): the values (its shape is the parameter's)
            name (str): the parameter's name (default: a number)
            device (str): ignored on the CPU

        Returns:
            Parameters: the new parameter
        """
        array = np.asarray(array, dtype=np.float32)
        return self.add_parameters(array.shape, NumpyInitializer(array), name=name, device=device)

    def lookup_parameters_from_numpy(self, array, name=None, device=None):
        """New LookupParameters initialised from an array

        Args:
            array (numpy.ndarray): shape (N,) + embedding shape
            name (str): the table's name (default: a number)
            device (str): ignored on the CPU

        Returns:
            LookupParameters: the new table
        """
        array = np.asarray(array, dtype=np.float32)
        return self.add_lookup_parameters(array.shape, NumpyInitializer(array), name=name, device=device)

    def add_subcollection(self, name=None):
        """A new collection inside this one (its parameters' names get its prefix)

        Args:
            name (str): the subcollection's name (default: a number)

        Returns:
            ParameterCollection: the subcollection

        Raises:
            ValueError: if name is empty or contains '/'
        """
        if name is None:
            name = f"_{self._sub_counter}"
            self._sub_counter += 1
        elif not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"add_subcollection: a name must be a non-empty string without '/', got {name!r}")
        full = self._unique(self._prefix + name, "/")
        child = ParameterCollection(self, full)
        self._children.append(child)
        return child

    def _all(self, kind):
        out = list(getattr(self, kind))
        for c in self._children:
            out.extend(c._all(kind))
        return out

    def parameters_list(self):
        """Every Parameters of this collection and its subcollections, in creation order."""
        if self._is_root:
            return list(self._params)
        mine = set(map(id, self._all("_own_params")))
        return [p for p in self._params if id(p) in mine]

    def lookup_parameters_list(self):
        """Every LookupParameters of this collection and its subcollections

        Returns:
            list of LookupParameters: in creation order
        """
        if self._is_root:
            return list(self._lookups)
        mine = set(map(id, self._all("_own_lookups")))
        return [p for p in self._lookups if id(p) in mine]

    def _index_of(self, p):
        return self._params.index(p)

    # ---- what trainers, io and distributed training use (the whole tree's storage) ----

    def storage(self):
        """(parameters, lookup parameters) of the whole collection tree, in creation order: the
        root's own lists, not copies (trainers update everything from the root). Read only."""
        return self._params, self._lookups

    def is_root(self):
        """Whether this is the root of its tree (not a subcollection)."""
        return self._is_root

    def weight_decay_state(self):
        """The WeightDecay object shared by the collection tree: its `lam` and its lazy factor
        `scale` (stored values times scale are the real values)."""
        return self._wd

    def parameter_count(self):
        """The number of values in all parameters and lookup tables

        Returns:
            int: the count
        """
        return sum(int(np.prod(p.shape())) for p in self.parameters_list()) + \
            sum(int(np.prod(p.shape())) for p in self.lookup_parameters_list())

    def name(self):
        """The collection's name prefix

        Returns:
            str: "/" for a model, "/name/" for a subcollection
        """
        return self._prefix

    def get_weight_decay(self):
        """The weight-decay lambda (shared by the whole collection tree)."""
        return self._wd.lam

    def set_weight_decay_lambda(self, lam):
        """Each trainer update multiplies every parameter by (1 - lam) (lazily: see WeightDecay)."""
        lam = float(lam)
        if not 0 <= lam < 1:
            raise ValueError(f"set_weight_decay_lambda: lambda must be in [0, 1), got {lam}")
        self._wd.lam = lam

    def set_weight_decay(self, lam):
        """Alias of set_weight_decay_lambda (DyNet 2.1)."""
        self.set_weight_decay_lambda(lam)

    @property
    def weight_decay(self):
        """The weight-decay lambda (settable; see set_weight_decay_lambda)"""
        return self._wd.lam

    @property
    def current_weight_decay(self):
        """The lazy weight-decay factor: real values are this times the stored ones (io uses it)."""
        return self._wd.scale

    @weight_decay.setter
    def weight_decay(self, lam):
        self.set_weight_decay_lambda(lam)

    def __repr__(self):
        return f"<ParameterCollection {self._prefix}: {len(self.parameters_list())} parameters, " \
               f"{len(self.lookup_parameters_list())} lookup parameters>"

    # ---- saving and loading (DyNet's text format; the logic is in dynet/io.py) ----

    def save(self, fname, *args, key=None, append=None, components=None, name=None):
        """DyNet 2.1: save(fname, key="", append=False) writes every parameter of the collection,
        its prefix replaced by `key` if given. DyNet 2.0: save(fname, components) writes those
        components (parameters, lookup parameters, builders) and fname.meta to rebuild them; it
        takes no key or append (mixing the two spellings is an error, not a silent choice)."""
        if len(args) > 2:
            raise TypeError(f"ParameterCollection.save: expected save(fname, key, append) or "
                            f"save(fname, components), got {1 + len(args)} positional arguments")
        if args and args[0] is not None and not isinstance(args[0], str):
            if len(args) > 1 or components is not None:
                raise TypeError("ParameterCollection.save: the 2.0 call is save(fname, components)")
            components = args[0]
        else:
            if args:
                key = _first_given("key", key, args[0])
            if len(args) > 1:
                append = _first_given("append", append, args[1])
        if name is not None:
            key = _first_given("key", key, name)
        if components is not None:
            components = list(components)
        if components:
            if key or append:
                raise ValueError(f"ParameterCollection.save: key={key!r}/append={append!r} belong to "
                                 f"DyNet 2.1's save(fname, key, append) of the whole collection; "
                                 f"DyNet 2.0's save(fname, components) takes neither. Use "
                                 f"dy.save(basename, components) or save(fname, key=..., append=...)")
            dyio.save_objects(fname, str(fname) + ".meta", components)
        else:                                   # (2.0: no components means the whole model)
            dyio.save_collection(self, fname, key or "", bool(append))

    def populate(self, fname, key=""):
        """Read the values of all parameters of the collection (those saved under `key` if given),
        matched by order: the collection must hold the same parameters as when it was saved."""
        dyio.populate_collection(self, fname, key)

    def write_to_textfile(self, fname, key="", append=False):
        """DyNet 2.0 name of save(fname, key, append)

        Args:
            fname (str): the file
            key (str): replaces the collection's prefix in the entries' names
            append (bool): add to the file instead of replacing it
        """
        self.save(fname, key, append)

    def populate_from_textfile(self, fname, key=""):
        """DyNet 2.0 name of populate(fname, key)

        Args:
            fname (str): the file
            key (str): read the entries saved under this prefix

        Raises:
            ModelFileError: if the file does not hold this collection's parameters
        """
        self.populate(fname, key)

    def load_param(self, fname, key):
        """A new Parameters in this collection from the entry named `key` (a full name)."""
        return dyio.load_param(self, fname, key)

    def load_lookup_param(self, fname, key):
        """A new LookupParameters in this collection from the entry named `key`."""
        return dyio.load_lookup_param(self, fname, key)

    def save_all(self, fname):
        """DyNet 2.0: save every parameter of the model to `fname`."""
        self.save(fname)

    def load_all(self, fname):
        """DyNet 2.0: populate every parameter of the model from `fname`."""
        self.populate(fname)

    def load(self, fname):
        """DyNet 2.0: the components saved with save(fname, components), added to this model; for a
        file saved without components, populate the whole model and return its parameters."""
        return dyio.model_load(self, fname)

    @staticmethod
    def from_file(fname):
        """DyNet 2.0: a new model holding every parameter of the file, with the file's names."""
        return dyio.model_from_file(fname)


def _first_given(what, by_name, positional):
    if by_name is not None:
        raise TypeError(f"ParameterCollection.save: {what} given twice")
    return positional


Model = ParameterCollection
