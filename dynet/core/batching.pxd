# Helpers for the batched kernels of autobatching (dynet/core/execution.pyx): a group of nodes of one
# signature gathers one argument of each node side by side into a matrix, runs one kernel over all
# the columns, and scatters the result columns back into each node's value. Autobatching places a
# group's values (and gradients) side by side, so where the argument group is the producing group
# (in the same order) there is nothing to gather or scatter. At the end, generic_columns: how a
# group runs on a device without the typed loops (a GPU), as one call of its generic implementation.
from dynet.core.dim cimport Dim, cols, rows, total_size, make_dim1, make_dim2
from dynet.core.graph cimport Expression, activate_device
from dynet.core.device cimport Device
from dynet.kernels.cpu cimport copy
from cpython.ref cimport PyObject
from cpython.list cimport PyList_GET_SIZE


# The walks below read the members and their arguments through borrowed pointers: iterating with
# typed Cython variables writes two reference counts per node and argument (and type-tests and
# bounds-checks each argument), on objects of other groups whose cache lines it then dirties.
cdef extern from *:
    PyObject* member "PyList_GET_ITEM"(object group, Py_ssize_t i) noexcept
    PyObject* arg_of "PyTuple_GET_ITEM"(PyObject* args, Py_ssize_t i) noexcept


cdef inline PyObject* argument(PyObject* node, Py_ssize_t i) noexcept:
    """Argument i of a node, borrowed."""
    return arg_of(<PyObject*>(<Expression>node).args, i)


cdef enum:
    MAX_SLOTS = 6             # the nodes themselves and up to 5 arguments per layout query


cdef struct Layout:
    # What one walk over a group learns (group_layout): slot 0 is the nodes themselves, slot k + 1
    # their argument args[k]. val[s] / grad[s]: where those values / gradients lie side by side in
    # group order (NULL where they do not, or were not asked for); some_grad[s] / all_grad[s]: some /
    # every member has a gradient there; cols: the nodes' columns, every batch element's side by side.
    Py_ssize_t cols
    float* val[MAX_SLOTS]
    float* grad[MAX_SLOTS]
    bint some_grad[MAX_SLOTS]
    bint all_grad[MAX_SLOTS]


cdef inline int node_by_node(list group, bint backward) except -1:
    """A group whose batched kernel cannot run (its values or gradients do not lie side by side):
    each node's own typed forward or backward, in group order."""
    cdef Expression node
    for node in group:
        if backward:
            node.backward_impl()
        else:
            node.forward_impl()
    return 0


cdef inline Py_ssize_t ncols(Expression e) noexcept:
    """Columns of e's value, every batch element's side by side."""
    return <Py_ssize_t>cols(&e.d) * e.d.bd


cdef inline bint own_columns(Expression node) noexcept:
    """Every argument has the node's batch size (none is a batch-1 argument broadcast over it): a
    group of such nodes is columns, each node's own."""
    cdef Py_ssize_t k
    for k in range(len(node.args)):
        if (<Expression>argument(<PyObject*>node, k)).d.bd != node.d.bd:
            return False
    return True


cdef inline Py_ssize_t total_cols(list group) noexcept:
    cdef Expression node
    cdef Py_ssize_t total = 0
    for node in group:
        total += ncols(node)
    return total


cdef inline float* side_by_side(list group, Py_ssize_t arg, bint grads) noexcept:
    """Where the value (grads: the gradient) of argument `arg` (-1: the node itself) of each node
    already lies side by side in group order (autobatching places a group's values and gradients
    so), else NULL."""
    cdef PyObject* node
    cdef PyObject* a
    cdef float* start = NULL
    cdef float* p
    cdef Py_ssize_t off = 0, k
    for k in range(PyList_GET_SIZE(group)):
        node = member(group, k)
        a = node if arg < 0 else argument(node, arg)
        p = (<Expression>a).grad if grads else (<Expression>a).val
        if p == NULL:
            return NULL
        if start == NULL:
            start = p
        elif p != start + off:
            return NULL
        off += total_size(&(<Expression>a).d)
    return start


cdef inline void group_layout(list group, int nargs, const int* args, bint grads, Layout* L) noexcept:
    """One walk over the group for all that its batched kernel asks (side_by_side, total_cols and
    the gradient flags together: each walk over a large group is a cache miss per node): slot 0
    the nodes, slot k + 1 (k < nargs) their argument args[k]; gradients only where `grads`."""
    cdef PyObject* node
    cdef PyObject* a
    cdef Py_ssize_t off[MAX_SLOTS]
    cdef Py_ssize_t goff[MAX_SLOTS]
    cdef bint vbroken[MAX_SLOTS]
    cdef bint gbroken[MAX_SLOTS]
    cdef bint first = True
    cdef int s
    cdef Py_ssize_t k, size
    cdef float* p
    L.cols = 0
    for s in range(nargs + 1):
        off[s] = goff[s] = 0
        vbroken[s] = gbroken[s] = False
        L.val[s] = L.grad[s] = NULL
        L.some_grad[s] = False
        L.all_grad[s] = True
    for k in range(PyList_GET_SIZE(group)):
        node = member(group, k)
        L.cols += ncols(<Expression>node)
        for s in range(nargs + 1):
            a = node if s == 0 else argument(node, args[s - 1])
            size = total_size(&(<Expression>a).d)
            p = (<Expression>a).val
            if first:
                L.val[s] = p
            elif p != L.val[s] + off[s]:
                vbroken[s] = True
            off[s] += size
            if not grads:
                continue
            p = (<Expression>a).grad
            if p == NULL:
                L.all_grad[s] = False
                gbroken[s] = True
            else:
                L.some_grad[s] = True
                if first:
                    L.grad[s] = p
                elif p != L.grad[s] + goff[s]:
                    gbroken[s] = True
            goff[s] += size
        first = False
    for s in range(nargs + 1):
        if vbroken[s] or L.val[s] == NULL:
            L.val[s] = NULL
        if gbroken[s] or not grads:
            L.grad[s] = NULL
    for s in range(nargs + 1, MAX_SLOTS):
        L.val[s] = L.grad[s] = NULL
        L.some_grad[s] = L.all_grad[s] = False


cdef inline float* gather_into(list group, Py_ssize_t arg, Py_ssize_t k, float* dst) noexcept:
    """Argument `arg` (k rows) of each node, all its columns, copied side by side into dst."""
    cdef Expression node, a
    cdef Py_ssize_t off = 0, n
    for node in group:
        a = <Expression>node.args[arg]
        n = k * ncols(a)
        copy(n, a.val, dst + off)
        off += n
    return dst


cdef inline const float* gather_arg(list group, Py_ssize_t arg, Py_ssize_t k, float* dst) noexcept:
    """Argument `arg` (k rows) of each node, all its columns, side by side: where they already
    lie so, that memory; else copied into dst."""
    cdef const float* together = side_by_side(group, arg, False)
    if together != NULL:
        return together
    return gather_into(group, arg, k, dst)


cdef inline float* node_values(list group) noexcept:
    """The group's values as one block, if autobatching placed them so, else NULL: a batched
    kernel then writes its results there directly."""
    return side_by_side(group, -1, False)


cdef inline void scatter_values(list group, Py_ssize_t m, const float* src) noexcept:
    """The inverse for the results: each node's columns (m rows) from src into its value."""
    cdef Expression node
    cdef Py_ssize_t off = 0, n
    if node_values(group) == src:
        return
    for node in group:
        n = m * ncols(node)
        copy(n, src + off, node.val)
        off += n


cdef inline object columns_view(Device dev, float* p, int nrows, Py_ssize_t ncol, bint as_batch):
    """nrows x ncol values at p on their device: a matrix (rows, columns, batch 1), or with
    `as_batch` a batch of ncol vectors (rows, batch)."""
    cdef Dim d = make_dim1(nrows, <int>ncol) if as_batch else make_dim2(nrows, <int>ncol, 1)
    return dev.view(p, &d)


cdef inline object device_columns(list group, int arg, bint as_batch):
    """Argument `arg` of every node of a group as views on their device (columns_view), in group
    order."""
    cdef Expression node, a
    cdef Device dev = (<Expression>group[0]).dev
    views = []
    for node in group:
        a = <Expression>node.args[arg]
        views.append(columns_view(dev, a.val, rows(&a.d), ncols(a), as_batch))
    return views


cdef inline int generic_columns(list group, bint backward, const int* inputs, int nin,
                                bint as_batch) except -1:
    """A group on a device without the typed loops (a GPU) as ONE call of its first node's generic
    implementation: arguments `inputs` (nin of them) as one array each of all the group's columns
    (columns_view: a matrix, or with `as_batch` a batch of vectors; in place where the producers
    placed them side by side, else gathered in one concatenation; an input gradient that is not
    side by side is computed into a temporary and added to each node's), the other arguments
    (shared by the whole group: matrices, biases) as they are, the result into the group's block.
    Returns 1; 0 where the group's own values or (backward) gradients do not lie side by side: the
    caller then runs the nodes one by one."""
    cdef Expression first = <Expression>group[0], a, node
    cdef Device dev = first.dev
    cdef Layout L
    cdef int i, j, nrows
    cdef Py_ssize_t off
    group_layout(group, nin, inputs, backward, &L)
    if L.val[0] == NULL or backward and L.grad[0] == NULL:
        return 0
    xs = [None] * len(first.args)
    blocks = [None] * len(first.args)
    scattered = []                           # input positions whose gradients are added back
    for i in range(len(first.args)):
        a = <Expression>first.args[i]
        xs[i] = dev.view(a.val, &a.d)
    activate_device(dev)
    for j in range(nin):
        nrows = rows(&(<Expression>first.args[inputs[j]]).d)
        if L.val[j + 1] != NULL:
            xs[inputs[j]] = columns_view(dev, L.val[j + 1], nrows, L.cols, as_batch)
        else:
            xs[inputs[j]] = dev.xp.concatenate(device_columns(group, inputs[j], as_batch), axis=1)
        if not backward:
            continue
        if L.grad[j + 1] != NULL:
            blocks[inputs[j]] = columns_view(dev, L.grad[j + 1], nrows, L.cols, as_batch)
        elif L.some_grad[j + 1]:
            blocks[inputs[j]] = dev.xp.zeros(xs[inputs[j]].shape, dtype=xs[inputs[j]].dtype)
            scattered.append(inputs[j])
    out = columns_view(dev, L.val[0], rows(&first.d), L.cols, as_batch)
    if not backward:
        first.generic_forward(dev.xp, xs, out)
        return 1
    dout = columns_view(dev, L.grad[0], rows(&first.d), L.cols, as_batch)
    for i in range(len(first.args)):
        a = <Expression>first.args[i]
        if blocks[i] is not None:
            first.generic_backward(dev.xp, xs, out, dout, i, blocks[i])
        elif a.grad != NULL:                 # a shared argument: one gradient for the group
            first.generic_backward(dev.xp, xs, out, dout, i, dev.view(a.grad, &a.d))
    for i in scattered:
        off = 0
        for node in group:
            a = <Expression>node.args[i]
            if a.grad != NULL:
                mine = columns_view(dev, a.grad, rows(&a.d), ncols(a), as_batch)
                mine += blocks[i][:, off:off + ncols(a)]
            off += ncols(a)
    return 1
