# Helpers for the batched kernels of autobatching (dynet/core/execution.pyx): a group of nodes of one
# signature gathers one argument of each node side by side into a matrix, runs one kernel over all
# the columns, and scatters the result columns back into each node's value.
from dynet.core.dim cimport cols
from dynet.core.graph cimport Expression
from dynet.kernels.cpu cimport copy


cdef inline Py_ssize_t ncols(Expression e) noexcept:
    """Columns of e's value, every batch element's side by side."""
    return <Py_ssize_t>cols(&e.d) * e.d.bd


cdef inline Py_ssize_t total_cols(list group) noexcept:
    cdef Expression node
    cdef Py_ssize_t total = 0
    for node in group:
        total += ncols(node)
    return total


cdef inline void gather_arg(list group, Py_ssize_t arg, Py_ssize_t k, float* dst) noexcept:
    """Argument `arg` (k rows) of each node, all its columns, side by side into dst."""
    cdef Expression node, a
    cdef Py_ssize_t off = 0, n
    for node in group:
        a = <Expression>node.args[arg]
        n = k * ncols(a)
        copy(n, a.val, dst + off)
        off += n


cdef inline void scatter_values(list group, Py_ssize_t m, const float* src) noexcept:
    """The inverse for the results: each node's columns (m rows) from src into its value."""
    cdef Expression node
    cdef Py_ssize_t off = 0, n
    for node in group:
        n = m * ncols(node)
        copy(n, src + off, node.val)
        off += n
