"""The graph's other executors: automatic operation batching (--dynet-autobatch 1) and profiling
(--dynet-profiling 1/2). With both flags off (the default) nothing here runs: the graph keeps its
plain loops (graph.pyx), and `configure` only installs a runner when a flag asks for one.

Autobatching (Neubig, Goldberg and Dyer 2017) runs the nodes not yet computed level by level, a
node's level being 1 + the deepest level among its arguments computed in this pass (the paper's
depth-based schedule): nodes of one level never depend on each other. Within a level, nodes with
the same signature form a group run as one batched call; the signatures and batched kernels live in
the node families (matmul.pyx: products sharing their matrix, affine transforms sharing bias and
matrices; lstm.pyx: LSTM gates sharing their parameters). Every other node runs its own forward in
schedule order. The backward pass runs by decreasing level, the LSTM gates of a level as one
batched backward; products keep matmul's deferral (their backward as wide GEMMs in any order).

Profiling times every node's forward and backward (or every batch) into a table per operation type;
`stats()` returns it, `report()` prints it, and with the flag it is printed at exit.
"""
from cpython.list cimport PyList_GET_ITEM
from libc.stdlib cimport malloc, calloc, free
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

import atexit
import sys

from dynet.core.dim cimport total_size, dim_str
from dynet.core.graph cimport (Expression, ComputationGraph, set_runners, forward_runner,
                               backward_runner,
                               run_backward_hooks, complete_pending)
cimport dynet.nodes.matmul as matmul
cimport dynet.nodes.lstm as lstm

cdef int _autobatch = 0
cdef int _profiling = 0


def configure(autobatch=0, profiling=0):
    """Install the runners the flags ask for (called by init; tests switch them here)."""
    global _autobatch, _profiling
    _autobatch, _profiling = int(autobatch or 0), int(profiling or 0)
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
    set_runners(fwd, bwd)


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


cdef int profiled_forward(ComputationGraph cg, int index) except -1:
    cdef Expression node
    cdef int i
    cdef double t
    for i in range(cg.n_forwarded, index + 1):
        node = <Expression>PyList_GET_ITEM(cg.nodes, i)
        t = now()
        node.forward_impl()
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
            node.backward_impl()
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

cdef object signature(Expression node):
    """The group key of a node with a batched kernel (its family's), None for one that runs alone."""
    key = matmul.batch_signature(node)
    if key is None:
        key = lstm.batch_signature(node)
    return key


cdef int run_one(ComputationGraph cg, Expression node, bint backward) except -1:
    """A node without a group, as the plain loops run it. (No list per node: allocating a
    container per node would wake the cyclic garbage collector every few hundred nodes, and each
    collection walks the graph.)"""
    cdef double t
    if not _profiling:
        return node.backward_impl() if backward else node.forward_impl()
    t = now()
    if backward:
        node.backward_impl()
    else:
        node.forward_impl()
    t = now() - t
    if _profiling > 1:
        record_node(cg, node, t, backward)
    record(node.op_name(), 1, t, backward, 0 if backward else total_size(&node.d) * sizeof(float))
    return 0


cdef int run_group(ComputationGraph cg, list group, int group_kind) except -1:
    cdef Expression first = <Expression>group[0], node
    cdef double t = now() if _profiling else 0.0
    cdef size_t nbytes = 0
    if len(group) == 1:
        first.forward_impl()
    else:
        if group_kind == 3:
            lstm.forward_batch(group)
        else:
            matmul.forward_batch(group)
    if _profiling:
        t = now() - t
        for node in group:
            nbytes += total_size(&node.d) * sizeof(float)
            if _profiling > 1:
                record_node(cg, node, t / len(group), False)
        record(first.op_name(), len(group), t, False, nbytes)
    return 0


cdef int* schedule(ComputationGraph cg, int start, int n, int* nlevels) except NULL:
    """The nodes start..start+n-1 ordered by (level, index), a node's level being 1 + the deepest
    level among its arguments in that range (a counting sort). Returns one malloc'ed block: the
    order (n ints), then the end of each level (*nlevels ints); the caller frees it."""
    cdef int i, d, da, maxd = 0
    cdef Expression node, a
    cdef int* depth = <int*>malloc(n * sizeof(int))
    cdef int* block = NULL
    cdef int* ends
    if depth == NULL:
        raise MemoryError("autobatch: cannot allocate the schedule")
    try:
        for i in range(n):
            node = <Expression>PyList_GET_ITEM(cg.nodes, start + i)
            d = 0
            for a in node.args:
                if a.index >= start:
                    da = depth[a.index - start] + 1
                    if da > d:
                        d = da
            depth[i] = d
            if d > maxd:
                maxd = d
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
        return block
    finally:
        free(depth)


cdef int autobatch_forward(ComputationGraph cg, int index) except -1:
    """Compute nodes n_forwarded..index level by level, grouping same-signature nodes."""
    cdef int start = cg.n_forwarded
    if index < start:
        return 0
    cdef int n = index + 1 - start, i = 0, d, nlevels = 0
    cdef Expression node
    cdef list level
    cdef dict groups
    cdef int* order = schedule(cg, start, n, &nlevels)
    cdef int* ends = order + n + 1
    try:
        for d in range(nlevels):
            groups = {}
            while i < ends[d]:
                node = <Expression>PyList_GET_ITEM(cg.nodes, start + order[i])
                i += 1
                key = signature(node)
                if key is None:
                    run_one(cg, node, False)
                else:
                    level = groups.get(key)
                    if level is None:
                        groups[key] = [node]
                    else:
                        level.append(node)
            for key, level in groups.items():
                run_group(cg, level, key[0])
        cg.n_forwarded = index + 1
    finally:
        free(order)
    return 0


cdef int run_backward_group(ComputationGraph cg, list group) except -1:
    cdef Expression first = <Expression>group[0], node
    cdef double t = now() if _profiling else 0.0
    if len(group) == 1:
        first.backward_impl()
    else:
        lstm.backward_batch(group)
    if _profiling:
        t = now() - t
        if _profiling > 1:
            for node in group:
                record_node(cg, node, t / len(group), True)
        record(first.op_name(), len(group), t, True, 0)
    return 0


cdef int autobatch_backward(ComputationGraph cg, Expression root) except -1:
    """The backward visit (graph.pyx's run_backward) by decreasing level, which is also a reverse
    topological order (a node's consumers are all on higher levels, so its gradient is complete
    when its level comes): same-signature LSTM gates of a level run as one batched backward.
    Products and affine transforms need no grouping here: they defer their backward to matmul's
    wide GEMMs in any order."""
    cdef int n = root.index + 1, i, d, nlevels = 0
    cdef Expression node, a
    cdef list level
    cdef dict groups
    cdef bytearray reached = bytearray(n)
    cdef unsigned char* seen = reached
    cdef int* order = schedule(cg, 0, n, &nlevels)
    cdef int* ends = order + n + 1
    cdef double t, t_deferred = 0.0
    try:
        run_backward_hooks(True)
        seen[n - 1] = 1
        i = n - 1
        for d in range(nlevels - 1, -1, -1):
            groups = {}
            while i >= (ends[d - 1] if d > 0 else 0):
                node = <Expression>PyList_GET_ITEM(cg.nodes, order[i])
                i -= 1
                if not seen[node.index]:
                    continue
                if node.deferred_grad:
                    t = now() if _profiling else 0.0
                    complete_pending(node)
                    if _profiling:
                        t_deferred += now() - t
                if node.grad == NULL or not (node.args or node.needs_grad):
                    continue
                for a in node.args:
                    seen[a.index] = 1
                key = lstm.batch_signature(node)
                if key is None:
                    run_one(cg, node, True)
                else:
                    level = groups.get(key)
                    if level is None:
                        groups[key] = [node]
                    else:
                        level.append(node)
            for level in groups.values():
                run_backward_group(cg, level)
        t = now() if _profiling else 0.0
        run_backward_hooks(False)
        if _profiling:
            record("(deferred products)", 0, t_deferred + now() - t, True, 0)
    finally:
        free(order)
    return 0
