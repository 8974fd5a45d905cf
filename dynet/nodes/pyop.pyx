"""Operations written with NumPy (on `xp`, so the same code runs on CuPy): the generic path.

An operation is a Python object with
    name                                   the operation's name (for errors and graphviz)
    dim(self, dims) -> (shape, batch)      dims: [(shape, batch) of each argument]; raise
                                           ValueError naming the op and the dimensions if wrong
    forward(self, xs, out)                 fill `out` from the arguments `xs`
    backward(self, xs, out, dout, i, dxi)  add d(loss)/d(xs[i]) into `dxi`
Every array is a float32 view of graph memory shaped (dims..., batch), column-major, so batched code
is ordinary NumPy over the last axis. Rare operations live here; hot ones get typed nodes.
"""
cimport cython
from dynet.core.dim cimport Dim, make_dim, total_size, dim_shape
from dynet.core.graph cimport Expression, add_node, as_expr, np_view


cdef object shaped_view(float* p, const Dim* d):
    shape = dim_shape(d) + (d.bd,)
    return np_view(p, total_size(d)).reshape(shape, order="F")


@cython.final
@cython.no_gc
cdef class PyOpNode(Expression):
    cdef object op

    cpdef str op_name(self):
        return self.op.name

    cdef list _inputs(self):
        cdef Expression a
        return [shaped_view(a.val, &a.d) for a in self.args]

    cdef int forward_impl(self) except -1:
        self.op.forward(self._inputs(), shaped_view(self.val, &self.d))
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
                self.op.backward(xs, out, dout, i, shaped_view(a.grad, &a.d))
        return 0


def pyop(op, args):
    """Add a node computing `op` (see the module docstring) of the expressions `args`."""
    cdef tuple xs = tuple([as_expr(a, op.name) for a in args])
    cdef Expression a
    shape, bd = op.dim([(dim_shape(&a.d), a.d.bd) for a in xs])
    cdef PyOpNode node = PyOpNode.__new__(PyOpNode)
    node.op = op
    return add_node(node, xs, make_dim(shape, bd))
