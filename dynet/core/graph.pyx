"""The computation graph: node registration, lazy incremental forward, backward, Expression's API.

There is one graph at a time per thread (as in DyNet, where there is one per process; see "Threads"
in docs/architecture.md). `renew_cg` gives it a new version, unique across all threads' graphs, and
releases every node's memory at once; an Expression remembers the version it was made in, so a stale
Expression (or one from another thread's graph) is caught before its memory could be read.
"""
cimport cython
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport PyObject, Py_INCREF
from cpython.pythread cimport (PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, WAIT_LOCK,
                               PyThread_get_thread_ident)
from libc.string cimport memset
from libc.stdlib cimport calloc, free
from libc.math cimport isfinite

import numpy as np
cimport numpy as cnp

from dynet.core.dim cimport (Dim, batch_size, total_size, dim_shape, dim_str)
from dynet.core.memory cimport Arena, ThreadState, this_thread
from dynet.core.device cimport Device, cpu_device, default_device_c
from dynet.core.lowering cimport Lowering
from dynet.core import device as _device
from dynet.core.tensor import Tensor
import os
from dynet.kernels import generic
from dynet.kernels.cpu cimport flush_subnormals, restore_float_mode

cnp.import_array()

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object op)
    ctypedef PyObject* (*allocfunc)(void* t, Py_ssize_t nitems)
    ctypedef void (*freefunc)(void* p)
    ctypedef struct NodeType "PyTypeObject":
        Py_ssize_t tp_basicsize
        Py_ssize_t tp_itemsize
        unsigned long tp_flags
        allocfunc tp_alloc
        freefunc tp_free
    PyObject* PyObject_Init(PyObject* op, void* tp)
    void* PyObject_Malloc(size_t n)
    void PyObject_Free(void* p)
    PyObject* PyType_GenericAlloc(void* t, Py_ssize_t nitems)
    PyObject* PyErr_NoMemory()
    unsigned long Py_TPFLAGS_HAVE_GC
    unsigned long Py_TPFLAGS_HEAPTYPE

# the loss node of the last backward pass in the current graph (-1: none yet): gradients exist for
# nodes up to it (kept here, not in the graph's struct, as there is one graph)
cdef int _backward_from = -1


# Not in the cyclic GC: a node refers only to older nodes (its arguments) and to parameters, which
# refer to their cached node by borrowed pointer, so nodes form no reference cycles; tracking them
# cost every node a GC header, a track and an untrack, and set off collections that walk the graph.
@cython.no_gc
cdef class Expression:
    """Expression()\n--\n\n
    A node of the computation graph, and the user's handle on its value and gradient."""

    # NumPy's operators leave an expression to its own: np.float64(2) * e is e.__rmul__ (a scalar
    # times e), where NumPy took e for a sequence of expressions and failed. Otherwise NumPy sees
    # an expression as DyNet's: an object (no __len__, no __array__), so np.array([e1, e2]) is an
    # array of the two expressions, which DyNet code (bilstm-aux) builds and concatenates.
    __array_ufunc__ = None

    cdef int forward_impl(self) except -1:
        raise RuntimeError(f"internal error: {type(self).__name__} has no forward")

    cdef int backward_impl(self) except -1:
        raise RuntimeError(f"internal error: {type(self).__name__} has no backward")

    cdef int lower(self, Lowering L) except -1:
        return 0                                 # not lowered: forward_impl runs with the GIL

    # The generic implementation, on arrays of a device's array module `xp` (NumPy or CuPy): what
    # the generic CPU backend and the GPU run. Every array is a view of graph memory shaped
    # (dims..., batch), column-major (Fortran order). `generic_forward` fills `out` from the
    # arguments' values `xs`; `generic_backward` adds d(loss)/d(xs[i]) into `dxi` (called only for
    # arguments that have a gradient). Every node type overrides both. A leaf that needs a gradient
    # (parameters, lookups) has no argument to pass it to: its generic_backward is called once with
    # xs == [], i == -1 and dxi None, as its backward_impl is.
    def generic_forward(self, xp, list xs, out):
        """The node's value computed on arrays (the generic implementation)

        Used by the generic CPU backend and the GPU. Every array is a column-major view shaped (dims..., batch).

        Args:
            xp (module): the array module, NumPy or CuPy
            xs (list): the arguments' values
            out (array): where the value goes
        """
        raise RuntimeError(f"internal error: {type(self).__name__} has no generic forward")

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        """Add d(loss)/d(argument i) on arrays (the generic implementation)

        Args:
            xp (module): the array module, NumPy or CuPy
            xs (list): the arguments' values
            out (array): this node's value
            dout (array): d(loss)/d(this node)
            i (int): which argument
            dxi (array): its gradient, added into
        """
        raise RuntimeError(f"internal error: {type(self).__name__} has no generic backward")

    cpdef str op_name(self):
        """The name of the node's operation (as print_graphviz shows it)

        Returns:
            str: e.g. "tanh"
        """
        return type(self).__name__

    cdef str describe(self):
        """One line for print_text_graphviz: the op applied to its arguments' names."""
        cdef Expression a
        return self.op_name() + "(" + ", ".join([f"v{a.index}" for a in self.args]) + ")"

    # ---- the user's API -------------------------------------------------------------------
    cdef int _live(self, str what) except -1:
        return check_live(self, what)

    cdef int _ensure_value(self, bint recalculate) except -1:
        self._live("value")
        cdef ComputationGraph cg = the_cg()
        if _viz:
            return 0                             # --dynet-viz: graphs are drawn, never computed
        if recalculate:
            cg.invalidate_from(0)
        cg.forward_to(self.index)
        return 0

    def dim(self):
        """((dims of one batch element), batch size), as in DyNet."""
        self._live("dim")
        return (dim_shape(&self.d), self.d.bd)

    def forward(self, recalculate=False):
        """Run the (incremental) forward pass up to this expression."""
        self._ensure_value(recalculate)

    def recalculate(self):
        """Recompute the whole graph up to this expression (for re-set inputs) and return its value."""
        self._ensure_value(True)
        return self.value()

    cdef object _as_numpy(self, float* data):
        cdef Py_ssize_t n = total_size(&self.d)
        cdef cnp.npy_intp dims[8]
        cdef int k, nd = self.d.nd
        if not self.dev.on_host and data != NULL:    # a copy from the device to the host
            shape = dim_shape(&self.d)
            if self.d.bd > 1:
                shape = shape + (self.d.bd,)
            host = self.dev.to_host(self.dev.flat_view(data, n))
            return host.astype(np.float64).reshape(shape, order="F")
        for k in range(nd):
            dims[k] = self.d.d[k]
        if self.d.bd > 1:
            dims[nd] = self.d.bd
            nd += 1
        # (the C call: np.empty with keywords costs more than the copy for a small value)
        cdef cnp.ndarray arr = cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT64, 1)
        out = arr
        cdef double* dst = <double*>cnp.PyArray_DATA(arr)
        cdef Py_ssize_t i
        if data == NULL:
            memset(dst, 0, n * sizeof(double))
        else:
            for i in range(n):
                dst[i] = data[i]
        return out

    def npvalue(self, recalculate=False):
        """The value as a numpy array (column-major); a batched value has the batch as its last axis."""
        self._ensure_value(recalculate)
        if _viz:
            return None
        return self._as_numpy(self.val)

    def scalar_value(self, recalculate=False):
        """The value of a one-element expression as a float."""
        self._ensure_value(recalculate)
        if _viz:
            return 0.0
        if total_size(&self.d) != 1:
            raise ValueError(f"scalar_value: expression {dim_str(&self.d)} is not a scalar")
        if not self.dev.on_host:
            return float(self._as_numpy(self.val).ravel()[0])
        return float(self.val[0])

    def vec_value(self, recalculate=False):
        """All values (every batch element), flattened in column-major order, as a list."""
        self._ensure_value(recalculate)
        if _viz:
            return []
        cdef Py_ssize_t i, n = total_size(&self.d)
        if not self.dev.on_host:
            return [float(v) for v in self._as_numpy(self.val).ravel(order="F")]
        return [<double>self.val[i] for i in range(n)]

    def value(self, recalculate=False):
        """A float for a scalar, a list for a vector (or batch of them), else a numpy array."""
        self._ensure_value(recalculate)
        if _viz:
            return None
        if self.d.nd <= 1:
            if total_size(&self.d) == 1:
                return self.scalar_value()
            return self.vec_value()
        return self._as_numpy(self.val)

    def tensor_value(self, recalculate=False):
        """The value as a Tensor (a copy that outlives the graph)."""
        if _viz:
            return None
        return Tensor(self.npvalue(recalculate), self.d.bd > 1)

    def gradient(self):
        """d(loss)/d(this) from the last backward pass, shaped like npvalue(). As in DyNet, a
        RuntimeError where no backward pass of this graph covered the node (none yet, or the node
        came after its loss); a node the pass did not need has a zero gradient."""
        self._live("gradient")
        if self.index > _backward_from:
            raise RuntimeError(f"gradient: requested the gradient of node v{self.index}, but "
                               + ("no backward pass was run in this graph" if _backward_from < 0 else
                                  f"the backward pass was computed from node v{_backward_from}"))
        return self._as_numpy(self.grad)

    def device(self):
        """The name of the device this expression lives on ('CPU', 'GPU:0')."""
        self._live("device")
        return self.dev.name

    def backward(self, full=False):
        """Backpropagate from this (scalar per batch element) expression; batch gradients are summed."""
        self._live("backward")
        check_not_viz("backward")
        the_cg().run_backward(self, full)

    def __repr__(self):
        return f"expression {self.index}/{self.version}"

    def __str__(self):
        return self.__repr__()

    @property
    def vindex(self):
        """The node's index in its computation graph (the N of "vN" in print_graphviz)

        Returns:
            int: the index
        """
        return self.index

    @property
    def cg_version(self):
        """The version of the graph this expression belongs to

        Returns:
            int: the version (see dy.cg_version)
        """
        return self.version

    # Operators: implemented by the node modules, which register them below (they import us).
    # The arithmetic operators are C function pointers set by dynet/nodes/operators.pyx (which
    # imports this module): a direct C call keeps `W * x + b` as cheap as dy.tanh(x).
    def __add__(self, other):
        return _op_add(self, other)

    def __radd__(self, other):
        return _op_add(other, self)

    def __sub__(self, other):
        return _op_sub(self, other)

    def __rsub__(self, other):
        return _op_sub(other, self)

    def __mul__(self, other):
        return _op_mul(self, other)

    def __rmul__(self, other):
        return _op_mul(other, self)

    def __truediv__(self, other):
        return _op_div(self, other)

    def __rtruediv__(self, other):
        return _op_div(other, self)

    def __neg__(self):
        return _op_neg(self)

    def __pos__(self):
        return self

    def __getitem__(self, key):
        return _operators["getitem"](self, key)

    def __pow__(self, other, mod):
        return _operators["pow"](self, other)


@cython.no_gc
cdef class Mirrored(Expression):
    """A node that only moves values around (pick, transpose, concatenate, filter1d, ...): its
    backward pass is the same index walk as its forward pass with the copy reversed (adding
    gradients back), so subclasses write that walk once, as `_run(backward)`, handling arguments
    whose grad is NULL."""

    cdef int _run(self, bint backward) except -1:
        raise RuntimeError(f"internal error: {type(self).__name__} has no _run")

    cdef int forward_impl(self) except -1:
        return self._run(False)

    cdef int backward_impl(self) except -1:
        cdef Expression a
        for a in self.args:
            if a.grad != NULL:
                return self._run(True)
        return 0

    # The generic implementation of a selection: a subclass returns its value as an indexing of
    # the arguments, `generic_select(xp, xs, shape)`, and the backward pass is derived from it
    # (the same function run on the arguments' positions says where each value came from).
    def generic_select(self, xp, list xs, shape):
        raise RuntimeError(f"internal error: {type(self).__name__} has no generic_select")

    def generic_forward(self, xp, list xs, out):
        generic.select_forward(self.generic_select, xp, xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        if self.aux is None:
            self.aux = {}                       # the position maps, one per argument
        generic.select_backward(self.generic_select, self.aux, xp, xs, out, dout, i, dxi)


cdef completion_hook _backward_begin = NULL
cdef completion_hook _backward_end = NULL
cdef completion_hook _complete_pending = NULL


cdef void set_backward_hooks(completion_hook begin, completion_hook end) noexcept:
    """C functions called at the start and at the end of every backward pass. The matrix product
    defers the gradients of products with a parameter matrix, to compute them for many products at
    once: at the end, and (through set_completion_hook) before a node marked `deferred_grad`
    propagates its gradient. (One module uses them: C calls, as they run at every pass.)"""
    global _backward_begin, _backward_end
    _backward_begin, _backward_end = begin, end


cdef void set_completion_hook(completion_hook hook) noexcept:
    global _complete_pending
    _complete_pending = hook


cdef int run_backward_hooks(bint begin) except -1:
    cdef completion_hook hook = _backward_begin if begin else _backward_end
    if hook != NULL:
        hook()
    return 0


cdef lookup_marker _lookup_marker = NULL


cdef void set_lookup_marker(lookup_marker marker) noexcept:
    global _lookup_marker
    _lookup_marker = marker


cdef int note_lookup(Expression node) except -1:
    """Remember a lookup node that takes gradients (made by params.pyx) in its graph."""
    the_cg().lookups.append(node)
    return 0


cdef int complete_pending(Expression node) except -1:
    """Before `node` propagates its gradient: finish what is pending for it (matmul's deferral)."""
    if node.deferred_grad and _complete_pending != NULL:
        _complete_pending()
    return 0


# Passes over at least this many nodes run with subnormal numbers flushed to zero (forward_to)
cdef enum:
    FLUSH_MIN_NODES = 32

cdef forward_runner _forward_runner = NULL
cdef backward_runner _backward_runner = NULL
cdef layout_runner _layout_runner = NULL


cdef void set_runners(forward_runner fwd, backward_runner bwd) noexcept:
    global _forward_runner, _backward_runner
    _forward_runner, _backward_runner = fwd, bwd


cdef void set_layout_runner(layout_runner layout) noexcept:
    global _layout_runner
    _layout_runner = layout


cdef dict _operators = {}
cdef binary_operator _op_add = NULL
cdef binary_operator _op_sub = NULL
cdef binary_operator _op_mul = NULL
cdef binary_operator _op_div = NULL
cdef unary_operator _op_neg = NULL


cdef void set_operators(binary_operator add, binary_operator sub, binary_operator mul,
                        binary_operator div, unary_operator neg) noexcept:
    global _op_add, _op_sub, _op_mul, _op_div, _op_neg
    _op_add, _op_sub, _op_mul, _op_div, _op_neg = add, sub, mul, div, neg


def register_operators(**fns):
    """Called by the node modules at import time: Expression's operators dispatch through these."""
    _operators.update(fns)


# ---- the graph ------------------------------------------------------------------------------

cdef class ComputationGraph:
    """ComputationGraph()\n--\n\n
    The one computation graph: an append-only list of nodes with lazy incremental forward."""

    def __cinit__(self):
        global _live_graphs
        _live_graphs += 1
        self._version = _new_version()
        self.nodes = []
        self.retiring = []
        self.n_forwarded = 0
        # this thread's own pools for the CPU's nodes (other devices' nodes use their device's)
        self.fwd = Arena("forward", _fwd_mb)
        self.bwd = Arena("backward", _bwd_mb)
        self.default_dev = default_device_c()
        self.last_dev = self.default_dev
        self.node_dev = self.default_dev
        self.devices = [self.default_dev]
        if self.default_dev is not cpu_device():
            self.devices.append(cpu_device())
        self.all_typed = self.default_dev.host_loops
        self.checkpoints = []
        self.lookups = []
        self.immediate_compute = False
        self.check_validity = False
        self.node_blocks = calloc(1, sizeof(NodeBlocks))
        if self.node_blocks == NULL:
            raise MemoryError("ComputationGraph: cannot allocate its node free lists")

    def __dealloc__(self):
        global _live_graphs, _cg_thread_id, _cg_cached, _blocks
        _live_graphs -= 1
        if _cg_cached == <PyObject*>self:
            _cg_thread_id = 0
            _cg_cached = NULL
        if _blocks == <NodeBlocks*>self.node_blocks:
            _blocks = &_process_blocks     # (this graph's own nodes, freed next, go there)
        if self.node_blocks != NULL:
            release_blocks(<NodeBlocks*>self.node_blocks)
            free(self.node_blocks)
            self.node_blocks = NULL

    cdef Arena fwd_of(self, Device dev):
        """The forward pool of `dev` for this graph: its own for the CPU (each thread has its graph
        and pools), the device's for a GPU (one thread per GPU)."""
        return self.fwd if dev is cpu_device() else dev.fwd

    cdef Arena bwd_of(self, Device dev):
        return self.bwd if dev is cpu_device() else dev.bwd

    cdef bint one_device(self) noexcept:
        """Whether the other executors (autobatching, profiling) may run this graph: all its nodes
        on one device (they run each node or group through that device's typed loops or generic
        implementation; a graph across devices keeps the plain loops)."""
        return self.all_typed or not self.mixed_devices

    cdef int forward_to(self, int index) except -1:
        """Compute the nodes up to `index`, with subnormal numbers flushed to zero while the
        kernels run (see kernels/cpu.pxd: a gradient vanishing through a deep chain of tanh
        layers went subnormal and made every step 4x slower; DyNet, built with -ffast-math,
        flushes them in the whole process)."""
        if _viz or index < self.n_forwarded:
            return 0                             # (--dynet-viz: nothing is computed)
        self.enter_pass("forward")
        try:
            return self.forward_flushed(index)
        finally:
            self.computing = False

    cdef int forward_flushed(self, int index) except -1:
        if index - self.n_forwarded < FLUSH_MIN_NODES:
            return self._forward_to(index)       # (setting the mode would cost a small graph 2%)
        cdef unsigned int float_mode = flush_subnormals()
        try:
            return self._forward_to(index)
        finally:
            restore_float_mode(float_mode)

    cdef int enter_pass(self, str what) except -1:
        """Mark a pass as running. One asked for from inside another (user code that a node runs:
        a pyop's forward asking for a value, numpy reading a random node's mean from an
        expression) would run the node that asked again, and again, until the C stack overflows."""
        if self.computing:
            raise RuntimeError(f"{what}: the graph is already computing (a value or gradient was "
                               f"asked for from inside an operation, e.g. a pyop's forward or a "
                               f"random node's parameters)")
        self.computing = True
        return 0

    cdef int _forward_to(self, int index) except -1:
        cdef Expression node
        cdef int i
        if _forward_runner != NULL and self.one_device():
            return _forward_runner(self, index)
        if index > self.n_forwarded and (_lowering > 0 or (_lowering == 0 and _live_graphs > 1)) \
                and self is the_cg():     # (another thread's graph object, passed over: plain loop)
            return forward_lowered(self, index)
        cdef bint all_typed = self.all_typed
        for i in range(self.n_forwarded, index + 1):
            node = <Expression>PyList_GET_ITEM(self.nodes, i)
            if all_typed or node.dev.host_loops:
                node.forward_impl()
            else:
                generic_forward_node(node)
            self.n_forwarded = i + 1
        return 0

    cdef int invalidate_from(self, int index) except -1:
        if self.computing:
            raise RuntimeError("the graph is computing: an input cannot change, nor a value be "
                               "recalculated, from inside an operation (e.g. a pyop's forward)")
        if index < self.n_forwarded:
            self.n_forwarded = index
        return 0

    cdef int run_backward(self, Expression root, bint full) except -1:
        # One backward pass at a time in the whole process: passes from several threads add into
        # the same parameter gradients and lookup row lists (and matmul's deferred products are one
        # list), so they take turns; trainers' updates take the same lock. Waiting releases the GIL.
        self.enter_pass("backward")
        try:
            _gradient_lock.acquire_c()
        except BaseException:
            self.computing = False
            raise
        cdef bint flush = root.index >= FLUSH_MIN_NODES         # (as forward_to)
        cdef unsigned int float_mode = flush_subnormals() if flush else 0
        try:
            return self._backward(root, full)
        finally:
            if flush:
                restore_float_mode(float_mode)
            _gradient_lock.release_c()
            self.computing = False

    cdef int _backward(self, Expression root, bint full) except -1:
        self._propagate(root, full)
        # DyNet ends a backward pass by adding every parameter node's gradient (up to the loss)
        # into its parameter, zero where the loss does not depend on the node: the rows of a
        # lookup off the loss's path count as updated too, and a trainer with momentum (Adam,
        # MomentumSGD, ...) moves them. The same rows are marked here.
        if PyList_GET_SIZE(self.lookups) and _lookup_marker != NULL:
            _lookup_marker(self.lookups, root.index)
        return 0

    cdef int _propagate(self, Expression root, bint full) except -1:
        if batch_size(&root.d) != 1:
            raise ValueError(f"backward: the expression must be a scalar (per batch element), "
                             f"but its dimension is {dim_str(&root.d)}")
        if root.index >= self.n_forwarded and not _viz:
            self.forward_flushed(root.index)
        global _backward_from
        _backward_from = root.index
        cdef int i, n = root.index + 1
        # Lay out the gradients of every node that needs one, in one block per device (the
        # device's backward pool) zeroed by one memset.
        if _layout_runner != NULL and self.one_device():
            _layout_runner(self, n, full)       # (the nodes' device's pool)
        elif PyList_GET_SIZE(self.devices) == 1:
            self._layout_gradients_one_device(n, full)
        else:
            self._layout_gradients(n, full)
        cdef Py_ssize_t k
        if root.grad == NULL:
            return 0                             # the loss does not depend on any parameter
        if root.dev.on_host:
            for k in range(total_size(&root.d)):
                root.grad[k] += 1.0
        else:
            root.dev.flat_view(root.grad, total_size(&root.d))[...] += 1
        if _backward_runner != NULL and self.one_device():
            return _backward_runner(self, root)
        # Only nodes that the loss depends on are visited (the lookups off its path are marked
        # updated afterwards, in _backward).
        run_backward_hooks(True)
        cdef bint all_typed = self.all_typed
        # which nodes the loss depends on: on the C stack for a graph of up to 4096 nodes (a
        # bytearray costs more than a small graph's whole pass), else a bytearray
        cdef unsigned char small_seen[4096]
        cdef bytearray reached = None
        cdef unsigned char* seen = small_seen
        if n <= 4096:
            memset(small_seen, 0, n)
        else:
            reached = bytearray(n)
            seen = reached
        seen[n - 1] = 1
        cdef list nodes = self.nodes
        cdef PyObject* p                 # borrowed pointers: the graph holds the nodes
        cdef tuple args
        for i in range(n - 1, -1, -1):
            if not seen[i]:
                continue
            p = PyList_GET_ITEM(nodes, i)
            # leaves have nothing to propagate, except parameters and lookups (which note, or
            # scatter into their table, that they got a gradient)
            if (<Expression>p).deferred_grad and _complete_pending != NULL:
                _complete_pending()               # this node's gradient must be complete first
            args = (<Expression>p).args
            if (<Expression>p).grad != NULL and (PyTuple_GET_SIZE(args) or (<Expression>p).needs_grad):
                if all_typed or (<Expression>p).dev.host_loops:
                    (<Expression>p).backward_impl()
                else:
                    generic_backward_node(<Expression>p)
                for k in range(PyTuple_GET_SIZE(args)):
                    seen[(<Expression>PyTuple_GET_ITEM(args, k)).index] = 1
        run_backward_hooks(False)
        return 0

    cdef int _layout_gradients_one_device(self, int n, bint full) except -1:
        """The gradients' layout when the graph is on one device (the common case: C counters)."""
        cdef Arena pool = self.bwd_of(<Device>PyList_GET_ITEM(self.devices, 0))
        cdef size_t need = 0
        cdef int i
        cdef PyObject* node          # borrowed (the graph holds its nodes): no reference counting
        cdef list nodes = self.nodes
        for i in range(n):
            node = PyList_GET_ITEM(nodes, i)
            if (full or (<Expression>node).needs_grad) and \
                    not ((<Expression>node).external_grad and (<Expression>node).needs_grad):
                need += (total_size(&(<Expression>node).d) + 15) & ~(<size_t>15)
        pool.reset()
        pool.reserve(need)
        for i in range(n):
            node = PyList_GET_ITEM(nodes, i)
            if (<Expression>node).external_grad and (<Expression>node).needs_grad:
                continue                         # parameters accumulate straight into their own grad
            if full or (<Expression>node).needs_grad:
                (<Expression>node).grad = pool.alloc(total_size(&(<Expression>node).d))
            else:
                (<Expression>node).grad = NULL
        pool.zero_used()
        return 0

    cdef int _layout_gradients(self, int n, bint full) except -1:
        """The gradients' layout over several devices: each device's share in its own pool."""
        cdef int i
        cdef Expression node
        cdef Device dev
        cdef Arena pool
        need = [0] * len(self.devices)         # floats per device (in the order of self.devices)
        for i in range(n):
            node = <Expression>PyList_GET_ITEM(self.nodes, i)
            if (full or node.needs_grad) and not (node.external_grad and node.needs_grad):
                need[self.devices.index(node.dev)] += (total_size(&node.d) + 15) & ~(<size_t>15)
        for i in range(len(self.devices)):
            pool = self.bwd_of(<Device>self.devices[i])
            pool.reset()
            pool.reserve(need[i])
        for i in range(n):
            node = <Expression>PyList_GET_ITEM(self.nodes, i)
            if node.external_grad and node.needs_grad:
                continue
            if full or node.needs_grad:
                node.grad = self.bwd_of(node.dev).alloc(total_size(&node.d))
            else:
                node.grad = NULL
        for dev in self.devices:
            self.bwd_of(dev).zero_used()
        return 0

    # ---- Python API -----------------------------------------------------------------------
    def renew(self, immediate_compute=False, check_validity=False):
        """Start a new graph: every existing Expression becomes stale."""
        self.start_new(immediate_compute, check_validity)
        return self

    cdef int start_new(self, bint immediate_compute, bint check_validity) except -1:
        """renew(): runs once per training example, so it allocates only what changed."""
        # The last graph's nodes are not freed here but one by one as the new graph's nodes are
        # added (attach): each freed node's memory and argument tuple, still in cache, is what
        # the next node added is given. Freed here in a batch, every node and tuple was one cache
        # miss to free and another when its memory was handed out again (a graph of 20,000 nodes
        # is larger than the core's cache). What a smaller graph leaves goes now.
        while PyList_GET_SIZE(self.retiring):
            release_last(self.retiring)
        self.retiring = self.nodes
        self.nodes = list_with_room(PyList_GET_SIZE(self.nodes))
        self._version = _new_version()
        self.n_forwarded = 0
        if self.checkpoints:
            self.checkpoints = []
        if PyList_GET_SIZE(self.lookups):
            self.lookups = []
        cdef Device dev
        self.fwd.reset()
        self.bwd.reset()
        cdef bint one_device = PyList_GET_SIZE(self.devices) == 1
        if not one_device:
            for dev in self.devices:
                if dev is not cpu_device():
                    dev.fwd.reset()
                    dev.bwd.reset()
        # the configured devices (init, set_backend) take effect from a new graph on
        dev = default_device_c()
        if not (one_device and dev is self.default_dev):
            self.default_dev = dev
            self.devices = [dev]
            if dev is not cpu_device():
                self.devices.append(cpu_device())     # fwd_scratch (host memory) is released too
        self.last_dev = dev
        self.node_dev = dev
        self.mixed_devices = False
        self.all_typed = dev.host_loops
        self.immediate_compute = immediate_compute
        self.check_validity = check_validity
        global _backward_from
        _backward_from = -1
        return 0

    def version(self):
        """The graph's version (incremented by renew)

        Returns:
            int: the version
        """
        return self._version

    def nodes_list(self):
        """The nodes in order, each with its arguments: [(expression, (argument expressions))]
        (for tests and tools that walk the graph)."""
        cdef Expression node
        return [(node, node.args) for node in self.nodes]

    def size(self):
        """The number of nodes in the graph

        Returns:
            int: the node count
        """
        return len(self.nodes)

    def forward(self, last=None):
        """Compute every node (or up to the Expression `last`)."""
        cdef Expression e
        if last is not None:
            e = <Expression?>last
            check_live(e, "forward")
            if e.version != self._version:      # a ComputationGraph() of its own: not its node
                raise RuntimeError(f"forward: the expression (node v{e.index}) belongs to another "
                                   f"computation graph (version {e.version}; this one is {self._version})")
            self.forward_to(e.index)
        elif self.nodes:
            self.forward_to(len(self.nodes) - 1)

    def checkpoint(self):
        """Mark the current state (see dy.cg_checkpoint)"""
        self.checkpoints.append((len(self.nodes), self.n_forwarded))

    def revert(self):
        """Remove the nodes added since the last checkpoint (see dy.cg_revert)

        Raises:
            RuntimeError: if there is no checkpoint
        """
        if not self.checkpoints:
            raise RuntimeError("cg_revert: there is no checkpoint to revert to (call cg_checkpoint first)")
        cdef int size, forwarded
        size, forwarded = self.checkpoints.pop()
        cdef Expression node
        for node in self.nodes[size:]:
            node.version = -1                   # reverted away: stale from now on
        del self.nodes[size:]
        self.n_forwarded = min(self.n_forwarded, forwarded, size)
        global _backward_from
        _backward_from = min(_backward_from, size - 1)     # new nodes at these places have none
        # The forward pool is not rewound: nodes before the checkpoint may hold scratch memory
        # taken after it. It is released at the next renew_cg.

    def parameters(self, params):
        """A parameter as an expression of this graph

        Args:
            params (Parameters): the parameter

        Returns:
            dynet.Expression: params.expr()
        """
        return params.expr()

    def print_graphviz(self, compact=False, show_dims=True, expression_names=None):
        """The graph in Graphviz's dot language. compact: labels are the operations alone (no
        argument names); show_dims: add each node's dimension; expression_names: {Expression: name}
        to label chosen nodes."""
        lines = ["digraph G {", "  rankdir=LR;"] + ([] if compact else ["  nodesep=.05;"])
        names = {}
        cdef Expression node, a
        if expression_names:
            for e, name in dict(expression_names).items():
                node = <Expression?>e
                if node.version == self._version:
                    names[node.index] = str(name)
        for node in self.nodes:
            label = node.op_name() if compact else f"v{node.index} = {node.describe()}"
            if node.index in names:
                label = f"{names[node.index]}\\n{label}"
            if show_dims:
                label = f"{label} {dim_str(&node.d)}"
            lines.append(f'  N{node.index} [label="{label}"];')
        for node in self.nodes:
            for a in node.args:
                lines.append(f"  N{a.index} -> N{node.index};")
        lines.append("}")
        return "\n".join(lines)

    @property
    def memory(self):
        """Bytes in use in the forward and backward pools (of all devices of the graph)."""
        cdef Device dev
        return {"forward": sum([self.fwd_of(dev).used_bytes for dev in self.devices]),
                "backward": sum([self.bwd_of(dev).used_bytes for dev in self.devices])}


# ---- the lowered forward pass (several threads) -------------------------------------------------

# Graphs alive (one per thread that has built one): with more than one, forward passes are lowered
# and run without the GIL, so that one thread's forward overlaps another's graph building. A single
# thread keeps the plain loop (lowering costs a little; nothing else would run meanwhile).
cdef int _live_graphs = 0
cdef int _lowering = 0       # 0: when several graphs are alive; 1: always; -1: never


cdef long long _n_lowered = 0, _n_unlowered = 0     # nodes run by lowered passes, either way


def lowering_stats(reset=False):
    """(nodes run as lowered steps, nodes run with the GIL) by lowered passes so far, all threads
    (for tests and benchmarks: which node types lower); reset=True starts the counts again."""
    global _n_lowered, _n_unlowered
    stats = (_n_lowered, _n_unlowered)
    if reset:
        _n_lowered = _n_unlowered = 0
    return stats


def set_lowering(int mode):
    """Whether forward passes are lowered: 0 when several threads have graphs (the default), 1
    always, -1 never (tests compare the paths). Returns the previous mode."""
    global _lowering
    old = _lowering
    _lowering = 1 if mode > 0 else (-1 if mode < 0 else 0)
    return old


cdef int forward_lowered(ComputationGraph g, int index) except -1:
    """forward_to's loop with the nodes lowered: each stretch of nodes that can be lowered runs as C
    steps in one release of the GIL; a node that cannot runs alone, with the GIL, in between."""
    global _n_lowered, _n_unlowered
    cdef Lowering L = g.lowering
    if L is None:
        L = g.lowering = Lowering.__new__(Lowering)
    L.clear()                                  # (steps of a pass that an error interrupted)
    cdef bint all_typed = g.all_typed
    cdef list nodes = g.nodes
    cdef PyObject* p                           # borrowed: the graph holds its nodes
    cdef int i
    for i in range(g.n_forwarded, index + 1):
        p = PyList_GET_ITEM(nodes, i)
        if (all_typed or (<Expression>p).dev.host_loops) and (<Expression>p).lower(L):
            _n_lowered += 1
            continue
        _n_unlowered += 1
        L.flush()
        g.n_forwarded = i
        if all_typed or (<Expression>p).dev.host_loops:
            (<Expression>p).forward_impl()
        else:
            generic_forward_node(<Expression>p)
        g.n_forwarded = i + 1
    L.flush()
    g.n_forwarded = index + 1
    return 0


# ---- one graph per thread ---------------------------------------------------------------------

# Versions are unique across every thread's graph, so an Expression's version names its graph: one
# from another thread's graph is as stale as one from before renew_cg, and a parameter's cached node
# (see Parameters.node) is never taken for another graph's. The GIL makes this counter atomic.
cdef int _last_version = 0


cdef int _new_version() noexcept:
    global _last_version
    _last_version += 1
    return _last_version


cdef class ReentrantLock:
    """ReentrantLock()\n--\n\n
    A reentrant lock (as threading.RLock) whose uncontended acquire is a few C operations:
    threading.RLock reads the clock at every acquire, twice per training step, and so does
    CPython's own lock even when asked not to wait (it computes a deadline first). Its state
    (owner, depth, waiters) is read and written only with the GIL held, which makes those
    operations atomic; a thread that finds the lock held sleeps on a semaphore with the GIL
    released, and the last release wakes one sleeper, which checks again (so a wake-up that
    finds the lock taken by a third thread, or a stale one, only costs another sleep). Used from
    Python with `with`, or acquire()/release()."""

    def __cinit__(self):
        self.wakeup = PyThread_allocate_lock()
        if self.wakeup == NULL:
            raise MemoryError("ReentrantLock: cannot allocate a lock")
        PyThread_acquire_lock(self.wakeup, WAIT_LOCK)     # taken: waiters block until a release

    def __dealloc__(self):
        if self.wakeup != NULL:
            PyThread_free_lock(self.wakeup)

    cdef int acquire_c(self) except -1:
        cdef unsigned long me = PyThread_get_thread_ident()
        if self.depth and self.owner == me:
            self.depth += 1
            return 0
        while self.depth:                        # another thread holds it
            self.waiters += 1
            with nogil:
                PyThread_acquire_lock(self.wakeup, WAIT_LOCK)
            self.waiters -= 1
        self.owner = me
        self.depth = 1
        return 0

    cdef int release_c(self) except -1:
        if self.depth == 0 or self.owner != PyThread_get_thread_ident():
            raise RuntimeError("ReentrantLock.release: the lock is not held by this thread")
        self.depth -= 1
        if self.depth == 0:
            self.owner = 0
            if self.waiters:
                PyThread_release_lock(self.wakeup)
        return 0

    def _after_fork_in_child(self):
        """In a forked child, only the forking thread exists: no one waits any more, and the
        semaphore gets a fresh state; then the forking thread's hold (from before the fork) ends."""
        self.waiters = 0
        PyThread_free_lock(self.wakeup)
        self.wakeup = PyThread_allocate_lock()
        if self.wakeup == NULL:
            raise MemoryError("ReentrantLock: cannot allocate a lock")
        PyThread_acquire_lock(self.wakeup, WAIT_LOCK)
        self.release_c()

    def acquire(self):
        """Wait for the lock (this thread may hold it already)

        Returns:
            bool: True
        """
        self.acquire_c()
        return True

    def release(self):
        """Release one level of this thread's hold"""
        self.release_c()

    def __enter__(self):
        self.acquire_c()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release_c()
        return False


# Held by every backward pass and by trainer updates (see run_backward); reentrant, so that a
# thread holding it (e.g. around a whole training step) can still call backward and update.
cdef ReentrantLock _gradient_lock = ReentrantLock()
gradient_lock = _gradient_lock
# A process forked while another thread runs a backward pass would inherit the lock held forever:
# forking waits for the pass to finish, and the child starts with the lock free.
os.register_at_fork(before=gradient_lock.acquire, after_in_parent=gradient_lock.release,
                    after_in_child=gradient_lock._after_fork_in_child)

# pool sizes in MB for graphs made from now on (--dynet-mem)
cdef size_t _fwd_mb = 16, _bwd_mb = 16


cdef extern from "Python.h":
    ctypedef struct PyThreadState:
        pass
    PyThreadState* PyThreadState_Get()
    unsigned long long PyThreadState_GetID(PyThreadState*)

# The calling thread's graph is asked for by every node added: a one-entry cache of the last thread's
# graph, keyed by CPython's thread-state id (unique for the interpreter's life, unlike a thread ident
# or a thread-state address, which a new thread may be given again). The pointer is borrowed: the
# graph is held by its ThreadState for as long as that thread lives, and a dead thread's id never
# asks again.
cdef unsigned long long _cg_thread_id = 0
cdef PyObject* _cg_cached = NULL


cdef ComputationGraph _new_graph(ThreadState t):
    cdef ComputationGraph g = ComputationGraph.__new__(ComputationGraph)
    t.graph = g
    return g


cdef ComputationGraph the_cg():
    """The calling thread's computation graph (made on first use)."""
    global _cg_thread_id, _cg_cached, _blocks
    cdef unsigned long long tid = PyThreadState_GetID(PyThreadState_Get())
    if tid == _cg_thread_id and _cg_cached != NULL:
        return <ComputationGraph>_cg_cached
    cdef ThreadState t = this_thread()
    if t.graph is None:
        _new_graph(t)
    _cg_thread_id = tid
    _cg_cached = <PyObject*>t.graph
    _blocks = <NodeBlocks*>(<ComputationGraph>t.graph).node_blocks
    return <ComputationGraph>t.graph


def cg():
    """The current ComputationGraph (the calling thread's own)."""
    return the_cg()


def set_pool_sizes(size_t fwd_mb, size_t bwd_mb):
    """Size the forward/backward pools (from --dynet-mem): the calling thread's graph now, every
    thread's graph made from now on, and each GPU's pools."""
    global _fwd_mb, _bwd_mb
    _fwd_mb, _bwd_mb = fwd_mb, bwd_mb
    cdef ComputationGraph g = the_cg()
    g.renew()
    _device.set_pool_sizes(fwd_mb, bwd_mb)
    g.fwd = Arena("forward", fwd_mb)
    g.bwd = Arena("backward", bwd_mb)
    g.renew()


def start_new_graph():
    """A new graph on the devices as configured now (init and set_backend call this)."""
    the_cg().start_new(False, False)


def renew_cg(immediate_compute=False, check_validity=False):
    """Start a new computation graph; every existing Expression becomes stale."""
    return the_cg().renew(immediate_compute, check_validity)


# ---- the generic implementation: views of device memory, passed to the node's array code ----

cdef Device _active = None      # the GPU made current last (several GPUs: kernels run on the current)


cdef inline int activate(Device dev) except -1:
    global _active
    if dev is not _active:
        _active = dev
        dev.activate()
    return 0


cdef int activate_device(Device dev) except -1:
    """Make `dev` current before array code runs on it (several GPUs: kernels run on the current)."""
    return activate(dev)


cdef int generic_forward_node(Expression node) except -1:
    """Run a node's generic_forward on views of its arguments' values and of its own."""
    cdef Device dev = node.dev
    cdef Expression a
    activate(dev)
    xs = [a.dev.view(a.val, &a.d) for a in node.args]
    node.generic_forward(dev.xp, xs, dev.view(node.val, &node.d))
    return 0


cdef int generic_backward_node(Expression node) except -1:
    cdef Device dev = node.dev
    cdef Expression a
    cdef int i
    activate(dev)
    out = dev.view(node.val, &node.d)
    dout = dev.view(node.grad, &node.d)
    if not node.args:
        node.generic_backward(dev.xp, [], out, dout, -1, None)
        return 0
    xs = [a.dev.view(a.val, &a.d) for a in node.args]
    for i in range(len(node.args)):
        a = <Expression>node.args[i]
        if a.grad != NULL:
            node.generic_backward(dev.xp, xs, out, dout, i, a.dev.view(a.grad, &a.d))
    return 0


cdef int check_live(Expression e, str op) except -1:
    cdef ComputationGraph cg = the_cg()
    if e.version != cg._version:
        if e.version < 0:
            raise RuntimeError(f"{op}: the expression (node v{e.index}) was removed by cg_revert()")
        if e.version == 0:
            raise RuntimeError(f"{op}: the expression belongs to no computation graph (made by "
                               f"Expression(), not by an operation)")
        if e.version > cg._version:
            raise RuntimeError(f"{op}: the expression (node v{e.index}) belongs to another thread's "
                               f"computation graph (version {e.version}; this thread's is "
                               f"{cg._version}): each thread has its own graph")
        raise RuntimeError(f"{op}: stale expression from computation graph version {e.version}; "
                           f"the current version is {cg._version} (renew_cg() was called after "
                           f"it was created, or it belongs to another thread's graph)")
    return 0


cdef Expression node_in_graph(void* node, int index):
    """`node` if the calling thread's current graph holds it at `index`, else None: a cache of a
    node held by borrowed pointer is checked here without ever reading a node that may be gone."""
    cdef ComputationGraph cg = the_cg()
    if node != NULL and 0 <= index < PyList_GET_SIZE(cg.nodes) and \
            <void*>PyList_GET_ITEM(cg.nodes, index) == node:
        return <Expression>node
    return None



cdef int mixed_devices(Expression node, Expression a, Expression b) except -1:
    raise RuntimeError(f"{node.op_name()}: its arguments are on different devices: v{a.index} on "
                       f"{a.dev.name} and v{b.index} on {b.dev.name} (copy one with "
                       f"dy.to_device(e, '{a.dev.name}'))")


cdef int note_device(ComputationGraph cg, Device dev) except -1:
    """A node is added on `dev`, a device other than the last node's (called before it is
    appended)."""
    cg.last_dev = dev
    if PyList_GET_SIZE(cg.nodes) == 0:
        cg.node_dev = dev
    elif dev is not cg.node_dev:
        cg.mixed_devices = True
    if dev not in cg.devices:
        cg.devices.append(dev)
        cg.all_typed = cg.all_typed and dev.host_loops
    return 0


# the CPU device (the typed loops), whose nodes take memory from the graph's own pools: compared by
# address for every node
cdef Device _host_device = cpu_device()       # (a module global: the pointer below stays valid)
cdef PyObject* _host = <PyObject*>_host_device


cdef extern from *:
    """
    /* The graph's node list: made empty with room for as many nodes as the last graph had, and
       appended to in place while there is room, so that a graph of the same shape never grows it
       (PyList_Append would first shrink a list that is less than half full, then regrow it: a
       realloc every few nodes). Only the invariant size <= allocated is relied on. */
    static PyObject* dn_list_with_room(Py_ssize_t n) {
        PyObject* list = PyList_New(n < 0 ? 0 : n);
        if (list != NULL)
            Py_SET_SIZE(list, 0);
        return list;
    }
    static int dn_list_append_in_room(PyObject* list, PyObject* item) {
        PyListObject* l = (PyListObject*)list;
        Py_ssize_t n = Py_SIZE(l);
        if (n < l->allocated) {
            Py_INCREF(item);
            l->ob_item[n] = item;
            Py_SET_SIZE(l, n + 1);
            return 0;
        }
        return PyList_Append(list, item);
    }
    """
    list list_with_room "dn_list_with_room"(Py_ssize_t n)
    int list_append_in_room "dn_list_append_in_room"(list l, object item) except -1


cdef enum:
    NO_ALLOC = 0      # the caller sets the value's memory (parameter nodes)
    ALLOC = 1         # from the node's device's forward pool
    ACROSS = 2        # as ALLOC, and the argument may be on another device (to_device)


@cython.boundscheck(False)
cdef inline Expression attach(Expression node, tuple args, Dim d, int mode):
    """Append `node` to the graph with arguments `args` and shape `d`. Its device is the one it
    names (inputs and parameter nodes on a device), else its arguments' device (they must share
    one, unless ACROSS), else the graph's default device. The arguments must belong to the current
    graph. (Device identity is compared as pointers: this runs for every node.)"""
    cdef ComputationGraph cg = the_cg()
    cdef bint needs_grad = node.needs_grad
    cdef Expression a
    cdef PyObject* dev = <PyObject*>node.dev
    cdef PyObject* first = NULL
    cdef Py_ssize_t i
    for i in range(PyTuple_GET_SIZE(args)):
        a = <Expression>PyTuple_GET_ITEM(args, i)
        if a.version != cg._version:
            check_live(a, node.op_name())
        if i < 3:
            node.first_args[i] = a.index
        needs_grad = needs_grad or a.needs_grad
        if first == NULL:
            first = <PyObject*>a.dev
        elif <PyObject*>a.dev != first and mode != ACROSS:
            mixed_devices(node, <Expression>PyTuple_GET_ITEM(args, 0), a)
    if dev == <PyObject*>None:
        dev = first if first != NULL else <PyObject*>cg.default_dev
    if dev != <PyObject*>cg.last_dev:
        note_device(cg, <Device>dev)
    node.dev = <Device>dev
    if mode != NO_ALLOC:
        node.val = (cg.fwd if dev == _host else (<Device>dev).fwd).alloc(total_size(&d))
        node.external_grad = False
    node.args = args
    node.n_first = <unsigned char>PyTuple_GET_SIZE(args) if PyTuple_GET_SIZE(args) <= 3 else MANY_ARGS
    node.d = d
    node.version = cg._version
    node.index = PyList_GET_SIZE(cg.nodes)
    node.needs_grad = needs_grad
    node.grad = NULL
    # The argument tuple out of the cyclic GC too (nodes are not in it, see Expression): a graph of
    # thousands of nodes otherwise sets off collections that move its tuples into the old
    # generations and then walk every object of the process. Arguments are older nodes, so no
    # cycle passes through it.
    PyObject_GC_UnTrack(args)
    list_append_in_room(cg.nodes, node)
    if PyList_GET_SIZE(cg.retiring):
        release_last(cg.retiring)
    if cg.immediate_compute:
        cg.forward_to(node.index)
        if cg.check_validity and not _viz:
            check_finite(node)
    return node


cdef extern from *:
    """
    /* a node's fields span up to three cache lines (128 bytes and more, 16-byte aligned) */
    #define DN_PREFETCH_NODE(p) (__builtin_prefetch((const char*)(p)), \
        __builtin_prefetch((const char*)(p) + 64), __builtin_prefetch((const char*)(p) + 127))
    static inline void DN_PREFETCH_BLOCK_FOR_WRITE(const void* p, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i += 64)
            __builtin_prefetch((const char*)p + i, 1);
        __builtin_prefetch((const char*)p + n - 1, 1);
    }
    /* an argument tuple: its GC header (16 bytes before it) to its third item */
    #define DN_PREFETCH_ARGS(p) (__builtin_prefetch((const char*)(p) - 16), \
        __builtin_prefetch((const char*)(p) + 47))
    """
    void prefetch_line "__builtin_prefetch"(const void* p) noexcept nogil
    void prefetch_node "DN_PREFETCH_NODE"(const void* p) noexcept nogil
    void prefetch_block_for_write "DN_PREFETCH_BLOCK_FOR_WRITE"(const void* p, Py_ssize_t n) noexcept nogil
    void prefetch_args "DN_PREFETCH_ARGS"(const void* p) noexcept nogil
    ctypedef struct PyListObject:
        PyObject** ob_item
    void Py_SET_SIZE(object o, Py_ssize_t n) noexcept
    void Py_DECREF(object o) noexcept


cdef inline void release_last(list retiring) noexcept:
    """Drop the last of the retiring nodes (the last graph's, kept for attach to release one at a
    time: see start_new). Last first, as a list is freed: a node's consumers come after it, so
    it goes as it is dropped (unless the user holds it), with no cascade. Its pointers are
    cleared, so that an expression the user keeps cannot reach freed memory. The memory of the
    nodes to be released next is asked for ahead, in stages, each reading what an earlier call
    asked for: the list's own entries 64 places before, the node eight places before, the argument
    tuple of the one four places before, the arguments of the one two places before (freeing a
    tuple decrefs them). The last graph's nodes are out of cache by now, and each release
    otherwise waited for two to four misses."""
    cdef PyObject** items = (<PyListObject*>retiring).ob_item
    cdef Py_ssize_t n = PyList_GET_SIZE(retiring) - 1
    cdef PyObject* p = items[n]
    cdef PyObject* args
    cdef Py_ssize_t i
    if n >= 8:
        if n >= 64:
            prefetch_line(&items[n - 64])     # the list itself, walked backwards
        prefetch_node(items[n - 8])
        prefetch_args(<void*>(<Expression>items[n - 4]).args)
        args = <PyObject*>(<Expression>items[n - 2]).args     # freeing it decrefs its items
        for i in range(min(PyTuple_GET_SIZE(<object>args), 4)):
            prefetch_line(PyTuple_GET_ITEM(<object>args, i))        # (the reference count)
    Py_SET_SIZE(retiring, n)
    (<Expression>p).val = NULL
    (<Expression>p).grad = NULL
    Py_DECREF(<object>p)         # the list's reference


cdef int check_finite(Expression node) except -1:
    """renew_cg(immediate_compute=True, check_validity=True): as DyNet, each new node's value is
    checked when it is computed (only in immediate mode: a lazy graph is not checked)."""
    cdef Py_ssize_t j
    if not node.dev.on_host:
        if not bool(node.dev.xp.isfinite(node.dev.flat_view(node.val, total_size(&node.d))).all()):
            raise RuntimeError(f"NaN or Inf detected: {node.op_name()} (node v{node.index}, "
                               f"{dim_str(&node.d)}) on {node.dev.name} "
                               f"(renew_cg(check_validity=True))")
        return 0
    for j in range(total_size(&node.d)):
        if not isfinite(node.val[j]):
            raise RuntimeError(f"NaN or Inf detected: {node.op_name()} (node v{node.index}, "
                               f"{dim_str(&node.d)}) produced {node.val[j]} "
                               f"(renew_cg(check_validity=True))")
    return 0


# ---- node memory: a free list per object size ---------------------------------------------------
# Every node is a small object made per example and freed at the next renew_cg; CPython's allocator
# (PyType_GenericAlloc, pymalloc) cost ~150 instructions a node for the pair. Node types are not GC
# types (see Expression), so their memory is a plain block of tp_basicsize bytes: freed blocks are
# kept on a list per size and handed out again (Cython's own free lists do not work for subclasses).
# Alloc and free run with the GIL held (object creation and deallocation), which serialises them.
cdef enum:
    SIZE_CLASSES = 64           # blocks of up to 63 * 8 bytes; larger node types use pymalloc
    KEPT_PER_SIZE = 1024        # blocks kept per size (a larger graph's extra nodes go back)

# The lists are kept per thread: those of the graph of the thread that last asked for its graph
# (the_cg), which with the GIL held is the thread running. With one process-wide set, two threads
# serving side by side handed each other's freed blocks across the cores: a cache miss or two per
# node. Nodes made or freed before any graph exists use the process's own set.
ctypedef struct NodeBlocks:
    void* head[SIZE_CLASSES]      # a list per size, linked through each block's first word
    int count[SIZE_CLASSES]

cdef NodeBlocks _process_blocks
cdef NodeBlocks* _blocks = &_process_blocks


cdef void release_blocks(NodeBlocks* b) noexcept:
    """Give a set of lists' blocks back to pymalloc (a graph that dies)."""
    cdef int k
    cdef void* p
    for k in range(SIZE_CLASSES):
        while b.head[k] != NULL:
            p = b.head[k]
            b.head[k] = (<void**>p)[0]
            PyObject_Free(p)
        b.count[k] = 0


cdef PyObject* node_alloc(void* t, Py_ssize_t nitems) noexcept:
    cdef Py_ssize_t size = (<NodeType*>t).tp_basicsize
    cdef Py_ssize_t k = size >> 3
    cdef void* p = NULL
    cdef NodeBlocks* b = _blocks
    if k < SIZE_CLASSES and b.head[k] != NULL:
        p = b.head[k]
        b.head[k] = (<void**>p)[0]
        b.count[k] -= 1
        if b.head[k] != NULL:
            # the next node of this size gets the next block: ask for all its lines now, for
            # writing (the memset below otherwise waits on each cold line of a 300-byte node)
            prefetch_block_for_write(b.head[k], size)
    else:
        p = PyObject_Malloc(size)
        if p == NULL:
            return PyErr_NoMemory()
    memset(p, 0, size)
    return PyObject_Init(<PyObject*>p, t)


cdef void node_free(void* p) noexcept:
    cdef Py_ssize_t size = (<NodeType*>(<PyObject*>p).ob_type).tp_basicsize
    cdef Py_ssize_t k = size >> 3
    cdef NodeBlocks* b = _blocks
    if k < SIZE_CLASSES and b.count[k] < KEPT_PER_SIZE:
        (<void**>p)[0] = b.head[k]
        b.head[k] = p
        b.count[k] += 1
        # the next node of this size is given this block: its lines that the freeing did not touch
        # (a node's dealloc reads the first 128 bytes) are asked for now
        if size > 128:
            prefetch_block_for_write(<char*>p + 128, size - 128)
    else:
        PyObject_Free(p)


def use_node_free_lists():
    """Give every node type (Expression and its subclasses defined in C) the free-list allocator.
    Called once all node modules are imported. A type keeps CPython's allocator unless it is a
    static, non-GC type whose blocks are plain pymalloc memory (so that blocks freed either way may
    be mixed)."""
    cdef NodeType* t
    todo = [Expression]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        t = <NodeType*><PyObject*>cls
        if (t.tp_flags & (Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HEAPTYPE)) == 0 and t.tp_itemsize == 0 \
                and t.tp_alloc == <allocfunc>PyType_GenericAlloc and t.tp_free == <freefunc>PyObject_Free:
            t.tp_alloc = node_alloc
            t.tp_free = node_free


# ---- --dynet-viz: DyNet's visualisation mode --------------------------------------------------

cdef bint _viz = False


def set_viz(flag):
    """--dynet-viz (init): graphs are built (with their dimension checks) but never computed, so
    value() is None, and print_graphviz draws them."""
    global _viz
    _viz = bool(flag)


def viz_enabled():
    return _viz


cdef bint in_viz_mode() noexcept:
    return _viz


cdef int check_not_viz(str op) except -1:
    if _viz:
        raise RuntimeError(f"{op}: DyNet runs with --dynet-viz (visualisation mode), where graphs are "
                           f"drawn but never computed; run without --dynet-viz to train")
    return 0


def require_values(str op):
    """A RuntimeError naming --dynet-viz if `op` needs computed values in visualisation mode."""
    check_not_viz(op)


cdef Expression add_node_noalloc(Expression node, tuple args, Dim d):
    """Append `node` to the graph with arguments `args` and shape `d`, value memory left unset."""
    return attach(node, args, d, NO_ALLOC)


cdef Expression add_node(Expression node, tuple args, Dim d):
    """Append `node` to the graph with its value allocated in its device's forward pool."""
    return attach(node, args, d, ALLOC)


cdef Expression add_node_across(Expression node, tuple args, Dim d):
    """add_node for a node on the device it names whose argument is elsewhere (to_device)."""
    return attach(node, args, d, ACROSS)


cdef float* device_scratch(Device dev, size_t n) except NULL:
    """Memory of device `dev` that lives until renew_cg (a parameter node's value under weight
    decay): the calling thread's forward pool for the CPU, the device's for others."""
    return the_cg().fwd_of(dev).alloc(n)


cdef float* fwd_scratch(size_t n) except NULL:
    """Memory in the forward pool that lives until renew_cg (e.g. to keep softmax for backward)."""
    return the_cg().fwd.alloc(n)


cdef Expression as_expr_slow(object x, str op):
    """Parameters and LookupParameters stand for their expression in the current graph, as in
    DyNet 2.1; an expression of no graph is check_live's RuntimeError; anything else is a
    TypeError."""
    if isinstance(x, Expression):
        check_live(<Expression>x, op)
    expr = getattr(x, "expr", None)
    if expr is not None and callable(expr):
        return <Expression?>expr()
    raise TypeError(f"{op}: expected an Expression, got {type(x).__name__} ({x!r:.60})")


cdef tuple as_expr_tuple(object xs, str op):
    cdef Py_ssize_t i, n
    cdef tuple out
    cdef Expression e
    if type(xs) is list or type(xs) is tuple:
        # the usual argument, a list literal: its expressions straight into the tuple (the general
        # path below copies the list, makes a second list, then the tuple: ~0.1 us a call, and an
        # affine transform or a concatenation per tree node calls it)
        n = len(xs)
        if n == 0:
            raise ValueError(f"{op}: the list of expressions is empty")
        out = PyTuple_New(n)
        for i in range(n):
            e = as_expr(xs[i], op)      # (indexed, not borrowed: as_expr_slow may run user code)
            Py_INCREF(e)
            PyTuple_SET_ITEM(out, i, e)
        return out
    if isinstance(xs, Expression):
        raise TypeError(f"{op}: expected a list of Expressions, got a single Expression")
    try:
        items = list(xs)
    except TypeError:
        raise TypeError(f"{op}: expected a list of Expressions, got {type(xs).__name__}")
    if not items:
        raise ValueError(f"{op}: the list of expressions is empty")
    return tuple([as_expr(x, op) for x in items])


cdef object np_view(float* p, Py_ssize_t n):
    """A float32 NumPy array over pool memory, without copying (valid until renew_cg)."""
    cdef cnp.npy_intp size = n
    return cnp.PyArray_SimpleNewFromData(1, &size, cnp.NPY_FLOAT32, p)


cdef long to_index(object v, str op) except? -1:
    """An integer argument (Python or NumPy int); a TypeError naming the op otherwise."""
    if type(v) is int:
        return v
    if isinstance(v, bool) or not hasattr(v, "__index__") or getattr(v, "ndim", 0) != 0:
        raise TypeError(f"{op}: expected an integer index, got {type(v).__name__} ({v!r:.40})")
    return v.__index__()
