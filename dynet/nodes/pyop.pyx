"""Operations written on arrays (`xp`: NumPy, or CuPy on the GPU): the generic path.

An operation is a Python object with
    name                                   the operation's name (for errors and graphviz)
    dim(self, dims) -> (shape, batch)      dims: [(shape, batch) of each argument]; raise
                                           ValueError naming the op and the dimensions if wrong
    forward(self, xs, out)                 fill `out` from the arguments `xs`
    backward(self, xs, out, dout, i, dxi)  add d(loss)/d(xs[i]) into `dxi`
Every array is a float32 view of graph memory shaped (dims..., batch), column-major, so batched code
is ordinary array code over the last axis; the op takes its array module from the arrays
(npbase.array_module). Such an op is the device-neutral implementation of a typed node (losses_cpu,
linalg_cpu: see GenericOpNode), and `pyop` runs one directly (PyOpNode), for ops without a typed node.
"""
cimport cython
from dynet.core.dim cimport Dim, make_dim, total_size, dim_shape, dim_str
from dynet.core.graph cimport Expression, add_node, as_expr, np_view, check_live

import numpy as np


cdef object shaped_view(float* p, const Dim* d):
    shape = dim_shape(d) + (d.bd,)
    return np_view(p, total_size(d)).reshape(shape, order="F")


cdef int batch_of(str name, tuple args) except -1:
    """The batch size of an operation on `args` (each batch must be 1 or the largest), with the
    message of npbase.batch_of: the typed nodes whose generic implementation is an op share it."""
    cdef Expression a
    cdef int bd = 1
    for a in args:
        bd = max(bd, a.d.bd)
    for a in args:
        if a.d.bd != 1 and a.d.bd != bd:
            raise ValueError(f"{name}: batch sizes must be 1 or equal, got "
                             + ", ".join([dim_str(&a.d) for a in args]))
    return bd


@cython.no_gc
cdef class GenericOpNode(Expression):
    """A node whose generic implementation is an op object as above: `make_op` builds it from the
    node's own parameters (the typed node keeps them in C fields); it is made and given the
    arguments' dimensions (ops such as hinge prepare their targets there) when first needed, and
    kept in `aux`."""

    cdef object make_op(self):
        raise RuntimeError(f"internal error: {type(self).__name__} has no generic op")

    cdef object generic_op(self):
        cdef Expression a
        if self.aux is None:
            op = self.make_op()
            op.dim([(dim_shape(&a.d), a.d.bd) for a in self.args])
            self.aux = op
        return self.aux

    def generic_forward(self, xp, list xs, out):
        self.generic_op().forward(xs, out)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        self.generic_op().backward(xs, out, dout, i, dxi)


@cython.final
@cython.no_gc
cdef class PyOpNode(GenericOpNode):
    """An op object run as it is, on NumPy views of the node's memory (ops without a typed node)."""

    cpdef str op_name(self):
        return self.aux.name

    cdef object make_op(self):
        return self.aux

    cdef object generic_op(self):
        return self.aux

    cdef list _inputs(self):
        cdef Expression a
        return [shaped_view(a.val, &a.d) for a in self.args]

    cdef int forward_impl(self) except -1:
        self.aux.forward(self._inputs(), shaped_view(self.val, &self.d))
        return 0

    cdef int backward_impl(self) except -1:
        cdef Expression a
        xs = None
        out = shaped_view(self.val, &self.d)
        dout = shaped_view(self.grad, &self.d)
        for i, a in enumerate(self.args):
            if a.grad != NULL:
                if xs is None:
                    xs = self._inputs()
                self.aux.backward(xs, out, dout, i, shaped_view(a.grad, &a.d))
        return 0


def pyop(op, args):
    """Add a node computing `op` (see the module docstring) of the expressions `args`
    (Expressions, or Parameters standing for theirs)."""
    cdef tuple xs = tuple([as_expr(x, op.name) for x in args])
    cdef Expression a
    shape, bd = op.dim([(dim_shape(&a.d), a.d.bd) for a in xs])
    cdef PyOpNode node = PyOpNode.__new__(PyOpNode)
    node.aux = op
    return add_node(node, xs, make_dim(shape, bd))


def generic_run(Expression e, dout):
    """Run the generic implementation of `e`'s node on NumPy copies of its arguments' values:
    (value, [d(loss)/d(argument) for each argument] for the output gradient `dout`, [copies of the
    arguments' gradients from the last backward pass, None where there is none]), each shaped
    (dims..., batch); the graph is left as it was. For the typed-versus-generic parity tests."""
    cdef Expression a
    check_live(e, "generic_run")
    e._ensure_value(False)
    xs = [shaped_view(a.val, &a.d).copy(order="F") for a in e.args]
    shape = dim_shape(&e.d) + (e.d.bd,)
    out = np.zeros(shape, dtype=np.float32, order="F")
    e.generic_forward(np, xs, out)
    g = np.asarray(dout, dtype=np.float32).reshape(shape, order="F").copy(order="F")
    grads = []
    for i, x in enumerate(xs):
        dxi = np.zeros_like(x, order="F")
        e.generic_backward(np, xs, out, g, i, dxi)
        grads.append(dxi)
    typed = [shaped_view(a.grad, &a.d).copy(order="F") if a.grad != NULL else None for a in e.args]
    return out, grads, typed
