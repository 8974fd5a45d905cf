# The computation graph and its nodes. A node *is* its Expression: one small C-level object per
# operation, holding its shape, raw pointers to its value and gradient, and its arguments.
cimport cython
from dynet.core.dim cimport Dim
from dynet.core.memory cimport Arena
from dynet.core.device cimport Device
from cpython.pythread cimport PyThread_type_lock
from dynet.core.lowering cimport Lowering


cdef enum:
    MANY_ARGS = 255            # Expression.n_first of a node with more than three arguments


@cython.no_gc                  # (see graph.pyx: nodes form no reference cycles)
cdef class Expression:
    # (the fields fill two cache lines, 128 bytes, with the object's header: every pass of an
    # executor over a graph reads them, node after node)
    cdef int version           # graph version this node belongs to; -1 once reverted away
    cdef int index             # position in the graph
    cdef Dim d
    cdef int first_args[3]     # the indices of its first three arguments, and how many it has
    cdef float* val            # forward value (fwd pool, or a parameter's storage)
    cdef float* grad           # gradient (bwd pool, or a parameter's gradient); NULL if not needed
    cdef tuple args            # argument Expressions (always older nodes: no cycles)
    cdef object aux            # state a generic (array) implementation keeps from forward to backward
    cdef Device dev            # where its value and gradient live, and which implementation runs
    cdef unsigned char n_first # (up to 3; MANY_ARGS: more, read the tuple): the executors' walks
                               # read these instead of the argument tuple and the arguments
    cdef unsigned char needs_grad       # leads to an updated parameter
    cdef unsigned char external_grad    # grad points at storage the node does not own (parameters)
    cdef unsigned char deferred_grad    # part of its gradient is still pending (matmul's deferral)

    # Every node type overrides these. `forward` fills self.val from the args' values;
    # `backward` adds d(loss)/d(arg) into each arg whose grad is not NULL.
    cdef int forward_impl(self) except -1
    cdef int backward_impl(self) except -1
    # Node types whose forward can run without the GIL append their steps to L and return 1; the
    # default returns 0 (see dynet/core/lowering.pyx).
    cdef int lower(self, Lowering L) except -1
    cpdef str op_name(self)
    cdef str describe(self)
    cdef int _live(self, str what) except -1
    cdef int _ensure_value(self, bint recalculate) except -1
    cdef object _as_numpy(self, float* data)


@cython.no_gc
cdef class Mirrored(Expression):
    cdef int _run(self, bint backward) except -1


cdef class ReentrantLock:
    cdef PyThread_type_lock wakeup # a semaphore that waiting threads sleep on (see acquire_c)
    cdef unsigned long owner       # the holding thread's ident (valid while depth > 0)
    cdef long depth
    cdef long waiters
    cdef int acquire_c(self) except -1
    cdef int release_c(self) except -1


cdef class ComputationGraph:
    cdef readonly int _version
    cdef list nodes
    cdef list retiring         # the last graph's nodes not yet released (see start_new)
    cdef int n_forwarded
    cdef Arena fwd             # the host's (the CPU device's) pools; fwd_scratch is host memory
    cdef Arena bwd
    cdef Device default_dev    # where leaves go unless they name a device
    cdef Device last_dev       # the device of the last node added (to note new devices cheaply)
    cdef list devices          # the devices that hold nodes of this graph
    cdef Device node_dev       # the device of its first node, and whether a later node is
    cdef bint mixed_devices    # elsewhere (one device: the other executors may run it)
    cdef bint all_typed        # every device of the graph runs the typed loops (the autobatch and
                               # profiling runners need that)
    cdef list checkpoints
    cdef list lookups          # its lookup nodes that take gradients (note_lookup): every backward
                               # pass marks their rows updated, as DyNet does (_backward)
    cdef bint immediate_compute
    cdef bint check_validity
    cdef bint computing        # a forward or backward pass is running (user code inside one, a
                               # pyop's or a random node's, must not start another: see forward_to)
    cdef Lowering lowering     # the buffer of lowered forward steps (made at the first lowered pass)
    cdef void* node_blocks     # this thread's free node blocks (a NodeBlocks: see node_alloc)

    cdef Arena fwd_of(self, Device dev)
    cdef Arena bwd_of(self, Device dev)
    cdef int start_new(self, bint immediate_compute, bint check_validity) except -1
    cdef bint one_device(self) noexcept
    cdef int forward_to(self, int index) except -1
    cdef int forward_flushed(self, int index) except -1
    cdef int enter_pass(self, str what) except -1
    cdef int _forward_to(self, int index) except -1
    cdef int invalidate_from(self, int index) except -1
    cdef int run_backward(self, Expression root, bint full) except -1
    cdef int _backward(self, Expression root, bint full) except -1
    cdef int _propagate(self, Expression root, bint full) except -1
    cdef int _layout_gradients_one_device(self, int n, bint full) except -1
    cdef int _layout_gradients(self, int n, bint full) except -1


# Other executors (dynet/core/execution.pyx: autobatching, profiling) replace the plain forward
# loop and the backward visit when a flag asks for them; NULL (the default) keeps the plain loops.
ctypedef int (*forward_runner)(ComputationGraph, int) except -1
ctypedef int (*backward_runner)(ComputationGraph, Expression) except -1
cdef void set_runners(forward_runner fwd, backward_runner bwd) noexcept
# ... and the gradients' layout of a graph on one device (autobatching lays each group's gradients
# side by side, as it does their values); NULL keeps _layout_gradients_one_device.
ctypedef int (*layout_runner)(ComputationGraph, int, bint) except -1
cdef void set_layout_runner(layout_runner layout) noexcept
cdef int run_backward_hooks(bint begin) except -1
# The rows of the graph's lookups up to the loss, marked updated at the end of a backward pass
# (params.pyx's marker; the graph only keeps the list).
ctypedef int (*lookup_marker)(list lookups, int last) except -1
cdef void set_lookup_marker(lookup_marker marker) noexcept
cdef int note_lookup(Expression node) except -1
cdef int complete_pending(Expression node) except -1

cdef ComputationGraph the_cg()
cdef Expression add_node(Expression node, tuple args, Dim d)
cdef Expression add_node_noalloc(Expression node, tuple args, Dim d)
cdef Expression add_node_across(Expression node, tuple args, Dim d)
cdef int generic_forward_node(Expression node) except -1
cdef int generic_backward_node(Expression node) except -1
cdef int activate_device(Device dev) except -1
cdef int check_live(Expression e, str op) except -1
cdef Expression node_in_graph(void* node, int index)
cdef float* fwd_scratch(size_t n) except NULL
cdef float* device_scratch(Device dev, size_t n) except NULL
cdef Expression as_expr_slow(object x, str op)

cdef inline Expression as_expr(object x, str op):
    """An operation's argument as an Expression (Parameters are accepted, as in DyNet 2.1). One
    of no graph (version 0: made by Expression(); -1: reverted away) has no dimensions: refused
    here, before an operation computes with them."""
    if isinstance(x, Expression) and (<Expression>x).version > 0:
        return <Expression>x
    return as_expr_slow(x, op)
cdef tuple as_expr_tuple(object xs, str op)
cdef object np_view(float* p, Py_ssize_t n)
cdef long to_index(object v, str op) except? -1

ctypedef object (*binary_operator)(object, object)
ctypedef object (*unary_operator)(object)
cdef void set_operators(binary_operator add, binary_operator sub, binary_operator mul,
                        binary_operator div, unary_operator neg) noexcept

ctypedef int (*completion_hook)() except -1
cdef void set_completion_hook(completion_hook hook) noexcept
cdef void set_backward_hooks(completion_hook begin, completion_hook end) noexcept

cdef bint in_viz_mode() noexcept    # --dynet-viz: graphs are drawn, never computed
