"""Dropout and additive noise: a random mask or noise is drawn once per forward pass and kept in
the forward pool for the backward pass."""
cimport cython
from dynet.core.dim cimport Dim, total_size, dim_str
from dynet.core.graph cimport Expression, add_node, as_expr, fwd_scratch, np_view
from dynet.core import config
from dynet.kernels.cpu cimport add_to, copy


@cython.final
@cython.no_gc
@cython.freelist(32)
cdef class Dropout(Expression):
    """y = x * mask, mask = Bernoulli(1 - p) / (1 - p) (inverted dropout); noise: y = x + N(0, s)."""
    cdef float p
    cdef bint additive        # noise() rather than dropout()
    cdef float* mask

    cpdef str op_name(self):
        return "noise" if self.additive else "dropout"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t i, n = total_size(&self.d)
        r = config.rng()
        if self.additive:
            np_view(self.mask, n)[:] = r.normal(0.0, self.p, n)
            for i in range(n):
                self.val[i] = x.val[i] + self.mask[i]
        else:
            np_view(self.mask, n)[:] = (r.random(n) >= self.p) * (1.0 / (1.0 - self.p))
            for i in range(n):
                self.val[i] = x.val[i] * self.mask[i]
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t i, n = total_size(&self.d)
        if x.grad == NULL:
            return 0
        if self.additive:
            add_to(n, self.grad, x.grad)
        else:
            for i in range(n):
                x.grad[i] += self.grad[i] * self.mask[i]
        return 0


def dropout(x, p):
    """Inverted dropout: zero each value with probability p and scale the rest by 1/(1-p)."""
    cdef Expression ex = as_expr(x, "dropout")
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    cdef Dropout node = Dropout.__new__(Dropout)
    node.p = p
    node.additive = False
    node.mask = fwd_scratch(total_size(&ex.d))
    return add_node(node, (ex,), ex.d)


def noise(x, stddev):
    """x plus Gaussian noise of standard deviation stddev."""
    cdef Expression ex = as_expr(x, "noise")
    if stddev < 0:
        raise ValueError(f"noise: stddev must be >= 0, got {stddev}")
    cdef Dropout node = Dropout.__new__(Dropout)
    node.p = stddev
    node.additive = True
    node.mask = fwd_scratch(total_size(&ex.d))
    return add_node(node, (ex,), ex.d)
