"""Elementwise nodes: unary maps (tanh, exp, ... and scalar arithmetic) and binary maps with
DyNet's broadcasting (each dimension, the batch included, must match or be 1).

A new elementwise function is one row: an op code in elementwise.pxd, its formula in `unary_value`,
its derivative in `unary_derivative`, and a name in UNARY_NAMES.
"""
cimport cython
from libc.math cimport (expf, logf, sqrtf, fabsf, sinf, cosf, tanf, asinf, acosf, atanf,
                        sinhf, coshf, asinhf, acoshf, atanhf, lgammaf, roundf,
                        ceilf, floorf, powf, fminf, fmaxf, NAN)
from libc.math cimport log as c_log
from dynet.core.dim cimport Dim, total_size, dim_str, batch_size, truncated, MAX_DIMS
from dynet.core.graph cimport Expression, add_node, as_expr, activate_device, fwd_scratch
from dynet.core.device cimport Device
from dynet.kernels.cpu cimport (fast_exp, fast_erf, fast_log1p, fast_tanh, fast_sigmoid, NOGIL_MIN_WORK,
                                fast_sin_shifted, sin_fast_range)
from dynet.kernels import generic
from dynet.core.batching cimport Layout, group_layout, node_by_node
from dynet.core.lowering cimport Lowering, Step, Part

cdef float SELU_LAMBDA = 1.0507009873554805
cdef float SELU_ALPHA = 1.6732632423543772

UNARY_NAMES = {
    U_TANH: "tanh", U_LOGISTIC: "logistic", U_RECTIFY: "rectify", U_EXP: "exp", U_LOG: "log",
    U_SQUARE: "square", U_SQRT: "sqrt", U_CUBE: "cube", U_ABS: "abs", U_SIN: "sin", U_COS: "cos",
    U_TAN: "tan", U_ASIN: "asin", U_ACOS: "acos", U_ATAN: "atan", U_SINH: "sinh", U_COSH: "cosh",
    U_ASINH: "asinh", U_ACOSH: "acosh", U_ATANH: "atanh", U_ERF: "erf", U_LGAMMA: "lgamma",
    U_LOG_SIGMOID: "log_sigmoid", U_ELU: "elu", U_SELU: "selu", U_SILU: "silu",
    U_SOFTSIGN: "softsign", U_ROUND: "round", U_CEIL: "ceil", U_FLOOR: "floor",
    U_AFFINE: "affine", U_RDIV: "scalar_div", U_POWC: "pow", U_IDENTITY: "identity",
}
BINARY_NAMES = {B_ADD: "+", B_SUB: "-", B_MUL: "cmult", B_DIV: "cdiv", B_MIN: "bmin",
                B_MAX: "bmax", B_POW: "pow"}


cdef inline float digamma(float xf) noexcept nogil:
    """psi(x): shift x above 6 with the recurrence, then the asymptotic series."""
    cdef double x = xf, r = 0, f
    if x <= 0 and x == <double>(<long>x):
        return NAN
    while x < 6:
        r -= 1 / x
        x += 1
    f = 1 / (x * x)
    return <float>(r + c_log(x) - 0.5 / x
                   - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132)))))


cdef float TWO_OVER_SQRT_PI = 1.1283791670955126


cdef inline float unary_value(int op, float x, float a, float b) noexcept nogil:
    if op == U_TANH: return fast_tanh(x)
    if op == U_LOGISTIC: return fast_sigmoid(x)
    if op == U_RECTIFY: return x if x > 0 else 0.0
    if op == U_EXP: return fast_exp(x)
    if op == U_LOG: return logf(x)
    if op == U_SQUARE: return x * x
    if op == U_SQRT: return sqrtf(x)
    if op == U_CUBE: return x * x * x
    if op == U_ABS: return fabsf(x)
    if op == U_SIN: return sinf(x)
    if op == U_COS: return cosf(x)
    if op == U_TAN: return tanf(x)
    if op == U_ASIN: return asinf(x)
    if op == U_ACOS: return acosf(x)
    if op == U_ATAN: return atanf(x)
    if op == U_SINH: return sinhf(x)
    if op == U_COSH: return coshf(x)
    if op == U_ASINH: return asinhf(x)
    if op == U_ACOSH: return acoshf(x)
    if op == U_ATANH: return atanhf(x)
    if op == U_ERF: return fast_erf(x)
    if op == U_LGAMMA: return lgammaf(x)
    if op == U_LOG_SIGMOID: return fminf(x, 0.0) - fast_log1p(fast_exp(-fabsf(x)))
    if op == U_ELU: return x if x > 0 else a * (expf(x) - 1)
    if op == U_SELU: return SELU_LAMBDA * (x if x > 0 else SELU_ALPHA * (expf(x) - 1))
    if op == U_SILU: return x / (1.0 + expf(-a * x))
    if op == U_SOFTSIGN: return x / (1 + fabsf(x))
    if op == U_ROUND: return roundf(x)
    if op == U_CEIL: return ceilf(x)
    if op == U_FLOOR: return floorf(x)
    if op == U_AFFINE: return a * x + b
    if op == U_RDIV: return a / x
    if op == U_POWC: return powf(x, a)
    return x   # U_IDENTITY


cdef inline float unary_derivative(int op, float x, float y, float a, float b) noexcept nogil:
    """dy/dx given the input x and the output y."""
    cdef float s
    if op == U_TANH: return 1 - y * y
    if op == U_LOGISTIC: return y * (1 - y)
    if op == U_RECTIFY: return 1.0 if x > 0 else 0.0
    if op == U_EXP: return y
    if op == U_LOG: return 1 / x
    if op == U_SQUARE: return 2 * x
    if op == U_SQRT: return 0.5 / y
    if op == U_CUBE: return 3 * x * x
    if op == U_ABS: return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)
    if op == U_SIN: return cosf(x)
    if op == U_COS: return -sinf(x)
    if op == U_TAN: return 1 + y * y
    if op == U_ASIN: return 1 / sqrtf(1 - x * x)
    if op == U_ACOS: return -1 / sqrtf(1 - x * x)
    if op == U_ATAN: return 1 / (1 + x * x)
    if op == U_SINH: return coshf(x)
    if op == U_COSH: return sinhf(x)
    if op == U_ASINH: return 1 / sqrtf(x * x + 1)
    if op == U_ACOSH: return 1 / sqrtf(x * x - 1)
    if op == U_ATANH: return 1 / (1 - x * x)
    if op == U_ERF: return TWO_OVER_SQRT_PI * fast_exp(-x * x)
    if op == U_LGAMMA: return digamma(x)
    if op == U_LOG_SIGMOID: return 1 - fast_exp(y)
    if op == U_ELU: return 1.0 if x > 0 else y + a
    if op == U_SELU: return SELU_LAMBDA if x > 0 else y + SELU_LAMBDA * SELU_ALPHA
    if op == U_SILU:
        s = 1.0 / (1.0 + expf(-a * x))
        return s + a * x * s * (1 - s)
    if op == U_SOFTSIGN: return 1 / ((1 + fabsf(x)) * (1 + fabsf(x)))
    if op == U_ROUND or op == U_CEIL or op == U_FLOOR: return a   # a: 0 (zero gradient) or 1 (straight-through)
    if op == U_AFFINE: return a
    if op == U_RDIV: return -y / x
    if op == U_POWC: return a * powf(x, a - 1)
    return 1.0   # U_IDENTITY


cdef void unary_forward(int op, Py_ssize_t n, const float* xv, float* y, float a, float b) noexcept nogil:
    cdef Py_ssize_t i
    cdef int shift
    # the hottest maps get their own loops so that they vectorise
    if op == U_TANH:
        for i in range(n):
            y[i] = fast_tanh(xv[i])
    elif op == U_LOGISTIC:
        for i in range(n):
            y[i] = fast_sigmoid(xv[i])
    elif op == U_RECTIFY:
        for i in range(n):
            y[i] = xv[i] if xv[i] > 0 else 0.0
    elif op == U_AFFINE:
        for i in range(n):
            y[i] = a * xv[i] + b
    elif op == U_LOG_SIGMOID:     # min(x, 0) - ln(1 + e^-|x|): no overflow, and it vectorises
        for i in range(n):
            y[i] = fminf(xv[i], 0.0) - fast_log1p(fast_exp(-fabsf(xv[i])))
    elif op == U_ERF:
        for i in range(n):
            y[i] = fast_erf(xv[i])
    elif op == U_EXP:
        for i in range(n):
            y[i] = fast_exp(xv[i])
    elif (op == U_SIN or op == U_COS) and sin_fast_range(n, xv):     # cos x = sin(x + pi/2)
        shift = 1 if op == U_COS else 0
        for i in range(n):
            y[i] = fast_sin_shifted(xv[i], shift)
    else:
        for i in range(n):
            y[i] = unary_value(op, xv[i], a, b)


cdef void unary_backward(int op, Py_ssize_t n, const float* xv, const float* y, const float* dy,
                         float* dx, float a, float b) noexcept nogil:
    cdef Py_ssize_t i
    cdef int shift
    if op == U_TANH:
        for i in range(n):
            dx[i] += dy[i] * (1 - y[i] * y[i])
    elif op == U_LOGISTIC:
        for i in range(n):
            dx[i] += dy[i] * y[i] * (1 - y[i])
    elif op == U_RECTIFY:
        for i in range(n):
            dx[i] += dy[i] * (1.0 if xv[i] > 0 else 0.0)
    elif op == U_AFFINE:
        for i in range(n):
            dx[i] += a * dy[i]
    elif op == U_LOG_SIGMOID:
        for i in range(n):
            dx[i] += dy[i] * (1 - fast_exp(y[i]))
    elif op == U_ERF:
        for i in range(n):
            dx[i] += dy[i] * TWO_OVER_SQRT_PI * fast_exp(-xv[i] * xv[i])
    elif op == U_EXP:
        for i in range(n):
            dx[i] += dy[i] * y[i]
    elif (op == U_SIN or op == U_COS) and sin_fast_range(n, xv):     # sin' = cos, cos' = -sin
        shift = 1 if op == U_SIN else 2
        for i in range(n):
            dx[i] += dy[i] * fast_sin_shifted(xv[i], shift)
    else:
        for i in range(n):
            dx[i] += dy[i] * unary_derivative(op, xv[i], y[i], a, b)



cdef void unary_step(const Step* s, const Part* parts) noexcept nogil:
    unary_forward(s.op, s.n0, s.x0, s.y, s.a, s.b)


@cython.final
@cython.no_gc
cdef class Unary(Expression):
    cpdef str op_name(self):
        return UNARY_NAMES[self.op]

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t n = total_size(&self.d)
        cdef const float* xv = x.val
        cdef float* y = self.val
        cdef int op = self.op
        cdef float a = self.alpha, b = self.beta
        if n >= NOGIL_MIN_WORK:
            with nogil:                  # other threads run meanwhile
                unary_forward(op, n, xv, y, a, b)
        else:
            unary_forward(op, n, xv, y, a, b)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Py_ssize_t n = total_size(&self.d)
        cdef Step* s = L.add(unary_step, n)
        s.y = self.val
        s.x0 = (<Expression>self.args[0]).val
        s.n0 = n
        s.op = self.op
        s.a = self.alpha
        s.b = self.beta
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t n = total_size(&self.d)
        cdef const float* xv = x.val
        cdef const float* y = self.val
        cdef const float* dy = self.grad
        cdef float* dx = x.grad
        cdef int op = self.op
        cdef float a = self.alpha, b = self.beta
        if n >= NOGIL_MIN_WORK:
            with nogil:
                unary_backward(op, n, xv, y, dy, dx, a, b)
        else:
            unary_backward(op, n, xv, y, dy, dx, a, b)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.unary_forward(xp, UNARY_NAMES[self.op], xs[0], out, self.alpha, self.beta)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.unary_backward(xp, UNARY_NAMES[self.op], xs[0], out, dout, dxi, self.alpha, self.beta)

    cdef str describe(self):
        cdef Expression x = <Expression>self.args[0]
        if self.op == U_AFFINE:
            return f"{self.alpha:g} * v{x.index} + {self.beta:g}"
        return Expression.describe(self)


cdef Expression unary(object x, int op, float alpha=0, float beta=0):
    cdef Expression ex = <Expression>x if isinstance(x, Expression) else as_expr(x, UNARY_NAMES[op])
    cdef Unary node = Unary.__new__(Unary)
    node.op = op
    node.alpha = alpha
    node.beta = beta
    return add_node(node, (ex,), ex.d)


# ---- binary maps with broadcasting ---------------------------------------------------------

cdef inline float binary_value(int op, float a, float b) noexcept nogil:
    if op == B_ADD: return a + b
    if op == B_SUB: return a - b
    if op == B_MUL: return a * b
    if op == B_DIV: return a / b
    if op == B_MIN: return fminf(a, b)
    if op == B_MAX: return fmaxf(a, b)
    return powf(a, b)


cdef inline float binary_da(int op, float a, float b, float y) noexcept nogil:
    if op == B_ADD or op == B_SUB: return 1
    if op == B_MUL: return b
    if op == B_DIV: return 1 / b
    if op == B_MIN: return 1.0 if a <= b else 0.0
    if op == B_MAX: return 1.0 if a >= b else 0.0
    return b * powf(a, b - 1)


cdef inline float binary_db(int op, float a, float b, float y) noexcept nogil:
    if op == B_ADD: return 1
    if op == B_SUB: return -1
    if op == B_MUL: return a
    if op == B_DIV: return -y / b
    if op == B_MIN: return 0.0 if a <= b else 1.0
    if op == B_MAX: return 0.0 if a >= b else 1.0
    return y * logf(a)


cdef inline void block_forward(int op, Py_ssize_t n, const float* a, const float* b, float* y) noexcept nogil:
    """y = a (op) b over n values laid out alike (the common cases get loops that vectorise)."""
    cdef Py_ssize_t i
    if op == B_ADD:
        for i in range(n):
            y[i] = a[i] + b[i]
    elif op == B_SUB:
        for i in range(n):
            y[i] = a[i] - b[i]
    elif op == B_MUL:
        for i in range(n):
            y[i] = a[i] * b[i]
    else:
        for i in range(n):
            y[i] = binary_value(op, a[i], b[i])


cdef inline void block_backward(int op, Py_ssize_t n, const float* a, const float* b, const float* y,
                                const float* dy, float* da, float* db) noexcept nogil:
    """da += dy * d(a op b)/da and db += dy * d(a op b)/db (either may be NULL)."""
    cdef Py_ssize_t i
    if da != NULL:
        if op == B_ADD or op == B_SUB:
            for i in range(n):
                da[i] += dy[i]
        elif op == B_MUL:
            for i in range(n):
                da[i] += dy[i] * b[i]
        else:
            for i in range(n):
                da[i] += dy[i] * binary_da(op, a[i], b[i], y[i])
    if db != NULL:
        if op == B_ADD:
            for i in range(n):
                db[i] += dy[i]
        elif op == B_SUB:
            for i in range(n):
                db[i] -= dy[i]
        elif op == B_MUL:
            for i in range(n):
                db[i] += dy[i] * a[i]
        else:
            for i in range(n):
                db[i] += dy[i] * binary_db(op, a[i], b[i], y[i])


cdef void batch_broadcast_forward(int op, Py_ssize_t per, Py_ssize_t bd, const float* a, Py_ssize_t sa,
                                  const float* b, Py_ssize_t sb, float* y) noexcept nogil:
    """Binary's mode 1: y = a (op) b per batch element, an argument's batch stride 0 if it has one."""
    cdef Py_ssize_t k
    for k in range(bd):
        block_forward(op, per, a + sa * k, b + sb * k, y + per * k)


cdef void binary_step(const Step* s, const Part* parts) noexcept nogil:
    batch_broadcast_forward(s.op, s.n0, s.n1, s.x0, s.n2, s.x1, s.n3, s.y)


@cython.final
@cython.no_gc
cdef class Binary(Expression):
    cpdef str op_name(self):
        return BINARY_NAMES[self.op]

    cdef int forward_impl(self) except -1:
        cdef Expression ea = <Expression>self.args[0]
        cdef Expression eb = <Expression>self.args[1]
        if self.mode == 0:
            block_forward(self.op, total_size(&self.d), ea.val, eb.val, self.val)
        elif self.mode == 1:
            batch_broadcast_forward(self.op, batch_size(&self.d), self.d.bd, ea.val, self.sa,
                                    eb.val, self.sb, self.val)
        else:
            self._general(0)
        return 0

    cdef int lower(self, Lowering L) except -1:
        if self.mode == 2:
            return 0                    # (the general broadcast reads the node's strides)
        cdef Py_ssize_t n = total_size(&self.d)
        cdef Step* s = L.add(binary_step, n)
        s.y = self.val
        s.x0 = (<Expression>self.args[0]).val
        s.x1 = (<Expression>self.args[1]).val
        s.op = self.op
        if self.mode == 0:             # one block: the same loop as mode 1 with a batch of one
            s.n0, s.n1, s.n2, s.n3 = n, 1, 0, 0
        else:
            s.n0, s.n1, s.n2, s.n3 = batch_size(&self.d), self.d.bd, self.sa, self.sb
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression ea = <Expression>self.args[0]
        cdef Expression eb = <Expression>self.args[1]
        cdef Py_ssize_t k, per
        if self.mode == 0:
            block_backward(self.op, total_size(&self.d), ea.val, eb.val, self.val, self.grad,
                           ea.grad, eb.grad)
        elif self.mode == 1:
            per = batch_size(&self.d)
            for k in range(self.d.bd):
                block_backward(self.op, per, ea.val + self.sa * k, eb.val + self.sb * k,
                               self.val + per * k, self.grad + per * k,
                               ea.grad + self.sa * k if ea.grad != NULL else NULL,
                               eb.grad + self.sb * k if eb.grad != NULL else NULL)
        else:
            self._general(1)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.binary_forward(xp, BINARY_NAMES[self.op], xs[0], xs[1], out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.binary_backward(xp, BINARY_NAMES[self.op], xs, out, dout, i, dxi)

    cdef void _general(self, bint backward) noexcept:
        """Odometer over the 8 (7 + batch) output axes with per-axis argument strides (0 = broadcast)."""
        cdef Expression ea = <Expression>self.args[0]
        cdef Expression eb = <Expression>self.args[1]
        cdef const float* a = ea.val
        cdef const float* b = eb.val
        cdef float* y = self.val
        cdef float* da = ea.grad
        cdef float* db = eb.grad
        cdef const float* dy = self.grad
        cdef int op = self.op
        cdef const Broadcast* g = self.general
        cdef int idx[8]
        cdef int ax
        cdef Py_ssize_t oa = 0, ob = 0, o = 0, i, n0 = g.sizes[0]
        cdef Py_ssize_t sa0 = g.sa[0], sb0 = g.sb[0]
        cdef Py_ssize_t total = total_size(&self.d)
        for ax in range(8):
            idx[ax] = 0
        while o < total:
            if backward:
                for i in range(n0):
                    if da != NULL:
                        da[oa + i * sa0] += dy[o + i] * binary_da(op, a[oa + i * sa0], b[ob + i * sb0], y[o + i])
                    if db != NULL:
                        db[ob + i * sb0] += dy[o + i] * binary_db(op, a[oa + i * sa0], b[ob + i * sb0], y[o + i])
            else:
                for i in range(n0):
                    y[o + i] = binary_value(op, a[oa + i * sa0], b[ob + i * sb0])
            o += n0
            ax = 1
            while ax < 8:
                idx[ax] += 1
                oa += g.sa[ax]
                ob += g.sb[ax]
                if idx[ax] < g.sizes[ax]:
                    break
                oa -= g.sa[ax] * g.sizes[ax]
                ob -= g.sb[ax] * g.sizes[ax]
                idx[ax] = 0
                ax += 1


cdef inline Py_ssize_t _axis(const Dim* d, int ax) noexcept:
    if ax == 7:
        return d.bd
    return d.d[ax] if ax < d.nd else 1


cdef Expression binary(object a, object b, int op):
    cdef Expression ea = <Expression>a if isinstance(a, Expression) else as_expr(a, BINARY_NAMES[op])
    cdef Expression eb = <Expression>b if isinstance(b, Expression) else as_expr(b, BINARY_NAMES[op])
    cdef Binary node = Binary.__new__(Binary)
    node.op = op
    cdef Broadcast plan
    cdef Dim out
    cdef int ax
    cdef Py_ssize_t na, nb, stride_a = 1, stride_b = 1
    cdef bint same = True
    out.nd = ea.d.nd if ea.d.nd > eb.d.nd else eb.d.nd
    for ax in range(8):
        na = _axis(&ea.d, ax)
        nb = _axis(&eb.d, ax)
        if na != nb and na != 1 and nb != 1:
            raise ValueError(f"{BINARY_NAMES[op]}: for each dimension (and the batch) the sizes must match or be 1, "
                             f"got {dim_str(&ea.d)} and {dim_str(&eb.d)}")
        plan.sizes[ax] = na if na > nb else nb
        plan.sa[ax] = stride_a if na == plan.sizes[ax] else 0
        plan.sb[ax] = stride_b if nb == plan.sizes[ax] else 0
        stride_a *= na
        stride_b *= nb
        if ax < 7:
            if ax < MAX_DIMS:
                out.d[ax] = plan.sizes[ax]
            if ax < 7 and na != nb:
                same = False
    out.bd = plan.sizes[7]
    for ax in range(out.nd, MAX_DIMS):
        out.d[ax] = 1
    if same and ea.d.bd == eb.d.bd:
        node.mode = 0
    elif same:
        node.mode = 1
        # batch strides: one batch element's size, or 0 for a broadcast batch-1 argument
        node.sa = batch_size(&ea.d) if ea.d.bd > 1 else 0
        node.sb = batch_size(&eb.d) if eb.d.bd > 1 else 0
    else:
        node.mode = 2
        node.general = <Broadcast*>fwd_scratch((sizeof(Broadcast) + sizeof(float) - 1) // sizeof(float))
        node.general[0] = plan
    if op == B_POW:
        out = truncated(out)  # as DyNet's Pow: {1,1} ** {1,1} gives {1}
    return add_node(node, (ea, eb), out)


# ---- the public functions ------------------------------------------------------------------

def tanh(x):
    """Elementwise hyperbolic tangent."""
    return unary(x, U_TANH)

def logistic(x):
    """Elementwise sigmoid 1 / (1 + exp(-x))."""
    return unary(x, U_LOGISTIC)

def rectify(x):
    """Elementwise ReLU max(x, 0)."""
    return unary(x, U_RECTIFY)

def exp(x):
    """Natural exponent

    Elementwise y_i = e^{x_i}.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: e^x, with the dimensions of x
    """
    return unary(x, U_EXP)

def log(x):
    """Natural logarithm

    Elementwise y_i = ln(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: ln(x), with the dimensions of x
    """
    return unary(x, U_LOG)

def square(x):
    """Square

    Elementwise y_i = x_i^2.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: x^2, with the dimensions of x
    """
    return unary(x, U_SQUARE)

def sqrt(x):
    """Square root

    Elementwise y_i = sqrt(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: sqrt(x), with the dimensions of x
    """
    return unary(x, U_SQRT)

def cube(x):
    """Cube

    Elementwise y_i = x_i^3.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: x^3, with the dimensions of x
    """
    return unary(x, U_CUBE)

def abs(x):
    """Absolute value

    Elementwise y_i = |x_i|.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: |x|, with the dimensions of x
    """
    return unary(x, U_ABS)

def sin(x):
    """Sine

    Elementwise y_i = sin(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: sin(x), with the dimensions of x
    """
    return unary(x, U_SIN)

def cos(x):
    """Cosine

    Elementwise y_i = cos(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: cos(x), with the dimensions of x
    """
    return unary(x, U_COS)

def tan(x):
    """Tangent

    Elementwise y_i = tan(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: tan(x), with the dimensions of x
    """
    return unary(x, U_TAN)

def asin(x):
    """Inverse sine

    Elementwise y_i = asin(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: asin(x), with the dimensions of x
    """
    return unary(x, U_ASIN)

def acos(x):
    """Inverse cosine

    Elementwise y_i = acos(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: acos(x), with the dimensions of x
    """
    return unary(x, U_ACOS)

def atan(x):
    """Inverse tangent

    Elementwise y_i = atan(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: atan(x), with the dimensions of x
    """
    return unary(x, U_ATAN)

def sinh(x):
    """Hyperbolic sine

    Elementwise y_i = sinh(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: sinh(x), with the dimensions of x
    """
    return unary(x, U_SINH)

def cosh(x):
    """Hyperbolic cosine

    Elementwise y_i = cosh(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: cosh(x), with the dimensions of x
    """
    return unary(x, U_COSH)

def asinh(x):
    """Inverse hyperbolic sine

    Elementwise y_i = asinh(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: asinh(x), with the dimensions of x
    """
    return unary(x, U_ASINH)

def acosh(x):
    """Inverse hyperbolic cosine

    Elementwise y_i = acosh(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: acosh(x), with the dimensions of x
    """
    return unary(x, U_ACOSH)

def atanh(x):
    """Inverse hyperbolic tangent

    Elementwise y_i = atanh(x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: atanh(x), with the dimensions of x
    """
    return unary(x, U_ATANH)

def erf(x):
    """Gaussian error function

    Elementwise y_i = erf(x_i) = 2/sqrt(pi) * integral from 0 to x_i of e^{-t^2} dt.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: erf(x), with the dimensions of x
    """
    return unary(x, U_ERF)

def lgamma(x):
    """Log-gamma function

    Elementwise y_i = ln(|Gamma(x_i)|).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: lgamma(x), with the dimensions of x
    """
    return unary(x, U_LGAMMA)

def log_sigmoid(x):
    """Log sigmoid

    Elementwise y_i = ln(1 / (1 + e^{-x_i})), computed without overflow.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: log(logistic(x)), with the dimensions of x
    """
    return unary(x, U_LOG_SIGMOID)

def elu(x, alpha=1.0):
    """Exponential linear unit

    Elementwise y_i = x_i if x_i > 0 else alpha * (e^{x_i} - 1).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)
        alpha (float): the value approached for very negative x (default 1.0)

    Returns:
        dynet.Expression: elu(x), with the dimensions of x
    """
    return unary(x, U_ELU, alpha)

def selu(x):
    """Scaled exponential linear unit (Klambauer et al., 2017)

    Elementwise y_i = lambda * x_i if x_i > 0 else lambda * alpha * (e^{x_i} - 1), with the paper's
    constants lambda = 1.0507..., alpha = 1.6732....

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: selu(x), with the dimensions of x
    """
    return unary(x, U_SELU)

def silu(x, beta=1.0):
    """Sigmoid linear unit (swish)

    Elementwise y_i = x_i * logistic(beta * x_i).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)
        beta (float): the slope inside the sigmoid (default 1.0)

    Returns:
        dynet.Expression: silu(x), with the dimensions of x
    """
    return unary(x, U_SILU, beta)

def softsign(x):
    """Softsign

    Elementwise y_i = x_i / (1 + |x_i|).

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)

    Returns:
        dynet.Expression: softsign(x), with the dimensions of x
    """
    return unary(x, U_SOFTSIGN)


cdef float _gradient_mode(str op, object mode) except? -1:
    if mode in ("zero_gradient", 0, None):
        return 0.0
    if mode in ("straight_through_gradient", 1):
        return 1.0
    raise ValueError(f"{op}: gradient_mode must be 'zero_gradient' or 'straight_through_gradient', got {mode!r}")

def round(x, gradient_mode="zero_gradient"):
    """Round

    Elementwise rounding to the nearest integer.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)
        gradient_mode (str): "zero_gradient" (default: no gradient flows back) or
            "straight_through_gradient" (the gradient passes through unchanged)

    Returns:
        dynet.Expression: round(x), with the dimensions of x

    Raises:
        ValueError: if gradient_mode is not one of the two modes
    """
    return unary(x, U_ROUND, _gradient_mode("round", gradient_mode))

def ceil(x, gradient_mode="zero_gradient"):
    """Ceiling

    Elementwise rounding up to an integer.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)
        gradient_mode (str): "zero_gradient" (default: no gradient flows back) or
            "straight_through_gradient" (the gradient passes through unchanged)

    Returns:
        dynet.Expression: ceil(x), with the dimensions of x

    Raises:
        ValueError: if gradient_mode is not one of the two modes
    """
    return unary(x, U_CEIL, _gradient_mode("ceil", gradient_mode))

def floor(x, gradient_mode="zero_gradient"):
    """Floor

    Elementwise rounding down to an integer.

    Args:
        x (dynet.Expression): input expression (any dimensions, batched or not)
        gradient_mode (str): "zero_gradient" (default: no gradient flows back) or
            "straight_through_gradient" (the gradient passes through unchanged)

    Returns:
        dynet.Expression: floor(x), with the dimensions of x

    Raises:
        ValueError: if gradient_mode is not one of the two modes
    """
    return unary(x, U_FLOOR, _gradient_mode("floor", gradient_mode))

def cmult(x, y):
    """Componentwise product (with broadcasting of size-1 dimensions and batches)."""
    return binary(x, y, B_MUL)

def cdiv(x, y):
    """Componentwise quotient (with broadcasting of size-1 dimensions and batches)."""
    return binary(x, y, B_DIV)

def bmin(x, y):
    """Minimum of two expressions

    Componentwise y_i = min(x_i, y_i), broadcasting dimensions of size 1 and a batch of 1 as cmult does.

    Args:
        x (dynet.Expression): first input
        y (dynet.Expression): second input

    Returns:
        dynet.Expression: the componentwise minimum

    Raises:
        ValueError: if the dimensions do not match
    """
    return binary(x, y, B_MIN)

def bmax(x, y):
    """Maximum of two expressions

    Componentwise y_i = max(x_i, y_i), broadcasting dimensions of size 1 and a batch of 1 as cmult does.

    Args:
        x (dynet.Expression): first input
        y (dynet.Expression): second input

    Returns:
        dynet.Expression: the componentwise maximum

    Raises:
        ValueError: if the dimensions do not match
    """
    return binary(x, y, B_MAX)

def pow(x, y):
    """x ** y elementwise; y may be an expression or a number."""
    if isinstance(y, (int, float)):
        return unary(x, U_POWC, y)
    return binary(x, y, B_POW)

def scalar_affine(x, float alpha, float beta):
    """alpha * x + beta (what `2 * x`, `x + 1`, `1 - x` and `-x` build)."""
    return unary(x, U_AFFINE, alpha, beta)

def scalar_div(float alpha, x):
    """alpha / x elementwise."""
    return unary(x, U_RDIV, alpha)


def colwise_add(x, y):
    """Add the column vector y to each column of the matrix x."""
    cdef Expression ex = as_expr(x, "colwise_add")
    cdef Expression ey = as_expr(y, "colwise_add")
    if ex.d.nd > 2 or not (ey.d.nd == 1 or (ey.d.nd == 2 and ey.d.d[1] == 1)) or ey.d.d[0] != ex.d.d[0]:
        raise ValueError(f"colwise_add: needs a matrix and a column vector with as many rows, got "
                         f"{dim_str(&ex.d)} and {dim_str(&ey.d)}")
    return binary(ex, ey, B_ADD)


# ---- autobatching: a group of one map over contiguous memory as one loop -------------------------

cdef Py_ssize_t batch_key(Expression node) noexcept:
    """The group key of an elementwise node for autobatching (dynet/core/execution.pyx), 0 for one
    that runs alone: unary maps group by op, constants and size; binary maps of one layout (no
    broadcasting) by op and size."""
    cdef Unary u
    cdef Binary b
    if type(node) is Unary:
        u = <Unary>node
        return (total_size(&node.d) * 64 + u.op) * 2 + 1
    if type(node) is Binary:
        b = <Binary>node
        if b.mode != 0:
            return 0
        return (total_size(&node.d) * 64 + b.op) * 2 + 2
    return 0


cdef bint same_batch(Expression x, Expression y) noexcept:
    """Nodes with equal batch_key run as one group (the key has no room for a map's constants)."""
    if type(x) is not type(y) or total_size(&x.d) != total_size(&y.d):
        return False
    if type(x) is Unary:
        return ((<Unary>x).op == (<Unary>y).op and (<Unary>x).alpha == (<Unary>y).alpha
                and (<Unary>x).beta == (<Unary>y).beta)
    return (<Binary>x).op == (<Binary>y).op


cdef int MAP_ARGS[2]
MAP_ARGS[0] = 0
MAP_ARGS[1] = 1


cdef int forward_batch(list group) except -1:
    """A group of one map (same_batch): one loop over the whole block where the values and the
    arguments' values lie side by side (autobatching places a group's values so), else node by
    node. One walk over the group finds out (group_layout)."""
    cdef Expression first = <Expression>group[0]
    cdef Py_ssize_t total = total_size(&first.d) * len(group)
    cdef bint unary = type(first) is Unary
    cdef Unary u
    cdef Layout L
    group_layout(group, 1 if unary else 2, MAP_ARGS, False, &L)
    if L.val[0] != NULL and L.val[1] != NULL:
        if unary:
            u = <Unary>first
            unary_forward(u.op, total, L.val[1], L.val[0], u.alpha, u.beta)
            return 0
        if L.val[2] != NULL:
            block_forward((<Binary>first).op, total, L.val[1], L.val[2], L.val[0])
            return 0
    return node_by_node(group, False)


cdef int backward_batch(list group) except -1:
    """The backward of a group of one map: one loop where the gradients (and the values the
    derivative reads) lie side by side, an argument without any gradient skipped, else node by
    node."""
    cdef Expression first = <Expression>group[0]
    cdef Py_ssize_t total = total_size(&first.d) * len(group)
    cdef bint unary = type(first) is Unary
    cdef Unary u
    cdef Layout L
    cdef int s
    cdef bint together
    group_layout(group, 1 if unary else 2, MAP_ARGS, True, &L)
    together = L.val[0] != NULL and L.grad[0] != NULL
    for s in range(1, 2 if unary else 3):      # each argument: values side by side, gradients too
        together = together and L.val[s] != NULL and (L.grad[s] != NULL or not L.some_grad[s])
    if together:
        if unary:
            u = <Unary>first
            if L.grad[1] != NULL:
                unary_backward(u.op, total, L.val[1], L.val[0], L.grad[0], L.grad[1], u.alpha, u.beta)
        else:
            block_backward((<Binary>first).op, total, L.val[1], L.val[2], L.val[0], L.grad[0],
                           L.grad[1], L.grad[2])
        return 0
    return node_by_node(group, True)


cdef int generic_batch(list group, bint backward) except -1:
    """A group of one map on a device without the typed loops (a GPU): where the values, the
    arguments' values and (backward) every gradient involved lie side by side, the first node's
    generic implementation runs once on views of the whole blocks (an elementwise map does not
    care where one node ends); returns 1. Returns 0 where they do not: the caller then runs the
    nodes one by one."""
    cdef Expression first = <Expression>group[0]
    cdef int nargs = len(first.args), s
    cdef Py_ssize_t total = total_size(&first.d) * len(group)
    cdef Device dev = first.dev
    cdef Layout L
    group_layout(group, nargs, MAP_ARGS, backward, &L)
    for s in range(nargs + 1):
        if L.val[s] == NULL:
            return 0
    xs = [dev.flat_view(L.val[s + 1], total) for s in range(nargs)]
    out = dev.flat_view(L.val[0], total)
    activate_device(dev)
    if not backward:
        first.generic_forward(dev.xp, xs, out)
        return 1
    if L.grad[0] == NULL:
        return 0
    for s in range(nargs):
        if L.grad[s + 1] == NULL and L.some_grad[s + 1]:
            return 0                      # some members' arguments want a gradient, not side by side
    dout = dev.flat_view(L.grad[0], total)
    for s in range(nargs):
        if L.grad[s + 1] != NULL:
            first.generic_backward(dev.xp, xs, out, dout, s, dev.flat_view(L.grad[s + 1], total))
    return 1
