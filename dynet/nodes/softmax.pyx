"""Softmaxes: softmax and log_softmax over each column (with `restrict`), and the fused
pickneglogsoftmax loss (one node: log-sum-exp minus the picked score), which autobatching runs
as one loop over a group's columns."""
cimport cython
from libc.stdlib cimport malloc, free
from libc.math cimport INFINITY
from dynet.core.dim cimport make_dim1, total_size, rows, dim_str
from dynet.core.graph cimport Expression, add_node, as_expr, fwd_scratch, to_index
from dynet.kernels.cpu cimport fast_exp, softmax_into, log_sum_exp, sum_of, dot, fill
from dynet.kernels import generic
from dynet.core.lowering cimport Lowering, Step, Part
from dynet.core.batching cimport Layout, group_layout, node_by_node, generic_columns
from dynet.core.errors import IndexOutOfRange


cdef void softmax_columns(Py_ssize_t r, Py_ssize_t ncol, const float* x, const float* keep, bint log,
                          float* y) noexcept nogil:
    """softmax (or log_softmax) of each of the ncol columns of r rows of x into y; rows where keep
    (if not NULL) is 0 are excluded."""
    cdef Py_ssize_t c, i
    cdef const float* xc
    cdef float* yc
    cdef float s
    for c in range(ncol):
        xc = x + c * r
        yc = y + c * r
        if keep != NULL:
            # the excluded rows as -inf: then the plain kernels give them exp() = 0
            for i in range(r):
                yc[i] = xc[i] if keep[i] != 0 else -INFINITY
            xc = yc
        if log:
            s = log_sum_exp(r, xc)
            for i in range(r):
                yc[i] = xc[i] - s
        else:
            softmax_into(r, xc, yc)


cdef void pick_nll_forward(Py_ssize_t n, Py_ssize_t bd, const float* x, bint batched, const int* index,
                           float* logz, float* y) noexcept nogil:
    """y[b] = log-sum-exp of x's column b (kept in logz) minus its entry index[b]."""
    cdef Py_ssize_t b
    cdef const float* xb
    for b in range(bd):
        xb = x + (b * n if batched else 0)
        logz[b] = log_sum_exp(n, xb)
        y[b] = logz[b] - xb[index[b]]


cdef inline void pick_nll_backward(Py_ssize_t n, const float* x, float lz, int index, float g,
                                   float* dx) noexcept nogil:
    """dx += g (softmax(x) - e_index) for one column; the softmax is recomputed rather than kept
    from forward: for a large vocabulary that is cheaper than the memory traffic of storing it
    (the loop vectorises)."""
    cdef Py_ssize_t i
    for i in range(n):
        dx[i] += g * fast_exp(x[i] - lz)
    dx[index] -= g


# the lowered forward steps (see dynet/core/lowering.pyx)
cdef void softmax_step(const Step* s, const Part* parts) noexcept nogil:
    softmax_columns(s.n0, s.n1, s.x0, s.x1, s.op, s.y)


cdef void pick_nll_step(const Step* s, const Part* parts) noexcept nogil:
    pick_nll_forward(s.n0, s.n1, s.x0, s.op, <const int*>s.p, <float*>s.x1, s.y)


@cython.final
@cython.no_gc
cdef class Softmax(Expression):
    """softmax (log=False) or log_softmax (log=True) of each column; columns outside `keep` are
    excluded (their output is 0 for softmax, -inf for log_softmax) when restricted."""
    cdef bint log
    cdef float* keep              # NULL, or 1/0 over the rows (restrict=), as floats so that the
                                  # restricted loops are selects and products that vectorise

    cpdef str op_name(self):
        return "log_softmax" if self.log else "softmax"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        softmax_columns(rows(&x.d), total_size(&x.d) // rows(&x.d), x.val, self.keep, self.log, self.val)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Step* s = L.add(softmax_step, total_size(&x.d))
        s.y = self.val
        s.x0 = x.val
        s.x1 = self.keep
        s.n0, s.n1 = rows(&x.d), total_size(&x.d) // rows(&x.d)
        s.op = self.log
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t r = rows(&x.d), ncol = total_size(&x.d) // r, c, i
        cdef const float* yc
        cdef const float* gc
        cdef const float* keep = self.keep
        cdef float* dx
        cdef float s
        for c in range(ncol):
            yc = self.val + c * r
            gc = self.grad + c * r
            dx = x.grad + c * r
            s = 0
            if self.log:
                # d/dx_i = g_i - softmax_i * sum_j g_j (over the kept rows; the others get none)
                if keep == NULL:
                    s = sum_of(r, gc)
                    for i in range(r):
                        dx[i] += gc[i] - fast_exp(yc[i]) * s
                else:
                    s = dot(r, gc, keep)
                    for i in range(r):
                        dx[i] += keep[i] * (gc[i] - fast_exp(yc[i]) * s)
            else:
                # d/dx_i = y_i (g_i - sum_j g_j y_j) (excluded rows have y_i = 0)
                s = dot(r, gc, yc)
                for i in range(r):
                    dx[i] += yc[i] * (gc[i] - s)
        return 0

    cdef object keep_column(self, xp, int r):
        """The restrict= mask as a (rows, 1) boolean array (None when unrestricted)."""
        if self.keep == NULL:
            return None
        if self.aux is None:
            self.aux = xp.asarray([[self.keep[i] != 0] for i in range(r)])
        return self.aux

    def generic_forward(self, xp, list xs, out):
        generic.softmax_forward(xp, xs[0], out, self.log, self.keep_column(xp, xs[0].shape[0]))

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.softmax_backward(xp, out, dout, dxi, self.log, self.keep_column(xp, out.shape[0]))


cdef Expression make_softmax(object x, bint log, object restrict):
    name = "log_softmax" if log else "softmax"
    cdef Expression ex = as_expr(x, name)
    if ex.d.nd > 2:
        raise ValueError(f"{name}: expects a vector or a matrix (softmax over each column), "
                         f"got {dim_str(&ex.d)}")
    cdef Softmax node = Softmax.__new__(Softmax)
    node.log = log
    node.keep = NULL
    cdef int r = rows(&ex.d)
    cdef Py_ssize_t i
    cdef long j
    cdef list idx
    if restrict is not None:
        idx = restrict if type(restrict) is list else list(restrict)
        if len(idx) == 0:
            raise ValueError(f"{name}: restrict must name at least one row")
        node.keep = fwd_scratch(r)
        fill(r, 0.0, node.keep)
        for i in range(len(idx)):
            v = idx[i]
            j = v if type(v) is int else to_index(v, name)     # (a Python int read in C)
            if j < 0 or j >= r:
                raise IndexOutOfRange(f"{name}: restrict index {j!r} is out of range for {dim_str(&ex.d)}")
            node.keep[j] = 1
    return add_node(node, (ex,), ex.d)


def softmax(x, d=0):
    """exp(x_i) / sum_j exp(x_j) over each column (d=0) or over each row (d=1)."""
    if type(d) is int and d == 0:
        return make_softmax(x, False, None)
    if isinstance(d, bool) or not hasattr(d, "__index__") or d not in (0, 1):
        raise ValueError(f"softmax: d must be 0 (over each column) or 1 (over each row), got d={d!r}")
    if d == 0:
        return make_softmax(x, False, None)
    from dynet.nodes.select import transpose
    cdef Expression ex = as_expr(x, "softmax")
    if ex.d.nd != 2:
        raise ValueError(f"softmax: d=1 (over each row) needs a matrix, got {dim_str(&ex.d)}")
    # over each row: the column softmax of the transpose, transposed back
    return transpose(make_softmax(transpose(ex), False, None))


def log_softmax(x, restrict=None):
    """log(softmax(x)) over each column; with `restrict`, only over those rows."""
    return make_softmax(x, True, restrict)


@cython.final
@cython.no_gc
cdef class PickNegLogSoftmax(Expression):
    """-log softmax(x)[v] for each batch element, in one node."""
    cdef int* index       # one per output batch element (forward pool)
    cdef float* logz      # log-normaliser of each batch element: softmax = exp(x - logz)

    cpdef str op_name(self):
        return "pickneglogsoftmax"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        pick_nll_forward(rows(&x.d), self.d.bd, x.val, x.d.bd > 1, self.index, self.logz, self.val)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Step* s = L.add(pick_nll_step, rows(&x.d) * self.d.bd)
        s.y = self.val
        s.x0 = x.val
        s.x1 = self.logz                 # (written: the log-normalisers, for backward)
        s.p = self.index
        s.n0, s.n1 = rows(&x.d), self.d.bd
        s.op = x.d.bd > 1
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t n = rows(&x.d), b, off
        for b in range(self.d.bd):
            off = b * n if x.d.bd > 1 else 0
            pick_nll_backward(n, x.val + off, self.logz[b], self.index[b], self.grad[b], x.grad + off)
        return 0

    cdef object indices(self, xp):
        if self.aux is None:
            self.aux = xp.asarray([self.index[b] for b in range(self.d.bd)], dtype=xp.int64)
        return self.aux

    def generic_forward(self, xp, list xs, out):
        generic.pick_neg_log_softmax_forward(xp, xs[0], self.indices(xp), out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.pick_neg_log_softmax_backward(xp, xs[0], self.indices(xp), dout, dxi)


cdef Expression make_pnls(object x, object indices, str op):
    cdef Expression ex = as_expr(x, op)
    if ex.d.nd != 1 and not (ex.d.nd == 2 and ex.d.d[1] == 1):
        raise ValueError(f"{op}: expects a vector of scores, got {dim_str(&ex.d)}")
    cdef int n = rows(&ex.d), bd, b
    if isinstance(indices, int) or (hasattr(indices, "__index__") and getattr(indices, "ndim", 0) == 0):
        indices = [indices] * ex.d.bd
    else:
        indices = list(indices)
    bd = len(indices)
    if bd != ex.d.bd and ex.d.bd != 1:
        raise ValueError(f"{op}: {bd} indices for a batch of {ex.d.bd} ({dim_str(&ex.d)})")
    cdef PickNegLogSoftmax node = PickNegLogSoftmax.__new__(PickNegLogSoftmax)
    node.index = <int*>fwd_scratch(bd)
    node.logz = fwd_scratch(bd)
    for b in range(bd):
        v = to_index(indices[b], op)
        if v < 0 or v >= n:
            raise IndexOutOfRange(f"{op}: index {v} is out of range for a vector of {n} scores "
                             f"({dim_str(&ex.d)})")
        node.index[b] = v
    return add_node(node, (ex,), make_dim1(1, bd))


def pickneglogsoftmax(x, v):
    """-log(softmax(x)[v]); for a batched x, the same v for every element."""
    return make_pnls(x, v, "pickneglogsoftmax")


def pickneglogsoftmax_batch(x, vs):
    """-log(softmax(x_b)[vs[b]]) for each batch element b."""
    return make_pnls(x, vs, "pickneglogsoftmax_batch")


# ---- autobatching: a group of pickneglogsoftmax over score vectors of one length ----------------
# Each node's scores are its own columns (no batch-1 scores broadcast over several indices), so a
# group's scores, placed side by side by their producers' group (the output layer's affine
# transforms), are one matrix: one log-sum-exp loop over all its columns, forward and backward.

cdef int SCORES[1]
SCORES[0] = 0


cdef Py_ssize_t batch_key(Expression node) noexcept:
    if type(node) is not PickNegLogSoftmax or (<Expression>node.args[0]).d.bd != node.d.bd:
        return 0
    return rows(&(<Expression>node.args[0]).d) * 4 + 1


cdef bint same_batch(Expression x, Expression y) noexcept:
    cdef Expression sx, sy
    if type(x) is not PickNegLogSoftmax or type(y) is not PickNegLogSoftmax:
        return False
    sx, sy = <Expression>x.args[0], <Expression>y.args[0]
    return rows(&sx.d) == rows(&sy.d) and sx.d.bd == x.d.bd and sy.d.bd == y.d.bd


cdef int* group_indices(list group, Py_ssize_t ncol, float** logz) except NULL:
    """The picked index of every column of the group, in order (one malloc'ed block, the caller
    frees it), followed by the columns' log-normalisers (*logz: backward reads them, forward
    writes them)."""
    cdef int* idx = <int*>malloc(ncol * (sizeof(int) + sizeof(float)))
    cdef PickNegLogSoftmax node
    cdef Py_ssize_t c = 0, b
    if idx == NULL:
        raise MemoryError(f"pickneglogsoftmax: cannot allocate the indices of {ncol} columns")
    logz[0] = <float*>(idx + ncol)
    for node in group:
        for b in range(node.d.bd):
            idx[c] = node.index[b]
            logz[0][c] = node.logz[b]
            c += 1
    return idx


cdef int forward_batch(list group) except -1:
    cdef Layout L
    cdef PickNegLogSoftmax node
    cdef Py_ssize_t n = rows(&(<Expression>(<Expression>group[0]).args[0]).d), c = 0, b
    cdef float* logz
    cdef int* idx
    group_layout(group, 1, SCORES, False, &L)
    if L.val[0] == NULL or L.val[1] == NULL:
        return node_by_node(group, False)
    idx = group_indices(group, L.cols, &logz)
    pick_nll_forward(n, L.cols, L.val[1], True, idx, logz, L.val[0])
    for node in group:                  # the log-normalisers, for each node's own backward
        for b in range(node.d.bd):
            node.logz[b] = logz[c]
            c += 1
    free(idx)
    return 0


cdef int backward_batch(list group) except -1:
    cdef Layout L
    cdef Py_ssize_t n = rows(&(<Expression>(<Expression>group[0]).args[0]).d), c
    cdef float* logz
    cdef int* idx
    group_layout(group, 1, SCORES, True, &L)
    if L.grad[0] == NULL or L.val[1] == NULL or L.grad[1] == NULL:
        return node_by_node(group, True)
    idx = group_indices(group, L.cols, &logz)
    for c in range(L.cols):
        pick_nll_backward(n, L.val[1] + c * n, logz[c], idx[c], L.grad[0][c], L.grad[1] + c * n)
    free(idx)
    return 0


cdef int generic_batch(list group, bint backward) except -1:
    """A group on a device without the typed loops (a GPU): one generic call over all the group's
    columns (batching.pxd's generic_columns), the first node reading the indices of all of them
    (its own are cached in aux: put back after)."""
    cdef PickNegLogSoftmax first = <PickNegLogSoftmax>group[0], node
    cdef Py_ssize_t b
    cdef list picked = []
    for node in group:
        for b in range(node.d.bd):
            picked.append(node.index[b])
    own = first.aux
    first.aux = first.dev.xp.asarray(picked, dtype=first.dev.xp.int64)
    try:
        return generic_columns(group, backward, SCORES, 1, True)
    finally:
        first.aux = own
