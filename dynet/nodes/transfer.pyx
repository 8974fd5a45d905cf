"""dy.to_device(e, name): a copy of an expression's value on another device; its gradient is copied
back to the argument's device in the backward pass (so gradients flow across devices)."""
cimport cython
from dynet.core.dim cimport Dim
from dynet.core.graph cimport Expression, add_node_across, as_expr, generic_forward_node
from dynet.core.device cimport Device, resolve


@cython.final
@cython.no_gc
cdef class ToDevice(Expression):
    """Lives on the target device; its argument lives on the source device. Both implementations
    are the array copy (one copy between memories is what there is to do on any device)."""

    cpdef str op_name(self):
        return f"to_device({self.dev.name})"

    cdef int forward_impl(self) except -1:       # the target is the typed CPU: the same copy
        return generic_forward_node(self)

    cdef int backward_impl(self) except -1:
        cdef Expression a = <Expression>self.args[0]
        if a.grad == NULL:
            return 0
        self.generic_backward(self.dev.xp, [a.dev.view(a.val, &a.d)], self.dev.view(self.val, &self.d),
                              self.dev.view(self.grad, &self.d), 0, a.dev.view(a.grad, &a.d))
        return 0

    def generic_forward(self, xp, list xs, out):
        out[...] = self.dev.copy_in(xs[0])

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        cdef Expression a = <Expression>self.args[0]
        dxi += a.dev.copy_in(dout)


def to_device(e, device_str):
    """Copy Expression's values between devices: a new expression with e's values on the device
    named device_str ('CPU', 'GPU:0'); gradients flow back to e's device."""
    cdef Expression x = as_expr(e, "to_device")
    cdef Device dev = resolve(device_str, "to_device")
    cdef ToDevice node = ToDevice.__new__(ToDevice)
    node.dev = dev
    cdef Dim d = x.d
    return add_node_across(node, (x,), d)
