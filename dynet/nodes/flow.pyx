"""Gradient flow: identity in the forward pass, a changed gradient in the backward pass
(nobackprop, flip_gradient, scale_gradient), and argmax (a one-hot vector, with a zero or a
straight-through gradient)."""
cimport cython
from dynet.core.dim cimport total_size, batch_size, rows, dim_str
from dynet.core.graph cimport Expression, add_node, as_expr
from dynet.kernels.cpu cimport copy, fill, add_to, axpy
from dynet.kernels import generic


@cython.final
@cython.no_gc
cdef class GradScale(Expression):
    """y = x; dx += scale * dy (scale 0: nobackprop, -1: flip_gradient, lambd: scale_gradient)."""
    cdef float scale
    cdef str name

    cpdef str op_name(self):
        return self.name

    cdef int forward_impl(self) except -1:
        copy(total_size(&self.d), (<Expression>self.args[0]).val, self.val)
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL or self.scale == 0:
            return 0
        if self.scale == 1:
            add_to(total_size(&self.d), self.grad, x.grad)
        else:
            axpy(total_size(&self.d), self.scale, self.grad, x.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        out[...] = xs[0]

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        if self.scale != 0:
            dxi += self.scale * dout


cdef Expression grad_scale(object x, float scale, str name):
    cdef Expression ex = as_expr(x, name)
    cdef GradScale node = GradScale.__new__(GradScale)
    node.scale = scale
    node.name = name
    add_node(node, (ex,), ex.d)
    if scale == 0:
        node.needs_grad = False       # nothing flows back: backward can skip the subgraph below
    return node


def nobackprop(x):
    """x in the forward pass; no gradient flows back through it."""
    return grad_scale(x, 0.0, "nobackprop")


def flip_gradient(x):
    """x in the forward pass; the gradient is negated on the way back (adversarial training)."""
    return grad_scale(x, -1.0, "flip_gradient")


def scale_gradient(x, lambd=1.0):
    """x in the forward pass; the gradient is multiplied by lambd on the way back."""
    return grad_scale(x, float(lambd), "scale_gradient")


@cython.final
@cython.no_gc
cdef class Argmax(Expression):
    """A one-hot vector marking the (first) largest value of each batch element's vector."""
    cdef bint straight_through

    cpdef str op_name(self):
        return "argmax"

    cdef int forward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t n = batch_size(&x.d), b, i, best
        cdef const float* xb
        fill(total_size(&self.d), 0.0, self.val)
        for b in range(x.d.bd):
            xb = x.val + b * n
            best = 0
            for i in range(1, n):
                if xb[i] > xb[best]:
                    best = i
            self.val[b * n + best] = 1.0
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad != NULL and self.straight_through:
            add_to(total_size(&self.d), self.grad, x.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        x = generic.flat(xs[0])
        best = xp.argmax(x, axis=0)                        # the first maximum
        generic.flat(out)[...] = xp.arange(x.shape[0]).reshape(-1, 1) == best.reshape(1, -1)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        if self.straight_through:
            dxi += dout


def argmax(x, gradient_mode="zero_gradient"):
    """One-hot vector of the argmax of x (per batch element); gradient_mode "zero_gradient" stops
    the gradient, "straight_through_gradient" passes it through unchanged (Bengio et al., 2013)."""
    cdef Expression ex = as_expr(x, "argmax")
    if gradient_mode not in ("zero_gradient", "straight_through_gradient"):
        raise ValueError(f"argmax: gradient_mode must be 'zero_gradient' or "
                         f"'straight_through_gradient', got {gradient_mode!r}")
    if batch_size(&ex.d) != rows(&ex.d):
        raise ValueError(f"argmax: expects a vector (order > 1 tensors are not supported), "
                         f"got {dim_str(&ex.d)}")
    cdef Argmax node = Argmax.__new__(Argmax)
    node.straight_through = gradient_mode == "straight_through_gradient"
    add_node(node, (ex,), ex.d)
    if not node.straight_through:
        node.needs_grad = False
    return node
