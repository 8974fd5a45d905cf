"""Matrix products: `x * y` and affine_transform([b, W1, x1, W2, x2, ...]), through BLAS.

A batch-1 matrix times a batched argument is one GEMM over all batch columns at once (the batch is
the last, contiguous axis), which is what makes minibatching pay off.

Products with a parameter matrix defer their backward: a parameter W used in many products of one
graph (an output layer applied at every time step) would get dW += dC_t B_t^T and dB_t += W^T dC_t
once per product: many thin GEMMs, each a full pass over W. Instead each product records (dC_t, B_t)
and the work is done for all of them at once, as wide GEMMs over the concatenated columns:
[dB_1..dB_T] += W^T [dC_1..dC_T] when the backward pass reaches a node whose gradient is still
pending (marked `deferred_grad`), and dW += [dC_1..dC_T] [B_1..B_T]^T at the end of the pass (no
node reads a parameter's gradient before then). The input gradients of a small W (at most
SMALL_GEMM values: it stays in the L1 cache) are done at once instead: there the deferral costs more
than it saves.
"""
cimport cython
from cpython.ref cimport PyObject
from libc.stdlib cimport realloc
from dynet.core.dim cimport Dim, total_size, batch_size, dim_str, rows, cols, make_dim2, make_dim1
from dynet.core.graph cimport (Expression, add_node, as_expr, as_expr_tuple, set_completion_hook,
                               set_backward_hooks, fwd_scratch)
from dynet.core.memory cimport work_buffer
from dynet.kernels.cpu cimport gemm, gemm_nogil, add_to, copy, SMALL_GEMM, NOGIL_MIN_WORK
from dynet.core.lowering cimport Lowering, Step, Part
from dynet.core.batching cimport (ncols, side_by_side, Layout, MAX_SLOTS, group_layout, node_by_node,
                                  gather_into, generic_columns)
from dynet.kernels import generic


cdef struct Pending:
    PyObject* param       # the parameter node (alive in the graph for the whole backward pass)
    PyObject* arg         # the other argument, B (or the node that deferred a weight gradient)
    const float* Bval     # B's values, k x ncols (graph memory, alive until renew_cg)
    const float* dC       # m x ncols
    int ncols
    bint want_dA, want_dB

# One list for the process: backward passes take turns (graph.gradient_lock), so only one pass
# at a time uses it (and work_flags below).
cdef Pending* _pending = NULL
cdef Py_ssize_t _n_pending = 0, _cap_pending = 0
cdef Py_ssize_t _inputs_done = 0     # entries before this have no input gradient left to do


cdef int defer_product_grad(Expression A, Expression B, const float* dC, int ncols,  # no-cython-lint (a count, not batching.ncols)
                            bint want_dA, bint want_dB) except -1:
    return push_pending(A, B, B.val, dC, ncols, want_dA, want_dB)


cdef int defer_weight_grad(Expression W, Expression owner, const float* dC, const float* X,
                           int ncols) except -1:  # no-cython-lint (a count, not batching.ncols)
    """W.grad += dC X^T (dC: rows(W) x ncols, X: cols(W) x ncols, both graph memory), done at the
    end of the backward pass with W's other pending products, as one GEMM. For nodes other than
    products that multiply by a parameter matrix (the LSTM gates: one rank-1 update per time step
    otherwise). W must be a parameter node (its gradient is read only after the pass)."""
    return push_pending(W, owner, X, dC, ncols, True, False)


cdef bint defers_group_weight(Expression W) noexcept:
    """Whether an autobatched group's W.grad += dC X^T waits for the end of the pass (a large
    parameter matrix: see DEFER_GROUP_WEIGHT); its dC must then be graph memory."""
    return W.external_grad and W.grad != NULL and <Py_ssize_t>rows(&W.d) * cols(&W.d) >= DEFER_GROUP_WEIGHT


cdef int group_weight_grad(Expression W, Expression owner, list group, int arg, const float* xs,
                           const float* dC, int ncols, float* buf) except -1:  # no-cython-lint
    """W.grad += dC X^T over an autobatched group's ncols columns, X being argument `arg` of each
    member: at xs where those lie side by side, else gathered (into buf, or into graph memory
    where the product is deferred to the end of the pass, as defers_group_weight says)."""
    cdef int m = rows(&W.d), k = cols(&W.d)
    cdef bint defer = defers_group_weight(W)
    if xs == NULL:
        xs = gather_into(group, arg, k, fwd_scratch(<size_t>k * ncols) if defer else buf)
    if defer:
        return defer_weight_grad(W, owner, dC, xs, ncols)
    gemm(False, True, m, k, ncols, 1.0, dC, m, xs, k, 1.0, W.grad, m)
    return 0


cdef int push_pending(Expression A, Expression B, const float* Bval, const float* dC, int ncols,  # no-cython-lint
                      bint want_dA, bint want_dB) except -1:
    global _pending, _cap_pending, _n_pending
    cdef Pending* grown
    if _n_pending == _cap_pending:
        _cap_pending = max(64, 2 * _cap_pending)
        grown = <Pending*>realloc(_pending, _cap_pending * sizeof(Pending))
        if grown == NULL:
            raise MemoryError("matmul: cannot grow the list of deferred gradients")
        _pending = grown
    _pending[_n_pending].param = <PyObject*>A
    _pending[_n_pending].arg = <PyObject*>B
    _pending[_n_pending].Bval = Bval
    _pending[_n_pending].dC = dC
    _pending[_n_pending].ncols = ncols
    _pending[_n_pending].want_dA = want_dA
    _pending[_n_pending].want_dB = want_dB
    if want_dB:
        B.deferred_grad = True
    _n_pending += 1
    return 0


cdef int forget_deferred() except -1:
    """Start of a backward pass: drop anything left by a pass that failed half-way."""
    global _n_pending, _inputs_done
    cdef Py_ssize_t i
    for i in range(_n_pending):
        (<Expression>_pending[i].arg).deferred_grad = False
    _n_pending = 0
    _inputs_done = 0
    return 0


cdef inline bint active(Pending* e, bint inputs_only) noexcept:
    return e.want_dB or (e.want_dA and not inputs_only)


cdef int run_pending(bint inputs_only) except -1:
    """Do the pending products' backward, grouped by parameter: the input gradients (dB) of every
    pending product, and with inputs_only=False also the parameter gradients (dW). Input gradients
    are only pending in entries added since the last inputs-only pass, so that pass looks at those
    alone (it runs at many nodes of a long chain)."""
    global _n_pending, _inputs_done
    cdef Py_ssize_t start = _inputs_done if inputs_only else 0
    cdef Py_ssize_t i, j, total, off, nb
    if start >= _n_pending:
        return 0                               # nothing pending
    cdef Expression A, B
    cdef int m, k
    cdef bint do_dA, do_dB
    cdef float* dCcat
    cdef float* Bcat
    cdef float* dBcat
    cdef unsigned char* done = <unsigned char*>work_flags(_n_pending)
    for i in range(start, _n_pending):
        done[i] = not active(&_pending[i], inputs_only)
    for i in range(start, _n_pending):
        if done[i]:
            continue
        # the group: this pass's entries with the same parameter
        A = <Expression>_pending[i].param
        m, k = rows(&A.d), cols(&A.d)
        total, nb, do_dA, do_dB = 0, 0, False, False
        for j in range(i, _n_pending):
            if not done[j] and _pending[j].param == <PyObject*>A:
                total += _pending[j].ncols
                nb += 1
                do_dA = do_dA or (_pending[j].want_dA and not inputs_only)
                do_dB = do_dB or _pending[j].want_dB
        if nb == 1:                            # a single product: no need to gather
            B = <Expression>_pending[i].arg
            if do_dA:
                gemm(False, True, m, k, <int>total, 1.0, _pending[i].dC, m, _pending[i].Bval, k, 1.0,
                     A.grad, m)
                _pending[i].want_dA = False
            if do_dB:
                gemm(True, False, k, <int>total, m, 1.0, A.val, m, _pending[i].dC, m, 1.0, B.grad, k)
                _pending[i].want_dB = False
                B.deferred_grad = False
            done[i] = 1
            continue
        if inputs_only:
            # gathering their dC anyway, and each dC is final (its node's backward has run): do
            # the weight gradient of these products now too, rather than gather dC again at the
            # end of the pass (an output layer's 20 x 640 KB in a language model)
            for j in range(i, _n_pending):
                if not done[j] and _pending[j].param == <PyObject*>A:
                    do_dA = do_dA or _pending[j].want_dA
        dCcat = work_buffer(<size_t>(m + 2 * k) * total)
        Bcat = dCcat + <Py_ssize_t>m * total
        dBcat = Bcat + <Py_ssize_t>k * total
        off = 0
        for j in range(i, _n_pending):
            if not done[j] and _pending[j].param == <PyObject*>A:
                copy(<Py_ssize_t>m * _pending[j].ncols, _pending[j].dC, dCcat + <Py_ssize_t>m * off)
                if do_dA:
                    copy(<Py_ssize_t>k * _pending[j].ncols, _pending[j].Bval, Bcat + <Py_ssize_t>k * off)
                off += _pending[j].ncols
        if do_dA:
            gemm(False, True, m, k, <int>total, 1.0, dCcat, m, Bcat, k, 1.0, A.grad, m)
        if do_dB:
            gemm(True, False, k, <int>total, m, 1.0, A.val, m, dCcat, m, 0.0, dBcat, k)
        off = 0
        for j in range(i, _n_pending):
            if not done[j] and _pending[j].param == <PyObject*>A:
                B = <Expression>_pending[j].arg
                if _pending[j].want_dB:
                    add_to(<Py_ssize_t>k * _pending[j].ncols, dBcat + <Py_ssize_t>k * off, B.grad)
                    B.deferred_grad = False
                    _pending[j].want_dB = False
                if do_dA:
                    _pending[j].want_dA = False
                off += _pending[j].ncols
                done[j] = 1
    _inputs_done = _n_pending
    if not inputs_only:
        _n_pending = 0
        _inputs_done = 0
    return 0


cdef unsigned char* _flags = NULL
cdef Py_ssize_t _flags_n = 0


cdef unsigned char* work_flags(Py_ssize_t n) except NULL:
    global _flags, _flags_n
    cdef unsigned char* p
    if n > _flags_n or _flags == NULL:
        p = <unsigned char*>realloc(_flags, max(n, <Py_ssize_t>1))
        if p == NULL:
            raise MemoryError("matmul: cannot allocate flags")
        _flags, _flags_n = p, n
    return _flags


cdef int complete_inputs() except -1:
    """A node whose gradient is pending is about to be used: do every pending input gradient."""
    return run_pending(True)


cdef int flush_deferred() except -1:
    """The end of the backward pass: everything pending."""
    global _n_pending, _inputs_done
    try:
        run_pending(False)
    finally:
        _n_pending = 0
        _inputs_done = 0
    return 0


set_backward_hooks(forget_deferred, flush_deferred)
set_completion_hook(complete_inputs)


cdef void mm_product(float* C, int m, int k, int n, int bd, const float* A, bint a_batched,
                     const float* B, bint b_batched, float beta) noexcept nogil:
    """C = A * B + beta * C (A m x k, B k x n, bd batch elements); a batch-1 side is used for
    every batch element of C."""
    cdef Py_ssize_t sa = <Py_ssize_t>m * k, sb = <Py_ssize_t>k * n, sc = <Py_ssize_t>m * n
    cdef int b
    if not a_batched and (b_batched or bd == 1):
        gemm_nogil(False, False, m, n * bd, k, 1.0, A, m, B, k, beta, C, m)
    else:
        for b in range(bd):
            gemm_nogil(False, False, m, n, k, 1.0, A + (sa * b if a_batched else 0), m,
                       B + (sb * b if b_batched else 0), k, beta, C + sc * b, m)


cdef int mm_forward(float* C, const Dim* dc, Expression A, Expression B, float beta) except -1:
    """C = A * B + beta * C; a large product releases the GIL while it runs."""
    cdef int m = rows(&A.d), k = cols(&A.d), n = cols(&B.d), bd = dc.bd
    cdef const float* a = A.val
    cdef const float* b = B.val
    cdef bint a_batched = A.d.bd > 1, b_batched = B.d.bd > 1
    if <Py_ssize_t>m * n * k * bd >= NOGIL_MIN_WORK:
        with nogil:
            mm_product(C, m, k, n, bd, a, a_batched, b, b_batched, beta)
    else:
        mm_product(C, m, k, n, bd, a, a_batched, b, b_batched, beta)
    return 0


cdef inline void lower_product(Part* q, const Dim* dc, Expression A, Expression B) noexcept:
    """A product of a lowered step: A in w, B in x, m, k, n in n0..n2, the batched sides in flags."""
    q.w = A.val
    q.x = B.val
    q.n0, q.n1, q.n2 = rows(&A.d), cols(&A.d), cols(&B.d)
    q.flags = (A.d.bd > 1) | ((B.d.bd > 1) << 1)


cdef inline void run_product(const Part* q, float* C, int bd, float beta) noexcept nogil:
    mm_product(C, <int>q.n0, <int>q.n1, <int>q.n2, bd, q.w, q.flags & 1, q.x, q.flags & 2, beta)


cdef inline Py_ssize_t product_work(const Part* q, int bd) noexcept:
    return q.n0 * q.n1 * q.n2 * bd


cdef void matmul_step(const Step* s, const Part* parts) noexcept nogil:
    run_product(parts, s.y, <int>s.n0, 0.0)


cdef void bias_fill(float* y, Py_ssize_t per, Py_ssize_t bd, const float* bias, Py_ssize_t nbias,
                    bint bias_batched) noexcept nogil:
    """Each batch element of y (per values) = the bias repeated (a batch-1 bias for every element)."""
    cdef Py_ssize_t out_b, i, reps = per // nbias
    cdef const float* src
    for out_b in range(bd):
        src = bias + (nbias * out_b if bias_batched else 0)
        for i in range(reps):
            copy(nbias, src, y + out_b * per + i * nbias)


cdef void affine_step(const Step* s, const Part* parts) noexcept nogil:
    # parts: the bias (x, n0 values, batched if flags), then one per product
    cdef Py_ssize_t i
    bias_fill(s.y, s.n1, s.n0, parts[0].x, parts[0].n0, parts[0].flags)
    for i in range(1, s.nparts):
        run_product(parts + i, s.y, <int>s.n0, 1.0)


cdef int mm_backward(const float* dC, const Dim* dc, Expression A, Expression B) except -1:
    """dA += dC B^T and dB += A^T dC, summing over the batch into a batch-1 side."""
    cdef int m = rows(&A.d), k = cols(&A.d), n = cols(&B.d), b
    cdef Py_ssize_t sa = m * k, sb = k * n, sc = m * n
    cdef bint one_gemm = A.d.bd == 1 and B.d.bd == dc.bd
    if one_gemm and A.external_grad and (A.grad != NULL or B.grad != NULL):
        # a parameter matrix: done later for all its products at once (see the module docstring),
        # except the input gradient of a small matrix (it stays in cache: a product per input is
        # as fast as a gathered one, and the next node needs it at once, as in a chain)
        if B.grad != NULL and <Py_ssize_t>m * k <= SMALL_GEMM:
            gemm(True, False, k, n * dc.bd, m, 1.0, A.val, m, dC, m, 1.0, B.grad, k)
            if A.grad == NULL:
                return 0
            return defer_product_grad(A, B, dC, n * dc.bd, True, False)
        return defer_product_grad(A, B, dC, n * dc.bd, A.grad != NULL, B.grad != NULL)
    if A.grad != NULL:
        if one_gemm:   # the GEMM over all batch columns sums the batch for us
            gemm(False, True, m, k, n * dc.bd, 1.0, dC, m, B.val, k, 1.0, A.grad, m)
        else:
            for b in range(dc.bd):
                gemm(False, True, m, k, n, 1.0, dC + sc * b, m, B.val + (sb * b if B.d.bd > 1 else 0), k,
                     1.0, A.grad + (sa * b if A.d.bd > 1 else 0), m)
    if B.grad != NULL:
        if one_gemm:
            gemm(True, False, k, n * dc.bd, m, 1.0, A.val, m, dC, m, 1.0, B.grad, k)
        else:
            for b in range(dc.bd):
                gemm(True, False, k, n, m, 1.0, A.val + (sa * b if A.d.bd > 1 else 0), m, dC + sc * b, m,
                     1.0, B.grad + (sb * b if B.d.bd > 1 else 0), k)
    return 0


cdef Dim product_dim(str op, Expression A, Expression B) except *:
    if A.d.nd > 2 or B.d.nd > 2 or cols(&A.d) != rows(&B.d):
        raise ValueError(f"{op}: cannot multiply {dim_str(&A.d)} by {dim_str(&B.d)} "
                         f"(the columns of the first must equal the rows of the second)")
    if A.d.bd != B.d.bd and A.d.bd != 1 and B.d.bd != 1:
        raise ValueError(f"{op}: batch sizes {A.d.bd} and {B.d.bd} differ and neither is 1 "
                         f"({dim_str(&A.d)} * {dim_str(&B.d)})")
    cdef int bd = A.d.bd if A.d.bd > B.d.bd else B.d.bd
    if B.d.nd == 2:
        return make_dim2(rows(&A.d), cols(&B.d), bd)
    return make_dim1(rows(&A.d), bd)


@cython.final
@cython.no_gc
cdef class MatMul(Expression):
    cpdef str op_name(self):
        return "matmul"

    cdef str describe(self):
        cdef Expression a = <Expression>self.args[0], b = <Expression>self.args[1]
        return f"v{a.index} * v{b.index}"

    cdef int forward_impl(self) except -1:
        return mm_forward(self.val, &self.d, <Expression>self.args[0], <Expression>self.args[1], 0.0)

    cdef int lower(self, Lowering L) except -1:
        cdef Step* s = L.add(matmul_step, 0)
        cdef Part* q = L.add_parts(s, 1)
        lower_product(q, &self.d, <Expression>self.args[0], <Expression>self.args[1])
        L.work += product_work(q, self.d.bd)
        s.y = self.val
        s.n0 = self.d.bd
        return 1

    cdef int backward_impl(self) except -1:
        return mm_backward(self.grad, &self.d, <Expression>self.args[0], <Expression>self.args[1])

    def generic_forward(self, xp, list xs, out):
        generic.matmul_forward(xp, xs[0], xs[1], out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.matmul_backward(xp, xs[0], xs[1], dout, i, dxi)


cdef Expression matmul(object a, object b):
    cdef Expression A = as_expr(a, "matmul")
    cdef Expression B = as_expr(b, "matmul")
    cdef Dim d = product_dim("matmul", A, B)
    return add_node(MatMul.__new__(MatMul), (A, B), d)


@cython.final
@cython.no_gc
cdef class AffineTransform(Expression):
    """b + W1 x1 + W2 x2 + ...; b is broadcast over columns and over the batch when smaller."""
    cpdef str op_name(self):
        return "affine_transform"

    cdef int forward_impl(self) except -1:
        cdef Expression bias = <Expression>self.args[0]
        cdef Py_ssize_t i
        bias_fill(self.val, batch_size(&self.d), self.d.bd, bias.val, batch_size(&bias.d), bias.d.bd > 1)
        for i in range(1, len(self.args), 2):
            mm_forward(self.val, &self.d, <Expression>self.args[i], <Expression>self.args[i + 1], 1.0)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Expression bias = <Expression>self.args[0]
        cdef Py_ssize_t i, nprod = len(self.args) // 2
        cdef Step* s = L.add(affine_step, total_size(&self.d))
        cdef Part* q = L.add_parts(s, 1 + nprod)
        s.y = self.val
        s.n0, s.n1 = self.d.bd, batch_size(&self.d)
        q[0].x = bias.val
        q[0].n0 = batch_size(&bias.d)
        q[0].flags = bias.d.bd > 1
        for i in range(nprod):
            lower_product(q + 1 + i, &self.d, <Expression>self.args[1 + 2 * i],
                          <Expression>self.args[2 + 2 * i])
            L.work += product_work(q + 1 + i, self.d.bd)
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression bias = <Expression>self.args[0]
        cdef Py_ssize_t i, per = batch_size(&self.d), nbias = batch_size(&bias.d)
        cdef Py_ssize_t out_b, reps = per // nbias
        if bias.grad != NULL:
            for out_b in range(self.d.bd):
                for i in range(reps):
                    add_to(nbias, self.grad + out_b * per + i * nbias,
                           bias.grad + (nbias * out_b if bias.d.bd > 1 else 0))
        for i in range(1, len(self.args), 2):
            mm_backward(self.grad, &self.d, <Expression>self.args[i], <Expression>self.args[i + 1])
        return 0

    def generic_forward(self, xp, list xs, out):
        # the bias, broadcast over columns and the batch, then each product added
        generic.axes8(out)[...] = generic.axes8(xs[0])
        for k in range(1, len(xs), 2):
            generic.matmul_forward(xp, xs[k], xs[k + 1], out, accumulate=True)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        if i == 0:
            generic.acc(dxi, dout)
        elif i % 2 == 1:
            generic.matmul_backward(xp, xs[i], xs[i + 1], dout, 0, dxi)
        else:
            generic.matmul_backward(xp, xs[i - 1], xs[i], dout, 1, dxi)


def affine_transform(exprs):
    """exprs[0] + exprs[1] * exprs[2] + exprs[3] * exprs[4] + ... (an odd number of expressions)."""
    return affine(exprs)


cdef Expression affine(object exprs):
    cdef tuple xs = as_expr_tuple(exprs, "affine_transform")
    if len(xs) % 2 != 1:
        raise ValueError(f"affine_transform: needs an odd number of expressions (bias, then "
                         f"matrix/input pairs), got {len(xs)}")
    cdef Expression bias = <Expression>xs[0]
    if len(xs) == 1:
        return bias
    cdef Dim d = product_dim("affine_transform", <Expression>xs[1], <Expression>xs[2])
    cdef Dim di
    cdef int i
    for i in range(3, len(xs), 2):
        di = product_dim("affine_transform", <Expression>xs[i], <Expression>xs[i + 1])
        if rows(&di) != rows(&d) or cols(&di) != cols(&d) or (di.bd != d.bd and di.bd != 1 and d.bd != 1):
            raise ValueError(f"affine_transform: product {i // 2 + 1} is {dim_str(&di)}, "
                             f"but the first is {dim_str(&d)}")
        if di.bd > d.bd:
            d.bd = di.bd
    if bias.d.bd > d.bd:
        d.bd = bias.d.bd
    cdef Expression w
    for i in range(1, len(xs), 2):
        w = <Expression>xs[i]
        if w.d.bd > 1 and w.d.bd != d.bd:
            raise ValueError(f"affine_transform: batched matrix {dim_str(&w.d)} with output batch {d.bd}")
    if not (rows(&bias.d) == rows(&d) and (cols(&bias.d) == cols(&d) or cols(&bias.d) == 1)
            and bias.d.nd <= 2 and (bias.d.bd == 1 or bias.d.bd == d.bd)):
        raise ValueError(f"affine_transform: bias {dim_str(&bias.d)} does not fit the product "
                         f"{dim_str(&d)}")
    if d.nd == 2 and d.d[1] == 1:
        d.nd = 1          # as DyNet: a result of one column is a vector ({3}, not {3,1}), whatever x's shape
    return add_node(AffineTransform.__new__(AffineTransform), xs, d)


# ---- autobatching: products sharing their matrix as one GEMM ------------------------------------

cdef bint batchable(Expression node) noexcept:
    """Products with a batch-1 matrix; affine transforms with a bias vector and batch-1 matrices,
    none of whose inputs is broadcast over the batch."""
    cdef Expression a
    cdef Py_ssize_t i
    if type(node) is MatMul:
        return (<Expression>node.args[0]).d.bd == 1
    if type(node) is not AffineTransform:
        return False
    a = <Expression>node.args[0]
    if a.d.bd != 1 or total_size(&a.d) != rows(&node.d):
        return False                           # a batched bias, or a matrix bias
    for i in range(1, len(node.args), 2):
        if (<Expression>node.args[i]).d.bd != 1 or ncols(<Expression>node.args[i + 1]) != ncols(node):
            return False                       # a batched matrix, or a batch-1 input used for all
    return True


cdef Py_ssize_t batch_key(Expression node) noexcept:
    """The group key for autobatching (0: runs alone): products sharing their matrix, affine
    transforms sharing their bias and matrices run as one GEMM per matrix over their columns."""
    if not batchable(node):
        return 0
    if type(node) is MatMul:
        return 2 + 4 * (<Expression>node.args[0]).index
    cdef size_t key = 3 + 4 * <size_t>(<Expression>node.args[0]).index
    cdef Py_ssize_t i
    for i in range(1, len(node.args), 2):
        key = key * 1000003 + <size_t>(<Expression>node.args[i]).index
    return <Py_ssize_t>key if key else 3


cdef bint same_batch(Expression x, Expression y) noexcept:
    """The exact test behind batch_key: the same kind and matrix (and bias and matrices)."""
    cdef Py_ssize_t i
    if type(x) is not type(y) or len(x.args) != len(y.args) or x.args[0] is not y.args[0]:
        return False
    if type(x) is AffineTransform:
        for i in range(1, len(x.args), 2):
            if x.args[i] is not y.args[i]:
                return False
    return True


cdef inline int group_inputs(Expression first, int* args) noexcept:
    """The positions of a product's / affine transform's inputs among its arguments (the
    column-side factors), the first MAX_SLOTS - 1 of them in args; returns how many there are."""
    cdef int i, n = 0
    for i in range(2 if type(first) is AffineTransform else 1, len(first.args), 2):
        if n < MAX_SLOTS - 1:
            args[n] = i
        n += 1
    return n


cdef inline float* input_at(Layout* L, list group, int j, int arg, bint grads) noexcept:
    """Input j's values (grads: gradients) side by side, from the group's layout walk (the first
    MAX_SLOTS - 1 inputs) or a walk of its own, else NULL."""
    if j < MAX_SLOTS - 1:
        return L.grad[j + 1] if grads else L.val[j + 1]
    return side_by_side(group, arg, grads)


cdef int forward_batch(list group) except -1:
    """C_j = [b +] W1 X1_j [+ W2 X2_j ...] for every node j of the group: one GEMM per matrix over
    all the columns, reading the inputs where they lie side by side (else gathered) and writing
    where the group's values lie side by side (else scattered back). One walk over the group finds
    out where things lie (group_layout)."""
    cdef Expression first = <Expression>group[0], W, node
    cdef bint affine = type(first) is AffineTransform
    cdef int args[MAX_SLOTS]
    cdef int nin = group_inputs(first, args), j, arg
    cdef Layout L
    group_layout(group, min(nin, MAX_SLOTS - 1), args, False, &L)
    cdef Py_ssize_t i, total = L.cols, off, n
    cdef int m = rows(&first.d), k, kmax = 0
    for i in range(1 if affine else 0, len(first.args), 2):
        W = <Expression>first.args[i]
        kmax = max(kmax, cols(&W.d))
    cdef float* C = L.val[0]
    cdef float* X = work_buffer(<size_t>(kmax + (m if C == NULL else 0)) * total)
    cdef const float* xs
    if C == NULL:
        C = X + kmax * total
    if affine:
        for i in range(total):
            copy(m, (<Expression>first.args[0]).val, C + m * i)
    for j in range(nin):
        arg = (2 if affine else 1) + 2 * j
        W = <Expression>first.args[arg - 1]
        k = cols(&W.d)
        xs = input_at(&L, group, j, arg, False)
        if xs == NULL:
            xs = gather_into(group, arg, k, X)
        gemm(False, False, m, <int>total, k, 1.0, W.val, m, xs, k, 1.0 if affine else 0.0, C, m)
    if C != L.val[0]:                         # the results back into each node's value
        off = 0
        for node in group:
            n = m * ncols(node)
            copy(n, C + off, node.val)
            off += n
    return 0


cdef int backward_batch(list group) except -1:
    """The backward of a group (as forward_batch ran it), where the group's gradients lie side by
    side: for each matrix, dW += dC X^T and dX += W^T dC as one GEMM each over all the columns (the
    inputs read in place or gathered; their gradients added in place or through a buffer; dW of a
    large parameter deferred to the end of the pass), the bias's as one sum. Node by node otherwise
    (and matmul's deferral as without autobatching)."""
    cdef Expression first = <Expression>group[0], node, W, x
    cdef bint affine = type(first) is AffineTransform
    cdef int args[MAX_SLOTS]
    cdef int nin = group_inputs(first, args), j, arg
    cdef Layout L
    group_layout(group, min(nin, MAX_SLOTS - 1), args, True, &L)
    cdef float* dC = L.grad[0]
    cdef Py_ssize_t i, off, n, total = L.cols
    cdef int m = rows(&first.d), k, kmax = 0
    cdef float* buf
    cdef float* dX
    cdef Expression bias
    for j in range(nin):                       # each input's gradient: all wanted or none
        arg = (2 if affine else 1) + 2 * j
        kmax = max(kmax, cols(&(<Expression>first.args[arg - 1]).d))
        if j < MAX_SLOTS - 1:
            if L.some_grad[j + 1] and not L.all_grad[j + 1]:
                dC = NULL
            continue
        for node in group:
            x = <Expression>node.args[arg]
            if (x.grad == NULL) != ((<Expression>first.args[arg]).grad == NULL):
                dC = NULL
    if dC == NULL:
        return node_by_node(group, True)
    if affine:
        bias = <Expression>first.args[0]
        if bias.grad != NULL:
            for i in range(total):
                add_to(m, dC + m * i, bias.grad)
    buf = work_buffer(<size_t>2 * kmax * total)
    for j in range(nin):
        arg = (2 if affine else 1) + 2 * j
        W = <Expression>first.args[arg - 1]
        k = cols(&W.d)
        if W.grad != NULL:     # (dC is the group's gradient block: graph memory)
            group_weight_grad(W, first, group, arg, input_at(&L, group, j, arg, False), dC,
                              <int>total, buf)
        if (<Expression>first.args[arg]).grad == NULL:
            continue
        dX = input_at(&L, group, j, arg, True)
        if dX != NULL:                         # the inputs' gradients are one block: add there
            gemm(True, False, k, <int>total, m, 1.0, W.val, m, dC, m, 1.0, dX, k)
            continue
        dX = buf + kmax * total
        gemm(True, False, k, <int>total, m, 1.0, W.val, m, dC, m, 0.0, dX, k)
        off = 0
        for node in group:
            x = <Expression>node.args[arg]
            n = k * ncols(x)
            add_to(n, dX + off, x.grad)
            off += n
    return 0


cdef int generic_batch(list group, bint backward) except -1:
    """A group of products sharing their matrix (affine transforms: bias and matrices) on a device
    without the typed loops (a GPU): one call of the first node's generic implementation with each
    input as one matrix of all the group's columns (one GEMM per matrix; batching.pxd's
    generic_columns); returns 1, or 0 where the caller must run the nodes one by one."""
    cdef int args[MAX_SLOTS]
    cdef int nin = group_inputs(<Expression>group[0], args)
    if nin > MAX_SLOTS - 1:
        return 0
    return generic_columns(group, backward, args, nin, False)
