"""Norms, similarities and normalisation: dot_product, squared_distance, l1_distance, huber_distance
(one node type, a per-element term summed per batch element), layer_norm and weight_norm (typed; its
generic implementation is the op class WeightNorm, on xp). A batch-1 argument is broadcast over the
batch; its gradient sums over the batch."""
cimport cython
from libc.math cimport fabsf, sqrtf
from dynet.core.dim cimport Dim, make_dim1, total_size, batch_size, cols, dim_str, same_shape
from dynet.core.graph cimport Expression, add_node, as_expr, fwd_scratch
from dynet.kernels.cpu cimport dot
from dynet.kernels import generic

from dynet.nodes.pyop cimport GenericOpNode, batch_of
from dynet.core.batching cimport Layout, group_layout, node_by_node, generic_columns, own_columns

from dynet.nodes import npbase
from dynet.nodes.npbase import fmt, strip, acc

cdef enum PairKind:
    P_DOT, P_TRACE, P_SQUARED, P_L1, P_HUBER   # trace_of_product(x, y) = Tr(x^T y) is the dot product

cdef float LAYER_NORM_EPS = 1e-8     # added to sigma, as the reference's layer_norm does


cdef inline float pair_term(int kind, float x, float y, float c) noexcept nogil:
    cdef float t = x - y, a
    if kind <= P_TRACE:
        return x * y
    if kind == P_SQUARED:
        return t * t
    a = fabsf(t)
    if kind == P_L1:
        return a
    return 0.5 * t * t if a <= c else c * a - 0.5 * c * c


cdef inline float pair_dx(int kind, float x, float y, float c) noexcept nogil:
    """d term / dx; for the distances d term / dy is its negation."""
    cdef float t = x - y
    if kind <= P_TRACE:
        return y
    if kind == P_SQUARED:
        return 2 * t
    if kind == P_L1:
        return 1.0 if t > 0 else (-1.0 if t < 0 else 0.0)
    if fabsf(t) <= c:
        return t
    return c if t > 0 else -c


cdef inline float pair_column(int kind, Py_ssize_t per, const float* xv, const float* yv,
                              float c) noexcept nogil:
    """sum_i f(x_i, y_i) over one column of per values."""
    cdef float s = 0
    cdef Py_ssize_t i
    if kind <= P_TRACE:
        return dot(per, xv, yv)
    for i in range(per):
        s += pair_term(kind, xv[i], yv[i], c)
    return s


cdef inline void pair_column_backward(int kind, Py_ssize_t per, const float* xv, const float* yv,
                                      float c, float g, float* dx, float* dy) noexcept nogil:
    """The gradients of one column into dx and dy (either may be NULL)."""
    cdef Py_ssize_t i
    if dx != NULL:
        for i in range(per):
            dx[i] += g * pair_dx(kind, xv[i], yv[i], c)
    if dy != NULL:
        if kind <= P_TRACE:
            for i in range(per):
                dy[i] += g * xv[i]
        else:
            for i in range(per):
                dy[i] -= g * pair_dx(kind, xv[i], yv[i], c)


@cython.final
@cython.no_gc
cdef class PairReduce(Expression):
    """sum_i f(x_i, y_i) per batch element: dot_product, squared_distance, l1_distance, huber_distance."""
    cdef int kind
    cdef float c

    cpdef str op_name(self):
        return ("dot_product", "trace_of_product", "squared_distance", "l1_distance",
                "huber_distance")[self.kind]

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Py_ssize_t per = batch_size(&x.d), b
        for b in range(self.d.bd):
            self.val[b] = pair_column(self.kind, per, x.val + (b * per if x.d.bd > 1 else 0),
                                      y.val + (b * per if y.d.bd > 1 else 0), self.c)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Py_ssize_t per = batch_size(&x.d), b, ox, oy
        for b in range(self.d.bd):
            ox = b * per if x.d.bd > 1 else 0
            oy = b * per if y.d.bd > 1 else 0
            pair_column_backward(self.kind, per, x.val + ox, y.val + oy, self.c, self.grad[b],
                                 x.grad + ox if x.grad != NULL else NULL,
                                 y.grad + oy if y.grad != NULL else NULL)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.pair_forward(xp, self.op_name(), xs, out, self.c)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.pair_backward(xp, self.op_name(), xs, dout, i, dxi, self.c)


cdef int out_batch(Expression a, Expression b, str op) except -1:
    if not same_shape(&a.d, &b.d) or (a.d.bd != b.d.bd and a.d.bd != 1 and b.d.bd != 1):
        raise ValueError(f"{op}: arguments must have the same dimensions (batch sizes 1 or equal), "
                         f"got {dim_str(&a.d)} and {dim_str(&b.d)}")
    return max(a.d.bd, b.d.bd)


cdef Expression pair_reduce(object x, object y, int kind, float c, str op):
    cdef Expression ex = as_expr(x, op), ey = as_expr(y, op)
    cdef int bd = out_batch(ex, ey, op)
    cdef PairReduce node = PairReduce.__new__(PairReduce)
    node.kind = kind
    node.c = c
    return add_node(node, (ex, ey), make_dim1(1, bd))


# ---- autobatching: a group of dot products or distances of one kind over columns of one size ----
# Each node's arguments are its own columns (no batch-1 argument broadcast), so a group's
# arguments, placed side by side by their producers' groups, are two matrices: one loop over all
# their columns, forward and backward.

cdef int PAIR_ARGS[2]
PAIR_ARGS[0] = 0
PAIR_ARGS[1] = 1


cdef Py_ssize_t batch_key(Expression node) noexcept:
    if type(node) is not PairReduce or not own_columns(node):
        return 0
    return (batch_size(&(<Expression>node.args[0]).d) * 8 + (<PairReduce>node).kind) * 2 + 1


cdef bint same_batch(Expression x, Expression y) noexcept:
    if type(x) is not PairReduce or type(y) is not PairReduce or not own_columns(x) or not own_columns(y):
        return False
    return ((<PairReduce>x).kind == (<PairReduce>y).kind and (<PairReduce>x).c == (<PairReduce>y).c
            and batch_size(&(<Expression>x.args[0]).d) == batch_size(&(<Expression>y.args[0]).d))


cdef int forward_batch(list group) except -1:
    cdef Layout L
    cdef PairReduce first = <PairReduce>group[0]
    cdef Py_ssize_t per = batch_size(&(<Expression>first.args[0]).d), col
    group_layout(group, 2, PAIR_ARGS, False, &L)
    if L.val[0] == NULL or L.val[1] == NULL or L.val[2] == NULL:
        return node_by_node(group, False)
    for col in range(L.cols):
        L.val[0][col] = pair_column(first.kind, per, L.val[1] + col * per, L.val[2] + col * per, first.c)
    return 0


cdef int backward_batch(list group) except -1:
    cdef Layout L
    cdef PairReduce first = <PairReduce>group[0]
    cdef Py_ssize_t per = batch_size(&(<Expression>first.args[0]).d), col
    group_layout(group, 2, PAIR_ARGS, True, &L)
    # each argument's gradients side by side, or none of them there (a constant)
    if (L.grad[0] == NULL or L.val[1] == NULL or L.val[2] == NULL
            or L.grad[1] == NULL and L.some_grad[1] or L.grad[2] == NULL and L.some_grad[2]):
        return node_by_node(group, True)
    for col in range(L.cols):
        pair_column_backward(first.kind, per, L.val[1] + col * per, L.val[2] + col * per, first.c,
                             L.grad[0][col], L.grad[1] + col * per if L.grad[1] != NULL else NULL,
                             L.grad[2] + col * per if L.grad[2] != NULL else NULL)
    return 0


cdef int generic_batch(list group, bint backward) except -1:
    """A group of vector pairs on a device without the typed loops (a GPU): one generic call over
    all the group's columns (batching.pxd's generic_columns); matrices (trace_of_product) one by
    one."""
    if cols(&(<Expression>(<Expression>group[0]).args[0]).d) != 1:
        return 0
    return generic_columns(group, backward, PAIR_ARGS, 2, True)


def dot_product(x, y):
    """x^T y = sum_i x_i y_i (per batch element)."""
    return pair_reduce(x, y, P_DOT, 0, "dot_product")


def trace_of_product(x, y):
    """Tr(x^T y) = sum_ij x_ij y_ij for matrices of the same dimensions (as the reference)."""
    cdef Expression ex = as_expr(x, "trace_of_product")
    if ex.d.nd > 2:
        raise ValueError(f"trace_of_product: expects matrices, got {dim_str(&ex.d)}")
    return pair_reduce(ex, y, P_TRACE, 0, "trace_of_product")


def squared_distance(x, y):
    """||x - y||^2 = sum_i (x_i - y_i)^2 (per batch element)."""
    return pair_reduce(x, y, P_SQUARED, 0, "squared_distance")


def l1_distance(x, y):
    """sum_i |x_i - y_i| (per batch element)."""
    return pair_reduce(x, y, P_L1, 0, "l1_distance")


def huber_distance(x, y, c=1.345):
    """sum_i L_c(x_i - y_i) with L_c(t) = t^2/2 for |t| <= c, c|t| - c^2/2 otherwise."""
    if not c > 0:
        raise ValueError(f"huber_distance: c must be positive, got {c}")
    return pair_reduce(x, y, P_HUBER, c, "huber_distance")


@cython.final
@cython.no_gc
cdef class LayerNorm(Expression):
    """y = g * (x - mean(x)) / (std(x) + eps) + b over all values of each batch element."""
    cdef float* stats          # per output batch element: mean, then std

    cpdef str op_name(self):
        return "layer_norm"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], g = <Expression>self.args[1]
        cdef Expression bias = <Expression>self.args[2]
        cdef Py_ssize_t n = batch_size(&self.d), b, i
        cdef const float* xv
        cdef const float* gv
        cdef const float* bv
        cdef float* y
        cdef float mu, var, t, s
        for b in range(self.d.bd):
            xv = x.val + (b * n if x.d.bd > 1 else 0)
            gv = g.val + (b * n if g.d.bd > 1 else 0)
            bv = bias.val + (b * n if bias.d.bd > 1 else 0)
            y = self.val + b * n
            mu = 0
            for i in range(n):
                mu += xv[i]
            mu /= n
            var = 0
            for i in range(n):
                t = xv[i] - mu
                var += t * t
            self.stats[2 * b] = mu
            self.stats[2 * b + 1] = sqrtf(var / n)
            s = self.stats[2 * b + 1] + LAYER_NORM_EPS
            for i in range(n):
                y[i] = gv[i] * (xv[i] - mu) / s + bv[i]
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], g = <Expression>self.args[1]
        cdef Expression bias = <Expression>self.args[2]
        cdef Py_ssize_t n = batch_size(&self.d), b, i
        cdef const float* xv
        cdef const float* gv
        cdef const float* dy
        cdef float* d
        cdef float mu, sigma, s, mh, hc, h
        for b in range(self.d.bd):
            xv = x.val + (b * n if x.d.bd > 1 else 0)
            gv = g.val + (b * n if g.d.bd > 1 else 0)
            dy = self.grad + b * n
            mu = self.stats[2 * b]
            sigma = self.stats[2 * b + 1]
            s = sigma + LAYER_NORM_EPS
            if bias.grad != NULL:
                d = bias.grad + (b * n if bias.d.bd > 1 else 0)
                for i in range(n):
                    d[i] += dy[i]
            if g.grad != NULL:
                d = g.grad + (b * n if g.d.bd > 1 else 0)
                for i in range(n):
                    d[i] += dy[i] * (xv[i] - mu) / s
            if x.grad != NULL:
                # h = g * dy; dx_j = (h_j - mean h) / s - (sum_i h_i c_i) c_j / (n sigma s^2)
                mh = 0
                hc = 0
                for i in range(n):
                    h = gv[i] * dy[i]
                    mh += h
                    hc += h * (xv[i] - mu)
                mh /= n
                hc = hc / (n * sigma * s * s) if sigma > 0 else 0
                d = x.grad + (b * n if x.d.bd > 1 else 0)
                for i in range(n):
                    d[i] += (gv[i] * dy[i] - mh) / s - hc * (xv[i] - mu)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.layer_norm_forward(xp, xs[0], xs[1], xs[2], out, LAYER_NORM_EPS)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.layer_norm_backward(xp, xs, dout, i, dxi, LAYER_NORM_EPS)


def layer_norm(x, g, b):
    """Layer normalisation (Ba et al., 2016): g * (x - mean(x)) / std(x) + b, with the mean and
    the standard deviation (1/n) taken over all values of each batch element."""
    cdef Expression ex = as_expr(x, "layer_norm"), eg = as_expr(g, "layer_norm")
    cdef Expression eb = as_expr(b, "layer_norm")
    cdef Expression a
    cdef int bd = ex.d.bd
    for a in (eg, eb):
        if a.d.bd > bd:
            bd = a.d.bd
    for a in (ex, eg, eb):
        if not same_shape(&a.d, &ex.d) or (a.d.bd != 1 and a.d.bd != bd):
            raise ValueError(f"layer_norm: x, g and b must have the same dimensions (batch sizes 1 "
                             f"or equal), got {dim_str(&ex.d)}, {dim_str(&eg.d)} and {dim_str(&eb.d)}")
    cdef LayerNorm node = LayerNorm.__new__(LayerNorm)
    node.stats = fwd_scratch(2 * bd)
    cdef Dim d = ex.d
    d.bd = bd
    return add_node(node, (ex, eg, eb), d)


class WeightNorm:
    """w_hat = g * w / ||w|| (Salimans and Kingma, 2016), per batch element: the generic
    implementation of WeightNormNode (see pyop.GenericOpNode)."""
    name = "weight_norm"

    def dim(self, dims):
        (sw, bw), (sg, bg) = dims
        if strip(sg) != (1,):
            raise ValueError(f"weight_norm: the gain g must be a scalar, got {fmt(sg, bg)} "
                             f"(w is {fmt(sw, bw)})")
        return sw, npbase.batch_of(self.name, dims)

    @staticmethod
    def _flat(a):
        return a.reshape(-1, a.shape[-1], order="F")

    def forward(self, xs, out):
        w, g = self._flat(xs[0]), self._flat(xs[1])
        # array methods only (no np. calls), so the same code runs on CuPy arrays
        self._flat(out)[...] = g * w / (w * w).sum(axis=0, keepdims=True) ** 0.5

    def backward(self, xs, out, dout, i, dxi):
        w, g, dy = self._flat(xs[0]), self._flat(xs[1]), self._flat(dout)
        norm = (w * w).sum(axis=0, keepdims=True) ** 0.5
        u = w / norm
        if i == 0:
            acc(dxi, g / norm * (dy - u * (u * dy).sum(axis=0, keepdims=True)))
        else:
            acc(dxi, (u * dy).sum(axis=0, keepdims=True))


@cython.final
@cython.no_gc
cdef class WeightNormNode(GenericOpNode):
    """The typed weight_norm (its generic implementation is WeightNorm above): w_hat = g w / ||w||
    per batch element, ||w|| kept for backward."""
    cdef float* norm

    cpdef str op_name(self):
        return "weight_norm"

    cdef object make_op(self):
        return WeightNorm()

    cdef int forward_impl(self) except -1:
        cdef Expression w = <Expression>self.args[0], g = <Expression>self.args[1]
        cdef Py_ssize_t n = batch_size(&self.d), b, i
        cdef const float* wv
        cdef float scale
        for b in range(self.d.bd):
            wv = w.val + (b * n if w.d.bd > 1 else 0)
            self.norm[b] = sqrtf(dot(n, wv, wv))
            scale = g.val[b if g.d.bd > 1 else 0] / self.norm[b]
            for i in range(n):
                self.val[b * n + i] = scale * wv[i]
        return 0

    cdef int backward_impl(self) except -1:
        # with u = w / ||w||: dw += g / ||w|| (dy - u (u . dy)), dg += u . dy
        cdef Expression w = <Expression>self.args[0], g = <Expression>self.args[1]
        cdef Py_ssize_t n = batch_size(&self.d), b, i
        cdef const float* wv
        cdef const float* dy
        cdef float* dw
        cdef float nrm, ud, scale
        for b in range(self.d.bd):
            wv = w.val + (b * n if w.d.bd > 1 else 0)
            dy = self.grad + b * n
            nrm = self.norm[b]
            ud = dot(n, wv, dy) / nrm
            if g.grad != NULL:
                g.grad[b if g.d.bd > 1 else 0] += ud
            if w.grad != NULL:
                dw = w.grad + (b * n if w.d.bd > 1 else 0)
                scale = g.val[b if g.d.bd > 1 else 0] / nrm
                for i in range(n):
                    dw[i] += scale * (dy[i] - wv[i] * ud / nrm)
        return 0


def weight_norm(w, g):
    """Weight normalisation: g * w / ||w|| (g a scalar expression)."""
    cdef Expression ew = as_expr(w, "weight_norm"), eg = as_expr(g, "weight_norm")
    if total_size(&eg.d) != eg.d.bd:
        raise ValueError(f"weight_norm: the gain g must be a scalar, got {dim_str(&eg.d)} "
                         f"(w is {dim_str(&ew.d)})")
    cdef WeightNormNode node = WeightNormNode.__new__(WeightNormNode)
    cdef Dim d = ew.d
    d.bd = batch_of("weight_norm", (ew, eg))
    node.norm = fwd_scratch(d.bd)
    return add_node(node, (ew, eg), d)
