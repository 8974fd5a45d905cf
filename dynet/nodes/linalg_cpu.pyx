"""Linear algebra as typed CPU nodes: inverse and logdet (LAPACK sgetrf/sgetri from typed code),
circ_conv/circ_corr (sliding windows accumulated in registers), and the 3-d tensor contractions (BLAS or the small
product loops, through kernels.cpu.gemm).

Each node's generic (array) implementation is the class of the same name in linalg.py (made by
`make_op`, see pyop.GenericOpNode); the dimension checks here raise the same messages. Every
operation works per batch element; a batch-1 argument is broadcast and its gradient sums over the batch.
"""
cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.math cimport log, fabs
from scipy.linalg.cython_lapack cimport sgetrf, sgetri
from dynet.core.dim cimport Dim, make_dim1, make_dim2, batch_size, rows, dim_str, same_shape, truncated
from dynet.core.graph cimport Expression, add_node, as_expr, fwd_scratch
from dynet.kernels.cpu cimport gemm, dot, copy, add_to, fill
from dynet.nodes.pyop cimport GenericOpNode, batch_of

from dynet.nodes import linalg


cdef inline const float* elem(Expression a, Py_ssize_t b, Py_ssize_t per) noexcept:
    """Batch element b of a's value (element 0 for a broadcast batch-1 argument)."""
    return a.val + (b * per if a.d.bd > 1 else 0)


cdef inline float* elem_grad(Expression a, Py_ssize_t b, Py_ssize_t per) noexcept:
    return a.grad + (b * per if a.d.bd > 1 else 0)


# ---- inverse, logdet ------------------------------------------------------------------------------

cdef class Workspace:
    """Buffers for one LAPACK call, freed when it goes out of scope (also when the call raises)."""
    cdef int* ipiv
    cdef void* work
    cdef void* copy

    def __cinit__(self, int n, size_t item):
        self.ipiv = <int*>PyMem_Malloc(n * sizeof(int))
        self.work = PyMem_Malloc(<size_t>n * n * item)
        self.copy = PyMem_Malloc(<size_t>n * n * item)
        if self.ipiv == NULL or self.work == NULL or self.copy == NULL:
            raise MemoryError(f"no memory for the LAPACK workspace of a {n}x{n} matrix")

    def __dealloc__(self):
        PyMem_Free(self.ipiv)
        PyMem_Free(self.work)
        PyMem_Free(self.copy)


cdef int square_side(str name, Expression x) except -1:
    if x.d.nd != 2 or x.d.d[0] != x.d.d[1]:
        raise ValueError(f"{name}: expects a square matrix, got {dim_str(&x.d)}")
    return x.d.d[0]


@cython.final
@cython.no_gc
cdef class Inverse(GenericOpNode):
    cpdef str op_name(self):
        return "inverse"

    cdef object make_op(self):
        return linalg.Inverse()

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef int n = rows(&self.d), info = 0, lwork = n * n
        cdef Py_ssize_t nn = <Py_ssize_t>n * n, b
        cdef Workspace ws = Workspace(n, sizeof(float))
        cdef float* y
        for b in range(self.d.bd):
            y = self.val + b * nn
            copy(nn, x.val + b * nn, y)
            sgetrf(&n, &n, y, &n, ws.ipiv, &info)
            if info > 0:
                raise ValueError("inverse: the matrix is singular")
            sgetri(&n, y, &n, ws.ipiv, <float*>ws.work, &lwork, &info)
        return 0

    cdef int backward_impl(self) except -1:
        # d(X^-1) = -X^-1 dX X^-1, so dX -= Y^T dY Y^T
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef int n = rows(&self.d)
        cdef Py_ssize_t nn = <Py_ssize_t>n * n, b
        cdef Workspace ws = Workspace(n, sizeof(float))
        cdef float* t = <float*>ws.work
        for b in range(self.d.bd):
            gemm(True, False, n, n, n, 1.0, self.val + b * nn, n, self.grad + b * nn, n, 0.0, t, n)
            gemm(False, True, n, n, n, -1.0, t, n, self.val + b * nn, n, 1.0, x.grad + b * nn, n)
        return 0


def inverse(x):
    """The inverse of a square matrix."""
    cdef Expression ex = as_expr(x, "inverse")
    square_side("inverse", ex)
    return add_node(Inverse.__new__(Inverse), (ex,), ex.d)


@cython.final
@cython.no_gc
cdef class LogDet(GenericOpNode):
    """log |det X| (the gradient, X^-T, is the same for either sign of the determinant). Forward
    keeps the LU factors (getrf) in the forward pool; backward turns them into X^-1 (getri)."""
    cdef float* lu          # n*n per batch element
    cdef int* pivots        # n per batch element

    cpdef str op_name(self):
        return "logdet"

    cdef object make_op(self):
        return linalg.LogDet()

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef int n = rows(&x.d), info = 0
        cdef Py_ssize_t nn = <Py_ssize_t>n * n, b, i
        cdef float* m
        cdef double s
        for b in range(self.d.bd):
            m = self.lu + b * nn
            copy(nn, x.val + b * nn, m)
            sgetrf(&n, &n, m, &n, self.pivots + b * n, &info)
            if info > 0:
                raise ValueError("logdet: the matrix is singular")
            s = 0
            for i in range(n):
                s += log(fabs(<double>m[i * (n + 1)]))
            self.val[b] = s
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef int n = rows(&x.d), info = 0, lwork = n * n
        cdef Py_ssize_t nn = <Py_ssize_t>n * n, b, i, j
        cdef Workspace ws = Workspace(n, sizeof(float))
        cdef float* inv = <float*>ws.copy
        cdef float* d
        cdef float g
        for b in range(self.d.bd):
            copy(nn, self.lu + b * nn, inv)
            sgetri(&n, inv, &n, self.pivots + b * n, <float*>ws.work, &lwork, &info)
            d, g = x.grad + b * nn, self.grad[b]
            for j in range(n):
                for i in range(n):
                    d[i + j * n] += g * inv[j + i * n]
        return 0


def logdet(x):
    """The log of the (absolute value of the) determinant of a square matrix."""
    cdef Expression ex = as_expr(x, "logdet")
    cdef int n = square_side("logdet", ex)
    cdef LogDet node = LogDet.__new__(LogDet)
    node.lu = fwd_scratch(<size_t>n * n * ex.d.bd)
    node.pivots = <int*>fwd_scratch(<size_t>n * ex.d.bd)
    return add_node(node, (ex,), make_dim1(1, ex.d.bd))


# ---- circ_conv, circ_corr ----------------------------------------------------------------------

cdef enum:
    CORR_WIDE = 64      # outputs accumulated at a time in registers (4 AVX-512 / 8 AVX2 vectors)
    CORR_NARROW = 16


cdef inline void corr_block(Py_ssize_t n, const float* a, const float* bb, float* out,
                            int width) noexcept nogil:
    """out[l] += sum_i a_i bb[i + l] for l < width (a constant at each call, so the l loops
    become vector operations): width independent sums, one broadcast multiply-add per i."""
    cdef float acc[CORR_WIDE]
    cdef float ai
    cdef Py_ssize_t i
    cdef int l
    for l in range(width):
        acc[l] = 0
    for i in range(n):
        ai = a[i]
        for l in range(width):
            acc[l] += ai * bb[i + l]
    for l in range(width):
        out[l] += acc[l]


cdef inline void corr_add(Py_ssize_t n, const float* a, const float* b, float* out,
                          float* bb) noexcept nogil:
    """out[k] += sum_i a_i b[(i + k) mod n]. With bb = b twice over (2n floats of scratch), output k
    is sum_i a_i bb[i + k], a sliding window: blocks of outputs are accumulated in registers while
    a streams past once per block (a dot product per output, as before, left a scalar tail and a
    horizontal sum for each of the n outputs)."""
    cdef Py_ssize_t k = 0
    copy(n, b, bb)
    copy(n, b, bb + n)
    while k + CORR_WIDE <= n:
        corr_block(n, a, bb + k, out + k, CORR_WIDE)
        k += CORR_WIDE
    while k + CORR_NARROW <= n:
        corr_block(n, a, bb + k, out + k, CORR_NARROW)
        k += CORR_NARROW
    while k < n:
        out[k] += dot(n, a, bb + k)
        k += 1


cdef inline void conv_add(Py_ssize_t n, const float* a, const float* b, float* out,
                          float* scratch) noexcept nogil:
    """out[k] += sum_i a_i b[(k - i) mod n]: the correlation of b with a reversed (a_(-i mod n)).
    scratch: 3n floats."""
    cdef Py_ssize_t i
    scratch[0] = a[0]
    for i in range(1, n):
        scratch[i] = a[n - i]
    corr_add(n, scratch, b, out, scratch + n)


@cython.final
@cython.no_gc
cdef class CircConv(GenericOpNode):
    """[u * v]_k = sum_i u_i v_{(k - i) mod n} (circ_conv), or
    [u (star) v]_k = sum_i u_i v_{(i + k) mod n} (circ_corr)."""
    cdef bint correlate
    cdef float* scratch      # 3n floats: a reversed argument, an argument twice over

    cpdef str op_name(self):
        return "circ_corr" if self.correlate else "circ_conv"

    cdef object make_op(self):
        return linalg.CircConv(self.correlate)

    cdef int forward_impl(self) except -1:
        cdef Expression u = <Expression>self.args[0], v = <Expression>self.args[1]
        cdef Py_ssize_t n = rows(&self.d), b
        for b in range(self.d.bd):
            fill(n, 0.0, self.val + b * n)
            if self.correlate:
                corr_add(n, elem(u, b, n), elem(v, b, n), self.val + b * n, self.scratch)
            else:
                conv_add(n, elem(u, b, n), elem(v, b, n), self.val + b * n, self.scratch)
        return 0

    cdef int backward_impl(self) except -1:
        # conv: du = corr(v, g), dv = corr(u, g);  corr: du = corr(g, v), dv = conv(u, g)
        cdef Expression u = <Expression>self.args[0], v = <Expression>self.args[1]
        cdef Py_ssize_t n = rows(&self.d), b
        cdef const float* g
        for b in range(self.d.bd):
            g = self.grad + b * n
            if u.grad != NULL:
                if self.correlate:
                    corr_add(n, g, elem(v, b, n), elem_grad(u, b, n), self.scratch)
                else:
                    corr_add(n, elem(v, b, n), g, elem_grad(u, b, n), self.scratch)
            if v.grad != NULL:
                if self.correlate:
                    conv_add(n, elem(u, b, n), g, elem_grad(v, b, n), self.scratch)
                else:
                    corr_add(n, elem(u, b, n), g, elem_grad(v, b, n), self.scratch)
        return 0


cdef Expression make_circ(str name, object u, object v, bint correlate):
    cdef Expression eu = as_expr(u, name), ev = as_expr(v, name)
    if truncated(eu.d).nd != 1 or not same_shape(&eu.d, &ev.d):
        raise ValueError(f"{name}: expects two vectors of the same size, got {dim_str(&eu.d)} "
                         f"and {dim_str(&ev.d)}")
    cdef int bd = batch_of(name, (eu, ev))
    cdef CircConv node = CircConv.__new__(CircConv)
    node.correlate = correlate
    node.scratch = fwd_scratch(3 * <size_t>rows(&eu.d))
    return add_node(node, (eu, ev), make_dim1(rows(&eu.d), bd))


def circ_conv(u, v):
    """Circular convolution: [u * v]_k = sum_i u_i v_{(k - i) mod n}."""
    return make_circ("circ_conv", u, v, False)


def circ_corr(u, v):
    """Circular correlation: [u (star) v]_k = sum_i u_i v_{(i + k) mod n}."""
    return make_circ("circ_corr", u, v, True)


# ---- contract3d_1d(_bias), contract3d_1d_1d(_bias) -----------------------------------------------

@cython.final
@cython.no_gc
cdef class Contract3D(GenericOpNode):
    """z_ij = sum_k x_ijk y_k (+ b_ij), or with z: t_i = sum_jk x_ijk y_k z_j (+ b_i). With X the
    (ij x k) matrix of x, the first is the product X y; the second is W z with W = X y seen as an
    (i x j) matrix (kept for backward)."""
    cdef bint two, bias
    cdef int ni, nj, nk
    cdef float* w          # X y per batch element (ij values each), for contract3d_1d_1d
    cdef float* gz         # g z^T (ij values), backward's temporary

    cpdef str op_name(self):
        return ("contract3d_1d_1d" if self.two else "contract3d_1d") + ("_bias" if self.bias else "")

    cdef object make_op(self):
        return linalg.Contract3D(self.two, self.bias)

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Expression z, bias
        cdef int ij = self.ni * self.nj, per = batch_size(&self.d)
        cdef Py_ssize_t b, xper = <Py_ssize_t>ij * self.nk
        cdef float* out
        cdef float* w
        for b in range(self.d.bd):
            out = self.val + b * per
            if self.two:
                z = <Expression>self.args[2]
                w = self.w + b * ij
                gemm(False, False, ij, 1, self.nk, 1.0, elem(x, b, xper), ij, elem(y, b, self.nk),
                     self.nk, 0.0, w, ij)
                gemm(False, False, self.ni, 1, self.nj, 1.0, w, self.ni, elem(z, b, self.nj),
                     self.nj, 0.0, out, self.ni)
            else:
                gemm(False, False, ij, 1, self.nk, 1.0, elem(x, b, xper), ij, elem(y, b, self.nk),
                     self.nk, 0.0, out, ij)
            if self.bias:
                bias = <Expression>self.args[len(self.args) - 1]
                add_to(per, elem(bias, b, per), out)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0], y = <Expression>self.args[1]
        cdef Expression z = <Expression>self.args[2] if self.two else None
        cdef Expression bias = <Expression>self.args[len(self.args) - 1] if self.bias else None
        cdef int ij = self.ni * self.nj, per = batch_size(&self.d)
        cdef Py_ssize_t b, xper = <Py_ssize_t>ij * self.nk
        cdef const float* g
        cdef const float* gx        # the gradient as a function of x's (ij) entries
        for b in range(self.d.bd):
            g = self.grad + b * per
            if bias is not None and bias.grad != NULL:
                add_to(per, g, elem_grad(bias, b, per))
            gx = g
            if self.two:
                if z.grad != NULL:       # dz = W^T g
                    gemm(True, False, self.nj, 1, self.ni, 1.0, self.w + b * ij, self.ni, g,
                         self.ni, 1.0, elem_grad(z, b, self.nj), self.nj)
                if x.grad == NULL and y.grad == NULL:
                    continue
                fill(ij, 0.0, self.gz)   # g z^T
                gemm(False, True, self.ni, self.nj, 1, 1.0, g, self.ni, elem(z, b, self.nj),
                     self.nj, 1.0, self.gz, self.ni)
                gx = self.gz
            if x.grad != NULL:           # dX += gx y^T
                gemm(False, True, ij, self.nk, 1, 1.0, gx, ij, elem(y, b, self.nk), self.nk, 1.0,
                     elem_grad(x, b, xper), ij)
            if y.grad != NULL:           # dy += X^T gx
                gemm(True, False, self.nk, 1, ij, 1.0, elem(x, b, xper), ij, gx, ij, 1.0,
                     elem_grad(y, b, self.nk), self.nk)
        return 0


cdef Expression make_contract(tuple args, bint two, bint bias):
    cdef str name = ("contract3d_1d_1d" if two else "contract3d_1d") + ("_bias" if bias else "")
    cdef tuple xs = tuple([as_expr(a, name) for a in args])
    cdef Expression x = <Expression>xs[0], y = <Expression>xs[1], e
    cdef bint bad = x.d.nd != 3 or truncated(y.d).nd != 1 or y.d.d[0] != x.d.d[2]
    if two:
        e = <Expression>xs[2]
        bad = bad or truncated(e.d).nd != 1 or e.d.d[0] != x.d.d[1]
    cdef Dim out = make_dim1(x.d.d[0], 1) if two else make_dim2(x.d.d[0], x.d.d[1], 1)
    if not bad and bias:
        e = <Expression>xs[len(xs) - 1]
        bad = not same_shape(&e.d, &out)
    if bad:
        raise ValueError(f"{name}: expects a {{i,j,k}} tensor, a {{k}} vector"
                         + (", a {j} vector" if two else "")
                         + (", a bias of the output's dimensions" if bias else "")
                         + ", got " + ", ".join([dim_str(&e.d) for e in xs]))
    out.bd = batch_of(name, xs)
    cdef Contract3D node = Contract3D.__new__(Contract3D)
    node.two, node.bias = two, bias
    node.ni, node.nj, node.nk = x.d.d[0], x.d.d[1], x.d.d[2]
    if two:
        node.w = fwd_scratch(<size_t>node.ni * node.nj * out.bd)
        node.gz = fwd_scratch(<size_t>node.ni * node.nj)
    return add_node(node, xs, out)


def contract3d_1d(x, y):
    """z_ij = sum_k x_ijk y_k: a {i,j,k} tensor contracted with a {k} vector."""
    return make_contract((x, y), False, False)


def contract3d_1d_bias(x, y, b):
    """z_ij = b_ij + sum_k x_ijk y_k."""
    return make_contract((x, y, b), False, True)


def contract3d_1d_1d(x, y, z):
    """t_i = sum_jk x_ijk y_k z_j."""
    return make_contract((x, y, z), True, False)


def contract3d_1d_1d_bias(x, y, z, b):
    """t_i = b_i + sum_jk x_ijk y_k z_j."""
    return make_contract((x, y, z, b), True, True)
