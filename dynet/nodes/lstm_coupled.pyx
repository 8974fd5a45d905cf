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


# Lowered (several threads: the forward pass without the GIL, lowering.pyx): a step's n0 is H, n1
# the batch, and bit k of op says that argument k is batched (column stride H, else 0).

cdef void c_step(const Step* s, const Part* parts) noexcept nogil:
    cdef Py_ssize_t H = s.n0
    c_forward(H, s.n1, s.x0, H if s.op & 1 else 0, s.x1, H if s.op & 2 else 0, s.x2,
              H if s.op & 4 else 0, s.y)


cdef void h_step(const Step* s, const Part* parts) noexcept nogil:
    cdef Py_ssize_t H = s.n0
    h_forward(H, s.n1, s.x0, H if s.op & 1 else 0, s.x1, H if s.op & 2 else 0, s.y)


cdef int lower_cell(Expression node, Lowering L, bint is_c) except -1:
    cdef Step* s = L.add(c_step if is_c else h_step, 8 * rows(&node.d) * node.d.bd)
    cdef Py_ssize_t k
    s.y = node.val
    s.x0, s.x1, s.x2 = value_of(node.args, 0), value_of(node.args, 1), value_of(node.args, 2)
    s.n0, s.n1 = rows(&node.d), node.d.bd
    s.op = 0
    for k in range(len(node.args)):
        if (<Expression>node.args[k]).d.bd > 1:
            s.op |= 1 << k
    return 1


cdef inline Py_ssize_t stride(Expression e, Py_ssize_t H) noexcept:
    return H if e.d.bd > 1 else 0


cdef inline const float* value_of(tuple args, Py_ssize_t k) noexcept:
    return (<Expression>args[k]).val if k < len(args) else NULL


cdef inline float* grad_of(tuple args, Py_ssize_t k) noexcept:
    return (<Expression>args[k]).grad if k < len(args) else NULL


cdef inline Py_ssize_t stride_of(tuple args, Py_ssize_t k, Py_ssize_t H) noexcept:
    return stride(<Expression>args[k], H) if k < len(args) else 0


@cython.final
@cython.no_gc
cdef class CoupledLSTMC(Expression):
    """c_t = (1 - logistic(pre_i)) * c_tm1 + logistic(pre_i) * tanh(pre_w) (args: pre_i, pre_w, [c_tm1])."""
    cpdef str op_name(self):
        return "coupled_lstm_c"

    cdef int lower(self, Lowering L) except -1:
        return lower_cell(self, L, True)

    cdef int forward_impl(self) except -1:
        cdef Py_ssize_t H = rows(&self.d)
        c_forward(H, self.d.bd, value_of(self.args, 0), stride_of(self.args, 0, H), value_of(self.args, 1),
                  stride_of(self.args, 1, H), value_of(self.args, 2), stride_of(self.args, 2, H), self.val)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Py_ssize_t H = rows(&self.d)
        c_backward(H, self.d.bd, value_of(self.args, 0), grad_of(self.args, 0), stride_of(self.args, 0, H),
                   value_of(self.args, 1), grad_of(self.args, 1), stride_of(self.args, 1, H),
                   value_of(self.args, 2), grad_of(self.args, 2), stride_of(self.args, 2, H), self.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.coupled_lstm_c_forward(xp, xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.coupled_lstm_c_backward(xp, xs, dout, i, dxi)


@cython.final
@cython.no_gc
cdef class CoupledLSTMH(Expression):
    """h_t = logistic(pre_o) * tanh(c_t) (args: pre_o, c_t)."""
    cpdef str op_name(self):
        return "coupled_lstm_h"

    cdef int lower(self, Lowering L) except -1:
        return lower_cell(self, L, False)

    cdef int forward_impl(self) except -1:
        cdef Py_ssize_t H = rows(&self.d)
        h_forward(H, self.d.bd, value_of(self.args, 0), stride_of(self.args, 0, H), value_of(self.args, 1),
                  stride_of(self.args, 1, H), self.val)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Py_ssize_t H = rows(&self.d)
        h_backward(H, self.d.bd, value_of(self.args, 0), grad_of(self.args, 0), stride_of(self.args, 0, H),
                   value_of(self.args, 1), grad_of(self.args, 1), stride_of(self.args, 1, H), self.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.coupled_lstm_h_forward(xp, xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.coupled_lstm_h_backward(xp, xs, dout, i, dxi)


cdef str shapes(tuple args):
    cdef Expression a
    return ", ".join([dim_str(&a.d) for a in args])


cdef Expression cell_node(Expression node, tuple args, str op):
    """The node over args (vectors of one size H; batch sizes equal or 1), shaped {H} x the
    largest batch."""
    cdef Expression a
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
    return cell_node(CoupledLSTMC.__new__(CoupledLSTMC), args, op)


cdef Expression make_h(object pre_o, object c_t):
    cdef str op = "coupled_lstm_h"
    return cell_node(CoupledLSTMH.__new__(CoupledLSTMH), (as_expr(pre_o, op), as_expr(c_t, op)), op)


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
    if (type(node) is not CoupledLSTMC and type(node) is not CoupledLSTMH) or not own_columns(node):
        return 0
    return <Py_ssize_t>((((<size_t>rows(&node.d) * 4 + len(node.args)) * 2
                          + (type(node) is CoupledLSTMH)) * 8 + 5))


cdef bint same_batch(Expression x, Expression y) noexcept:
    return (type(x) is type(y) and rows(&x.d) == rows(&y.d) and len(x.args) == len(y.args)
            and own_columns(x) and own_columns(y))


cdef int CELL_ARGS[3]
CELL_ARGS[0], CELL_ARGS[1], CELL_ARGS[2] = 0, 1, 2


cdef int forward_batch(list group) except -1:
    """One loop over all the group's columns where its values and its arguments' lie side by side
    (the pre-activations come from affine groups placed so), else node by node."""
    cdef Expression first = <Expression>group[0]
    cdef Py_ssize_t H = rows(&first.d)
    cdef int nargs = len(first.args), s
    cdef Layout L
    group_layout(group, nargs, CELL_ARGS, False, &L)
    for s in range(nargs + 1):
        if L.val[s] == NULL:
            return node_by_node(group, False)
    if type(first) is CoupledLSTMC:
        c_forward(H, L.cols, L.val[1], H, L.val[2], H, L.val[3] if nargs == 3 else NULL, H, L.val[0])
    else:
        h_forward(H, L.cols, L.val[1], H, L.val[2], H, L.val[0])
    return 0


cdef int backward_batch(list group) except -1:
    """One loop where the gradients, the arguments' values and their gradients (each all there or
    all absent) lie side by side, else node by node."""
    cdef Expression first = <Expression>group[0]
    cdef Py_ssize_t H = rows(&first.d)
    cdef int nargs = len(first.args), s
    cdef Layout L
    group_layout(group, nargs, CELL_ARGS, True, &L)
    if L.grad[0] == NULL:
        return node_by_node(group, True)
    for s in range(1, nargs + 1):
        if L.val[s] == NULL or (L.grad[s] == NULL and L.some_grad[s]):
            return node_by_node(group, True)
    if type(first) is CoupledLSTMC:
        c_backward(H, L.cols, L.val[1], L.grad[1], H, L.val[2], L.grad[2], H,
                   L.val[3] if nargs == 3 else NULL, L.grad[3] if nargs == 3 else NULL, H, L.grad[0])
    else:
        h_backward(H, L.cols, L.val[1], L.grad[1], H, L.val[2], L.grad[2], H, L.grad[0])
    return 0


cdef int generic_batch(list group, bint backward) except -1:
    """On a device without the typed loops (a GPU): the group as one call of its generic
    implementation over all its columns (batching.pxd's generic_columns)."""
    return generic_columns(group, backward, CELL_ARGS, len((<Expression>group[0]).args), True)
