"""Losses and sparse softmaxes as typed CPU nodes: binary_log_loss, pairwise_rank_loss,
poisson_loss, hinge (hinge_batch, hinge_dim), sparsemax, constrained_softmax.

Each node's generic (array) implementation is the class of the same name in losses.py (made from
the node's parameters by `make_op`, see pyop.GenericOpNode); the dimension checks here raise the
same messages. Vectors are handled per batch element; a batch-1 argument is broadcast and its
gradient sums over the batch.
"""
cimport cython
from libc.math cimport exp, lgamma
from dynet.core.dim cimport Dim, make_dim1, total_size, batch_size, rows, dim_str, same_shape, truncated
from dynet.core.graph cimport Expression, add_node, as_expr, fwd_scratch
from libc.stdlib cimport malloc, free
from dynet.core.batching cimport Layout, group_layout, node_by_node, own_columns
from dynet.kernels.cpu cimport copy, fast_log, fast_log1p, sum_of
from dynet.nodes.pyop cimport GenericOpNode, batch_of

import numpy as np
from dynet.nodes import losses
from dynet.core.errors import IndexOutOfRange

cdef float LOG_EPS = 1e-7       # binary_log_loss clips x to [eps, 1 - eps], as DyNet does
cdef enum:
    LOSS_CHUNK = 256            # binary_log_loss's terms computed at a time (a stack buffer)


# ---- shared checks (the messages of losses.py) ---------------------------------------------------

cdef int same_dims(str name, Expression x, Expression y) except -1:
    if not same_shape(&x.d, &y.d):
        raise ValueError(f"{name}: arguments must have the same dimensions, got {dim_str(&x.d)} "
                         f"and {dim_str(&y.d)}")
    if x.d.bd == y.d.bd:
        return x.d.bd                    # (per example: no tuple for batch_of)
    return batch_of(name, (x, y))


cdef inline bint is_vector(const Dim* d) noexcept:
    return truncated(d[0]).nd == 1


cdef int* target_storage(int count, int* single) except NULL:
    """Room for `count` targets: the node's own `single` field for one, else the forward pool."""
    return single if count == 1 else <int*>fwd_scratch(count)


cdef int* read_targets(str name, object v, int count, int limit, int* out) except NULL:
    """Integer targets into `out`, one per batch element (or group): an int (used for all
    `count`) or a sequence of `count`. limit < 0: no upper bound."""
    cdef long t
    cdef Py_ssize_t k, m
    cdef object seq, e
    if type(v) is list or type(v) is tuple:                # read in place, without a copy
        seq = v
    elif isinstance(v, np.ndarray):
        seq = list(v)
    else:
        seq = (v,)
    m = len(seq)
    for k in range(m):
        e = seq[k]
        if type(e) is not int and not hasattr(e, "__index__"):
            raise TypeError(f"{name}: targets must be integers, got {v!r:.60}")
    if m != count and m != 1:
        raise ValueError(f"{name}: {m} targets for a batch of {count}")
    for k in range(count):
        e = seq[k if m > 1 else 0]
        t = e if type(e) is int else e.__index__()
        if t < 0 or (limit >= 0 and t >= limit):
            raise IndexOutOfRange(f"{name}: target {t} is out of range" + (f" [0, {limit})" if limit >= 0 else ""))
        out[k] = t
    return out


cdef inline const float* elem(Expression a, Py_ssize_t b, Py_ssize_t per) noexcept:
    """Batch element b of a's value (element 0 for a broadcast batch-1 argument)."""
    return a.val + (b * per if a.d.bd > 1 else 0)


cdef inline float* elem_grad(Expression a, Py_ssize_t b, Py_ssize_t per) noexcept:
    return a.grad + (b * per if a.d.bd > 1 else 0)


# ---- binary_log_loss -------------------------------------------------------------------------------

cdef inline float clip01(float x) noexcept nogil:
    return LOG_EPS if x < LOG_EPS else (1 - LOG_EPS if x > 1 - LOG_EPS else x)


cdef inline float log_loss_column(Py_ssize_t per, const float* xv, const float* yv) noexcept nogil:
    """One column's loss (a node's batch element, or a column of a group)."""
    cdef float t[LOSS_CHUNK]
    cdef float xc, s = 0
    cdef Py_ssize_t start = 0, i, n
    while start < per:                  # the terms of a chunk (vectorised logs), then their sum
        n = min(per - start, <Py_ssize_t>LOSS_CHUNK)
        for i in range(n):
            xc = clip01(xv[start + i])
            t[i] = yv[start + i] * fast_log(xc) + (1 - yv[start + i]) * fast_log1p(-xc)
        s -= sum_of(n, t)
        start += n
    return s


cdef inline void log_loss_column_backward(Py_ssize_t per, const float* xv, const float* yv, float g,
                                          float* dx, float* dy) noexcept nogil:
    """One column's gradients into dx and dy (either may be NULL)."""
    cdef Py_ssize_t i
    cdef float xc
    if dx != NULL:
        for i in range(per):
            xc = clip01(xv[i])
            dx[i] += g * (xc - yv[i]) / (xc * (1 - xc))
    if dy != NULL:
        for i in range(per):
            xc = clip01(xv[i])
            dy[i] += g * (fast_log1p(-xc) - fast_log(xc))


@cython.final
@cython.no_gc
cdef class BinaryLogLoss(GenericOpNode):
    """-sum_i (y_i ln x_i + (1 - y_i) ln(1 - x_i)) per batch element, x clipped away from 0 and 1."""

    cpdef str op_name(self):
        return "binary_log_loss"

    cdef object make_op(self):
        return losses.BinaryLogLoss()

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Py_ssize_t per = batch_size(&x.d), b
        for b in range(self.d.bd):
            self.val[b] = log_loss_column(per, elem(x, b, per), elem(y, b, per))
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Py_ssize_t per = batch_size(&x.d), b
        for b in range(self.d.bd):
            log_loss_column_backward(per, elem(x, b, per), elem(y, b, per), self.grad[b],
                                     elem_grad(x, b, per) if x.grad != NULL else NULL,
                                     elem_grad(y, b, per) if y.grad != NULL else NULL)
        return 0


def binary_log_loss(x, y):
    """The log loss of a binary decision: -sum_i (y_i ln x_i + (1 - y_i) ln(1 - x_i))."""
    cdef str name = "binary_log_loss"
    cdef Expression ex = as_expr(x, name), ey = as_expr(y, name)
    cdef int bd = same_dims(name, ex, ey)
    return add_node(BinaryLogLoss.__new__(BinaryLogLoss), (ex, ey), make_dim1(1, bd))


# ---- pairwise_rank_loss ----------------------------------------------------------------------------

cdef inline void rank_run(Py_ssize_t n, float m, const float* xv, const float* yv, float* out) noexcept nogil:
    """max(0, m - x + y) over n values side by side (a batch element, or a group's block)."""
    cdef Py_ssize_t i
    cdef float v
    for i in range(n):
        v = m - xv[i] + yv[i]
        out[i] = v if v > 0 else 0


cdef inline void rank_run_backward(Py_ssize_t n, const float* out, const float* g, float* dx,
                                   float* dy) noexcept nogil:
    cdef Py_ssize_t i
    if dx != NULL:
        for i in range(n):
            if out[i] > 0:
                dx[i] -= g[i]
    if dy != NULL:
        for i in range(n):
            if out[i] > 0:
                dy[i] += g[i]


@cython.final
@cython.no_gc
cdef class PairwiseRankLoss(GenericOpNode):
    """max(0, m - x + y) elementwise."""
    cdef float m

    cpdef str op_name(self):
        return "pairwise_rank_loss"

    cdef object make_op(self):
        return losses.PairwiseRankLoss(self.m)

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Py_ssize_t per = batch_size(&self.d), b
        for b in range(self.d.bd):
            rank_run(per, self.m, elem(x, b, per), elem(y, b, per), self.val + b * per)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Py_ssize_t per = batch_size(&self.d), b
        for b in range(self.d.bd):
            rank_run_backward(per, self.val + b * per, self.grad + b * per,
                              elem_grad(x, b, per) if x.grad != NULL else NULL,
                              elem_grad(y, b, per) if y.grad != NULL else NULL)
        return 0


def pairwise_rank_loss(x, y, m=1.0):
    """Margin ranking loss max(0, m - x + y), elementwise (x should be larger than y by m)."""
    cdef str name = "pairwise_rank_loss"
    cdef Expression ex = as_expr(x, name), ey = as_expr(y, name)
    cdef int bd = same_dims(name, ex, ey)
    cdef PairwiseRankLoss node = PairwiseRankLoss.__new__(PairwiseRankLoss)
    node.m = float(m)
    cdef Dim d = ex.d
    d.bd = bd
    return add_node(node, (ex, ey), d)


# ---- poisson_loss ----------------------------------------------------------------------------------

cdef inline float poisson_value(double ll, double k) noexcept nogil:
    return <float>(exp(ll) - k * ll + lgamma(k + 1))


cdef inline float poisson_slope(double ll, double k) noexcept nogil:
    """d loss / d ll."""
    return <float>(exp(ll) - k)


@cython.final
@cython.no_gc
cdef class PoissonLoss(GenericOpNode):
    """-log Poisson(k | lambda = exp(ll)) = exp(ll) - k ll + log(k!), per batch element."""
    cdef int* k
    cdef int single
    cdef object targets

    cpdef str op_name(self):
        return "poisson_loss"

    cdef object make_op(self):
        return losses.PoissonLoss(self.targets)

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t b
        for b in range(self.d.bd):
            self.val[b] = poisson_value(x.val[b], self.k[b])
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t b
        if x.grad != NULL:
            for b in range(self.d.bd):
                x.grad[b] += self.grad[b] * poisson_slope(x.val[b], self.k[b])
        return 0


def poisson_loss(log_lambda, x):
    """The negative log probability of the count x under a Poisson with log-rate log_lambda
    (x: an int, or one per batch element)."""
    cdef str name = "poisson_loss"
    cdef Expression ex = as_expr(log_lambda, name)
    if total_size(&ex.d) != ex.d.bd:
        raise ValueError(f"{name}: log_lambda must be a scalar, got {dim_str(&ex.d)}")
    cdef PoissonLoss node = PoissonLoss.__new__(PoissonLoss)
    node.k = read_targets(name, x, ex.d.bd, -1, target_storage(ex.d.bd, &node.single))
    node.targets = x
    return add_node(node, (ex,), make_dim1(1, ex.d.bd))


# ---- hinge, hinge_batch, hinge_dim -----------------------------------------------------------------

# Both kernels take every class, the target's own included (its term is exactly the margin m:
# x_t - x_t + m), and then take the target's share back out: selects instead of a branch per class,
# so the loops vectorise. Class c of the column is at base[c * cs].
cdef inline float hinge_column(Py_ssize_t n, Py_ssize_t cs, const float* base, Py_ssize_t t,
                               float m) noexcept nogil:
    cdef float correct = base[t * cs], v, s = 0
    cdef Py_ssize_t c
    for c in range(n):
        v = base[c * cs] - correct + m
        s += v if v > 0 else 0
    return s - (m if m > 0 else 0)


cdef inline void hinge_column_backward(Py_ssize_t n, Py_ssize_t cs, const float* base, Py_ssize_t t,
                                       float m, float dv, float* d) noexcept nogil:
    cdef float correct = base[t * cs], on, active = 0
    cdef Py_ssize_t c
    for c in range(n):
        on = 1 if base[c * cs] - correct + m > 0 else 0
        d[c * cs] += on * dv
        active += on
    # the target: -dv per active class other than itself (counted above when m > 0)
    d[t * cs] -= active * dv


@cython.final
@cython.no_gc
cdef class Hinge(GenericOpNode):
    """sum_{i != v} max(0, x_i - x_v + m) over the classes of each group (a column, or a row with
    d=1) and batch element. Class c of group g is at c * cstride + g * gstride."""
    cdef int n, groups, cstride, gstride
    cdef float m
    cdef int* idx            # the target class of (group g, batch element b) at g + groups * b
    cdef int single
    cdef int form            # 0 hinge, 1 hinge_batch, 2 hinge_dim
    cdef int axis            # hinge_dim's d
    cdef object targets

    cpdef str op_name(self):
        return ("hinge", "hinge_batch", "hinge_dim")[self.form]

    cdef object make_op(self):
        if self.form == 2:
            return losses.Hinge("hinge_dim", self.targets, self.m, self.axis)
        return losses.Hinge(self.op_name(), self.targets, self.m)

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t groups = self.groups, per = self.n * groups, b, g
        for b in range(self.d.bd):
            for g in range(groups):
                self.val[g + groups * b] = hinge_column(self.n, self.cstride,
                                                        x.val + b * per + g * self.gstride,
                                                        self.idx[g + groups * b], self.m)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t groups = self.groups, per = self.n * groups, b, g, off
        for b in range(self.d.bd):
            for g in range(groups):
                off = b * per + g * self.gstride
                hinge_column_backward(self.n, self.cstride, x.val + off, self.idx[g + groups * b],
                                      self.m, self.grad[g + groups * b], x.grad + off)
        return 0


cdef Hinge new_hinge(str name, Expression ex, float m, int form):
    if not is_vector(&ex.d):
        raise ValueError(f"{name}: expects a vector, got {dim_str(&ex.d)}")
    cdef Hinge node = Hinge.__new__(Hinge)
    node.n, node.groups, node.cstride, node.gstride = rows(&ex.d), 1, 1, rows(&ex.d)
    node.m, node.form = m, form
    return node


def hinge(x, v, m=1.0):
    """Multiclass hinge loss: sum_{i != v} max(0, x_i - x_v + m) (v: an int, or one per batch element)."""
    cdef Expression ex = as_expr(x, "hinge")
    cdef Hinge node = new_hinge("hinge", ex, float(m), 0)
    if type(v) is int and ex.d.bd == 1:           # the per-example case, without a list
        if not 0 <= v < node.n:
            raise IndexOutOfRange(f"hinge: target {v} is out of range [0, {node.n})")
        node.single = v
        node.idx = &node.single
    else:
        node.idx = read_targets("hinge", v, ex.d.bd, node.n, target_storage(ex.d.bd, &node.single))
    node.targets = v
    return add_node(node, (ex,), make_dim1(1, ex.d.bd))


def hinge_batch(x, vs, m=1.0):
    """hinge for a batch of score vectors, with one true class per batch element."""
    cdef Expression ex = as_expr(x, "hinge_batch")
    cdef Hinge node = new_hinge("hinge_batch", ex, float(m), 1)
    vs = list(vs)
    node.idx = read_targets("hinge_batch", vs, ex.d.bd, node.n,
                            target_storage(ex.d.bd, &node.single))
    node.targets = vs
    return add_node(node, (ex,), make_dim1(1, ex.d.bd))


def hinge_dim(x, v, d=0, m=1.0):
    """hinge over dimension d of a matrix, one true class per column (d=0) or row (d=1);
    v: a list of ints, or a list of such lists (one per batch element)."""
    cdef str name = "hinge_dim"
    cdef Expression ex = as_expr(x, name)
    d = int(d)
    if ex.d.nd > 2 or d not in (0, 1):
        raise ValueError(f"{name}: expects a matrix and d in (0, 1), got {dim_str(&ex.d)} and d={d}")
    cdef int r = rows(&ex.d), c = ex.d.d[1] if ex.d.nd > 1 else 1, bd = ex.d.bd, b
    cdef Hinge node = Hinge.__new__(Hinge)
    node.m, node.form, node.axis = float(m), 2, d
    if d == 0:
        node.n, node.groups, node.cstride, node.gstride = r, c, 1, r
    else:
        node.n, node.groups, node.cstride, node.gstride = c, r, r, 1
    vs = list(v)
    per_batch = vs and isinstance(vs[0], (list, tuple, np.ndarray))
    rowsets = vs if per_batch else [vs] * bd
    if len(rowsets) != bd or any([len(t) != node.groups for t in rowsets]):
        raise ValueError(f"{name}: needs {node.groups} targets (the size of the other dimension) "
                         f"per batch element for {dim_str(&ex.d)} with d={d}")
    node.idx = <int*>fwd_scratch(<size_t>node.groups * bd)
    for b in range(bd):
        read_targets(name, rowsets[b], node.groups, node.n, node.idx + <Py_ssize_t>b * node.groups)
    node.targets = v
    return add_node(node, (ex,), make_dim1(node.groups, bd))


# ---- sparsemax ---------------------------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class Sparsemax(GenericOpNode):
    """The Euclidean projection of each column onto the probability simplex. The threshold tau is
    found by Michelot's iteration (tau = (sum of the support - 1) / its size, then drop what is not
    above tau, until the support stops shrinking): the same tau as the sort-based algorithm,
    without a sort."""

    cpdef str op_name(self):
        return "sparsemax"

    cdef object make_op(self):
        return losses.Sparsemax()

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t n = rows(&self.d), b, i, k, k_prev
        cdef const float* z
        cdef float* p
        cdef double s, tau
        for b in range(self.d.bd):
            z, p = x.val + b * n, self.val + b * n
            tau = -1e300
            k_prev = -1
            while True:
                s, k = 0, 0
                for i in range(n):
                    if z[i] > tau:
                        s += z[i]
                        k += 1
                if k == k_prev:
                    break
                k_prev = k
                tau = (s - 1) / k
            for i in range(n):
                p[i] = z[i] - tau if z[i] > tau else 0
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t n = rows(&self.d), b, i, k
        cdef const float* p
        cdef const float* g
        cdef float* d
        cdef float s, mean
        for b in range(self.d.bd):
            p, g, d = self.val + b * n, self.grad + b * n, x.grad + b * n
            s, k = 0, 0
            for i in range(n):
                if p[i] > 0:
                    s += g[i]
                    k += 1
            mean = s / k
            for i in range(n):
                if p[i] > 0:
                    d[i] += g[i] - mean
        return 0


def sparsemax(x):
    """Sparsemax: like softmax, but most probabilities come out exactly 0."""
    cdef Expression ex = as_expr(x, "sparsemax")
    if not is_vector(&ex.d):
        raise ValueError(f"sparsemax: expects a vector, got {dim_str(&ex.d)}")
    return add_node(Sparsemax.__new__(Sparsemax), (ex,), ex.d)


# ---- constrained_softmax ---------------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class ConstrainedSoftmax(GenericOpNode):
    """p_i = min(u_i, exp(x_i) / Z), Z chosen so that p sums to 1 (per batch element). Entries are
    capped one round at a time until none exceeds its bound; capped entries get no gradient from x.
    Where the bounds sum to less than 1, every entry ends capped and p = u, as in DyNet."""
    cdef float* capped      # 1 where p_i = u_i (n per batch element), kept for backward
    cdef float* mass        # 1 - the capped entries' sum, per batch element
    cdef float* e           # exp(x_i - max x) of one batch element (computed once per forward)

    cpdef str op_name(self):
        return "constrained_softmax"

    cdef object make_op(self):
        return losses.ConstrainedSoftmax()

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], u = <Expression>self.args[1]
        cdef Py_ssize_t n = rows(&self.d), b, i
        cdef const float* xv
        cdef const float* uv
        cdef float* p
        cdef float* capped
        cdef double top, mass, free_e, scale
        cdef bint changed
        for b in range(self.d.bd):
            xv, uv = elem(x, b, n), elem(u, b, n)
            p, capped = self.val + b * n, self.capped + b * n
            top = xv[0]
            for i in range(n):
                top = max(top, xv[i])
                capped[i] = 0
            for i in range(n):
                self.e[i] = exp(xv[i] - top)
            while True:
                # the free entries share what the capped ones leave, in proportion to exp(x)
                mass, free_e = 1, 0
                for i in range(n):
                    if capped[i]:
                        mass -= uv[i]
                    else:
                        free_e += self.e[i]
                scale = mass / (free_e if free_e > 0 else 1)
                changed = False
                for i in range(n):
                    if capped[i]:
                        p[i] = uv[i]
                    else:
                        p[i] = self.e[i] * scale
                        if p[i] > uv[i]:
                            changed = True
                if not changed:
                    break
                for i in range(n):
                    if not capped[i] and p[i] > uv[i]:
                        capped[i] = 1
            self.mass[b] = mass
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], u = <Expression>self.args[1]
        cdef Py_ssize_t n = rows(&self.d), b, i
        cdef const float* p
        cdef const float* g
        cdef const float* capped
        cdef float* d
        cdef double r
        for b in range(self.d.bd):
            p, g, capped = self.val + b * n, self.grad + b * n, self.capped + b * n
            # p_F = mass * softmax(x_F), mass = 1 - sum_A u: both gradients share sum_F p_j g_j / mass
            r = 0
            for i in range(n):
                if not capped[i]:
                    r += p[i] * g[i]
            r /= self.mass[b] if self.mass[b] > 0 else 1
            if x.grad != NULL:
                d = elem_grad(x, b, n)
                for i in range(n):
                    if not capped[i]:
                        d[i] += p[i] * (g[i] - r)
            if u.grad != NULL:
                d = elem_grad(u, b, n)
                for i in range(n):
                    if capped[i]:
                        d[i] += g[i] - r
        return 0


def constrained_softmax(x, y):
    """Softmax of the scores x with the upper bounds y on the probabilities."""
    cdef str name = "constrained_softmax"
    cdef Expression ex = as_expr(x, name), ey = as_expr(y, name)
    if not is_vector(&ex.d) or not same_shape(&ex.d, &ey.d):
        raise ValueError(f"{name}: expects scores and upper bounds, two vectors of the same "
                         f"size, got {dim_str(&ex.d)} and {dim_str(&ey.d)}")
    cdef int bd = batch_of(name, (ex, ey))
    cdef ConstrainedSoftmax node = ConstrainedSoftmax.__new__(ConstrainedSoftmax)
    cdef int n = rows(&ex.d)
    node.capped = fwd_scratch(<size_t>n * bd)
    node.mass = fwd_scratch(bd)
    node.e = fwd_scratch(n)
    cdef Dim d = ex.d
    d.bd = bd
    return add_node(node, (ex, ey), d)


# ---- autobatching: a group of losses of one kind over columns of one shape -------------------------
# Each node's arguments are its own columns (no batch-1 argument broadcast), so a group's arguments
# are matrices of one column per batch element of each node: one loop over all the columns through
# the kernels above, forward and backward. Arguments that their producers placed side by side are
# read in place, others gathered; targets (poisson_loss, hinge) are gathered from the nodes.

cdef enum:
    K_LOG = 1         # binary_log_loss (two arguments)
    K_RANK = 2        # pairwise_rank_loss (two arguments, a value per element)
    K_POISSON = 3     # poisson_loss (a scalar per column, a target)
    K_HINGE = 4       # hinge and hinge_batch over vectors (a target)

cdef int LOSS_ARGS[2]
LOSS_ARGS[0] = 0
LOSS_ARGS[1] = 1


cdef inline int loss_kind(Expression node) noexcept:
    cdef object t = type(node)
    if t is BinaryLogLoss:
        return K_LOG
    if t is PairwiseRankLoss:
        return K_RANK
    if t is PoissonLoss:
        return K_POISSON
    if t is Hinge and (<Hinge>node).form <= 1:    # (hinge_dim's groups are rows or columns)
        return K_HINGE
    return 0


cdef Py_ssize_t batch_key(Expression node) noexcept:
    cdef int kind = loss_kind(node)
    if kind == 0 or not own_columns(node):
        return 0
    return (batch_size(&(<Expression>node.args[0]).d) * 8 + kind) * 2 + 1


cdef bint same_batch(Expression x, Expression y) noexcept:
    cdef int kind = loss_kind(x)
    if kind == 0 or loss_kind(y) != kind or not own_columns(x) or not own_columns(y):
        return False
    if not same_shape(&(<Expression>x.args[0]).d, &(<Expression>y.args[0]).d):
        return False
    if kind == K_RANK:
        return (<PairwiseRankLoss>x).m == (<PairwiseRankLoss>y).m
    if kind == K_HINGE:
        return (<Hinge>x).m == (<Hinge>y).m
    return True


cdef const float* arg_values(list group, int arg, const float* in_place, float* scratch) noexcept:
    """Argument `arg` of every node side by side: in place where the layout found them so, else
    copied into scratch."""
    cdef Expression node, a
    cdef Py_ssize_t off = 0, n
    if in_place != NULL:
        return in_place
    for node in group:
        a = <Expression>node.args[arg]
        n = total_size(&a.d)
        copy(n, a.val, scratch + off)
        off += n
    return scratch


cdef int* column_targets(list group, int kind, Py_ssize_t ncol) except NULL:
    """The target of every column of a poisson_loss or hinge group, in order (malloc'ed)."""
    cdef int* t = <int*>malloc(ncol * sizeof(int))
    cdef Expression node
    cdef int* own
    cdef Py_ssize_t c = 0, b
    if t == NULL:
        raise MemoryError(f"autobatch: cannot allocate the targets of {ncol} columns")
    for node in group:
        own = (<Hinge>node).idx if kind == K_HINGE else (<PoissonLoss>node).k
        for b in range(node.d.bd):
            t[c] = own[b]
            c += 1
    return t


cdef class GroupArgs:
    """A loss group's argument values side by side (and where each argument's gradients lie),
    columns, per-column size and targets; owns what it had to gather."""
    cdef int kind, nargs
    cdef Py_ssize_t ncol, per
    cdef const float* x[2]
    cdef int* targets
    cdef float* scratch

    def __dealloc__(self):
        free(self.targets)
        free(self.scratch)


cdef GroupArgs group_args(list group, Layout* L):
    """The arguments of a group whose layout L was taken; None where its own values are not
    side by side (the nodes then run one by one)."""
    cdef Expression first = <Expression>group[0]
    cdef GroupArgs g = GroupArgs.__new__(GroupArgs)
    cdef Expression node
    cdef int k
    if L.val[0] == NULL:
        return None
    g.kind = loss_kind(first)
    g.nargs = 2 if g.kind <= K_RANK else 1
    g.per = batch_size(&(<Expression>first.args[0]).d)
    g.ncol = 0
    for node in group:
        g.ncol += node.d.bd
    if (L.val[1] == NULL or g.nargs == 2 and L.val[2] == NULL):
        g.scratch = <float*>malloc(g.nargs * g.ncol * g.per * sizeof(float))
        if g.scratch == NULL:
            raise MemoryError(f"autobatch: cannot gather {g.ncol} columns of {g.per}")
    for k in range(g.nargs):
        g.x[k] = arg_values(group, k, L.val[k + 1], g.scratch + k * g.ncol * g.per)
    if g.kind == K_POISSON or g.kind == K_HINGE:
        g.targets = column_targets(group, g.kind, g.ncol)
    return g


cdef int forward_batch(list group) except -1:
    cdef Layout L
    cdef Expression first = <Expression>group[0]
    cdef Py_ssize_t c, n
    cdef float* y
    group_layout(group, 2 if loss_kind(first) <= K_RANK else 1, LOSS_ARGS, False, &L)
    cdef GroupArgs g = group_args(group, &L)
    if g is None:
        return node_by_node(group, False)
    n, y = g.per, L.val[0]
    if g.kind == K_LOG:
        for c in range(g.ncol):
            y[c] = log_loss_column(n, g.x[0] + c * n, g.x[1] + c * n)
    elif g.kind == K_RANK:
        rank_run(n * g.ncol, (<PairwiseRankLoss>first).m, g.x[0], g.x[1], y)
    elif g.kind == K_POISSON:
        for c in range(g.ncol):
            y[c] = poisson_value(g.x[0][c], g.targets[c])
    else:
        for c in range(g.ncol):
            y[c] = hinge_column(n, 1, g.x[0] + c * n, g.targets[c], (<Hinge>first).m)
    return 0


cdef int backward_batch(list group) except -1:
    cdef Layout L
    cdef Expression first = <Expression>group[0]
    cdef int nargs = 2 if loss_kind(first) <= K_RANK else 1, k
    cdef Py_ssize_t c, n
    cdef float* dx
    cdef float* dy
    group_layout(group, nargs, LOSS_ARGS, True, &L)
    # the nodes' gradients side by side, and each argument's too or none of them there (a constant)
    for k in range(nargs):
        if L.grad[k + 1] == NULL and L.some_grad[k + 1]:
            return node_by_node(group, True)
    cdef GroupArgs g = group_args(group, &L) if L.grad[0] != NULL else None
    if g is None:
        return node_by_node(group, True)
    n, dy, dx = g.per, L.grad[0], L.grad[1]
    if g.kind == K_LOG:
        for c in range(g.ncol):
            log_loss_column_backward(n, g.x[0] + c * n, g.x[1] + c * n, dy[c],
                                     dx + c * n if dx != NULL else NULL,
                                     L.grad[2] + c * n if L.grad[2] != NULL else NULL)
    elif g.kind == K_RANK:
        rank_run_backward(n * g.ncol, L.val[0], dy, dx, L.grad[2])
    elif dx == NULL:
        return 0
    elif g.kind == K_POISSON:
        for c in range(g.ncol):
            dx[c] += dy[c] * poisson_slope(g.x[0][c], g.targets[c])
    else:
        for c in range(g.ncol):
            hinge_column_backward(n, 1, g.x[0] + c * n, g.targets[c], (<Hinge>first).m, dy[c],
                                  dx + c * n)
    return 0
