"""Dropout and additive noise: a random mask or noise is drawn once per forward pass and kept in
the forward pool for the backward pass.

The dropout variants differ only in how many values share one mask entry: viewing the value as
[pre, rep, rest] (column-major), the mask has pre * rest entries and entry (q, r) scales the `rep`
values (q, 0..rep-1, r). dropout: rep = 1; dropout_dim(d): pre = the sizes before d, rep = size of
d; dropout_batch: rep = one batch element; block_dropout: rep = everything.
"""
cimport cython
from cpython.list cimport PyList_GET_SIZE
from libc.string cimport memcpy
from dynet.core.dim cimport total_size, batch_size, dim_str
from dynet.core.graph cimport Expression, add_node, as_expr, fwd_scratch, to_index, activate_device
from dynet.core.batching cimport Layout, group_layout, member, node_by_node
from dynet.core.device cimport Device
from dynet.kernels.cpu cimport add_to
from dynet.kernels.rand cimport (bitgen_t, hold_generator, release_generator, fill_keep_mask,
                                 fill_normal)
from dynet.kernels import generic


cdef inline void scale_run(Py_ssize_t n, float s, const float* m, const float* src, float* dst,
                           bint accumulate) noexcept nogil:
    """dst[i] (+)= src[i] * (m[i] if m else s)."""
    cdef Py_ssize_t i
    if m == NULL:
        if accumulate:
            for i in range(n):
                dst[i] += src[i] * s
        else:
            for i in range(n):
                dst[i] = src[i] * s
    elif accumulate:
        for i in range(n):
            dst[i] += src[i] * m[i]
    else:
        for i in range(n):
            dst[i] = src[i] * m[i]


@cython.final
@cython.no_gc
cdef class Dropout(Expression):
    """y = x * mask, mask = Bernoulli(1 - p) / (1 - p) (inverted dropout); noise: y = x + N(0, s)."""
    cdef float p
    cdef bint additive        # noise() rather than dropout()
    cdef Py_ssize_t pre, rep  # mask sharing (see the module docstring)
    cdef float* mask
    cdef str kind

    cpdef str op_name(self):
        return self.kind

    cdef inline Py_ssize_t n_mask(self) noexcept:
        return total_size(&self.d) // self.rep

    cdef int forward_impl(self) except -1:
        self.draw(hold_generator())
        return release_generator()

    cdef void draw(self, bitgen_t* bg) noexcept:
        """Draw the mask (or the noise) and compute the value, the generator held."""
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t i, n = total_size(&self.d)
        if self.additive:
            fill_normal(bg, self.mask, n, self.p)
            for i in range(n):
                self.val[i] = x.val[i] + self.mask[i]
        else:
            fill_keep_mask(bg, self.mask, self.n_mask(), self.p)
            self._scale(x.val, self.val, False)

    cdef void _scale(self, const float* src, float* dst, bint accumulate) noexcept:
        """dst (+)= src * mask, the mask broadcast over `rep`: per run of `pre` values a run of
        mask entries (contiguous, vectorises), or with pre == 1 one entry per run of `rep` values."""
        cdef Py_ssize_t pre = self.pre, rep = self.rep, rest = total_size(&self.d) // (pre * rep)
        cdef Py_ssize_t r, j
        if rep == 1:                             # an entry per value (dropout): one run
            scale_run(pre * rest, 0, self.mask, src, dst, accumulate)
            return
        if pre == 1:
            for r in range(rest):
                scale_run(rep, self.mask[r], NULL, src + r * rep, dst + r * rep, accumulate)
            return
        for r in range(rest):
            for j in range(rep):
                scale_run(pre, 0, self.mask + r * pre, src + (r * rep + j) * pre,
                          dst + (r * rep + j) * pre, accumulate)

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad == NULL:
            return 0
        if self.additive:
            add_to(total_size(&self.d), self.grad, x.grad)
        else:
            self._scale(self.grad, x.grad, True)
        return 0

    def generic_forward(self, xp, list xs, out):
        # the mask (or the noise) is drawn as the typed node draws it, and kept for backward
        if self.additive:
            self.aux = generic.gaussian_noise(xp, out.size, self.p).reshape(out.shape, order="F")
            out[...] = xs[0] + self.aux
        else:
            self.aux = generic.dropout_mask(xp, out.size // self.rep, self.p)
            out[...] = generic.masked(xs[0], self.aux, self.pre, self.rep)

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        if self.additive:
            dxi += dout
        else:
            dxi += generic.masked(dout, self.aux, self.pre, self.rep)


# Autobatching (dynet/core/execution.pyx): dropout or noise nodes of one kind, probability, mask
# sharing and size run as one group. On the CPU the generator is looked up and locked once for the
# group and each node draws, in group order, what it would draw alone (the values are those of the
# nodes run one by one in that order); the backward is each node's own.
cdef Py_ssize_t batch_key(Expression node) noexcept:
    if type(node) is not Dropout:
        return 0
    cdef Dropout x = <Dropout>node
    cdef unsigned int bits
    memcpy(&bits, &x.p, sizeof(float))
    cdef size_t key = ((<size_t>total_size(&x.d) * 7919 + <size_t>x.pre) * 7919 + <size_t>x.rep) \
        * <size_t>0x100000001B3 + bits
    return <Py_ssize_t>(key * 4 + (2 if x.additive else 0) + 1)


cdef bint same_batch(Expression x, Expression y) noexcept:
    if type(x) is not Dropout or type(y) is not Dropout:
        return False
    cdef Dropout a = <Dropout>x, b = <Dropout>y
    return (a.kind == b.kind and a.additive == b.additive and a.p == b.p and a.pre == b.pre
            and a.rep == b.rep and total_size(&a.d) == total_size(&b.d))


cdef int forward_batch(list group) except -1:
    cdef bitgen_t* bg = hold_generator()
    cdef Py_ssize_t k
    for k in range(PyList_GET_SIZE(group)):
        (<Dropout>member(group, k)).draw(bg)
    return release_generator()


cdef int backward_batch(list group) except -1:
    return node_by_node(group, True)


cdef int generic_batch(list group, bint backward) except -1:
    """On a device without the typed loops (a GPU): a group of dropout nodes with a mask entry per
    value, whose values and arguments (backward: and their gradients) lie side by side, as one
    call: one mask for the whole group (the draws of the nodes one by one in group order), each
    node keeping its part for its own backward. Returns 0 (node by node) for the rest."""
    cdef Dropout first = <Dropout>group[0], node
    cdef Device dev = first.dev
    cdef Layout L
    cdef int arg = 0
    cdef Py_ssize_t n = 0, off = 0, size
    if first.additive or first.rep != 1:
        return 0                             # noise draws per node; shared entries reshape per node
    group_layout(group, 1, &arg, backward, &L)
    if L.val[0] == NULL or L.val[1] == NULL:
        return 0
    if backward and (L.grad[0] == NULL or L.grad[1] == NULL):
        return 0
    for node in group:
        n += total_size(&node.d)
    activate_device(dev)
    if not backward:
        mask = generic.dropout_mask(dev.xp, n, first.p)
        dev.flat_view(L.val[0], n)[...] = dev.flat_view(L.val[1], n) * mask
        for node in group:
            size = total_size(&node.d)
            node.aux = mask[off:off + size]
            off += size
        return 1
    mask = dev.xp.concatenate([node.aux for node in group])
    dx = dev.flat_view(L.grad[1], n)
    dx += dev.flat_view(L.grad[0], n) * mask
    return 1


cdef Expression make_dropout(object x, object p, Py_ssize_t pre, Py_ssize_t rep, str op):
    cdef Expression ex = as_expr(x, op)
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: the probability must be a number, got {p!r:.40}")
    if not 0 <= p <= 1:
        raise ValueError(f"{op}: p must be in [0, 1], got {p}")
    cdef Dropout node = Dropout.__new__(Dropout)
    node.p = p
    node.additive = False
    node.kind = op
    node.pre = pre
    node.rep = rep
    node.mask = fwd_scratch(total_size(&ex.d) // rep)
    return add_node(node, (ex,), ex.d)


def dropout(x, p):
    """Inverted dropout: zero each value with probability p and scale the rest by 1/(1-p)."""
    return make_dropout(x, p, 1, 1, "dropout")


def dropout_dim(x, d, p):
    """Dropout with one decision shared by all the values along dimension d (for instance,
    d=1 on a matrix keeps or drops whole rows); each batch element gets its own mask."""
    cdef Expression ex = as_expr(x, "dropout_dim")
    d = to_index(d, "dropout_dim")
    if d < 0 or d >= ex.d.nd:
        raise ValueError(f"dropout_dim: dimension {d} is out of range for {dim_str(&ex.d)}")
    cdef Py_ssize_t pre = 1
    cdef int i
    for i in range(d):
        pre *= ex.d.d[i]
    return make_dropout(ex, p, pre, ex.d.d[d], "dropout_dim")


def dropout_batch(x, p):
    """Dropout of whole batch elements: each is kept (scaled by 1/(1-p)) or zeroed."""
    cdef Expression ex = as_expr(x, "dropout_batch")
    return make_dropout(ex, p, 1, batch_size(&ex.d), "dropout_batch")


def block_dropout(x, p):
    """Dropout of the whole expression at once: all values kept (scaled by 1/(1-p)) or all zeroed."""
    cdef Expression ex = as_expr(x, "block_dropout")
    return make_dropout(ex, p, 1, total_size(&ex.d), "block_dropout")


def noise(x, stddev):
    """x plus Gaussian noise of standard deviation stddev."""
    cdef Expression ex = as_expr(x, "noise")
    if stddev < 0:
        raise ValueError(f"noise: stddev must be >= 0, got {stddev}")
    cdef Dropout node = Dropout.__new__(Dropout)
    node.p = stddev
    node.additive = True
    node.kind = "noise"
    node.pre = 1
    node.rep = 1
    node.mask = fwd_scratch(total_size(&ex.d))
    return add_node(node, (ex,), ex.d)
