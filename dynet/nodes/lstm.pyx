"""DyNet 2.1's fused LSTM cell: vanilla_lstm_gates (both affine maps, the forget bias and the four
non-linearities in one node), vanilla_lstm_c and vanilla_lstm_h.

The gates vector is [i; f; o; g] (each H rows): sigmoid on the first 3H rows (the forget rows get a
constant bias added first), tanh on the last H. One node per step instead of DyNet's dozen
(affine, four pick_ranges, four activations, cmults) is what makes the LSTM builders fast.
The builders also use two internal variants: no previous h (the first step of a sequence, where
DyNet drops the recurrent term) and no previous c.
"""
cimport cython
from dynet.core.dim cimport make_dim1, rows, cols, dim_str, total_size
from dynet.core.graph cimport Expression, add_node, as_expr, fwd_scratch, np_view
from dynet.core import config
from dynet.core.memory cimport work_buffer
from dynet.kernels.cpu cimport gemm, gemm_nogil, copy, fast_sigmoid, NOGIL_MIN_WORK
from dynet.core.batching cimport (Layout, group_layout, gather_into, node_by_node, generic_columns,
                                  own_columns)
from dynet.nodes.matmul cimport defer_weight_grad, defer_product_grad, defers_group_weight, group_weight_grad
from dynet.kernels import generic
from dynet.core.lowering cimport Lowering, Step, Part

# Backward temporaries (pre-activation gradients, input gradients) use memory.work_buffer.


cdef extern from *:
    """
    /* tanh by the rational approximation Eigen (hence DyNet) uses, in float arithmetic only and
       without libm calls, so that loops over a gate column vectorise (error ~1e-7). */
    static inline float dy_fast_tanh(float x) {
        const float c = 7.90531110763549805f;
        x = x > c ? c : x;
        x = x < -c ? -c : x;
        float x2 = x * x;
        float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
        p = p * x2 + -8.60467152213735e-11f;
        p = p * x2 + 5.12229709037114e-08f;
        p = p * x2 + 1.48572235717979e-05f;
        p = p * x2 + 6.37261928875436e-04f;
        p = p * x2 + 4.89352455891786e-03f;
        p = p * x;
        float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
        q = q * x2 + 2.26843463243900e-03f;
        q = q * x2 + 4.89352518554385e-03f;
        return p / q;
    }
    static void dy_lstm_h(const float* o, const float* c, float* out, long H) {
        long i;
        for (i = 0; i < H; ++i) out[i] = o[i] * dy_fast_tanh(c[i]);
    }
    /* h = o * tanh(c)'s gradient d into o's (dg) and c's (dc), either NULL if not wanted: a loop
       without branches for each case, so that it vectorises (the buffers are distinct nodes'). */
    static void dy_lstm_h_grads(const float* restrict o, const float* restrict c,
                                const float* restrict d, float* restrict dg, float* restrict dc, long H) {
        long i;
        if (dg && dc) {
            for (i = 0; i < H; ++i) {
                float t = dy_fast_tanh(c[i]);
                dg[i] += d[i] * t;
                dc[i] += d[i] * o[i] * (1 - t * t);
            }
        } else if (dg) {
            for (i = 0; i < H; ++i) dg[i] += d[i] * dy_fast_tanh(c[i]);
        } else if (dc) {
            for (i = 0; i < H; ++i) {
                float t = dy_fast_tanh(c[i]);
                dc[i] += d[i] * o[i] * (1 - t * t);
            }
        }
    }
    """
    float fast_tanh "dy_fast_tanh"(float x) noexcept nogil
    void lstm_h "dy_lstm_h"(const float* o, const float* c, float* out, long H) noexcept nogil
    void lstm_h_grads "dy_lstm_h_grads"(const float* o, const float* c, const float* d, float* dg,
                                        float* dc, long H) noexcept nogil


cdef inline void lstm_activate(float* col, Py_ssize_t H) noexcept nogil:
    """The gate non-linearities of one column [i; f; o; g] in place. The sigmoids are 1/(1+e^-x) on
    the full-range exp (not (1 + tanh(x/2))/2, which loses all relative precision for x < -17)."""
    cdef Py_ssize_t i
    for i in range(3 * H):
        col[i] = fast_sigmoid(col[i])
    for i in range(3 * H, 4 * H):
        col[i] = fast_tanh(col[i])


cdef inline void gate_preactivation_grads(const float* Y, const float* G, float* dpre, Py_ssize_t H,
                                          Py_ssize_t n) noexcept nogil:
    """d loss / d pre-activation of n gate columns from their values Y and gradients G."""
    cdef Py_ssize_t j, i, H4 = 4 * H
    cdef const float* y
    cdef const float* g
    cdef float* dp
    for j in range(n):
        y = Y + j * H4
        g = G + j * H4
        dp = dpre + j * H4
        for i in range(3 * H):
            dp[i] = g[i] * y[i] * (1 - y[i])
        for i in range(3 * H, H4):
            dp[i] = g[i] * (1 - y[i] * y[i])


cdef inline void gates_products(int H4, int B, int I, int H, const float* wx, const float* xp,
                                const float* wh, const float* hp, bint has_h, float* val) noexcept nogil:
    """val += Wx x (+ Wh h), then the non-linearities: the gates node's work after the bias."""
    cdef Py_ssize_t b
    gemm_nogil(False, False, H4, B, I, 1.0, wx, H4, xp, I, 1.0, val, H4)
    if has_h:
        gemm_nogil(False, False, H4, B, H, 1.0, wh, H4, hp, H, 1.0, val, H4)
    for b in range(B):
        lstm_activate(val + b * H4, H)


cdef void gates_forward(int H4, int B, int I, int H, const float* wx, const float* xp, const float* wh,
                        const float* hp, bint has_h, const float* bv, float forget_bias,
                        float* val) noexcept nogil:
    """The gates node's value: the bias (plus the forget bias on the f rows) in each column, then
    gates_products."""
    cdef Py_ssize_t b, i
    cdef float* col
    for b in range(B):
        col = val + b * H4
        copy(H4, bv, col)
        for i in range(H, 2 * H):
            col[i] += forget_bias
    gates_products(H4, B, I, H, wx, xp, wh, hp, has_h, val)


# the lowered forward steps (see dynet/core/lowering.pyx)
cdef void gates_step(const Step* s, const Part* parts) noexcept nogil:
    gates_forward(<int>s.n0, <int>s.n1, <int>s.n2, <int>s.n3, s.x2, s.x0, s.x3, s.x1, s.op,
                  <const float*>s.p, s.a, s.y)


cdef void c_step(const Step* s, const Part* parts) noexcept nogil:
    cell_c_forward(s.n0, s.n1, s.x0, s.n2, s.x1, s.n3, s.y)


cdef void h_step(const Step* s, const Part* parts) noexcept nogil:
    cell_h_forward(s.n0, s.n1, s.x0, s.n2, s.x1, s.n3, s.y)


cdef inline const float* bat(Expression e, Py_ssize_t n, Py_ssize_t b) noexcept:
    """Batch element b of e's value (element 0 when e is not batched), n values per element."""
    return e.val + (n * b if e.d.bd > 1 else 0)


cdef inline float* gbat(Expression e, Py_ssize_t n, Py_ssize_t b) noexcept:
    return e.grad + (n * b if e.d.bd > 1 else 0)


@cython.final
@cython.no_gc
cdef class VanillaLSTMGates(Expression):
    # args: x_1..x_nx, [h_tm1 if has_h], Wx, Wh, b, [mask_x, mask_h if dropout]
    cdef int nx
    cdef bint has_h
    cdef bint dropout
    cdef float forget_bias
    cdef float noise_std
    cdef float* xbuf       # the (concatenated, masked, batch-expanded) input, or NULL: x_1's value
    cdef float* hbuf       # the same for h_tm1
    cdef float* wnoisy     # noisy Wx, Wh, b (weightnoise_std > 0), else NULL

    cpdef str op_name(self):
        return "vanilla_lstm_gates"

    cdef inline Expression Wx(self):
        return <Expression>self.args[self.nx + self.has_h]

    cdef inline Expression Wh(self):
        return <Expression>self.args[self.nx + self.has_h + 1]

    cdef inline Expression bias(self):
        return <Expression>self.args[self.nx + self.has_h + 2]

    cdef inline Expression mask(self, int k):
        return <Expression>self.args[self.nx + self.has_h + 3 + k]

    cdef int gather(self, float* buf, int first, int count, int dim, Expression mask) except -1:
        """buf (dim x B) = concatenation of args[first:first+count] for each batch element, times
        the mask when given."""
        cdef Py_ssize_t b, k, off, n, i
        cdef Expression e
        cdef const float* m
        for b in range(self.d.bd):
            off = 0
            for k in range(first, first + count):
                e = <Expression>self.args[k]
                n = rows(&e.d)
                copy(n, bat(e, n, b), buf + b * dim + off)
                off += n
            if mask is not None:
                m = bat(mask, dim, b)
                for i in range(dim):
                    buf[b * dim + i] *= m[i]
        return 0

    cdef int forward_impl(self) except -1:
        cdef Expression Wx = self.Wx(), Wh = self.Wh(), bias = self.bias()
        cdef int H4 = rows(&Wx.d), H = H4 // 4, I = cols(&Wx.d), B = self.d.bd
        cdef Py_ssize_t i
        cdef const float* xp
        cdef const float* hp = NULL
        cdef const float* wx = Wx.val
        cdef const float* wh = Wh.val
        cdef const float* bv = bias.val
        cdef Py_ssize_t n_all
        if self.xbuf != NULL:
            self.gather(self.xbuf, 0, self.nx, I, self.mask(0) if self.dropout else None)
            xp = self.xbuf
        else:
            xp = (<Expression>self.args[0]).val
        if self.has_h:
            if self.hbuf != NULL:
                self.gather(self.hbuf, self.nx, 1, H, self.mask(1) if self.dropout else None)
                hp = self.hbuf
            else:
                hp = (<Expression>self.args[self.nx]).val
        if self.wnoisy != NULL:
            # noise drawn once per forward pass and kept for the backward pass
            n_all = H4 * I + H4 * H + H4
            np_view(self.wnoisy, n_all)[:] = config.rng().normal(0.0, self.noise_std, n_all)
            for i in range(H4 * I):
                self.wnoisy[i] += wx[i]
            for i in range(H4 * H):
                self.wnoisy[H4 * I + i] += wh[i]
            for i in range(H4):
                self.wnoisy[H4 * I + H4 * H + i] += bv[i]
            wx = self.wnoisy
            wh = self.wnoisy + H4 * I
            bv = self.wnoisy + H4 * I + H4 * H
        cdef bint has_h = self.has_h
        cdef float* val = self.val
        cdef float forget_bias = self.forget_bias
        if <Py_ssize_t>H4 * B * (I + H) >= NOGIL_MIN_WORK:
            with nogil:                  # let other threads run meanwhile
                gates_forward(H4, B, I, H, wx, xp, wh, hp, has_h, bv, forget_bias, val)
        else:
            gates_forward(H4, B, I, H, wx, xp, wh, hp, has_h, bv, forget_bias, val)
        return 0

    cdef int lower(self, Lowering L) except -1:
        if self.xbuf != NULL or self.hbuf != NULL or self.wnoisy != NULL:
            return 0                     # (gathers, masks and weight noise: forward_impl does them)
        cdef Expression Wx = self.Wx()
        cdef int H4 = rows(&Wx.d), I = cols(&Wx.d), B = self.d.bd
        cdef Step* s = L.add(gates_step, <Py_ssize_t>H4 * B * (I + H4 // 4))
        s.y = self.val
        s.x0 = (<Expression>self.args[0]).val
        s.x1 = (<Expression>self.args[self.nx]).val if self.has_h else NULL
        s.x2 = Wx.val
        s.x3 = self.Wh().val
        s.p = self.bias().val
        s.n0, s.n1, s.n2, s.n3 = H4, B, I, H4 // 4
        s.op = self.has_h
        s.a = self.forget_bias
        return 1

    cdef int scatter(self, const float* dbuf, int first, int count, int dim, Expression mask,
                     const float* dropped) except -1:
        """Add dbuf (d loss / d the gathered vector) into args[first:first+count] and the mask."""
        cdef Py_ssize_t b, k, off, n, i
        cdef Expression e
        cdef const float* m = NULL
        cdef const float* src
        cdef float* dst
        cdef float* mg
        for b in range(self.d.bd):
            if mask is not None:
                m = bat(mask, dim, b)
                if mask.grad != NULL:   # d/dmask = d/d(dropped) * the undropped input
                    mg = gbat(mask, dim, b)
                    off = 0
                    for k in range(first, first + count):
                        e = <Expression>self.args[k]
                        n = rows(&e.d)
                        src = bat(e, n, b)
                        for i in range(n):
                            mg[off + i] += dbuf[b * dim + off + i] * src[i]
                        off += n
            off = 0
            for k in range(first, first + count):
                e = <Expression>self.args[k]
                n = rows(&e.d)
                if e.grad != NULL:
                    dst = gbat(e, n, b)
                    if m != NULL:
                        for i in range(n):
                            dst[i] += dbuf[b * dim + off + i] * m[off + i]
                    else:
                        for i in range(n):
                            dst[i] += dbuf[b * dim + off + i]
                off += n
        return 0

    cdef bint wants(self, int first, int count, Expression mask):
        cdef int k
        if mask is not None and mask.grad != NULL:
            return True
        for k in range(first, first + count):
            if (<Expression>self.args[k]).grad != NULL:
                return True
        return False

    cdef int backward_impl(self) except -1:
        cdef Expression Wx = self.Wx(), Wh = self.Wh(), bias = self.bias()
        cdef int H4 = rows(&Wx.d), H = H4 // 4, I = cols(&Wx.d), B = self.d.bd
        cdef int D = I if I > H else H
        cdef Py_ssize_t b, i
        # The weight gradients of parameter matrices are deferred (matmul.defer_weight_grad): one
        # GEMM over all time steps at the end of the pass instead of a rank-1 update per step; their
        # pre-activation gradients must then stay until the end of the pass (graph memory).
        cdef bint defer = Wx.external_grad and (Wh.external_grad or not self.has_h)
        cdef float* dio = work_buffer(<Py_ssize_t>D * B + (0 if defer else <Py_ssize_t>H4 * B))
        cdef float* dpre = fwd_scratch(<Py_ssize_t>H4 * B) if defer else dio + <Py_ssize_t>D * B
        cdef float* dp
        cdef const float* xp = self.xbuf if self.xbuf != NULL else (<Expression>self.args[0]).val
        cdef const float* hp = NULL
        cdef const float* wx = self.wnoisy if self.wnoisy != NULL else Wx.val
        cdef const float* wh = self.wnoisy + H4 * I if self.wnoisy != NULL else Wh.val
        cdef Expression mx = self.mask(0) if self.dropout else None
        cdef Expression mh = self.mask(1) if self.dropout else None
        if self.has_h:
            hp = self.hbuf if self.hbuf != NULL else (<Expression>self.args[self.nx]).val
        gate_preactivation_grads(self.val, self.grad, dpre, H, B)
        if bias.grad != NULL:
            for b in range(B):
                dp = dpre + b * H4
                for i in range(H4):
                    bias.grad[i] += dp[i]
        # The input's gradient too, where it goes straight into one input's gradient (no
        # concatenation, dropout mask, weight noise or batch expansion): the input's node comes
        # before every time step's gates, so one GEMM serves them all when it is reached.
        cdef Expression x0 = <Expression>self.args[0]
        cdef bint defer_dx = (defer and self.nx == 1 and not self.dropout and self.xbuf == NULL
                              and self.wnoisy == NULL and x0.grad != NULL)
        if defer_dx:
            defer_product_grad(Wx, x0, dpre, B, Wx.grad != NULL, True)
        elif Wx.grad != NULL:
            if defer:
                defer_weight_grad(Wx, self, dpre, xp, B)
            else:
                gemm(False, True, H4, I, B, 1.0, dpre, H4, xp, I, 1.0, Wx.grad, H4)
        if self.has_h and Wh.grad != NULL:
            if defer:
                defer_weight_grad(Wh, self, dpre, hp, B)
            else:
                gemm(False, True, H4, H, B, 1.0, dpre, H4, hp, H, 1.0, Wh.grad, H4)
        if not defer_dx and self.wants(0, self.nx, mx):
            gemm(True, False, I, B, H4, 1.0, wx, H4, dpre, H4, 0.0, dio, I)
            self.scatter(dio, 0, self.nx, I, mx, xp)
        if self.has_h and self.wants(self.nx, 1, mh):
            gemm(True, False, H, B, H4, 1.0, wh, H4, dpre, H4, 0.0, dio, H)
            self.scatter(dio, self.nx, 1, H, mh, hp)
        return 0

    def generic_forward(self, xp, list xs, out):
        self.aux = generic.lstm_gates_forward(xp, xs, out, self.nx, self.has_h, self.dropout,
                                              self.forget_bias, self.noise_std)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        # (aux is None where the node's forward ran in a group: without dropout or weight noise
        # what backward needs is its arguments, read again)
        generic.lstm_gates_backward(xp, xs, self.aux, out, dout, i, dxi, self.nx, self.has_h,
                                    self.dropout)


cdef Expression make_gates(list xs, object h_tm1, object Wx, object Wh, object b, object mask_x,
                           object mask_h, float weightnoise_std, float forget_bias, str op):
    """Checks the shapes and builds the node (h_tm1 None: no recurrent term)."""
    if not xs:
        raise ValueError(f"{op}: the list of inputs x_t is empty")
    cdef tuple xe = tuple([as_expr(x, op) for x in xs])
    cdef Expression ewx = as_expr(Wx, op), ewh = as_expr(Wh, op), eb = as_expr(b, op)
    cdef Expression eh = as_expr(h_tm1, op) if h_tm1 is not None else None
    cdef bint dropout = mask_x is not None
    cdef Expression emx = as_expr(mask_x, op) if dropout else None
    cdef Expression emh = as_expr(mask_h, op) if dropout else None
    cdef Expression e
    if weightnoise_std < 0:
        raise ValueError(f"{op}: weightnoise_std must be >= 0, got {weightnoise_std}")
    if ewx.d.nd != 2 or ewh.d.nd != 2 or ewx.d.bd != 1 or ewh.d.bd != 1 or eb.d.bd != 1:
        raise ValueError(f"{op}: Wx and Wh must be unbatched matrices and b an unbatched vector, got "
                         f"Wx {dim_str(&ewx.d)}, Wh {dim_str(&ewh.d)}, b {dim_str(&eb.d)}")
    cdef int H4 = rows(&ewx.d), H = H4 // 4, I = cols(&ewx.d), B = 1, isum = 0
    if H4 % 4 != 0 or H4 == 0 or rows(&ewh.d) != H4 or cols(&ewh.d) != H or eb.d.nd > 2 \
            or rows(&eb.d) != H4 or cols(&eb.d) != 1:
        raise ValueError(f"{op}: expected Wx {{4H,I}}, Wh {{4H,H}} and b {{4H}}, got Wx "
                         f"{dim_str(&ewx.d)}, Wh {dim_str(&ewh.d)}, b {dim_str(&eb.d)}")
    for e in xe + ((eh,) if eh is not None else ()):
        if e.d.bd > 1:
            if B > 1 and e.d.bd != B:
                raise ValueError(f"{op}: inconsistent batch sizes {B} and {e.d.bd} among x_t and h_tm1")
            B = e.d.bd
    for e in xe:
        if e.d.nd > 1 and cols(&e.d) != 1 or e.d.nd > 2:
            raise ValueError(f"{op}: x_t must be vectors, got {dim_str(&e.d)}")
        isum += rows(&e.d)
    if isum != I:
        raise ValueError(f"{op}: the inputs x_t have {isum} values in all but Wx {dim_str(&ewx.d)} "
                         f"expects {I}")
    if eh is not None and (eh.d.nd > 2 or cols(&eh.d) != 1 or rows(&eh.d) != H):
        raise ValueError(f"{op}: h_tm1 must be a vector of size {H} (Wh {dim_str(&ewh.d)}), got "
                         f"{dim_str(&eh.d)}")
    if dropout:
        if emh is None:
            raise ValueError(f"{op}: both dropout masks are needed")
        if emx.d.nd > 1 and cols(&emx.d) != 1 or rows(&emx.d) != I or (emx.d.bd != 1 and emx.d.bd != B):
            raise ValueError(f"{op}: dropout_mask_x must be {{{I}}} with batch 1 or {B}, got {dim_str(&emx.d)}")
        if emh.d.nd > 1 and cols(&emh.d) != 1 or rows(&emh.d) != H or (emh.d.bd != 1 and emh.d.bd != B):
            raise ValueError(f"{op}: dropout_mask_h must be {{{H}}} with batch 1 or {B}, got {dim_str(&emh.d)}")
    cdef VanillaLSTMGates node = VanillaLSTMGates.__new__(VanillaLSTMGates)
    node.nx = len(xe)
    node.has_h = eh is not None
    node.dropout = dropout
    node.forget_bias = forget_bias
    node.noise_std = weightnoise_std
    cdef Expression x0 = <Expression>xe[0]
    node.xbuf = NULL
    node.hbuf = NULL
    node.wnoisy = NULL
    if len(xe) > 1 or dropout or x0.d.bd != B:
        node.xbuf = fwd_scratch(<size_t>I * B)
    if eh is not None and (dropout or eh.d.bd != B):
        node.hbuf = fwd_scratch(<size_t>H * B)
    if weightnoise_std > 0:
        node.wnoisy = fwd_scratch(<size_t>H4 * (I + H + 1))
    cdef tuple args = xe + ((eh,) if eh is not None else ()) + (ewx, ewh, eb)
    if dropout:
        args = args + (emx, emh)
    return add_node(node, args, make_dim1(H4, B))


# The cells' loops over n columns: each column reads its gates (4H values), its c (H) and writes or
# adds H values; a stride of 0 reuses one column for all (a batch-1 argument broadcast over the
# batch). A node runs them over its batch; autobatching over a whole group whose values and
# gradients lie side by side (each column with stride 4H or H).

cdef void cell_c_forward(Py_ssize_t H, Py_ssize_t n, const float* G, Py_ssize_t gs, const float* Cp,
                         Py_ssize_t cs, float* out) noexcept nogil:
    """out = i * g (+ c_tm1 * f) column by column (Cp NULL: no c_tm1)."""
    cdef Py_ssize_t b, i
    cdef const float* gt
    cdef const float* cp
    cdef float* y
    for b in range(n):
        gt = G + b * gs
        y = out + b * H
        if Cp == NULL:
            for i in range(H):
                y[i] = gt[i] * gt[3 * H + i]
        else:
            cp = Cp + b * cs
            for i in range(H):
                y[i] = gt[i] * gt[3 * H + i] + cp[i] * gt[H + i]


cdef void cell_c_backward(Py_ssize_t H, Py_ssize_t n, const float* G, float* dG, Py_ssize_t gs,
                          const float* Cp, float* dCp, Py_ssize_t cs, const float* D) noexcept nogil:
    """The gradients of c_t (D) into the gates' (dG) and c_tm1's (dCp), either NULL if not wanted."""
    cdef Py_ssize_t b, i
    cdef const float* gt
    cdef const float* d
    cdef const float* cp
    cdef float* dg
    cdef float* dc
    for b in range(n):
        gt = G + b * gs
        d = D + b * H
        if dG != NULL:
            dg = dG + b * gs
            for i in range(H):
                dg[i] += d[i] * gt[3 * H + i]
                dg[3 * H + i] += d[i] * gt[i]
            if Cp != NULL:
                cp = Cp + b * cs
                for i in range(H):
                    dg[H + i] += d[i] * cp[i]
        if dCp != NULL:
            dc = dCp + b * cs
            for i in range(H):
                dc[i] += d[i] * gt[H + i]


cdef void cell_h_forward(Py_ssize_t H, Py_ssize_t n, const float* C, Py_ssize_t cs, const float* G,
                         Py_ssize_t gs, float* out) noexcept nogil:
    """out = o * tanh(c_t) column by column."""
    cdef Py_ssize_t b
    for b in range(n):
        lstm_h(G + b * gs + 2 * H, C + b * cs, out + b * H, H)


cdef void cell_h_backward(Py_ssize_t H, Py_ssize_t n, const float* C, float* dC, Py_ssize_t cs,
                          const float* G, float* dG, Py_ssize_t gs, const float* D) noexcept nogil:
    cdef Py_ssize_t b
    for b in range(n):
        lstm_h_grads(G + b * gs + 2 * H, C + b * cs, D + b * H,
                     dG + b * gs + 2 * H if dG != NULL else NULL, dC + b * cs if dC != NULL else NULL, H)


cdef inline Py_ssize_t stride(Expression e, Py_ssize_t n) noexcept:
    """Column stride of an argument with n values per batch element (0: broadcast)."""
    return n if e.d.bd > 1 else 0


@cython.final
@cython.no_gc
cdef class VanillaLSTMC(Expression):
    """c_t = c_tm1 * f + i * g (args: gates, [c_tm1])."""
    cpdef str op_name(self):
        return "vanilla_lstm_c"

    cdef int forward_impl(self) except -1:
        cdef Expression gates = <Expression>self.args[0]
        cdef Expression c = <Expression>self.args[1] if len(self.args) > 1 else None
        cdef Py_ssize_t H = rows(&self.d)
        cell_c_forward(H, self.d.bd, gates.val, stride(gates, 4 * H), c.val if c is not None else NULL,
                       stride(c, H) if c is not None else 0, self.val)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Expression gates = <Expression>self.args[0]
        cdef Expression c = <Expression>self.args[1] if len(self.args) > 1 else None
        cdef Py_ssize_t H = rows(&self.d)
        cdef Step* s = L.add(c_step, total_size(&self.d))
        s.y = self.val
        s.x0 = gates.val
        s.x1 = c.val if c is not None else NULL
        s.n0, s.n1 = H, self.d.bd
        s.n2, s.n3 = stride(gates, 4 * H), stride(c, H) if c is not None else 0
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression gates = <Expression>self.args[0]
        cdef Expression c = <Expression>self.args[1] if len(self.args) > 1 else None
        cdef Py_ssize_t H = rows(&self.d)
        cell_c_backward(H, self.d.bd, gates.val, gates.grad, stride(gates, 4 * H),
                        c.val if c is not None else NULL, c.grad if c is not None else NULL,
                        stride(c, H) if c is not None else 0, self.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.lstm_c_forward(xp, xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.lstm_c_backward(xp, xs, dout, i, dxi)


@cython.final
@cython.no_gc
cdef class VanillaLSTMH(Expression):
    """h_t = o * tanh(c_t) (args: c_t, gates)."""
    cpdef str op_name(self):
        return "vanilla_lstm_h"

    cdef int forward_impl(self) except -1:
        cdef Expression c = <Expression>self.args[0], gates = <Expression>self.args[1]
        cdef Py_ssize_t H = rows(&self.d)
        cell_h_forward(H, self.d.bd, c.val, stride(c, H), gates.val, stride(gates, 4 * H), self.val)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Expression c = <Expression>self.args[0], gates = <Expression>self.args[1]
        cdef Py_ssize_t H = rows(&self.d)
        cdef Step* s = L.add(h_step, total_size(&self.d))
        s.y = self.val
        s.x0 = c.val
        s.x1 = gates.val
        s.n0, s.n1 = H, self.d.bd
        s.n2, s.n3 = stride(c, H), stride(gates, 4 * H)
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression c = <Expression>self.args[0], gates = <Expression>self.args[1]
        cdef Py_ssize_t H = rows(&self.d)
        cell_h_backward(H, self.d.bd, c.val, c.grad, stride(c, H), gates.val, gates.grad,
                        stride(gates, 4 * H), self.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.lstm_h_forward(xp, xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.lstm_h_backward(xp, xs, dout, i, dxi)


cdef int check_cell(Expression c, Expression gates, str op, str cname) except -1:
    cdef int H = rows(&c.d)
    if gates.d.nd > 2 or cols(&gates.d) != 1 or c.d.nd > 2 or cols(&c.d) != 1 or rows(&gates.d) != 4 * H:
        raise ValueError(f"{op}: {cname} {dim_str(&c.d)} needs gates_t of size 4 x {H}, got "
                         f"{dim_str(&gates.d)}")
    if c.d.bd != gates.d.bd and c.d.bd != 1 and gates.d.bd != 1:
        raise ValueError(f"{op}: batch sizes differ: {cname} {dim_str(&c.d)}, gates_t {dim_str(&gates.d)}")
    return 0


cdef Expression make_c(object c_tm1, object gates_t):
    cdef Expression g = as_expr(gates_t, "vanilla_lstm_c"), c
    if c_tm1 is None:      # the first step of a sequence: c_t = i * g
        if g.d.nd > 2 or cols(&g.d) != 1 or rows(&g.d) % 4 != 0:
            raise ValueError(f"vanilla_lstm_c: gates_t must be a vector of size 4H, got {dim_str(&g.d)}")
        return add_node(VanillaLSTMC.__new__(VanillaLSTMC), (g,), make_dim1(rows(&g.d) // 4, g.d.bd))
    c = as_expr(c_tm1, "vanilla_lstm_c")
    check_cell(c, g, "vanilla_lstm_c", "c_tm1")
    return add_node(VanillaLSTMC.__new__(VanillaLSTMC), (g, c),
                    make_dim1(rows(&c.d), c.d.bd if c.d.bd > g.d.bd else g.d.bd))


cdef Expression make_h(object c_t, object gates_t):
    cdef Expression g = as_expr(gates_t, "vanilla_lstm_h"), c = as_expr(c_t, "vanilla_lstm_h")
    check_cell(c, g, "vanilla_lstm_h", "c_t")
    return add_node(VanillaLSTMH.__new__(VanillaLSTMH), (c, g),
                    make_dim1(rows(&c.d), c.d.bd if c.d.bd > g.d.bd else g.d.bd))


# ---- public operations (DyNet 2.1) ----

def vanilla_lstm_gates(x_t, h_tm1, Wx, Wh, b, weightnoise_std=0.0):
    """[i; f; o; g] = [sigmoid; sigmoid; sigmoid; tanh](Wx x_t + Wh h_tm1 + b), with 1 added to the
    forget rows before the sigmoid."""
    return make_gates([x_t], h_tm1, Wx, Wh, b, None, None, weightnoise_std, 1.0, "vanilla_lstm_gates")


def vanilla_lstm_gates_concat(x_ts, h_tm1, Wx, Wh, b, weightnoise_std=0.0):
    """vanilla_lstm_gates of the concatenation of the inputs x_ts."""
    return make_gates(list(x_ts), h_tm1, Wx, Wh, b, None, None, weightnoise_std, 1.0,
                      "vanilla_lstm_gates_concat")


def vanilla_lstm_gates_dropout(x_t, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h, weightnoise_std=0.0):
    """vanilla_lstm_gates with x_t and h_tm1 multiplied by the masks first."""
    return make_gates([x_t], h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h, weightnoise_std, 1.0,
                      "vanilla_lstm_gates_dropout")


def vanilla_lstm_gates_dropout_concat(x_ts, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h,
                                      weightnoise_std=0.0):
    """vanilla_lstm_gates of the concatenated inputs x_ts, with dropout masks on the inputs and on h_tm1

    Args:
        x_ts (list of dynet.Expression): the inputs, concatenated into x_t
        h_tm1 (dynet.Expression): the previous output {hidden_dim}
        Wx (dynet.Expression): {4 hidden_dim, input_dim}
        Wh (dynet.Expression): {4 hidden_dim, hidden_dim}
        b (dynet.Expression): {4 hidden_dim}
        dropout_mask_x (dynet.Expression): multiplies x_t
        dropout_mask_h (dynet.Expression): multiplies h_tm1
        weightnoise_std (float): Gaussian noise on the weights

    Returns:
        dynet.Expression: the gates i, f, o, g stacked, {4 hidden_dim}

    Raises:
        ValueError: if the dimensions do not match
    """
    return make_gates(list(x_ts), h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h, weightnoise_std,
                      1.0, "vanilla_lstm_gates_dropout_concat")


def vanilla_lstm_c(c_tm1, gates_t):
    """c_t = c_tm1 * f_t + i_t * g_t."""
    return make_c(c_tm1, gates_t)


def vanilla_lstm_h(c_t, gates_t):
    """h_t = o_t * tanh(c_t)."""
    return make_h(c_t, gates_t)


def _gates(xs, h_tm1, Wx, Wh, b, mask_x=None, mask_h=None, float forget_bias=1.0, float weightnoise_std=0.0):
    """For the builders: h_tm1 may be None (no recurrent term), the forget bias is free."""
    return make_gates(xs, h_tm1, Wx, Wh, b, mask_x, mask_h, weightnoise_std, forget_bias, "lstm")


# ---- autobatching: the gates of many cells sharing Wx, Wh and b as two GEMMs --------------------

cdef bint batchable(Expression node) noexcept:
    """Gates of one input and no dropout or weight noise, whose inputs are used as they are (no
    batch-1 input broadcast over a batch)."""
    if type(node) is not VanillaLSTMGates:
        return False
    cdef VanillaLSTMGates g = <VanillaLSTMGates>node
    if g.nx != 1 or g.dropout or g.wnoisy != NULL or g.xbuf != NULL or g.hbuf != NULL:
        return False
    return g.Wx().d.bd == 1 and g.Wh().d.bd == 1 and g.bias().d.bd == 1


cdef inline Expression cell_gates(Expression node):
    """The gates a cell (VanillaLSTMC: args gates, c_tm1; VanillaLSTMH: args c_t, gates) reads."""
    return <Expression>node.args[0 if type(node) is VanillaLSTMC else 1]


cdef inline Py_ssize_t cell_layer(Expression node) noexcept:
    """A cell's LSTM, told by its gates' input matrix (-1: gates not of a VanillaLSTMGates)."""
    cdef Expression g = cell_gates(node)
    return (<VanillaLSTMGates>g).Wx().index if type(g) is VanillaLSTMGates else -1


cdef bint cell_batchable(Expression node) noexcept:
    """A cell whose arguments have its batch size (none broadcast): a group of them is columns."""
    return own_columns(node)


cdef Py_ssize_t batch_key(Expression node) noexcept:
    """The group key for autobatching (0: runs alone): gates group by their parameters; the c and
    h cells of one LSTM (one step of many sequences) by their LSTM, kind and size: their values
    are placed side by side, so that the next step's gates find their h side by side."""
    cdef VanillaLSTMGates g
    if type(node) is VanillaLSTMC or type(node) is VanillaLSTMH:
        if not cell_batchable(node):
            return 0
        return <Py_ssize_t>((((<size_t>cell_layer(node) * 1000003 + <size_t>total_size(&node.d)) * 4
                              + (type(node) is VanillaLSTMH)) * 2 + len(node.args)) * 4 + 2)
    if not batchable(node):
        return 0
    g = <VanillaLSTMGates>node
    return <Py_ssize_t>(((<size_t>g.Wx().index * 1000003 + <size_t>g.Wh().index) * 1000003
                         + <size_t>g.bias().index) * 2 + g.has_h) | 1


cdef int recurrence(Expression node, int* chain_arg) noexcept:
    """For the schedule's lining up of recurrences (execution.pyx): the steps a node of this family
    adds to its recurrence (gates 1, cells 0) and, in *chain_arg, the position of the argument it
    continues (gates: h_tm1, -1 at a first step without one; c and h cells: their gates)."""
    if type(node) is VanillaLSTMGates:
        chain_arg[0] = (<VanillaLSTMGates>node).nx if (<VanillaLSTMGates>node).has_h else -1
        return 1
    chain_arg[0] = 0 if type(node) is VanillaLSTMC else 1
    return 0


cdef bint same_batch(Expression x, Expression y) noexcept:
    """The exact test behind batch_key: the same parameters, recurrence and forget bias (cells:
    the same LSTM, size and arguments)."""
    if type(x) is not type(y):
        return False
    if type(x) is not VanillaLSTMGates:
        return (cell_layer(x) == cell_layer(y) and total_size(&x.d) == total_size(&y.d)
                and len(x.args) == len(y.args))
    cdef VanillaLSTMGates a = <VanillaLSTMGates>x, b = <VanillaLSTMGates>y
    return (a.Wx() is b.Wx() and a.Wh() is b.Wh() and a.bias() is b.bias() and a.has_h == b.has_h
            and a.forget_bias == b.forget_bias)


cdef int CELL_ARGS[2]
CELL_ARGS[0] = 0
CELL_ARGS[1] = 1


cdef int cells_forward(list group) except -1:
    """A group of c (or h) cells: one loop over all the columns where the values and the arguments'
    values lie side by side, else node by node."""
    cdef Expression first = <Expression>group[0]
    cdef Py_ssize_t H = rows(&first.d)
    cdef int nargs = len(first.args)
    cdef Layout L
    group_layout(group, nargs, CELL_ARGS, False, &L)
    if L.val[0] != NULL and L.val[1] != NULL and (nargs == 1 or L.val[2] != NULL):
        if type(first) is VanillaLSTMC:
            cell_c_forward(H, L.cols, L.val[1], 4 * H, L.val[2], H, L.val[0])
        else:
            cell_h_forward(H, L.cols, L.val[1], H, L.val[2], 4 * H, L.val[0])
        return 0
    return node_by_node(group, False)


cdef int cells_backward(list group) except -1:
    """The backward of a group of cells: one loop where their gradients, the arguments' values and
    gradients (each all there or all absent) lie side by side, else node by node."""
    cdef Expression first = <Expression>group[0]
    cdef Py_ssize_t H = rows(&first.d)
    cdef int nargs = len(first.args), s
    cdef Layout L
    cdef bint together
    group_layout(group, nargs, CELL_ARGS, True, &L)
    together = L.grad[0] != NULL
    for s in range(1, nargs + 1):
        together = together and L.val[s] != NULL and (L.grad[s] != NULL or not L.some_grad[s])
    if together:
        if type(first) is VanillaLSTMC:
            cell_c_backward(H, L.cols, L.val[1], L.grad[1], 4 * H, L.val[2], L.grad[2], H, L.grad[0])
        else:
            cell_h_backward(H, L.cols, L.val[1], L.grad[1], H, L.val[2], L.grad[2], 4 * H, L.grad[0])
        return 0
    return node_by_node(group, True)



cdef int forward_batch(list group) except -1:
    """forward_impl for all the group's cells at once: the bias and forget bias, Wx [x_1 .. x_n]
    and Wh [h_1 .. h_n] as one GEMM each, the activations column by column (c and h cells: one
    loop, cells_forward)."""
    cdef Expression node
    if type(group[0]) is not VanillaLSTMGates:
        return cells_forward(group)
    cdef VanillaLSTMGates first = <VanillaLSTMGates>group[0]
    cdef Expression Wx = first.Wx(), Wh = first.Wh(), bias = first.bias()
    cdef int H4 = rows(&Wx.d), H = H4 // 4, I = cols(&Wx.d)
    cdef Layout L
    group_layout(group, 2 if first.has_h else 1, CELL_ARGS, False, &L)
    cdef Py_ssize_t j, i, off, n, total = L.cols
    cdef float* C = L.val[0]
    cdef float* X = work_buffer(<size_t>(max(I, H) + (H4 if C == NULL else 0)) * total)
    cdef const float* xs
    cdef float* col
    if C == NULL:
        C = X + max(I, H) * total
    for j in range(total):
        col = C + H4 * j
        copy(H4, bias.val, col)
        for i in range(H, 2 * H):
            col[i] += first.forget_bias
    xs = L.val[1] if L.val[1] != NULL else gather_into(group, 0, I, X)
    gemm(False, False, H4, <int>total, I, 1.0, Wx.val, H4, xs, I, 1.0, C, H4)
    if first.has_h:
        xs = L.val[2] if L.val[2] != NULL else gather_into(group, 1, H, X)
        gemm(False, False, H4, <int>total, H, 1.0, Wh.val, H4, xs, H, 1.0, C, H4)
    for j in range(total):
        lstm_activate(C + H4 * j, H)
    if C != L.val[0]:                         # the results back into each node's value
        off = 0
        for node in group:
            n = H4 * node.d.bd
            copy(n, C + off, node.val)
            off += n
    return 0


cdef int backward_batch(list group) except -1:
    """backward_impl for all the group's cells at once (their gradients complete): the
    pre-activation gradients side by side, then dWx, dWh, the input and recurrent gradients as one
    GEMM each over all the columns (c and h cells: one loop, cells_backward)."""
    if type(group[0]) is not VanillaLSTMGates:
        return cells_backward(group)
    cdef VanillaLSTMGates first = <VanillaLSTMGates>group[0], g
    cdef Expression Wx = first.Wx(), Wh = first.Wh(), bias = first.bias(), a
    cdef int H4 = rows(&Wx.d), H = H4 // 4, I = cols(&Wx.d)
    cdef int D = I if I > H else H
    cdef Layout L
    group_layout(group, 2 if first.has_h else 1, CELL_ARGS, True, &L)
    cdef Py_ssize_t j, i, off, total = L.cols
    # where a large Wx or Wh's dW waits for the end of the pass (matmul.group_weight_grad), the
    # pre-activation gradients must live until then: graph memory
    cdef bint defer = defers_group_weight(Wx) or first.has_h and defers_group_weight(Wh)
    cdef float* X = work_buffer(<size_t>(2 * D + (0 if defer else H4)) * total)
    cdef float* dX = X + D * total
    cdef float* dpre = fwd_scratch(<size_t>H4 * total) if defer else dX + D * total
    cdef float* dp
    if L.val[0] != NULL and L.grad[0] != NULL:  # values and gradients as one block: one loop
        gate_preactivation_grads(L.val[0], L.grad[0], dpre, H, total)
    else:
        off = 0
        for g in group:
            gate_preactivation_grads(g.val, g.grad, dpre + off * H4, H, g.d.bd)
            off += g.d.bd
    if bias.grad != NULL:
        for j in range(total):
            dp = dpre + j * H4
            for i in range(H4):
                bias.grad[i] += dp[i]
    cdef int arg, k
    cdef float* together
    cdef Expression W
    for arg in range(2 if first.has_h else 1):
        W = Wx if arg == 0 else Wh
        k = I if arg == 0 else H
        if W.grad != NULL:
            group_weight_grad(W, first, group, arg, L.val[arg + 1], dpre, <int>total, X)
        if not L.some_grad[arg + 1]:
            continue
        together = L.grad[arg + 1]
        if together != NULL:                   # the inputs' gradients are one block: add there
            gemm(True, False, k, <int>total, H4, 1.0, W.val, H4, dpre, H4, 1.0, together, k)
            continue
        gemm(True, False, k, <int>total, H4, 1.0, W.val, H4, dpre, H4, 0.0, dX, k)
        off = 0
        for g in group:
            a = <Expression>g.args[arg]
            if a.grad != NULL:
                for i in range(k * g.d.bd):
                    a.grad[i] += dX[off + i]
            off += k * g.d.bd
    return 0


cdef int generic_batch(list group, bint backward) except -1:
    """A group of gates or cells on a device without the typed loops (a GPU): one call of the first
    node's generic implementation over all the group's columns (batching.pxd's generic_columns):
    gates with their x and h as two matrices (two GEMMs), cells with all their arguments as
    matrices. Returns 0 where the caller must run the nodes one by one."""
    cdef Expression first = <Expression>group[0], node
    cdef VanillaLSTMGates g
    cdef int inputs[2]
    cdef int done
    inputs[0], inputs[1] = 0, 1
    if type(first) is not VanillaLSTMGates:
        return generic_columns(group, backward, inputs, len(first.args), True)
    g = <VanillaLSTMGates>first
    if g.noise_std != 0:
        return 0                                # each node draws its own noise
    for node in group:                          # inputs that are the nodes' own columns
        if (<Expression>node.args[0]).d.bd != node.d.bd:
            return 0
        if g.has_h and (<Expression>node.args[1]).d.bd != node.d.bd:
            return 0
    done = generic_columns(group, backward, inputs, 1 + g.has_h, True)
    if not backward:
        g.aux = None      # the state kept was the group's, not the node's own (see generic_backward)
    return done
