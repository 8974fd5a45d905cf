"""The graph's other executors: automatic operation batching (--dynet-autobatch 1) and profiling
(--dynet-profiling 1/2). With both flags off (the default) nothing here runs: the graph keeps its
plain loops (graph.pyx), and `configure` only installs a runner when a flag asks for one.

Autobatching (Neubig, Goldberg and Dyer 2017) runs the nodes not yet computed level by level, a
node's level being 1 + the deepest level among its arguments computed in this pass (the paper's
depth-based schedule), or for the nodes of a key that line up better so, the latest level their
consumers allow (see schedule): nodes of one level never depend on each other. Within a level,
nodes with the same signature form a group, whose values are placed side by side and which runs
as one batched call; the signatures and batched kernels live in the node families
(elementwise.pyx: maps; matmul.pyx: products sharing their matrix, affine transforms sharing bias
and matrices; lstm.pyx: LSTM gates sharing their parameters, and their c and h cells). Every other
node runs its own forward in schedule order. The order the nodes ran in is kept (a plan per
graph): the gradients are laid out in it, each group's side by side, and the backward pass follows
it backwards, a group's backward as one batched call.

Profiling times every node's forward and backward (or every batch) into a table per operation type;
`stats()` returns it, `report()` prints it, and with the flag it is printed at exit.
"""
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.ref cimport PyObject
from libc.stdlib cimport malloc, calloc, free
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

import atexit
import sys

from dynet.core.dim cimport total_size, dim_str
from libc.stdlib cimport realloc
from libc.string cimport memcpy, memset
from dynet.core.graph cimport (Expression, MANY_ARGS, ComputationGraph, set_runners, forward_runner,
                               backward_runner, set_layout_runner, layout_runner,
                               run_backward_hooks, complete_pending, generic_forward_node,
                               generic_backward_node)
from dynet.core.memory cimport Arena
from dynet.core.batching cimport node_by_node
cimport dynet.nodes.elementwise as elementwise
cimport dynet.nodes.matmul as matmul
cimport dynet.nodes.lstm as lstm
cimport dynet.nodes.softmax as softmax
cimport dynet.nodes.norms as norms
cimport dynet.nodes.losses_cpu as losses
cimport dynet.nodes.noise as noise
cimport dynet.nodes.lstm_coupled as lstm_coupled

cdef int _autobatch = 0
cdef int _profiling = 0


def configure(autobatch=0, profiling=0):
    """Install the runners the flags ask for (called by init; tests switch them here)."""
    global _autobatch, _profiling, _concatenate, _lookup
    _autobatch, _profiling = int(autobatch or 0), int(profiling or 0)
    if _autobatch and _concatenate is None:
        from dynet.nodes.select import Concatenate
        from dynet.core.params import LookupNode
        _concatenate, _lookup = Concatenate, LookupNode
    if _profiling and not _atexit_registered:
        _register_exit_report()
    cdef forward_runner fwd = NULL
    cdef backward_runner bwd = NULL
    if _autobatch:
        fwd = autobatch_forward
    elif _profiling:
        fwd = profiled_forward
    if _autobatch:
        bwd = autobatch_backward
    elif _profiling:
        bwd = profiled_backward
    cdef layout_runner layout = NULL
    if _autobatch:
        layout = autobatch_layout
    set_runners(fwd, bwd)
    set_layout_runner(layout)


def settings():
    return {"autobatch": _autobatch, "profiling": _profiling}


# ---- profiling ----------------------------------------------------------------------------------

cdef dict _stats = {}        # op name -> [nodes, batches, forward s, backward s, value bytes]
cdef dict _detail = {}       # node index -> [op, dim, forward s, backward s] (level 2, last graph)
cdef int _detail_version = -1
cdef bint _atexit_registered = False


cdef inline double now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef int record(str op, Py_ssize_t nodes, double seconds, bint backward, size_t nbytes) except -1:
    row = _stats.get(op)
    if row is None:
        row = _stats[op] = [0, 0, 0.0, 0.0, 0]
    if backward:
        row[3] += seconds
    else:
        row[0] += nodes
        row[1] += 1
        row[2] += seconds
        row[4] += nbytes
    return 0


cdef int record_node(ComputationGraph cg, Expression node, double seconds, bint backward) except -1:
    """Level 2: the node's own line (for the most recent graph)."""
    global _detail_version
    if cg._version != _detail_version:
        _detail.clear()
        _detail_version = cg._version
    row = _detail.get(node.index)
    if row is None:
        row = _detail[node.index] = [node.op_name(), dim_str(&node.d), 0.0, 0.0]
    row[3 if backward else 2] += seconds
    return 0


cdef inline int forward_node(Expression node) except -1:
    """A node's forward: its typed loops, or its generic implementation (a GPU)."""
    return node.forward_impl() if node.dev.host_loops else generic_forward_node(node)


cdef inline int backward_node(Expression node) except -1:
    return node.backward_impl() if node.dev.host_loops else generic_backward_node(node)


cdef int profiled_forward(ComputationGraph cg, int index) except -1:
    cdef Expression node
    cdef int i
    cdef double t
    for i in range(cg.n_forwarded, index + 1):
        node = <Expression>PyList_GET_ITEM(cg.nodes, i)
        t = now()
        forward_node(node)
        t = now() - t
        cg.n_forwarded = i + 1
        record(node.op_name(), 1, t, False, total_size(&node.d) * sizeof(float))
        if _profiling > 1:
            record_node(cg, node, t, False)
    return 0


cdef int profiled_backward(ComputationGraph cg, Expression root) except -1:
    """The graph's backward visit (graph.pyx, run_backward), each node's step timed; the deferred
    products' work is its own row."""
    cdef int i, n = root.index + 1
    cdef Expression node, a
    cdef double t, t_deferred = 0.0
    cdef bytearray reached = bytearray(n)
    cdef unsigned char* seen = reached
    t = now()
    run_backward_hooks(True)
    seen[n - 1] = 1
    for i in range(n - 1, -1, -1):
        if not seen[i]:
            continue
        node = <Expression>PyList_GET_ITEM(cg.nodes, i)
        if node.deferred_grad:
            t = now()
            complete_pending(node)
            t_deferred += now() - t
        if node.grad != NULL and (node.args or node.needs_grad):
            t = now()
            backward_node(node)
            t = now() - t
            record(node.op_name(), 1, t, True, 0)
            if _profiling > 1:
                record_node(cg, node, t, True)
            for a in node.args:
                seen[a.index] = 1
    t = now()
    run_backward_hooks(False)
    t_deferred += now() - t
    record("(deferred products)", 0, t_deferred, True, 0)
    return 0


def stats():
    """The profile so far: {operation: {"nodes", "batches", "forward_s", "backward_s",
    "memory_bytes"}} ("batches": calls made, fewer than nodes where autobatching grouped them)."""
    return {op: {"nodes": r[0], "batches": r[1], "forward_s": r[2], "backward_s": r[3],
                 "memory_bytes": r[4]} for op, r in _stats.items()}


def node_stats():
    """Level 2: {node index: {"op", "dim", "forward_s", "backward_s"}} for the most recent graph."""
    return {i: {"op": r[0], "dim": r[1], "forward_s": r[2], "backward_s": r[3]}
            for i, r in sorted(_detail.items())}


def reset():
    """Forget the profile so far."""
    _stats.clear()
    _detail.clear()


def report(file=None, detail=None):
    """Print the profile: one line per operation type (and per node of the last graph at level 2)."""
    out = file or sys.stdout
    rows_ = sorted(_stats.items(), key=lambda kv: -(kv[1][2] + kv[1][3]))
    tot = [sum(r[k] for _, r in rows_) for k in range(5)]
    print(f"DyNet profile (autobatch {_autobatch}): per operation type", file=out)
    print(f"{'operation':<24} {'nodes':>9} {'batches':>9} {'forward ms':>11} {'backward ms':>12} "
          f"{'memory KB':>10}", file=out)
    for op, r in rows_ + [("total", tot)]:
        print(f"{op:<24} {r[0]:>9} {r[1]:>9} {r[2] * 1e3:>11.3f} {r[3] * 1e3:>12.3f} "
              f"{r[4] / 1024:>10.1f}", file=out)
    if detail if detail is not None else _profiling > 1:
        print(f"per node (graph version {_detail_version}):", file=out)
        print(f"{'node':>8} {'operation':<24} {'dim':<16} {'forward us':>11} {'backward us':>12}", file=out)
        for i, r in sorted(_detail.items()):
            print(f"{'v' + str(i):>8} {r[0]:<24} {r[1]:<16} {r[2] * 1e6:>11.2f} {r[3] * 1e6:>12.2f}",
                  file=out)


def _exit_report():
    if _profiling and _stats:
        report(sys.stderr)


def _register_exit_report():
    global _atexit_registered
    atexit.register(_exit_report)
    _atexit_registered = True


# ---- autobatching -------------------------------------------------------------------------------
#
# The forward pass records a *plan* per graph: the nodes in the order they ran (level by level) with
# the groups marked. The gradients are laid out in plan order, a group's side by side as its values
# are, and the backward pass walks the plan backwards, group by group: a reverse topological order.

cdef enum:
    FAM_NONE = 0      # runs alone
    FAM_MAP = 1       # elementwise.pyx: unary and binary maps
    FAM_PRODUCT = 2   # matmul.pyx: products and affine transforms
    FAM_LSTM = 3      # lstm.pyx: LSTM gates, and their c and h cells
    FAM_PLACED = 4    # concatenations and lookups: placed together (their consumers' arguments
                      # then lie side by side) but run one by one
    FAM_PICK_NLL = 5  # softmax.pyx: pickneglogsoftmax over scores of one length
    FAM_PAIR = 6      # norms.pyx: dot products and distances of one kind and size
    FAM_LOSS = 7      # losses_cpu.pyx: binary_log_loss, pairwise_rank_loss, poisson_loss, hinge
    FAM_NOISE = 8     # noise.pyx: dropout and its variants, noise
    FAM_COUPLED = 9   # lstm_coupled.pyx: the coupled LSTM's c and h cells
    FAM_LAST = 9

# the node types of FAM_PLACED (set by configure: importing them here would be circular)
cdef object _concatenate = None
cdef object _lookup = None


# What each family gives the executor: its key and exact test, its batched forward and backward
# on the typed loops, and (NULL: none) its one-call run on a device without them (a GPU).
ctypedef Py_ssize_t (*key_function)(Expression) noexcept
ctypedef bint (*same_function)(Expression, Expression) noexcept
ctypedef int (*batch_function)(list) except -1
ctypedef int (*generic_function)(list, bint) except -1
ctypedef int (*recurrence_function)(Expression, int*) noexcept

cdef struct Family:
    key_function key
    same_function same
    batch_function forward
    batch_function backward
    generic_function generic
    recurrence_function recurrence   # NULL, or the steps a node adds to its recurrence (see schedule)


cdef Py_ssize_t placed_key(Expression node) noexcept:
    if type(node) is _concatenate or type(node) is _lookup:
        return total_size(&node.d) * 2 + 1
    return 0


cdef bint placed_same(Expression x, Expression y) noexcept:
    return type(x) is type(y) and total_size(&x.d) == total_size(&y.d)


cdef int placed_forward(list group) except -1:
    return node_by_node(group, False)


cdef int placed_backward(list group) except -1:
    return node_by_node(group, True)


cdef Family FAMILIES[FAM_LAST + 1]
FAMILIES[FAM_MAP] = Family(elementwise.batch_key, elementwise.same_batch, elementwise.forward_batch,
                           elementwise.backward_batch, elementwise.generic_batch, NULL)
FAMILIES[FAM_PRODUCT] = Family(matmul.batch_key, matmul.same_batch, matmul.forward_batch,
                               matmul.backward_batch, matmul.generic_batch, NULL)
FAMILIES[FAM_LSTM] = Family(lstm.batch_key, lstm.same_batch, lstm.forward_batch, lstm.backward_batch,
                            lstm.generic_batch, lstm.recurrence)
FAMILIES[FAM_PLACED] = Family(placed_key, placed_same, placed_forward, placed_backward, NULL, NULL)
FAMILIES[FAM_PICK_NLL] = Family(softmax.batch_key, softmax.same_batch, softmax.forward_batch,
                                softmax.backward_batch, softmax.generic_batch, NULL)
FAMILIES[FAM_PAIR] = Family(norms.batch_key, norms.same_batch, norms.forward_batch,
                            norms.backward_batch, norms.generic_batch, NULL)
FAMILIES[FAM_LOSS] = Family(losses.batch_key, losses.same_batch, losses.forward_batch,
                            losses.backward_batch, NULL, NULL)
FAMILIES[FAM_NOISE] = Family(noise.batch_key, noise.same_batch, noise.forward_batch,
                             noise.backward_batch, noise.generic_batch, NULL)
FAMILIES[FAM_COUPLED] = Family(lstm_coupled.batch_key, lstm_coupled.same_batch, lstm_coupled.forward_batch,
                               lstm_coupled.backward_batch, lstm_coupled.generic_batch, NULL)


cdef inline Py_ssize_t group_key(Expression node, int* family) noexcept:
    """The node's group key in its family (0: it runs alone); the family in *family."""
    cdef Py_ssize_t key
    cdef int f
    for f in range(FAM_MAP, FAM_LAST + 1):
        key = FAMILIES[f].key(node)
        if key:
            family[0] = f
            return key
    family[0] = FAM_NONE
    return 0


cdef enum:
    NEEDS_GRAD = 1
    EXTERNAL = 2


cdef extern from *:
    """
    #define DY_PREFETCH(p) __builtin_prefetch((const void*)(p))
    """
    void prefetch "DY_PREFETCH"(const void* p) noexcept nogil
    # borrowed pointers, without reference counting: a prefetch must not write to the object
    PyObject* list_item "PyList_GET_ITEM"(object lst, Py_ssize_t i) noexcept
    PyObject* tuple_item "PyTuple_GET_ITEM"(PyObject* tup, Py_ssize_t i) noexcept
    Py_ssize_t tuple_size "PyTuple_GET_SIZE"(PyObject* tup) noexcept


cdef inline Py_ssize_t argument_count(PyObject* node, PyObject** args) noexcept:
    """How many arguments a node has. Their indices are read from the node itself (first_args:
    no argument tuple and no argument to fetch), except for a node of more than three: then
    *args is its tuple (else NULL), for argument_index."""
    cdef Py_ssize_t n = (<Expression>node).n_first
    args[0] = NULL
    if n == MANY_ARGS:
        args[0] = <PyObject*>(<Expression>node).args
        n = tuple_size(args[0])
    return n


cdef inline int argument_index(PyObject* node, PyObject* args, Py_ssize_t k) noexcept:
    if args == NULL:
        return (<Expression>node).first_args[k]
    return (<Expression>tuple_item(args, k)).index


cdef void prefetch_group(ComputationGraph cg, int start, const int* order, const int* nxt,
                         int p) noexcept:
    """prefetch_node's three stages for every member of a group (the chain from position p), a
    stage at a time: the members' memory arrives in parallel, not one miss after another."""
    cdef int stage, q
    for stage in range(3):
        q = p
        while q >= 0:
            prefetch_node(cg, start + order[q], stage)
            q = nxt[q]


cdef void* grown(void* p, size_t nbytes) except NULL:
    cdef void* q = realloc(p, nbytes)
    if q == NULL:
        raise MemoryError("autobatch: cannot grow the plan")
    return q


cdef inline void prefetch_node(ComputationGraph cg, int index, int stage) noexcept:
    """Ask for a node's memory ahead of its use (the plan's order jumps around memory, so the
    hardware's prefetcher cannot guess it): stage 0 the node, 1 its argument tuple, 2 the
    arguments (each stage reads what the previous one fetched)."""
    cdef PyObject* node = list_item(cg.nodes, index)
    cdef PyObject* args
    cdef Py_ssize_t i
    if stage == 0:
        prefetch(node)
        prefetch(<char*>node + 64)
        prefetch(<char*>node + 128)
        return
    args = <PyObject*>(<Expression>node).args
    if stage == 1:
        prefetch(args)
        prefetch(<char*>args + 64)
        return
    for i in range(tuple_size(args)):
        prefetch(tuple_item(args, i))
        prefetch(<char*>tuple_item(args, i) + 64)


cdef class Plan:
    """The order one graph's nodes ran in: order[p] is a node index, starts[p] is 1 where a group
    begins. It covers the nodes base..covered-1, each once."""
    cdef int* order
    cdef unsigned char* starts
    cdef int* sizes            # each node's total size and gradient flags (NEEDS_GRAD, EXTERNAL),
    cdef unsigned char* flags  # so that laying out the gradients does not visit the nodes
    cdef int n, cap
    cdef int version           # the graph's version it belongs to
    cdef int base, covered
    cdef int placed_upto       # nodes from here on have never had their values placed

    def __dealloc__(self):
        free(self.order)
        free(self.starts)
        free(self.sizes)
        free(self.flags)

    cdef int add(self, int index, bint starts_group, int size, unsigned char flags) except -1:
        cdef int cap
        if self.n == self.cap:
            cap = max(256, 2 * self.cap)
            self.order = <int*>grown(self.order, cap * sizeof(int))
            self.sizes = <int*>grown(self.sizes, cap * sizeof(int))
            self.starts = <unsigned char*>grown(self.starts, cap)
            self.flags = <unsigned char*>grown(self.flags, cap)
            self.cap = cap
        self.order[self.n] = index
        self.starts[self.n] = starts_group
        self.sizes[self.n] = size
        self.flags[self.n] = flags
        self.n += 1
        return 0

    cdef void forget_from(self, int start) noexcept:
        """Nodes start.. run again (recalculation, or new nodes after cg_revert): drop them, so
        that the plan stays in an order their new run will follow."""
        cdef int p, k = 0
        cdef bint group_kept = False
        for p in range(self.n):
            if self.starts[p]:
                group_kept = False
            if self.order[p] < start:
                self.order[k] = self.order[p]
                self.sizes[k] = self.sizes[p]
                self.flags[k] = self.flags[p]
                self.starts[k] = not group_kept
                group_kept = True
                k += 1
        self.n = k
        if start < self.base:
            self.base = start
        if start < self.covered:
            self.covered = start


# One plan per graph object (each thread has its own, kept across renew_cg, so the plan's arrays
# are reused graph after graph), for the graph's current version. Beyond a few graph objects (threads
# come and go) the oldest plan is dropped.
cdef dict _plans = {}
cdef int MAX_PLANS = 64


cdef Plan plan_of(ComputationGraph cg):
    """The plan of the graph's current version, if it covers nodes from 0 on; else None."""
    cdef Plan plan = _plans.get(<size_t><void*>cg)
    if plan is None or plan.version != cg._version or plan.base != 0:
        return None
    return plan


cdef Plan plan_for(ComputationGraph cg, int start):
    """The plan to which a forward pass from node `start` on adds."""
    cdef Plan plan = _plans.get(<size_t><void*>cg)
    if plan is None:
        if len(_plans) >= MAX_PLANS:
            del _plans[next(iter(_plans))]
        plan = Plan.__new__(Plan)
        plan.version = -1
        _plans[<size_t><void*>cg] = plan
    if plan.version != cg._version:            # a new graph
        plan.version = cg._version
        plan.n = 0
        plan.base = plan.covered = plan.placed_upto = start
    elif start < plan.covered:
        plan.forget_from(start)
    elif start > plan.covered:                 # nodes between ran without the plan: start anew
        plan.n = 0
        plan.base = plan.covered = start
        plan.placed_upto = max(plan.placed_upto, start)
    return plan


cdef int run_one(ComputationGraph cg, Expression node, bint backward) except -1:
    """A node without a group, as the plain loops run it. (No list per node: allocating a
    container per node would wake the cyclic garbage collector every few hundred nodes, and each
    collection walks the graph.)"""
    cdef double t
    if not _profiling:
        return backward_node(node) if backward else forward_node(node)
    t = now()
    if backward:
        backward_node(node)
    else:
        forward_node(node)
    t = now() - t
    if _profiling > 1:
        record_node(cg, node, t, backward)
    record(node.op_name(), 1, t, backward, 0 if backward else total_size(&node.d) * sizeof(float))
    return 0


cdef list members(ComputationGraph cg, Plan plan, int start, const int* order, const int* nxt,
                  int p, int count, const int* sizes, const unsigned char* flags):
    """The group whose chain starts at schedule position p (count nodes), in one walk: the list
    of its nodes, each added to the plan, and their values placed in one block, side by side in
    group order (DyNet's trick): the batched kernel then writes its results there, and a next
    group of the consumers finds its arguments side by side. Only groups of nodes never placed
    before (a recalculation keeps their places) and without external values; whether they are
    is read from the schedule's arrays, so the nodes are visited once."""
    cdef size_t total = 0
    cdef int q = p, k = 0, i
    cdef float* block = NULL
    cdef PyObject* node                        # borrowed; the list takes its own reference
    cdef list group = PyList_New(count)
    while q >= 0:
        i = order[q]
        if start + i < plan.placed_upto or flags[i] & EXTERNAL:
            total = 0
            break
        total += sizes[i]
        q = nxt[q]
    if total:
        block = cg.fwd_of((<Expression>list_item(cg.nodes, start + order[p])).dev).alloc(total)
    q = p
    while q >= 0:
        i = order[q]
        node = list_item(cg.nodes, start + i)
        Py_INCREF(<object>node)
        PyList_SET_ITEM(group, k, <object>node)
        k += 1
        plan.add(start + i, q == p, sizes[i], flags[i])
        if block != NULL:
            (<Expression>node).val = block
            block += sizes[i]
        q = nxt[q]
    return group


cdef int run_group(ComputationGraph cg, list group, int family, bint backward) except -1:
    cdef Expression first = <Expression>group[0], node
    cdef double t = now() if _profiling else 0.0
    cdef size_t nbytes = 0
    if not first.dev.host_loops:                # a GPU: groups through the generic code at once
        if FAMILIES[family].generic == NULL or not FAMILIES[family].generic(group, backward):
            for node in group:
                backward_node(node) if backward else forward_node(node)
    elif backward:
        FAMILIES[family].backward(group)
    else:
        FAMILIES[family].forward(group)
    if _profiling:
        t = now() - t
        for node in group:
            nbytes += total_size(&node.d) * sizeof(float)
            if _profiling > 1:
                record_node(cg, node, t / len(group), backward)
        record(first.op_name(), len(group), t, backward, 0 if backward else nbytes)
    return 0


cdef struct Spans:
    # by key of the pass: the depths and the latest levels its nodes span, the keys numbered in
    # order of appearance (an open-addressing table of keys gives the number). Keys only, without
    # the exact test: this steers the schedule, and a collision of two keys (which the grouping
    # still tells apart) only blurs a span.
    Py_ssize_t* table_key
    int* table_id
    int mask
    int used
    int* shallowest           # by number: 5 arrays of cap ints
    int* deepest
    int* earliest_late
    int* latest_late
    int* runs_late            # whether the key's nodes line up better late
    int cap


cdef void spans_free(Spans* T) noexcept:
    free(T.table_key)
    free(T.table_id)
    free(T.shallowest)
    T.table_key, T.table_id, T.shallowest = NULL, NULL, NULL


cdef int spans_table(Spans* T, int mask) except -1:
    """A new empty table of mask + 1 slots, filled with the keys so far."""
    cdef Py_ssize_t* old_key = T.table_key
    cdef int* old_id = T.table_id
    cdef int s, old_mask = T.mask, slot
    T.table_key = <Py_ssize_t*>calloc(mask + 1, sizeof(Py_ssize_t))
    T.table_id = <int*>malloc((mask + 1) * sizeof(int))
    T.mask = mask
    try:
        if T.table_key == NULL or T.table_id == NULL:
            raise MemoryError("autobatch: cannot allocate the schedule")
        if old_key != NULL:
            for s in range(old_mask + 1):
                if old_key[s] != 0:
                    slot = spans_slot(T, old_key[s])
                    T.table_key[slot] = old_key[s]
                    T.table_id[slot] = old_id[s]
    finally:
        free(old_key)
        free(old_id)
    return 0


cdef int spans_grow(Spans* T) except -1:
    """Room for twice as many keys' spans."""
    cdef int cap = 2 * T.cap if T.cap else 32, k
    cdef int* grown = <int*>malloc(5 * cap * sizeof(int))
    if grown == NULL:
        raise MemoryError("autobatch: cannot allocate the schedule")
    for k in range(5):
        memcpy(grown + k * cap, T.shallowest + k * T.cap, T.cap * sizeof(int))
    free(T.shallowest)
    T.shallowest, T.cap = grown, cap
    T.deepest = grown + cap
    T.earliest_late = grown + 2 * cap
    T.latest_late = grown + 3 * cap
    T.runs_late = grown + 4 * cap
    return 0


cdef inline int spans_slot(const Spans* T, Py_ssize_t key) noexcept:
    """The slot of key (nonzero) in the table, or of the empty slot where it would go."""
    cdef int slot = <int>(((<size_t>key * <size_t>0x9E3779B97F4A7C15) >> 40) & <size_t>T.mask)
    while T.table_key[slot] != 0 and T.table_key[slot] != key:
        slot = (slot + 1) & T.mask
    return slot


cdef int spans_new(Spans* T, int slot, Py_ssize_t key) except -1:
    """Number key, which is not in the table (its empty slot given), and return its number."""
    cdef int k
    if T.used == T.cap:
        spans_grow(T)
    k = T.used
    T.used += 1
    T.table_key[slot] = key
    T.table_id[slot] = k
    if 2 * T.used > T.mask + 1:                 # keep the table at most half full
        spans_table(T, 2 * T.mask + 1)
    return k


cdef inline int spans_add(Spans* T, Py_ssize_t key, int depth) except -1:
    """Count a node of key (nonzero) at depth; returns the key's number."""
    cdef int slot = spans_slot(T, key), k
    if T.table_key[slot] == key:
        k = T.table_id[slot]
        T.shallowest[k] = min(T.shallowest[k], depth)
        T.deepest[k] = max(T.deepest[k], depth)
        return k
    k = spans_new(T, slot, key)
    T.shallowest[k] = T.deepest[k] = depth
    return k


cdef int late_levels(int n, int maxd, const int* estart, const int* producers, const int* numbers,
                     const int* chain, Spans* T, int* level) except -1:
    """Move the nodes of keys that line up better as late as possible (see schedule) to the latest
    level their consumers allow, and every node after its arguments; returns the deepest level
    (maxd, the levels untouched, where no key lines up better so). chain: NULL, or the levels are
    the lined-up recurrences' (aligned_levels), which keep their nodes' levels (chain[i] >= 0)."""
    cdef int i, e, s, d, latest, any_late = 0
    cdef int* late = <int*>malloc(n * sizeof(int))
    if late == NULL:
        raise MemoryError("autobatch: cannot allocate the schedule")
    try:
        if chain != NULL:                       # the keys' spans of these levels, not of the depths
            for s in range(T.used):
                T.shallowest[s], T.deepest[s] = maxd, 0
            for i in range(n):
                s = numbers[i]
                if s >= 0:
                    T.shallowest[s] = min(T.shallowest[s], level[i])
                    T.deepest[s] = max(T.deepest[s], level[i])
        for i in range(n):
            late[i] = maxd
        for i in range(n - 1, -1, -1):          # consumers before their producers
            if chain != NULL and chain[i] >= 0 and late[i] > level[i]:
                late[i] = level[i]              # a lined-up step stays where it was put
            for e in range(estart[i], estart[i + 1]):
                if late[producers[e]] > late[i] - 1:
                    late[producers[e]] = late[i] - 1
        for s in range(T.used):
            T.earliest_late[s], T.latest_late[s] = maxd, 0
        for i in range(n):
            s = numbers[i]
            if s >= 0:
                if late[i] < T.earliest_late[s]:
                    T.earliest_late[s] = late[i]
                if late[i] > T.latest_late[s]:
                    T.latest_late[s] = late[i]
        for s in range(T.used):
            T.runs_late[s] = T.latest_late[s] - T.earliest_late[s] < T.deepest[s] - T.shallowest[s]
            any_late |= T.runs_late[s]
        if not any_late:
            return maxd
        latest = 0
        for i in range(n):
            d = level[i] if chain != NULL and chain[i] >= 0 else 0
            for e in range(estart[i], estart[i + 1]):
                if level[producers[e]] + 1 > d:
                    d = level[producers[e]] + 1
            s = numbers[i]
            if s >= 0 and T.runs_late[s] and late[i] > d:
                d = late[i]
            level[i] = d
            if d > latest:
                latest = d
        return latest
    finally:
        free(late)


cdef enum:
    ALIGN_ROUNDS = 4          # lined-up floors settle in one or two rounds where they settle at all


cdef int aligned_levels(int n, const int* estart, const int* producers, const int* chain,
                        Spans* S, int* level) except -1:
    """Line up the same steps of recurrences of one kind that start at different depths (see
    schedule): each node of a (key, step) at one level, the latest its members need, every node
    still after its arguments and no earlier than before. A floor raised in a round moves the
    nodes placed before it in the next; where the floors have not settled after ALIGN_ROUNDS
    rounds (a step that waits for a later step of its own kind), the levels are left as they were
    and 0 returned; else the deepest level (at least 1: the floors differed)."""
    cdef int* floor = S.deepest               # by (key, step): its deepest member by depth, to start
    cdef int* placed = <int*>malloc(n * sizeof(int))
    cdef int i, e, d, c, _round, latest
    cdef bint settled
    if placed == NULL:
        raise MemoryError("autobatch: cannot allocate the schedule")
    try:
        for _round in range(ALIGN_ROUNDS):
            settled = True
            latest = 0
            for i in range(n):
                d = level[i]
                for e in range(estart[i], estart[i + 1]):
                    if placed[producers[e]] + 1 > d:
                        d = placed[producers[e]] + 1
                c = chain[i]
                if c >= 0:
                    if d > floor[c]:
                        floor[c] = d                # the members placed before must follow
                        settled = False
                    else:
                        d = floor[c]
                placed[i] = d
                if d > latest:
                    latest = d
            if settled:
                memcpy(level, placed, n * sizeof(int))
                return latest
        return 0
    finally:
        free(placed)


cdef int* schedule(ComputationGraph cg, int start, int n, int* nlevels, int* numbers, int* nkeys,
                   int* families, int* sizes, unsigned char* flags) except NULL:
    """The nodes start..start+n-1 ordered by (level, index) (a counting sort). Returns one
    malloc'ed block: the order (n ints), then the end of each level (*nlevels ints); the caller
    frees it. Also each node's family, size and gradient flags, and the number of its group key
    (0..*nkeys - 1 in order of appearance; -1 for a node that runs alone), in this pass, which
    walks the nodes in index order: the later passes read them without visiting the nodes.

    A node's level is its depth, 1 + the deepest level among its arguments in that range (as soon
    as possible), except for the nodes of a key that line up better as late as possible: each at
    the latest level its consumers allow (the pass's depth minus its distance to its last
    consumer), where the key's nodes span fewer levels so than by depth. The MLP over a BiLSTM's
    states, a language model's output layer, the losses at the roots of trees of different
    heights lie at every depth but at one distance from the loss: they wait and run as one group,
    where by depth they ran as one group per level (25-50 in a batch of tagged sentences). The
    paper's agenda (a ready signature waits while its nodes lie deeper on average than another's)
    delays them too, but splits a level's nodes of one signature that become ready at different
    steps of it (measured: a Tree-LSTM's cell products and sums in 17% and 31% more groups).

    Before that, recurrences that start at different depths are lined up by step: a family with a
    `recurrence` function (the LSTM's gates and cells) numbers its nodes' steps (a node's own step
    plus that of the argument it continues; other nodes pass on the largest step of their
    arguments), and the nodes of one key and step share the level the latest of them needs
    (aligned_levels). The second layer of a two-layer BiLSTM starts when the first layer of its
    sentence is done, so by depth its step t of a sentence of n words lay 3n levels later: one
    group per n + t; lined up, one per t (30% fewer groups in bench/workloads/bilstm2_auto.py).

    A map's key also takes in its arguments' own keys (their producers): logistic(W_i x + b_i)
    and logistic(W_o x + b_o) then form two groups, each reading its affine group's values side
    by side and written side by side for its own consumers, where one group of both would
    interleave them and leave every consumer to gather."""
    cdef int i, d, da, ai, maxd = 0, nedges = 0, cap = 3 * n + 16, carried
    cdef bint misaligned = False
    cdef Py_ssize_t k, nargs
    cdef PyObject* node                       # borrowed: no reference counting in this walk
    cdef PyObject* args
    cdef size_t key
    cdef recurrence_function recurrence
    cdef Spans spans, steps
    memset(&spans, 0, sizeof(Spans))
    memset(&steps, 0, sizeof(Spans))
    cdef int* depth = <int*>malloc(4 * n * sizeof(int) + sizeof(int))   # depth, estart, step, chain
    cdef Py_ssize_t* own = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))     # keys before mixing
    cdef int* producers = <int*>malloc(cap * sizeof(int))                 # argument by argument
    cdef int* estart
    cdef int* step
    cdef int* chain
    cdef int* grown_edges
    cdef int* block = NULL
    cdef int* ends
    try:
        if depth == NULL or own == NULL or producers == NULL:
            raise MemoryError("autobatch: cannot allocate the schedule")
        estart = depth + n                    # n + 1: node i's arguments are producers[estart[i]:..]
        step = estart + n + 1                 # a recurrence's nodes: their step (else 0) ...
        chain = step + n                      # ... and the number of their (key, step) (else -1)
        spans_table(&spans, 63)
        spans_table(&steps, 63)
        for i in range(n):
            if i + 16 < n:                    # node objects lie wherever the allocator put them
                prefetch_node(cg, start + i + 16, 0)
            if i + 8 < n:                     # (products' keys read their argument tuple)
                prefetch_node(cg, start + i + 8, 1)
            node = list_item(cg.nodes, start + i)
            own[i] = group_key(<Expression>node, families + i)
            sizes[i] = <int>total_size(&(<Expression>node).d)
            flags[i] = ((NEEDS_GRAD if (<Expression>node).needs_grad else 0)
                        | (EXTERNAL if (<Expression>node).external_grad else 0))
            key = <size_t>own[i]
            d = 0
            estart[i] = nedges
            nargs = argument_count(node, &args)
            step[i], chain[i] = 0, -1
            for k in range(nargs):
                ai = argument_index(node, args, k) - start
                if ai >= 0:
                    da = depth[ai] + 1
                    if da > d:
                        d = da
                    if step[ai] > step[i]:
                        step[i] = step[ai]
                    if families[i] == FAM_MAP:
                        key = key * <size_t>0x100000001B3 + <size_t>own[ai]
                    if nedges == cap:
                        cap *= 2
                        grown_edges = <int*>realloc(producers, cap * sizeof(int))
                        if grown_edges == NULL:
                            raise MemoryError("autobatch: cannot allocate the schedule")
                        producers = grown_edges
                    producers[nedges] = ai
                    nedges += 1
            depth[i] = d
            numbers[i] = spans_add(&spans, <Py_ssize_t>key if key else 1, d) if own[i] else -1
            if d > maxd:
                maxd = d
            recurrence = FAMILIES[families[i]].recurrence
            if recurrence != NULL and own[i]:       # its step: its own, plus the one it continues
                step[i] = recurrence(<Expression>node, &carried)
                if carried >= 0:
                    ai = argument_index(node, args, carried) - start
                    if ai >= 0:
                        step[i] += step[ai]
                key = <size_t>own[i] * <size_t>0x100000001B3 + <size_t>step[i]
                chain[i] = spans_add(&steps, <Py_ssize_t>key if key else 1, d)
                misaligned |= steps.shallowest[chain[i]] != steps.deepest[chain[i]]
        estart[n] = nedges
        if misaligned:
            d = aligned_levels(n, estart, producers, chain, &steps, depth)
            if d == 0:
                misaligned = False
            else:
                maxd = d
        if maxd > 0:
            maxd = late_levels(n, maxd, estart, producers, numbers, chain if misaligned else NULL,
                               &spans, depth)
        block = <int*>calloc(n + maxd + 2, sizeof(int))
        if block == NULL:
            raise MemoryError("autobatch: cannot allocate the schedule")
        ends = block + n + 1                  # ends[d] (after the pass below) = end of level d
        for i in range(n):
            ends[depth[i]] += 1
        for d in range(maxd + 1):
            ends[d] += ends[d - 1] if d > 0 else 0
        for i in range(n - 1, -1, -1):        # stable: increasing index within a level
            ends[depth[i]] -= 1
            block[ends[depth[i]]] = i
        for d in range(maxd + 1):             # ends[d] was the start of level d; make it its end
            ends[d] = ends[d + 1] if d < maxd else n
        nlevels[0] = maxd + 1
        nkeys[0] = spans.used
        return block
    finally:
        free(depth)
        free(own)
        free(producers)
        spans_free(&spans)
        spans_free(&steps)


cdef int autobatch_forward(ComputationGraph cg, int index) except -1:
    """Compute nodes n_forwarded..index level by level: in each level, same-signature nodes as
    one group (placed side by side, one batched call), every other node alone."""
    cdef int start = cg.n_forwarded
    if index < start:
        return 0
    cdef int n = index + 1 - start, i, p, d, g, h, k, family, size, groups, nlevels = 0, nkeys = 0
    cdef Expression node
    cdef list group
    cdef Plan plan = plan_for(cg, start)
    # by node (offset from start): key number and family; by position in the schedule: next
    # member of its group; by group of the level: first and last member, size, key number, and
    # the level's next group of that key number (nodes of one key that the exact test parts)
    cdef int* families = <int*>malloc(9 * n * sizeof(int) + n)
    cdef int* numbers = families + n
    cdef int* nxt = numbers + n
    cdef int* head = nxt + n
    cdef int* tail = head + n
    cdef int* count = tail + n
    cdef int* group_number = count + n
    cdef int* next_group = group_number + n
    cdef int* sizes = next_group + n
    cdef unsigned char* flags = <unsigned char*>(sizes + n)
    cdef int* group_of = NULL                  # by key number: its first group in the level, or -1
    cdef int* order = NULL
    cdef int* ends
    try:
        if families == NULL:
            raise MemoryError("autobatch: cannot allocate the groups")
        order = schedule(cg, start, n, &nlevels, numbers, &nkeys, families, sizes, flags)
        ends = order + n + 1
        group_of = <int*>malloc((nkeys + 1) * sizeof(int))
        if group_of == NULL:
            raise MemoryError("autobatch: cannot allocate the groups")
        memset(group_of, 0xff, (nkeys + 1) * sizeof(int))
        i = 0
        for d in range(nlevels):
            groups = 0
            size = ends[d] - (ends[d - 1] if d > 0 else 0)
            while i < ends[d]:
                p = i
                i += 1
                if p + 16 < n:                    # the exact test reads the node ...
                    prefetch_node(cg, start + order[p + 16], 0)
                if p + 8 < n:                     # ... and (products) its argument tuple
                    prefetch_node(cg, start + order[p + 8], 1)
                k = numbers[order[p]]
                if k < 0 or size == 1:
                    node = <Expression>PyList_GET_ITEM(cg.nodes, start + order[p])
                    run_one(cg, node, False)
                    plan.add(start + order[p], True, sizes[order[p]], flags[order[p]])
                    continue
                family = families[order[p]]
                nxt[p] = -1
                g = group_of[k]
                while g >= 0:
                    h = order[head[g]]
                    if families[h] == family and FAMILIES[family].same(
                            <Expression>PyList_GET_ITEM(cg.nodes, start + h),
                            <Expression>PyList_GET_ITEM(cg.nodes, start + order[p])):
                        nxt[tail[g]] = p
                        tail[g] = p
                        count[g] += 1
                        break
                    g = next_group[g]
                if g < 0:
                    g = groups
                    groups += 1
                    head[g] = tail[g] = p
                    count[g] = 1
                    group_number[g] = k
                    next_group[g] = group_of[k]
                    group_of[k] = g
            for g in range(groups):
                group_of[group_number[g]] = -1
                p = head[g]
                if count[g] == 1:
                    node = <Expression>PyList_GET_ITEM(cg.nodes, start + order[p])
                    run_one(cg, node, False)
                    plan.add(start + order[p], True, sizes[order[p]], flags[order[p]])
                    continue
                prefetch_group(cg, start, order, nxt, p)
                group = members(cg, plan, start, order, nxt, p, count[g], sizes, flags)
                run_group(cg, group, families[order[head[g]]], False)
        cg.n_forwarded = index + 1
        plan.covered = index + 1
        if plan.placed_upto < index + 1:
            plan.placed_upto = index + 1
    except BaseException:
        plan.forget_from(start)                # these nodes run again next time
        raise
    finally:
        free(order)
        free(group_of)
        free(families)
    return 0


cdef int autobatch_layout(ComputationGraph cg, int n, bint full) except -1:
    """The gradients of nodes 0..n-1 in plan order, each group's side by side (as their values), in
    one block of the backward pool zeroed at once; the plain layout where there is no plan."""
    cdef Plan plan = plan_of(cg)
    if plan is None or plan.covered < n:
        if PyList_GET_SIZE(cg.devices) == 1:
            return cg._layout_gradients_one_device(n, full)
        return cg._layout_gradients(n, full)
    cdef Arena pool = cg.bwd_of(cg.node_dev)     # (all the nodes are there: ComputationGraph.one_device)
    cdef size_t need = 0, run = 0
    cdef int p, q, i
    cdef unsigned char f
    cdef PyObject* node
    cdef float* block
    # as _layout_gradients_one_device: a gradient for what needs one (every node with `full`), none
    # for parameters (they accumulate into their own) and NULL for the rest
    cdef unsigned char* wants = <unsigned char*>malloc(plan.n + 1)
    if wants == NULL:
        raise MemoryError("autobatch: cannot lay out the gradients")
    try:
        for p in range(plan.n):
            f = plan.flags[p]
            if plan.order[p] >= n or (f & EXTERNAL and f & NEEDS_GRAD):
                wants[p] = 0                      # left as it is
            elif full or f & NEEDS_GRAD:
                wants[p] = 1
            else:
                wants[p] = 2                      # NULL
        for p in range(plan.n + 1):               # a group's gradients are one allocation
            if p == plan.n or plan.starts[p]:
                need += (run + 15) & ~(<size_t>15)
                run = 0
                if p == plan.n:
                    break
            if wants[p] == 1:
                run += plan.sizes[p]
        pool.reset()
        pool.reserve(need)
        p = 0
        while p < plan.n:
            q, run = p + 1, 0
            while q < plan.n and not plan.starts[q]:
                q += 1
            for i in range(p, q):
                if wants[i] == 1:
                    run += plan.sizes[i]
            block = pool.alloc(run) if run else NULL
            for i in range(p, q):
                if i + 8 < plan.n and wants[i + 8]:
                    prefetch_node(cg, plan.order[i + 8], 0)
                if wants[i] == 0:
                    continue
                node = list_item(cg.nodes, plan.order[i])       # (borrowed: no count written)
                if wants[i] == 1:
                    (<Expression>node).grad = block
                    block += plan.sizes[i]
                else:
                    (<Expression>node).grad = NULL
            p = q
    finally:
        free(wants)
    pool.zero_used()
    return 0


cdef int autobatch_backward(ComputationGraph cg, Expression root) except -1:
    """The backward visit (graph.pyx's run_backward) along the plan backwards, a group at a time:
    a group's reached nodes run as one batched backward (maps whose gradients lie side by side,
    LSTM gates); products defer theirs to matmul's wide GEMMs. Without a plan (a graph computed
    before autobatching was switched on), node by node in reverse index order."""
    cdef int n = root.index + 1, p, q, i, idx, family
    cdef Py_ssize_t k, nargs
    cdef PyObject* node                          # borrowed: no reference counting in this walk
    cdef PyObject* args
    cdef list group
    cdef bytearray reached = bytearray(n)
    cdef unsigned char* seen = reached
    cdef Plan plan = plan_of(cg)
    cdef bint planned = plan is not None and plan.covered >= n
    cdef double t, t_deferred = 0.0
    run_backward_hooks(True)
    seen[n - 1] = 1
    p = plan.n if planned else n
    while p > 0:
        q = p - 1                               # the group is q..p-1 (one node without a plan)
        while planned and q > 0 and not plan.starts[q]:
            q -= 1
        group = None
        for i in range(p - 1, q - 1, -1):
            if planned:
                if i >= 24 and plan.order[i - 24] < n:
                    prefetch_node(cg, plan.order[i - 24], 0)
                if i >= 16 and plan.order[i - 16] < n:
                    prefetch_node(cg, plan.order[i - 16], 1)
                if i >= 8 and plan.order[i - 8] < n:
                    prefetch_node(cg, plan.order[i - 8], 2)
            idx = plan.order[i] if planned else i
            if idx >= n or not seen[idx]:
                continue
            node = list_item(cg.nodes, idx)
            if (<Expression>node).deferred_grad:
                t = now() if _profiling else 0.0
                complete_pending(<Expression>node)
                if _profiling:
                    t_deferred += now() - t
            nargs = argument_count(node, &args)
            if (<Expression>node).grad == NULL or not (nargs or (<Expression>node).needs_grad):
                continue
            for k in range(nargs):
                seen[argument_index(node, args, k)] = 1
            if p - q == 1:
                run_one(cg, <Expression>node, True)
            elif group is None:
                group = [<Expression>node]
            else:
                group.append(<Expression>node)
        if group is not None:
            if len(group) == 1:                 # (the member that ran: a later visited node
                run_one(cg, <Expression>group[0], True)     # may have had nothing to do)
            else:
                group.reverse()                   # plan order: side by side as laid out
                group_key(<Expression>group[0], &family)
                run_group(cg, group, family, True)
        p = q
    t = now() if _profiling else 0.0
    run_backward_hooks(False)
    if _profiling:
        record("(deferred products)", 0, t_deferred + now() - t, True, 0)
    return 0
