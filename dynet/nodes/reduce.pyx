"""Sums over all values and over the batch: sum_elems, sum_batches, squared_norm, l2_norm. (Sums of lists
and reductions along chosen dimensions are in reductions.pyx; distances in norms.pyx.)"""
cimport cython
from libc.math cimport sqrtf
from dynet.core.dim cimport Dim, make_dim1, batch_size
from dynet.core.graph cimport Expression, add_node, as_expr
from dynet.kernels.cpu cimport add_to, copy, dot, sum_of
from dynet.kernels import generic


cdef enum ReduceKind:
    R_SUM_ELEMS, R_SQUARED_NORM, R_SUM_BATCHES, R_L2_NORM


@cython.final
@cython.no_gc
cdef class Reduce(Expression):
    """Per-batch-element sum, sum of squares or L2 norm of all values, or the sum over the batch."""
    cdef int kind

    cpdef str op_name(self):
        return ("sum_elems", "squared_norm", "sum_batches", "l2_norm")[self.kind]

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t per = batch_size(&x.d), b
        if self.kind == R_SUM_BATCHES:
            copy(per, x.val, self.val)
            for b in range(1, x.d.bd):
                add_to(per, x.val + b * per, self.val)
            return 0
        for b in range(x.d.bd):
            if self.kind == R_SUM_ELEMS:
                self.val[b] = sum_of(per, x.val + b * per)
            else:
                self.val[b] = dot(per, x.val + b * per, x.val + b * per)
                if self.kind == R_L2_NORM:
                    self.val[b] = sqrtf(self.val[b])
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        cdef Py_ssize_t per = batch_size(&x.d), b, i
        cdef float g
        cdef const float* xv
        cdef float* dx
        for b in range(x.d.bd):
            dx = x.grad + b * per
            if self.kind == R_SUM_BATCHES:
                add_to(per, self.grad, dx)
            elif self.kind == R_SUM_ELEMS:
                g = self.grad[b]
                for i in range(per):
                    dx[i] += g
            else:
                # d||x||^2 = 2x; d||x|| = x / ||x|| (taken as 0 at 0)
                if self.kind == R_SQUARED_NORM:
                    g = 2 * self.grad[b]
                else:
                    g = self.grad[b] / self.val[b] if self.val[b] > 0 else 0
                xv = x.val + b * per
                for i in range(per):
                    dx[i] += g * xv[i]
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.reduce_forward(xp, self.op_name(), xs[0], out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.reduce_backward(xp, self.op_name(), xs[0], out, dout, dxi)


cdef Expression reduce(object x, int kind, str op):
    cdef Expression ex = as_expr(x, op)
    cdef Reduce node = Reduce.__new__(Reduce)
    node.kind = kind
    cdef Dim d
    if kind == R_SUM_BATCHES:
        d = ex.d
        d.bd = 1
    else:
        d = make_dim1(1, ex.d.bd)
    return add_node(node, (ex,), d)


def sum_elems(x):
    """The sum of all values of each batch element."""
    return reduce(x, R_SUM_ELEMS, "sum_elems")


def sum_batches(x):
    """The sum over the batch."""
    return reduce(x, R_SUM_BATCHES, "sum_batches")


def squared_norm(x):
    """sum_i x_i^2, per batch element."""
    return reduce(x, R_SQUARED_NORM, "squared_norm")


def l2_norm(x):
    """||x||_2, per batch element."""
    return reduce(x, R_L2_NORM, "l2_norm")
