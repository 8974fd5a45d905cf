"""Parameter storage: Parameters and LookupParameters, the weight-decay factor, and the graph nodes
that read them (collections are in collection.py, initializers in initializers.py).

Values and gradients are float32 arrays owned by the Parameters object and never replaced (except a
gradient moved by Parameters.use_gradient_storage, which repoints the graph's nodes), so a parameter
node can point straight at them (no copy per use) and a node keeps its parameter alive.
They live on the parameter's device (NumPy arrays on the CPU, CuPy arrays on a GPU); everything here
that touches them goes through that device's array module or its host copies.
"""
cimport cython
from cpython.ref cimport PyObject
from libc.stdlib cimport realloc, free, calloc
from libc.string cimport memcpy
cimport numpy as cnp
import numpy as np

from dynet.core.dim cimport (Dim, make_dim, total_size, batch_size, dim_shape, dim_str)
from dynet.core.graph cimport (Expression, add_node, add_node_noalloc, the_cg, check_live, fwd_scratch,
                               node_in_graph, device_scratch, note_lookup, set_lookup_marker)
from dynet.core.device cimport Device, resolve
from dynet.core.lowering cimport Lowering, Step, Part
import sys
import weakref
from dynet.core.errors import IndexOutOfRange

cnp.import_array()


cdef object _io():
    """dynet.io, imported when first needed (it imports this module)."""
    from dynet import io
    return io


def create_parameters(owner, str name, dim, device=None):
    """A new zero Parameters of shape `dim` held by the collection `owner` (collections call this),
    on the device named `device` (None: the default device)."""
    cdef Device dev = resolve(device, "add_parameters")
    # a size may be 0, as in DyNet (parsers make the layers an option turns off); such a parameter
    # is saved and loaded, and refused in a graph (ParameterStorage.check_usable)
    return new_parameters(owner, name, make_dim(dim, 1, True), dev)


def create_lookup_parameters(owner, str name, int n, dim, device=None):
    """A new zero LookupParameters of `n` rows of shape `dim`, held by the collection `owner`."""
    cdef Device dev = resolve(device, "add_lookup_parameters")
    make_dim((n,), 1, True)              # the row count is checked like a dimension
    return new_lookup(owner, name, n, make_dim(dim, 1, True), dev)


# ---- weight decay ---------------------------------------------------------------------------

cdef class WeightDecay:
    """DyNet's lazy global L2 weight decay. Instead of shrinking every weight at every update, a
    collection keeps one factor `scale` (real value = scale * stored value); a trainer update
    multiplies it by (1 - lam), and once it falls below 0.25 the stored values are multiplied by
    it and it is reset to 1 (Trainer does that)."""

    def __init__(self, lam=0.0):
        self.lam = lam
        self.scale = 1.0

    cdef bint is_identity(self):
        """No decay now nor later (lambda 0, factor 1): graph nodes may use the storage itself."""
        return self.lam == 0 and self.scale == 1


cdef inline void scaled_copy(float* dst, const float* src, Py_ssize_t n, float c) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = src[i] * c


cdef inline void copy_rows(float* dst, const float* table, const int* rows, Py_ssize_t nrows,
                           Py_ssize_t n, float c) noexcept nogil:
    """dst's i-th block of n = row rows[i] of the table times c."""
    cdef Py_ssize_t i
    for i in range(nrows):
        if c == 1:
            memcpy(dst + i * n, table + rows[i] * n, n * sizeof(float))
        else:
            scaled_copy(dst + i * n, table + rows[i] * n, n, c)


# the lowered forward steps (see dynet/core/lowering.pyx)
cdef void scaled_copy_step(const Step* s, const Part* parts) noexcept nogil:
    scaled_copy(s.y, s.x0, s.n0, s.a)


cdef void lookup_step(const Step* s, const Part* parts) noexcept nogil:
    copy_rows(s.y, s.x0, <const int*>s.p, s.n0, s.n1, s.a)


# ---- graph nodes for parameters -------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class ParameterNode(Expression):
    """A parameter in the graph: its value *is* the parameter's storage (no copy), except under
    weight decay, where it is the stored value times the collection's factor as it is at each
    forward (DyNet reads it then: a static graph recomputed after updates sees the new factor)."""
    cdef Parameters param
    cdef bint update           # made by expr(update) (needs_grad also depends on is_updated)

    cpdef str op_name(self):
        return "parameter"

    def storage(self):
        """The Parameters it reads (print_graphviz names its nodes by it)."""
        return self.param

    cdef str describe(self):
        return f"parameter({self.param._name}, {dim_str(&self.d)})"

    cdef int forward_impl(self) except -1:
        if self.val != self.param.vptr:
            scaled_copy(self.val, self.param.vptr, total_size(&self.d), self.param.wd.scale)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Step* s
        if self.val != self.param.vptr:          # (else there is nothing to do)
            s = L.add(scaled_copy_step, total_size(&self.d))
            s.y = self.val
            s.x0 = self.param.vptr
            s.n0 = total_size(&self.d)
            s.a = self.param.wd.scale            # the factor now, as forward_impl reads it
        return 1

    cdef int backward_impl(self) except -1:
        # the gradient is already in the parameter's storage; note that it has one (each backward
        # pass, also when a static graph is run again without a new node)
        self.param.has_grad = True
        return 0

    def generic_forward(self, xp, list xs, out):
        if <size_t>self.param.dev.pointer(out) != <size_t>self.param.vptr:   # (else out is the storage)
            out[...] = self.param.values.reshape(out.shape, order="F") * xp.float32(self.param.wd.scale)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        self.param.has_grad = True


@cython.final
@cython.no_gc
cdef class LookupNode(Expression):
    """Rows of a lookup table (one per batch element), copied into the graph."""
    cdef LookupParameters table
    cdef int* rows        # in the forward pool
    cdef int nrows

    cpdef str op_name(self):
        return "lookup"

    def looked_up(self):
        """(the table, the rows looked up): print_graphviz's lookup_names use it."""
        return self.table, [self.rows[i] for i in range(self.nrows)]

    cdef str describe(self):
        return f"lookup({self.table._name}, {[self.rows[i] for i in range(self.nrows)]})"

    cdef int forward_impl(self) except -1:
        # the factor now, as DyNet reads it at each forward
        copy_rows(self.val, self.table.vptr, self.rows, self.nrows, self.table.row_size, self.table.wd.scale)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Step* s = L.add(lookup_step, self.nrows * self.table.row_size)
        s.y = self.val
        s.x0 = self.table.vptr
        s.p = self.rows                          # (forward pool: fixed until renew_cg)
        s.n0 = self.nrows
        s.n1 = self.table.row_size
        s.a = self.table.wd.scale
        return 1

    cdef int backward_impl(self) except -1:
        return lookup_backward(self)

    cdef object row_indices(self, object xp):
        """The rows as an index array of the table's device (made once, kept in aux)."""
        if self.aux is None:
            self.aux = xp.asarray(np.array([self.rows[i] for i in range(self.nrows)], dtype=np.int64))
        return self.aux

    def generic_forward(self, xp, list xs, out):
        cdef Py_ssize_t n = self.table.row_size
        table = self.table.values.reshape(self.table.n, n)            # row r is table[r]
        rows = table[self.row_indices(xp)]                            # (nrows, n)
        if self.table.wd.scale != 1:
            rows *= xp.float32(self.table.wd.scale)
        out.reshape(n, self.nrows, order="F")[...] = rows.T

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        cdef LookupParameters t = self.table
        cdef Py_ssize_t n = t.row_size
        t.dev.scatter_add(t.grads.reshape(t.n, n), self.row_indices(xp),
                          dout.reshape(n, self.nrows, order="F").T)
        cdef int k
        for k in range(self.nrows):
            t.mark_touched(self.rows[k])

    def set(self, index):
        """Look up another row (a list of rows for lookup_batch, as many as before); the graph
        recomputes from here on next use (DyNet's reusable lookup expressions)."""
        check_live(self, "set")
        rows = list(index) if isinstance(index, (list, tuple, np.ndarray)) else [index]
        if len(rows) != self.nrows:
            raise ValueError(f"set: {len(rows)} indices for a lookup of {self.nrows} rows of "
                             f"{self.table._name}")
        for r in rows:
            self.table._check_row(r, "set")
        cdef int k
        for k in range(self.nrows):
            self.rows[k] = rows[k]
        self.aux = None                      # the generic path's index array of the old rows
        the_cg().invalidate_from(self.index)


@cython.final
@cython.no_gc
cdef class LookupTableNode(Expression):
    """A whole lookup table as one {d, N} expression (dy.parameter(lookup_parameters))."""
    cdef LookupParameters table

    cpdef str op_name(self):
        return "lookup_table"

    def storage(self):
        """The LookupParameters it reads (print_graphviz names its nodes by it)."""
        return self.table

    cdef int forward_impl(self) except -1:
        if self.val != self.table.vptr:
            scaled_copy(self.val, self.table.vptr, total_size(&self.d), self.table.wd.scale)
        return 0

    cdef int backward_impl(self) except -1:
        self.table.all_rows_touched = True    # every row may have a gradient now
        return 0

    def generic_forward(self, xp, list xs, out):
        if <size_t>self.table.dev.pointer(out) != <size_t>self.table.vptr:
            out[...] = self.table.values.reshape(out.shape, order="F") * xp.float32(self.table.wd.scale)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        self.table.all_rows_touched = True


cdef int mark_looked_up_rows(list lookups, int last) except -1:
    """After a backward pass from node `last`: the rows of every lookup up to it count as
    updated, on the loss's path or not (the graph's note_lookup list; see graph.pyx _backward)."""
    cdef Expression e
    cdef LookupNode node
    cdef int k
    for e in lookups:
        if e.index > last or e.version < 0:           # after the loss, or reverted away
            continue
        if type(e) is LookupNode:
            node = <LookupNode>e
            for k in range(node.nrows):
                node.table.mark_touched(node.rows[k])
        else:
            (<LookupTableNode>e).table.all_rows_touched = True
    return 0


set_lookup_marker(mark_looked_up_rows)


cdef int lookup_backward(LookupNode node) except -1:
    """Scatter the node's gradient into the table's gradient rows and remember which rows got one."""
    cdef LookupParameters t = node.table
    cdef Py_ssize_t i, j, n = t.row_size
    cdef float* src
    cdef float* dst
    for i in range(node.nrows):
        src = node.grad + i * n
        dst = t.gptr + node.rows[i] * n
        for j in range(n):
            dst[j] += src[j]
        t.mark_touched(node.rows[i])
    return 0


# ---- Parameters -----------------------------------------------------------------------------

# Where host parameter memory comes from: the parameter pool (dynet/core/parampool.py), whose value
# blocks are shared between forked processes under shared_parameters. A GPU's comes from CuPy.
from dynet.core import parampool as _parampool
from dynet.core import config as _config


# What new_parameters and new_lookup pass to __new__: a storage made any other way (Parameters(),
# or Parameters.__new__(Parameters)) would have no memory, and its methods would crash.
cdef object _MADE_BY_COLLECTION = object()


cdef class ParameterStorage:
    """What Parameters and LookupParameters share: float32 values and gradients (never replaced but
    by use_gradient_storage, so graph nodes can point into them), a name, the owning collection,
    and the update flag."""

    def __cinit__(self, token=None):
        if token is not _MADE_BY_COLLECTION:
            raise TypeError(f"{type(self).__name__} are created by ParameterCollection."
                            f"{'add_lookup_parameters' if isinstance(self, LookupParameters) else 'add_parameters'}")

    cdef int init_storage(self, object owner, str name, Dim d, Py_ssize_t size, Device dev) except -1:
        self.dev = dev
        # (an empty parameter still gets one float of memory: its pointers are valid)
        if dev.on_host:
            self.values = _parampool.value_zeros(max(size, 1))[:size]
            self.grads = _parampool.private_zeros(max(size, 1))[:size]
        else:
            self.values = dev.zeros(max(size, 1))[:size]
            self.grads = dev.zeros(max(size, 1))[:size]
        self.vptr = <float*><size_t>dev.pointer(self.values)
        self.gptr = <float*><size_t>dev.pointer(self.grads)
        self.d = d
        self._name = name
        self._owner = weakref.ref(owner) if owner is not None else None
        self.updated = True
        self.wd = owner.weight_decay_state() if owner is not None else WeightDecay()
        return 0

    cdef int check_usable(self, str op) except -1:
        """An empty parameter (a size of 0) is kept, saved and loaded, but not put in a graph:
        operations assume their arguments have values."""
        if total_size(&self.d) == 0 or (isinstance(self, LookupParameters) and (<LookupParameters>self).n == 0):
            shape = dim_str(&self.d)
            if isinstance(self, LookupParameters):
                shape = f"{(<LookupParameters>self).n} rows of {shape}"
            raise ValueError(f"{op}: {self._name} is empty ({shape}): a parameter with a size of 0 "
                             f"cannot be used in a computation")
        return 0

    def name(self):
        """The parameter's full name in its collection

        Returns:
            str: e.g. "/_0" or "/mlp/W"
        """
        return self._name

    def is_updated(self):
        """Whether trainers update this parameter

        Returns:
            bool: see set_updated
        """
        return self.updated

    def set_updated(self, b):
        """Whether trainers update this parameter (and whether its expressions get gradients)."""
        self.updated = bool(b)

    def zero(self):
        """Set every value to 0"""
        self.values.fill(0)

    def device(self):
        """The name of the device the values live on ('CPU', 'GPU:0')."""
        return self.dev.name

    def host_values(self):
        """The stored values as a 1-D float32 NumPy array, column-major (the array itself on the
        CPU, a copy from a GPU): what saving reads. Read only."""
        return self.dev.to_host(self.values)

    def host_grads(self):
        """The gradients, as host_values."""
        return self.dev.to_host(self.grads)

    def scale(self, s):
        """Multiply every value by s

        Args:
            s (float): the factor
        """
        self.values *= np.float32(s)

    def scale_gradient(self, s):
        """Multiply the accumulated gradient by s

        Args:
            s (float): the factor
        """
        self.grads *= np.float32(s)

    # ---- saving and loading (DyNet's text format; the logic is in dynet/io.py) ----

    def save(self, fname, key="", append=False):
        """Write this parameter to `fname` under `key` (default: its own name)."""
        dyio = _io()
        dyio.save_parameters(fname, self, key, append, type(self).__name__ + ".save")

    def populate(self, fname, key=""):
        """Read the values from the entry named `key` (default: this parameter's own name)."""
        dyio = _io()
        dyio.populate_parameter(self, fname, key)

    def write_to_textfile(self, fname, key="", append=False):
        """DyNet 2.0 name of save(fname, key, append)

        Args:
            fname (str): the file
            key (str): the entry's name (default: the parameter's own)
            append (bool): add to the file instead of replacing it
        """
        self.save(fname, key, append)

    def populate_from_textfile(self, fname, key=""):
        """DyNet 2.0 name of populate(fname, key)

        Args:
            fname (str): the file
            key (str): the entry's name (default: the parameter's own)

        Raises:
            ModelFileError: if the file or entry is missing or malformed
        """
        self.populate(fname, key)

    def collection(self):
        """The ParameterCollection that holds this parameter (None for a detached one, or once the
        collection is gone)."""
        return self._owner() if self._owner is not None else None

    def set_name(self, name):
        """Rename (loading gives a parameter the name it had in the file)."""
        self._name = str(name)


cdef class Parameters(ParameterStorage):
    """Parameters()\n--\n\n
    A trainable tensor of a ParameterCollection."""

    cdef Expression node(self, bint update):
        cdef int u = 1 if update else 0
        cdef Expression cached = node_in_graph(self._cached_node[u], self._cached_index[u])
        cdef ParameterNode pn
        if cached is not None and type(cached) is ParameterNode:
            pn = <ParameterNode>cached
            if pn.param is self and pn.update == update:
                return cached
        self.check_usable("parameter")
        cdef ParameterNode node = ParameterNode.__new__(ParameterNode)
        node.param = self
        node.update = update
        # under weight decay the value is a scaled copy; the gradient still goes to the storage's
        # grad unscaled (it is d loss / d real value, which is what the trainers expect)
        node.dev = self.dev
        node.val = self.vptr if self.wd.is_identity() else device_scratch(self.dev, total_size(&self.d))
        node.grad = NULL
        node.external_grad = True
        node.needs_grad = update and self.updated
        add_node_noalloc(node, (), self.d)
        if node.needs_grad:
            node.grad = self.gptr
        self._cached_node[u] = <void*>node
        self._cached_index[u] = node.index
        return node

    def expr(self, update=True):
        """This parameter as an Expression of the current graph (made once per graph)."""
        return self.node(update)

    def as_array(self):
        """The stored values as a numpy array (a copy) shaped like the parameter. Under weight decay
        these are, as in DyNet, the values before the collection's pending decay factor (the
        expression's value is this times the factor, until the trainer folds the factor in)."""
        return np.asarray(self.host_values(), dtype=np.float64).reshape(dim_shape(&self.d), order="F")

    def grad_as_array(self):
        """The accumulated gradient as a numpy array (a copy)

        Returns:
            numpy.ndarray: shaped like the parameter
        """
        return np.asarray(self.host_grads(), dtype=np.float64).reshape(dim_shape(&self.d), order="F")

    def shape(self):
        """The parameter's dimensions

        Returns:
            tuple of int: e.g. (8, 2)
        """
        return dim_shape(&self.d)

    def dim(self):
        """The parameter's dimensions and batch size (always 1), as DyNet's dim()

        Returns:
            tuple: (shape, 1)
        """
        return (dim_shape(&self.d), 1)

    def get_index(self):
        """The parameter's position in its model

        Returns:
            int: the index
        """
        owner = self.collection()
        return owner._index_of(self) if owner is not None else 0

    def clip_inplace(self, left, right):
        """Clip the values (the real ones: under weight decay the stored values times the
        collection's factor, as in DyNet) to [left, right]."""
        if left > right:
            raise ValueError(f"clip_inplace: left {left} > right {right}")
        c = self.wd.scale
        self.dev.xp.clip(self.values, left / c, right / c, out=self.values)

    def set_value(self, arr):
        """Replace the values with those of an array of the parameter's shape."""
        self.dev.assign(self.values, _as_column_major(arr, dim_shape(&self.d), f"set_value of {self._name}"))

    def load_array(self, arr):
        """Replace the values (same as set_value)

        Args:
            arr (numpy.ndarray): an array of the parameter's shape

        Raises:
            ValueError: if the shape differs
        """
        self.set_value(arr)

    # DyNet 2.1 lets a Parameters object stand where an Expression is expected.
    def npvalue(self, recalculate=False):
        """The parameter's expression's value as a numpy array (DyNet 2.1: Parameters used as an Expression)

        Args:
            recalculate (bool): recompute the graph first

        Returns:
            numpy.ndarray: the value
        """
        return self.expr().npvalue(recalculate)

    def value(self, recalculate=False):
        """The parameter's expression's value, as Expression.value (DyNet 2.1: Parameters used as an Expression)

        Args:
            recalculate (bool): recompute the graph first

        Returns:
            the value
        """
        return self.expr().value(recalculate)

    def scalar_value(self, recalculate=False):
        """The parameter's expression's value as a number (DyNet 2.1: Parameters used as an Expression)

        Args:
            recalculate (bool): recompute the graph first

        Returns:
            float: the value
        """
        return self.expr().scalar_value(recalculate)

    def vec_value(self, recalculate=False):
        """The parameter's expression's value as a flat list (DyNet 2.1: Parameters used as an Expression)

        Args:
            recalculate (bool): recompute the graph first

        Returns:
            list of float: the values
        """
        return self.expr().vec_value(recalculate)

    def tensor_value(self, recalculate=False):
        """The parameter's expression's value as a Tensor (DyNet 2.1: Parameters used as an Expression)

        Args:
            recalculate (bool): recompute the graph first

        Returns:
            Tensor: the value
        """
        return self.expr().tensor_value(recalculate)

    def forward(self, recalculate=False):
        """Compute the graph up to this parameter's expression

        Args:
            recalculate (bool): recompute from the start
        """
        return self.expr().forward(recalculate)

    def backward(self, full=False):
        """Backpropagate from this parameter's expression (it must be a scalar)

        Args:
            full (bool): compute gradients of every node, not only those leading to parameters

        Raises:
            ValueError: if the parameter is not a scalar
        """
        return self.expr().backward(full)

    def gradient(self):
        """The accumulated gradient (same as grad_as_array)

        Returns:
            numpy.ndarray: shaped like the parameter
        """
        return self.grad_as_array()

    def __add__(self, other):
        return self.node(True) + other

    def __radd__(self, other):
        return other + self.node(True)

    def __sub__(self, other):
        return self.node(True) - other

    def __rsub__(self, other):
        return other - self.node(True)

    def __mul__(self, other):
        return self.node(True) * other

    def __rmul__(self, other):
        return other * self.node(True)

    def __truediv__(self, other):
        return self.node(True) / other

    def __neg__(self):
        return -self.node(True)

    def __repr__(self):
        return f"<Parameters {self._name} {dim_str(&self.d)}>"

    def has_gradient(self):
        """Whether a backward pass wrote a gradient since the last update (or a load set one)."""
        return self.has_grad

    def mark_gradient(self):
        """Note that `grads` was written outside a backward pass (e.g. averaged across processes by
        dynet.distributed), so that the next update() applies it."""
        self.has_grad = True

    def use_gradient_storage(self, storage):
        """Keep the gradient in `storage` from now on: a writable, contiguous float32 NumPy array of
        as many values as the parameter (e.g. a slice of shared memory that dynet.distributed sums
        in place). Its contents become the current gradient; backward passes (also of the current
        graph's expressions of this parameter), updates and zeroing use it from then on. The
        parameter keeps a reference to `storage`; memory it does not own (a buffer of another
        library) must stay valid until the parameter is given other storage. Host parameters only.

        Returns:
            numpy.ndarray: the previous gradient array (no longer used by the parameter)
        """
        if not self.dev.on_host:
            raise ValueError(f"use_gradient_storage: {self._name} lives on {self.dev.name}; only a "
                             f"host parameter's gradient can be moved")
        if (not isinstance(storage, np.ndarray) or storage.dtype != np.float32 or storage.ndim != 1
                or not storage.flags.c_contiguous or not storage.flags.writeable
                or storage.size != self.grads.size):
            what = type(storage).__name__
            if isinstance(storage, np.ndarray):
                what = (f"a {'' if storage.flags.writeable else 'read-only '}"
                        f"{'' if storage.flags.c_contiguous else 'non-contiguous '}"
                        f"{storage.dtype} array of shape {storage.shape}")
            raise ValueError(f"use_gradient_storage: {self._name} needs a writable contiguous 1-D "
                             f"float32 array of {self.grads.size} values, got {what}")
        old = self.grads
        storage[...] = old
        cdef float* new_ptr = <float*>cnp.PyArray_DATA(storage)
        cdef Expression cached
        cdef int u
        for u in range(2):      # this graph's expressions accumulate into the new storage
            cached = node_in_graph(self._cached_node[u], self._cached_index[u])
            if cached is not None and type(cached) is ParameterNode and \
                    (<ParameterNode>cached).param is self and cached.grad == self.gptr:
                cached.grad = new_ptr
        self.grads = storage
        self.gptr = new_ptr
        return old

    def load_state(self, values, grads):
        """Set values and gradients (None: zero) in place, as loading does (host arrays)."""
        self.dev.assign(self.values, values)
        if grads is None:
            self.grads.fill(0)
            self.has_grad = False
        else:
            self.dev.assign(self.grads, grads)
            self.has_grad = bool(np.any(grads))


cdef object _as_column_major(object arr, tuple shape, str what):
    a = np.asarray(arr, dtype=np.float32)
    if a.shape != shape:
        if a.size == int(np.prod(shape)) and (a.ndim <= 1 or len(shape) <= 1):
            a = a.reshape(shape, order="F")
        else:
            raise ValueError(f"{what}: array of shape {a.shape} for a parameter of shape {shape}")
    return np.ravel(a, order="F")


cdef Parameters new_parameters(object owner, str name, Dim d, Device dev):
    cdef Parameters p = Parameters.__new__(Parameters, _MADE_BY_COLLECTION)
    p.init_storage(owner, name, d, total_size(&d), dev)
    return p


# ---- LookupParameters -----------------------------------------------------------------------

cdef class LookupParameters(ParameterStorage):
    """LookupParameters()\n--\n\n
    A table of N embeddings; `lookup` copies rows into the graph, and only the rows that got
    gradients are updated by sparse trainers."""

    def __dealloc__(self):
        free(self.touched)
        free(self.touched_list)

    cdef int mark_touched(self, int row) except -1:
        if self.touched[row]:
            return 0
        self.touched[row] = 1
        if self.n_touched == self.touched_cap:
            self.touched_cap = max(16, 2 * self.touched_cap)
            self.touched_list = <int*>realloc(self.touched_list, self.touched_cap * sizeof(int))
            if self.touched_list == NULL:
                raise MemoryError()
        self.touched_list[self.n_touched] = row
        self.n_touched += 1
        return 0

    def touched_rows(self):
        """Rows that received gradients since the last clear (all rows after a dense use)."""
        if self.all_rows_touched:
            return np.arange(self.n, dtype=np.int64)
        return np.array([self.touched_list[i] for i in range(self.n_touched)], dtype=np.int64)

    def mark_rows_touched(self, rows=None):
        """Note that these rows of `grads` were written outside a backward pass (e.g. averaged across
        processes by dynet.distributed), so that a sparse update() applies them; None: every row
        (a dense gradient)."""
        if rows is None:
            self.all_rows_touched = True
            return
        cdef cnp.int64_t[:] idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        cdef Py_ssize_t i
        for i in range(idx.shape[0]):
            if idx[i] < 0 or idx[i] >= self.n:
                raise IndexError(f"mark_rows_touched: row {idx[i]} is out of range for lookup "
                                 f"parameters {self._name} with {self.n} rows")
        for i in range(idx.shape[0]):
            self.mark_touched(<int>idx[i])

    def clear_touched(self):
        """Forget which rows received gradients (trainers do it after an update)"""
        cdef int i
        for i in range(self.n_touched):
            self.touched[self.touched_list[i]] = 0
        self.n_touched = 0
        self.all_rows_touched = False

    cdef int _check_row(self, object index, str op) except -1:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{op}: index must be an integer, got {type(index).__name__}")
        if index < 0 or index >= self.n:
            raise IndexOutOfRange(f"{op}: index {index} is out of range for lookup parameters "
                             f"{self._name} with {self.n} rows")
        return 0

    cdef Expression lookup_rows(self, object indices, bint update, bint batched, str op):
        self.check_usable(op)
        if batched:
            try:
                indices = list(indices)
            except TypeError:
                raise TypeError(f"{op}: indices must be a list of integers, got {type(indices).__name__}")
            if not indices:
                raise ValueError(f"{op}: the list of indices is empty")
        else:
            indices = [indices]
        for i in indices:
            self._check_row(i, op)
        cdef LookupNode node = LookupNode.__new__(LookupNode)
        node.table = self
        node.dev = self.dev
        node.nrows = len(indices)
        node.rows = <int*>fwd_scratch(node.nrows)
        cdef int k
        for k in range(node.nrows):
            node.rows[k] = indices[k]
        node.needs_grad = update and self.updated
        cdef Dim d = self.d
        d.bd = node.nrows
        add_node(node, (), d)
        if node.needs_grad:
            note_lookup(node)
        return node

    def __getitem__(self, i):
        return self.lookup_rows(i, True, False, "lookup")

    def batch(self, indices):
        """A minibatch of embeddings: batch element i is row indices[i]

        Args:
            indices (list of int): the rows

        Returns:
            dynet.Expression: the embeddings, a batch of len(indices)

        Raises:
            IndexError: if an index is out of range
            ValueError: if indices is empty
        """
        return self.lookup_rows(indices, True, True, "lookup_batch")

    def expr(self, update=True):
        """The whole table as a {d, N} expression (DyNet: dy.parameter(lookup_parameters))."""
        self.check_usable("parameter")
        if self.d.nd != 1:
            raise ValueError(f"expr: only tables of vectors can be used whole, {self._name} has rows "
                             f"{dim_str(&self.d)}")
        cdef LookupTableNode node = LookupTableNode.__new__(LookupTableNode)
        node.table = self
        node.dev = self.dev
        node.val = self.vptr if self.wd.is_identity() else device_scratch(self.dev, self.row_size * self.n)
        node.external_grad = True
        node.needs_grad = update and self.updated
        cdef Dim d = self.d
        d.d[1] = self.n
        d.nd = 2
        add_node_noalloc(node, (), d)
        if node.needs_grad:
            node.grad = self.gptr
            note_lookup(node)
        return node

    def as_array(self):
        """Shape (N,) + embedding shape, each embedding in its own row (stored values: see
        Parameters.as_array about weight decay)."""
        shape = dim_shape(&self.d)
        flat = np.asarray(self.host_values(), dtype=np.float64)
        return flat.reshape((self.n,) + shape[::-1]).transpose([0] + list(range(len(shape), 0, -1)))

    def grad_as_array(self):
        """The accumulated gradients as a numpy array (a copy)

        Returns:
            numpy.ndarray: shape (N,) + embedding shape
        """
        shape = dim_shape(&self.d)
        flat = np.asarray(self.host_grads(), dtype=np.float64)
        return flat.reshape((self.n,) + shape[::-1]).transpose([0] + list(range(len(shape), 0, -1)))

    def row_as_array(self, row):
        """One embedding as a numpy array

        Args:
            row (int): the row

        Returns:
            numpy.ndarray: the embedding

        Raises:
            IndexError: if row is out of range
        """
        self._check_row(row, "row_as_array")
        return self.as_array()[row]

    def rows_as_array(self, rows):
        """Several embeddings as a numpy array

        Args:
            rows (list of int): the rows

        Returns:
            numpy.ndarray: shape (len(rows),) + embedding shape

        Raises:
            IndexError: if a row is out of range
        """
        for r in rows:
            self._check_row(r, "rows_as_array")
        return self.as_array()[list(rows)]

    def row_grad_as_array(self, row):
        """The gradient of one embedding

        Args:
            row (int): the row

        Returns:
            numpy.ndarray: the gradient

        Raises:
            IndexError: if row is out of range
        """
        self._check_row(row, "row_grad_as_array")
        return self.grad_as_array()[row]

    def rows_grad_as_array(self, rows):
        """The gradients of several embeddings

        Args:
            rows (list of int): the rows

        Returns:
            numpy.ndarray: shape (len(rows),) + embedding shape

        Raises:
            IndexError: if a row is out of range
        """
        for r in rows:
            self._check_row(r, "rows_grad_as_array")
        return self.grad_as_array()[list(rows)]

    def init_row(self, row, values):
        """Set one embedding."""
        self._check_row(row, "init_row")
        shape = dim_shape(&self.d)
        self.dev.assign(self.values[row * self.row_size:(row + 1) * self.row_size], _as_column_major(
            values, shape, f"init_row of {self._name}"))

    def init_from_array(self, arr):
        """Set the whole table from an array of shape (N,) + embedding shape."""
        a = np.asarray(arr, dtype=np.float32)
        want = (self.n,) + dim_shape(&self.d)
        if a.shape != want:
            raise ValueError(f"init_from_array: array of shape {a.shape} for lookup parameters "
                             f"{self._name} of shape {want}")
        self.dev.assign(self.values, a.transpose([0] + list(range(a.ndim - 1, 0, -1))).ravel())

    def shape(self):
        """The table's dimensions

        Returns:
            tuple of int: (N,) + embedding shape
        """
        return (self.n,) + dim_shape(&self.d)

    def __len__(self):
        """The number of rows (embeddings)."""
        return self.n

    def dim(self):
        """The table's dimensions and batch size (always 1), as DyNet's dim()

        Returns:
            tuple: ((N,) + embedding shape, 1)
        """
        return ((self.n,) + dim_shape(&self.d), 1)

    def __repr__(self):
        return f"<LookupParameters {self._name} {self.n} x {dim_str(&self.d)}>"

    def has_gradient(self):
        """Whether any row got a gradient since the last update (or a load set one)."""
        return self.all_rows_touched or self.n_touched > 0

    def load_state(self, values, grads):
        """Set values and gradients (None: zero) in place; rows with a loaded gradient count as
        touched, so a sparse update sees them."""
        self.dev.assign(self.values, values)
        self.clear_touched()
        if grads is None:
            self.grads.fill(0)
            return
        self.dev.assign(self.grads, grads)
        cdef cnp.int64_t[:] rows = np.flatnonzero(
            np.asarray(grads).reshape(self.n, self.row_size).any(axis=1)).astype(np.int64)
        cdef Py_ssize_t i
        for i in range(rows.shape[0]):
            self.mark_touched(<int>rows[i])


cdef LookupParameters new_lookup(object owner, str name, int n, Dim d, Device dev):
    cdef LookupParameters p = LookupParameters.__new__(LookupParameters, _MADE_BY_COLLECTION)
    cdef Py_ssize_t size = batch_size(&d)
    p.init_storage(owner, name, d, size * n, dev)
    p.n = n
    p.row_size = size
    p.touched = <unsigned char*>calloc(max(n, 1), 1)
    if p.touched == NULL:
        raise MemoryError()
    return p




# ---- the functions that put parameters in the graph -----------------------------------------

def _parameters_of(*params, update=True):
    """dy.parameter's general case: several parameters, lookup tables, keyword arguments."""
    if not params:
        raise TypeError("parameter: needs at least one Parameters or LookupParameters")
    out = []
    for p in params:
        if isinstance(p, Parameters):
            out.append((<Parameters>p).node(update))
        elif isinstance(p, LookupParameters):
            # DyNet 2.1 deprecated dy.parameter and returns the table itself, which stands for its
            # {d, N} expression in operations while p[i] stays a lookup (cmu-ner's CRF reads
            # transition rows so); 2.0 returns the table's expression, where [i] is a row of it
            out.append(p if update and _config.api_2_1() else p.expr(update))
        else:
            raise TypeError(f"parameter: expected Parameters or LookupParameters, got {type(p).__name__}")
    return out[0] if len(out) == 1 else tuple(out)


def const_parameter(*params):
    """Like parameter(), but not updated by training."""
    return _parameters_of(*params, update=False)


# dy.parameter(W) is called for every parameter of every example's graph. A Cython def with *args is
# called through tp_call, which packs a tuple and goes through the function object's generic call
# (about 200 instructions, ~3% of the XOR tutorial's step); as a builtin with the vectorcall
# convention the common one-Parameters call is a type check and the node.
cdef extern from *:
    """
    static PyObject* (*dn_parameter_impl)(PyObject**, Py_ssize_t, PyObject*) = NULL;
    static PyObject* dn_parameter_entry(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                        PyObject* kwnames) {
        return dn_parameter_impl((PyObject**)args, nargs, kwnames);
    }
    static PyMethodDef dn_parameter_def = {
        "parameter", (PyCFunction)(void(*)(void))dn_parameter_entry, METH_FASTCALL | METH_KEYWORDS,
        "parameter($module, /, *params, update=True)\\n--\\n\\n"
        "The expression of one parameter (or a tuple of them): DyNet 2.0's dy.parameter(p)."};
    static PyObject* dn_parameter_function(PyObject* module, PyObject* module_name) {
        return PyCFunction_NewEx(&dn_parameter_def, module, module_name);
    }
    """
    object (*dn_parameter_impl)(PyObject**, Py_ssize_t, PyObject*)
    object dn_parameter_function(object module, object module_name)


cdef object _parameter_vectorcall(PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if nargs == 1 and kwnames == NULL and type(<object>args[0]) is Parameters:
        return (<Parameters>args[0]).node(True)
    cdef tuple params = tuple([<object>args[i] for i in range(nargs)])
    update = True
    if kwnames != NULL:
        for i in range(len(<tuple>kwnames)):
            if (<tuple>kwnames)[i] != "update":
                raise TypeError(f"parameter() got an unexpected keyword argument '{(<tuple>kwnames)[i]}'")
            update = <object>args[nargs + i]
    return _parameters_of(*params, update=update)


dn_parameter_impl = _parameter_vectorcall
parameter = dn_parameter_function(sys.modules[__name__], __name__)


cdef inline LookupParameters lookup_table(object p, str op):
    """p as a lookup table, else a TypeError naming the call (an untyped argument: Cython's typed
    argument lets None through, and a method called on None crashes)."""
    if not isinstance(p, LookupParameters):
        raise TypeError(f"{op}: expected LookupParameters, got {type(p).__name__}")
    return <LookupParameters>p


def lookup(p, index=0, update=True):
    """The embedding at `index` of a lookup table."""
    return lookup_table(p, "lookup").lookup_rows(index, update, False, "lookup")


def lookup_batch(p, indices, update=True):
    """A minibatch of embeddings: batch element i is row indices[i]."""
    return lookup_table(p, "lookup_batch").lookup_rows(indices, update, True, "lookup_batch")


def const_lookup(p, index=0):
    """An embedding of a lookup table that training does not update

    Args:
        p (LookupParameters): the table
        index (int): the row

    Returns:
        dynet.Expression: the embedding

    Raises:
        IndexError: if index is out of range
    """
    return lookup_table(p, "const_lookup").lookup_rows(index, False, False, "const_lookup")
