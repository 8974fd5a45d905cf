"""The cells of the coupled LSTM (DyNet 2.0's LSTMBuilder, CoupledLSTMBuilder, FastLSTMBuilder) as
two nodes, from the gates' pre-activations (affine transforms, which stay nodes of their own so
that autobatching groups them by their matrices):

    coupled_lstm_c(pre_i, pre_w, c_tm1) = (1 - i) * c_tm1 + i * w,  i = logistic(pre_i), w = tanh(pre_w)
                                          (i * w at the start of a sequence: no c_tm1)
    coupled_lstm_h(pre_o, c_t) = logistic(pre_o) * tanh(c_t)

Composed from maps these were eight nodes a layer and step (logistic, tanh, 1 - i, two products
and a sum; logistic, tanh and a product), each built, placed and run on its own. Internal: the
builders make them (builders/cells.pyx and rnn.py), DyNet has no such operations.
"""
cimport cython
from dynet.core.dim cimport make_dim1, rows, cols, dim_str
from dynet.core.graph cimport Expression, add_node, as_expr
from dynet.core.batching cimport Layout, group_layout, node_by_node, generic_columns, own_columns
from dynet.kernels.cpu cimport fast_sigmoid, fast_tanh
from dynet.kernels import generic
from dynet.core.lowering cimport Lowering, Step, Part


# The cells' loops over n columns of H values; an argument's column stride of 0 reuses one column
# for all (a batch-1 argument broadcast over the batch). Gradient pointers may be NULL (not wanted).

cdef void c_forward(Py_ssize_t H, Py_ssize_t n, const float* PI, Py_ssize_t si, const float* PW,
                    Py_ssize_t sw, const float* CP, Py_ssize_t sc, float* out) noexcept nogil:
    cdef Py_ssize_t b, k
    cdef float i, w
    for b in range(n):
        for k in range(H):
            i = fast_sigmoid(PI[b * si + k])
            w = fast_tanh(PW[b * sw + k])
            out[b * H + k] = i * w if CP == NULL else (1 - i) * CP[b * sc + k] + i * w


cdef void c_backward(Py_ssize_t H, Py_ssize_t n, const float* PI, float* dPI, Py_ssize_t si,
                     const float* PW, float* dPW, Py_ssize_t sw, const float* CP, float* dCP,
                     Py_ssize_t sc, const float* D) noexcept nogil:
    cdef Py_ssize_t b, k
    cdef float i, w, d
    for b in range(n):
        for k in range(H):
            i = fast_sigmoid(PI[b * si + k])
            w = fast_tanh(PW[b * sw + k])
            d = D[b * H + k]
            if dPI != NULL:
                dPI[b * si + k] += d * (w if CP == NULL else w - CP[b * sc + k]) * i * (1 - i)
            if dPW != NULL:
                dPW[b * sw + k] += d * i * (1 - w * w)
            if dCP != NULL:
                dCP[b * sc + k] += d * (1 - i)


cdef void h_forward(Py_ssize_t H, Py_ssize_t n, const float* PO, Py_ssize_t so, const float* C,
                    Py_ssize_t sc, float* out) noexcept nogil:
    cdef Py_ssize_t b, k
    for b in range(n):
        for k in range(H):
            out[b * H + k] = fast_sigmoid(PO[b * so + k]) * fast_tanh(C[b * sc + k])


cdef void h_backward(Py_ssize_t H, Py_ssize_t n, const float* PO, float* dPO, Py_ssize_t so,
                     const float* C, float* dC, Py_ssize_t sc, const float* D) noexcept nogil:
    cdef Py_ssize_t b, k
    cdef float o, t, d
    for b in range(n):
        for k in range(H):
            o = fast_sigmoid(PO[b * so + k])
            t = fast_tanh(C[b * sc + k])
            d = D[b * H + k]
            if dPO != NULL:
                dPO[b * so + k] += d * t * o * (1 - o)
            if dC != NULL:
                dC[b * sc + k] += d * o * (1 - t * t)


cdef struct Columns:
    # a cell's arguments (up to 3) as columns: values, gradients (NULL: none or not wanted) and
    # column strides (H, or 0 for a batch-1 argument used by every column)
    const float* x[3]
    float* dx[3]
    Py_ssize_t s[3]


cdef void run_columns(bint is_c, bint backward, Py_ssize_t H, Py_ssize_t n, const Columns* a,
                      float* y, const float* D) noexcept nogil:
    """One cell's kernel over n columns: forward into y, or backward from D; what the node, a
    lowered step and an autobatched group all run."""
    if is_c and backward:
        c_backward(H, n, a.x[0], a.dx[0], a.s[0], a.x[1], a.dx[1], a.s[1], a.x[2], a.dx[2], a.s[2], D)
    elif is_c:
        c_forward(H, n, a.x[0], a.s[0], a.x[1], a.s[1], a.x[2], a.s[2], y)
    elif backward:
        h_backward(H, n, a.x[0], a.dx[0], a.s[0], a.x[1], a.dx[1], a.s[1], D)
    else:
        h_forward(H, n, a.x[0], a.s[0], a.x[1], a.s[1], y)


cdef void node_columns(Expression node, Columns* a) noexcept:
    """A node's arguments as columns (the missing c_tm1 of a first step: NULL)."""
    cdef Py_ssize_t k, H = rows(&node.d)
    cdef Expression e
    for k in range(3):
        a.x[k], a.dx[k], a.s[k] = NULL, NULL, 0
    for k in range(len(node.args)):
        e = <Expression>node.args[k]
        a.x[k], a.dx[k], a.s[k] = e.val, e.grad, H if e.d.bd > 1 else 0


# Lowered (several threads: the forward pass without the GIL, lowering.pyx): a step's n0 is H, n1
# the batch, bit k of op (k < 3) that argument k is batched (column stride H, else 0), bit 3 a c cell.

cdef void cell_step(const Step* s, const Part* parts) noexcept nogil:
    cdef Columns a
    cdef Py_ssize_t k
    a.x[0], a.x[1], a.x[2] = s.x0, s.x1, s.x2
    for k in range(3):
        a.dx[k] = NULL
        a.s[k] = s.n0 if s.op & (1 << k) else 0
    run_columns(s.op & 8, False, s.n0, s.n1, &a, s.y, NULL)


@cython.final
@cython.no_gc
cdef class CoupledLSTMCell(Expression):
    """is_c: c_t = (1 - logistic(pre_i)) * c_tm1 + logistic(pre_i) * tanh(pre_w) (args: pre_i,
    pre_w, [c_tm1]); else h_t = logistic(pre_o) * tanh(c_t) (args: pre_o, c_t)."""
    cdef bint is_c

    cpdef str op_name(self):
        return "coupled_lstm_c" if self.is_c else "coupled_lstm_h"

    cdef int lower(self, Lowering L) except -1:
        cdef Columns a
        cdef Step* s = L.add(cell_step, 8 * rows(&self.d) * self.d.bd)
        cdef int k
        node_columns(self, &a)
        s.y = self.val
        s.x0, s.x1, s.x2 = a.x[0], a.x[1], a.x[2]
        s.n0, s.n1 = rows(&self.d), self.d.bd
        s.op = 8 if self.is_c else 0
        for k in range(3):
            if a.s[k]:
                s.op |= 1 << k
        return 1

    cdef int forward_impl(self) except -1:
        cdef Columns a
        node_columns(self, &a)
        run_columns(self.is_c, False, rows(&self.d), self.d.bd, &a, self.val, NULL)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Columns a
        node_columns(self, &a)
        run_columns(self.is_c, True, rows(&self.d), self.d.bd, &a, NULL, self.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        (generic.coupled_lstm_c_forward if self.is_c else generic.coupled_lstm_h_forward)(xp, xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        (generic.coupled_lstm_c_backward if self.is_c else generic.coupled_lstm_h_backward)(xp, xs, dout, i, dxi)


cdef str shapes(tuple args):
    cdef Expression a
    return ", ".join([dim_str(&a.d) for a in args])


cdef Expression cell_node(bint is_c, tuple args, str op):
    """The cell over args (vectors of one size H; batch sizes equal or 1), shaped {H} x the
    largest batch."""
    cdef Expression a
    cdef CoupledLSTMCell node = CoupledLSTMCell.__new__(CoupledLSTMCell)
    node.is_c = is_c
    cdef int H = rows(&(<Expression>args[0]).d), bd = 1
    for a in args:
        if a.d.nd > 2 or cols(&a.d) != 1 or rows(&a.d) != H:
            raise ValueError(f"{op}: the arguments must be vectors of one size, got {shapes(args)}")
        if a.d.bd != 1:
            if bd != 1 and a.d.bd != bd:
                raise ValueError(f"{op}: batch sizes differ: {shapes(args)}")
            bd = a.d.bd
    return add_node(node, args, make_dim1(H, bd))


cdef Expression make_c(object pre_i, object pre_w, object c_tm1):
    cdef str op = "coupled_lstm_c"
    cdef tuple args = ((as_expr(pre_i, op), as_expr(pre_w, op)) if c_tm1 is None else
                       (as_expr(pre_i, op), as_expr(pre_w, op), as_expr(c_tm1, op)))
    return cell_node(True, args, op)


cdef Expression make_h(object pre_o, object c_t):
    cdef str op = "coupled_lstm_h"
    return cell_node(False, (as_expr(pre_o, op), as_expr(c_t, op)), op)


def coupled_lstm_c(pre_i, pre_w, c_tm1=None):
    """(1 - logistic(pre_i)) * c_tm1 + logistic(pre_i) * tanh(pre_w); without c_tm1,
    logistic(pre_i) * tanh(pre_w) (the builders' coupled cell)."""
    return make_c(pre_i, pre_w, c_tm1)


def coupled_lstm_h(pre_o, c_t):
    """logistic(pre_o) * tanh(c_t) (the builders' coupled cell's output)."""
    return make_h(pre_o, c_t)


# ---- autobatching: a step's cells of many sequences as one loop over their columns --------------

cdef Py_ssize_t batch_key(Expression node) noexcept:
    """Cells of one kind, size and arity whose arguments have the node's batch size (none
    broadcast: a group of them is columns), 0 for the rest."""
    if type(node) is not CoupledLSTMCell or not own_columns(node):
        return 0
    return <Py_ssize_t>((((<size_t>rows(&node.d) * 4 + len(node.args)) * 2
                          + (<CoupledLSTMCell>node).is_c) * 8 + 5))


cdef bint same_batch(Expression x, Expression y) noexcept:
    return (type(x) is CoupledLSTMCell and type(y) is CoupledLSTMCell
            and (<CoupledLSTMCell>x).is_c == (<CoupledLSTMCell>y).is_c and rows(&x.d) == rows(&y.d)
            and len(x.args) == len(y.args) and own_columns(x) and own_columns(y))


cdef int CELL_ARGS[3]
CELL_ARGS[0], CELL_ARGS[1], CELL_ARGS[2] = 0, 1, 2


cdef int run_group(list group, bint backward) except -1:
    """One loop over all the group's columns where its values (backward: its gradients, and its
    arguments' gradients, each all there or all absent) and its arguments' values lie side by
    side (the pre-activations come from affine groups placed so), else node by node."""
    cdef CoupledLSTMCell first = <CoupledLSTMCell>group[0]
    cdef int nargs = len(first.args), k
    cdef Columns a
    cdef Layout L
    group_layout(group, nargs, CELL_ARGS, backward, &L)
    if (L.grad[0] if backward else L.val[0]) == NULL:
        return node_by_node(group, backward)
    for k in range(3):
        a.x[k], a.dx[k], a.s[k] = NULL, NULL, 0
    for k in range(nargs):
        if L.val[k + 1] == NULL or (backward and L.grad[k + 1] == NULL and L.some_grad[k + 1]):
            return node_by_node(group, backward)
        a.x[k], a.dx[k], a.s[k] = L.val[k + 1], L.grad[k + 1], rows(&first.d)
    run_columns(first.is_c, backward, rows(&first.d), L.cols, &a, L.val[0], L.grad[0])
    return 0


cdef int forward_batch(list group) except -1:
    return run_group(group, False)


cdef int backward_batch(list group) except -1:
    return run_group(group, True)


cdef int generic_batch(list group, bint backward) except -1:
    """On a device without the typed loops (a GPU): the group as one call of its generic
    implementation over all its columns (batching.pxd's generic_columns)."""
    return generic_columns(group, backward, CELL_ARGS, len((<Expression>group[0]).args), True)
