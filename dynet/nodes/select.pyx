"""Selecting and rearranging values: pick, pick_batch, reshape, transpose, concatenate.

Most of these view a tensor as [pre, n, post] around one axis (column-major: `pre` values are
contiguous), which turns every one of them into a few block copies.
"""
cimport cython
from dynet.core.dim cimport (with_size, Dim, MAX_DIMS, make_dim, total_size, batch_size, dim_str, dim_at,
                             same_shape, truncated)
from dynet.core.graph cimport (Expression, Mirrored, add_node, as_expr, as_expr_tuple, fwd_scratch, to_index,
                               the_cg, check_live)
from dynet.kernels.cpu cimport copy, add_to
from dynet.kernels import generic
from dynet.core.lowering cimport Lowering, Step, Part, copy_step
from dynet.core.errors import IndexOutOfRange


cdef object index_array(xp, const int* index, Py_ssize_t n):
    """A node's C index list as an integer array of the module xp (for generic_select)."""
    return xp.asarray([index[i] for i in range(n)], dtype=xp.int64)


cdef inline Py_ssize_t prod_before(const Dim* d, int axis) noexcept:
    cdef Py_ssize_t p = 1
    cdef int i
    for i in range(axis):
        p *= dim_at(d, i)
    return p


cdef void pick_walk(bint backward, float* x, float* y, Py_ssize_t pre, Py_ssize_t n, Py_ssize_t per,
                    Py_ssize_t bd, bint batched, const int* index) noexcept nogil:
    """Pick's walk: y (pre values per block) = x's entry index[b] along the axis (n entries, pre
    values before it, per values a batch element of x), or (backward) y added into x there."""
    cdef Py_ssize_t post = per // (pre * n), b, p, src
    for b in range(bd):
        for p in range(post):
            src = (b * per if batched else 0) + p * pre * n + index[b] * pre
            if backward:
                add_to(pre, y + (b * post + p) * pre, x + src)
            else:
                copy(pre, x + src, y + (b * post + p) * pre)


cdef void range_walk(bint backward, float* x, float* y, Py_ssize_t pre, Py_ssize_t n, Py_ssize_t m,
                     Py_ssize_t start, Py_ssize_t per, Py_ssize_t bd) noexcept nogil:
    """PickRange's walk: y = entries start..start+m-1 of x along the axis, or (backward) y added
    into x there."""
    cdef Py_ssize_t post = per // (pre * n), b, p, src, dst
    for b in range(bd):
        for p in range(post):
            src = b * per + p * pre * n + start * pre
            dst = (b * post + p) * pre * m
            if backward:
                add_to(pre * m, y + dst, x + src)
            else:
                copy(pre * m, x + src, y + dst)


# the lowered forward steps (see dynet/core/lowering.pyx)
cdef void pick_step(const Step* s, const Part* parts) noexcept nogil:
    pick_walk(False, <float*>s.x0, s.y, s.n0, s.n1, s.n2, s.n3, s.op, <const int*>s.p)


cdef void range_step(const Step* s, const Part* parts) noexcept nogil:
    range_walk(False, <float*>s.x0, s.y, s.n0, s.n1, parts[0].n0, parts[0].n1, s.n2, s.n3)


@cython.final
@cython.no_gc
cdef class Pick(Mirrored):
    """Element `index[b]` along `axis` of each batch element (that axis is removed)."""
    cdef int axis
    cdef int* index

    cpdef str op_name(self):
        return "pick"

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0]
        pick_walk(backward, x.grad if backward else x.val, self.grad if backward else self.val,
                  prod_before(&x.d, self.axis), dim_at(&x.d, self.axis), batch_size(&x.d),
                  self.d.bd, x.d.bd > 1, self.index)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Step* s = L.add(pick_step, total_size(&self.d))
        s.y = self.val
        s.x0 = x.val
        s.p = self.index                 # (forward pool; set_index rewrites it between passes)
        s.n0, s.n1, s.n2, s.n3 = prod_before(&x.d, self.axis), dim_at(&x.d, self.axis), batch_size(&x.d), self.d.bd
        s.op = x.d.bd > 1
        return 1

    def generic_select(self, xp, list xs, shape):
        return generic.pick(xp, xs[0], self.axis, index_array(xp, self.index, self.d.bd), shape)

    def set_index(self, index):
        """Pick another element: one index (for every batch element), or one per batch element
        as pick_batch takes them; the graph recomputes from here on next use (DyNet's reusable
        pick expressions)."""
        check_live(self, "set_index")
        cdef Expression x = <Expression>self.args[0]
        fill_indices(self.index, self.d.bd, index, dim_at(&x.d, self.axis), self.axis, x, "set_index")
        the_cg().invalidate_from(self.vindex)


cdef int fill_indices(int* out, int count, object indices, int n, int axis, Expression x,
                      str op) except -1:
    """Checked indices into out[0..count): a list of `count`, or one index for all of them."""
    if isinstance(indices, (list, tuple)) or getattr(indices, "ndim", 0) > 0:
        indices = list(indices)
        if len(indices) != count:
            raise ValueError(f"{op}: {len(indices)} indices for a batch of {count} ({dim_str(&x.d)})")
    else:
        indices = [indices] * count
    cdef int b
    cdef long v
    for b in range(count):
        v = to_index(indices[b], op)
        if v < 0 or v >= n:
            raise IndexOutOfRange(f"{op}: index {v} is out of range for dimension {axis} of size {n} "
                             f"in {dim_str(&x.d)}")
        out[b] = v
    return 0


cdef Expression make_pick(object e, object indices, int axis, bint batched, str op):
    cdef Expression x = as_expr(e, op)
    axis = to_index(axis, op)
    if axis < 0 or axis >= MAX_DIMS:
        raise ValueError(f"{op}: dimension {axis} is out of range")
    cdef int n = dim_at(&x.d, axis)
    if batched:
        indices = list(indices)
        if len(indices) != x.d.bd and x.d.bd != 1:
            raise ValueError(f"{op}: {len(indices)} indices for a batch of {x.d.bd} ({dim_str(&x.d)})")
    else:
        indices = [indices] * x.d.bd
    if not indices:
        raise ValueError(f"{op}: the list of indices is empty")
    cdef Pick node = Pick.__new__(Pick)
    node.axis = axis
    node.index = <int*>fwd_scratch(len(indices))
    fill_indices(node.index, len(indices), indices, n, axis, x, op)
    cdef Dim d = x.d
    cdef int i
    d.bd = len(indices)
    if axis < d.nd:
        if d.nd == 1:
            d.d[0] = 1
        else:
            for i in range(axis, d.nd - 1):
                d.d[i] = d.d[i + 1]
            d.nd -= 1
    return add_node(node, (x,), d)


def pick(e, index=0, dim=0):
    """Element `index` along dimension `dim` (of every batch element)."""
    return make_pick(e, index, dim, False, "pick")


def pick_batch(e, indices, dim=0):
    """Element indices[b] along dimension `dim` of batch element b."""
    return make_pick(e, indices, dim, True, "pick_batch")


@cython.final
@cython.no_gc
cdef class Reshape(Expression):
    cpdef str op_name(self):
        return "reshape"

    cdef int forward_impl(self) except -1:
        copy(total_size(&self.d), (<Expression>self.args[0]).val, self.val)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Step* s = L.add(copy_step, total_size(&self.d))
        s.y = self.val
        s.x0 = (<Expression>self.args[0]).val
        s.n0 = total_size(&self.d)
        return 1

    cdef int backward_impl(self) except -1:
        cdef Expression x = <Expression>self.args[0]
        if x.grad != NULL:
            add_to(total_size(&self.d), self.grad, x.grad)
        return 0

    def generic_forward(self, xp, list xs, out):
        generic.ravel(out)[...] = generic.ravel(xs[0])

    def generic_backward(self, xp, list xs, out, dout, int i, dxi):
        generic.ravel(dxi)[...] += generic.ravel(dout)


def reshape(x, d, batch_size=1):  # no-cython-lint (DyNet's argument name)
    """The same values (column-major) with dimension d; a batched x keeps its batch when the new
    shape is the size of one batch element."""
    cdef Expression ex = as_expr(x, "reshape")
    cdef Dim to = make_dim(d, batch_size)
    if total_size(&to) != total_size(&ex.d):
        if to.bd == 1 and total_size(&to) == total_size(&ex.d) // ex.d.bd and \
                total_size(&to) * ex.d.bd == total_size(&ex.d):
            to.bd = ex.d.bd
        else:
            raise ValueError(f"reshape: cannot reshape {dim_str(&ex.d)} to {dim_str(&to)} "
                             f"(the number of values differs)")
    return add_node(Reshape.__new__(Reshape), (ex,), to)


@cython.final
@cython.no_gc
cdef class Transpose(Mirrored):
    """Permutes the axes of each batch element: output axis i is input axis perm[i]."""
    cdef int perm[MAX_DIMS]

    cpdef str op_name(self):
        return "transpose"

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t in_stride[7]
        cdef Py_ssize_t stride[7]      # input stride of each output axis
        cdef int idx[7]
        cdef int nd = self.d.nd, i
        cdef Py_ssize_t s = 1, per = batch_size(&self.d), b, o, off
        for i in range(MAX_DIMS):
            in_stride[i] = s
            s *= dim_at(&x.d, i)
        for i in range(nd):
            stride[i] = in_stride[self.perm[i]]
            idx[i] = 0
        for b in range(self.d.bd):
            off = 0
            for i in range(nd):
                idx[i] = 0
            for o in range(per):
                if backward:
                    x.grad[b * per + off] += self.grad[b * per + o]
                else:
                    self.val[b * per + o] = x.val[b * per + off]
                i = 0
                while i < nd:
                    idx[i] += 1
                    off += stride[i]
                    if idx[i] < self.d.d[i]:
                        break
                    off -= stride[i] * self.d.d[i]
                    idx[i] = 0
                    i += 1
        return 0

    def generic_select(self, xp, list xs, shape):
        return generic.transpose(xp, xs[0], [self.perm[k] for k in range(self.d.nd)], shape)




def transpose(x, dims=[1, 0]):  # no-cython-lint (DyNet's default; never mutated)
    """Swap rows and columns (or permute the axes by `dims`) of each batch element."""
    cdef Expression ex = as_expr(x, "transpose")
    if not isinstance(dims, (list, tuple)):
        dims = list(dims)
    cdef Py_ssize_t n = len(dims), i
    cdef int p
    cdef bint seen[MAX_DIMS]
    cdef Transpose node = Transpose.__new__(Transpose)
    if n > MAX_DIMS:
        raise ValueError(f"transpose: dims {list(dims)} has {n} entries; an expression has at most "
                         f"{MAX_DIMS} dimensions")
    for i in range(n):
        seen[i] = False
    for i in range(n):                        # checked in C: transpose is on per-example paths
        p = to_index(dims[i], "transpose")
        if p < 0 or p >= n or seen[p]:
            raise ValueError(f"transpose: dims {list(dims)} is not a permutation of 0..{n - 1}")
        seen[p] = True
        node.perm[i] = p
    if truncated(ex.d).nd > n:     # (trailing 1s need no place: {4,1,1} transposes to {1,4})
        raise ValueError(f"transpose: dims {list(dims)} does not cover the {ex.d.nd} dimensions "
                         f"of {dim_str(&ex.d)}")
    cdef Dim d = ex.d
    d.nd = <int>n
    for i in range(n):
        d.d[i] = dim_at(&ex.d, node.perm[i])
    return add_node(node, (ex,), d)


cdef void concat_part(bint backward, float* whole, float* part, Py_ssize_t pre, Py_ssize_t N,
                      Py_ssize_t per, Py_ssize_t bd, Py_ssize_t offset, Py_ssize_t n, Py_ssize_t xper,
                      bint batched) noexcept nogil:
    """One argument of a concatenation (n of the N entries along the axis, from `offset`; pre values
    before the axis, per values a batch element): copied into its place in the whole, or (backward)
    the whole's gradient there added into the part's."""
    cdef Py_ssize_t post = per // (pre * N), b, p, src, dst
    for b in range(bd):
        for p in range(post):
            src = (b * xper if batched else 0) + p * pre * n
            dst = b * per + p * pre * N + offset * pre
            if backward:
                add_to(pre * n, whole + dst, part + src)
            else:
                copy(pre * n, part + src, whole + dst)


cdef void concat_step(const Step* s, const Part* parts) noexcept nogil:
    cdef Py_ssize_t i, offset = 0
    for i in range(s.nparts):
        concat_part(False, s.y, <float*>parts[i].x, s.n0, s.n1, s.n2, s.n3, offset, parts[i].n0,
                    parts[i].n1, parts[i].flags)
        offset += parts[i].n0


@cython.final
@cython.no_gc
cdef class Concatenate(Mirrored):
    """The arguments side by side along `axis`; batch-1 arguments are broadcast."""
    cdef int axis

    cpdef str op_name(self):
        return "concatenate" if self.axis != 1 else "concatenate_cols"

    cdef int _run(self, bint backward) except -1:
        cdef Py_ssize_t pre = prod_before(&self.d, self.axis), N = dim_at(&self.d, self.axis)
        cdef Py_ssize_t per = batch_size(&self.d)
        cdef Py_ssize_t offset = 0, n
        cdef Expression x
        for x in self.args:
            n = dim_at(&x.d, self.axis)
            if backward:
                if x.grad != NULL:
                    concat_part(True, self.grad, x.grad, pre, N, per, self.d.bd, offset, n,
                                batch_size(&x.d), x.d.bd > 1)
            else:
                concat_part(False, self.val, x.val, pre, N, per, self.d.bd, offset, n,
                            batch_size(&x.d), x.d.bd > 1)
            offset += n
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Py_ssize_t i, nargs = len(self.args)
        cdef Step* s = L.add(concat_step, total_size(&self.d))
        cdef Part* q = L.add_parts(s, nargs)
        cdef Expression x
        s.y = self.val
        s.n0, s.n1 = prod_before(&self.d, self.axis), dim_at(&self.d, self.axis)
        s.n2, s.n3 = batch_size(&self.d), self.d.bd
        for i in range(nargs):
            x = <Expression>self.args[i]
            q[i].x = x.val
            q[i].n0 = dim_at(&x.d, self.axis)
            q[i].n1 = batch_size(&x.d)
            q[i].flags = x.d.bd > 1
        return 1

    def generic_select(self, xp, list xs, shape):
        return generic.concatenate(xp, xs, self.axis, shape)




cdef Expression make_concat(object xs, int axis, str op):
    cdef tuple args = as_expr_tuple(xs, op)
    if axis < 0 or axis >= MAX_DIMS:
        raise ValueError(f"{op}: dimension {axis} is out of range")
    cdef Expression first = <Expression>args[0], x
    cdef Dim d = first.d
    cdef int i, total = 0
    for x in args:
        for i in range(MAX_DIMS):
            if i != axis and dim_at(&x.d, i) != dim_at(&first.d, i):
                raise ValueError(f"{op}: all dimensions except {axis} must agree, got "
                                 + ", ".join([dim_str(&(<Expression>y).d) for y in args]))
        if x.d.bd != 1 and d.bd != 1 and x.d.bd != d.bd:
            raise ValueError(f"{op}: batch sizes must be 1 or equal, got "
                             + ", ".join([dim_str(&(<Expression>y).d) for y in args]))
        if x.d.bd > d.bd:
            d.bd = x.d.bd
        total += dim_at(&x.d, axis)
    d = with_size(d, axis, total)
    cdef Concatenate node = Concatenate.__new__(Concatenate)
    node.axis = axis
    return add_node(node, args, d)


def concatenate(xs, d=0):
    """Concatenate along dimension d (rows by default)."""
    return make_concat(xs, to_index(d, "concatenate"), "concatenate")


def concatenate_cols(xs):
    """Put column vectors (or matrices) side by side."""
    return make_concat(xs, 1, "concatenate_cols")


@cython.final
@cython.no_gc
cdef class PickRange(Mirrored):
    """Elements start..start+len-1 along `axis` of each batch element."""
    cdef int axis, start

    cpdef str op_name(self):
        return "pick_range"

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0]
        range_walk(backward, x.grad if backward else x.val, self.grad if backward else self.val,
                   prod_before(&x.d, self.axis), dim_at(&x.d, self.axis), dim_at(&self.d, self.axis),
                   self.start, batch_size(&x.d), self.d.bd)
        return 0

    cdef int lower(self, Lowering L) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Step* s = L.add(range_step, total_size(&self.d))
        s.y = self.val
        s.x0 = x.val
        s.n0, s.n1, s.n2, s.n3 = prod_before(&x.d, self.axis), dim_at(&x.d, self.axis), batch_size(&x.d), self.d.bd
        cdef Part* q = L.add_parts(s, 1)     # the range: its length and start
        q.n0, q.n1 = dim_at(&self.d, self.axis), self.start
        return 1

    def generic_select(self, xp, list xs, shape):
        return generic.pick_range(xp, xs[0], self.axis, self.start,
                                  self.start + dim_at(&self.d, self.axis), shape)




def pick_range(x, s, e, d=0):
    """Elements s..e-1 along dimension d."""
    cdef Expression ex = as_expr(x, "pick_range")
    s = to_index(s, "pick_range")
    e = to_index(e, "pick_range")
    d = to_index(d, "pick_range")
    if d < 0 or d >= MAX_DIMS:
        raise ValueError(f"pick_range: dimension {d} is out of range")
    cdef int n = dim_at(&ex.d, d)
    if not (0 <= s < e <= n):
        raise IndexOutOfRange(f"pick_range: range [{s}, {e}) is not inside dimension {d} of size {n} "
                         f"in {dim_str(&ex.d)}")
    cdef PickRange node = PickRange.__new__(PickRange)
    node.axis = d
    node.start = s
    cdef Dim out = with_size(ex.d, d, e - s)
    return add_node(node, (ex,), out)


def pickrange(x, s, e, d=0):
    """DyNet 2.0 name of pick_range(x, s, e, d)

    Args:
        x (dynet.Expression): input
        s (int): first index
        e (int): one past the last index
        d (int): the dimension

    Returns:
        dynet.Expression: x's elements s..e-1 along d

    Raises:
        ValueError: if the range is not inside x
    """
    return pick_range(x, s, e, d)


# ---- selecting rows, columns and batch elements ----------------------------------------------

cdef int* index_list(object idxs, int n, str what, str op, const Dim* d) except NULL:
    """The indices (a list, tuple or other iterable) as int* in the forward pool, each checked
    against the size n."""
    cdef object seq = idxs if type(idxs) is list or type(idxs) is tuple else list(idxs)
    cdef Py_ssize_t i, m = len(seq)
    cdef long v
    if m == 0:
        raise ValueError(f"{op}: the list of {what} is empty")
    cdef int* out = <int*>fwd_scratch(m)
    for i in range(m):
        try:
            v = to_index(seq[i], op)
        except TypeError:
            raise TypeError(f"{op}: expected a list of integer indices, got {idxs!r:.60}")
        if v < 0 or v >= n:
            raise IndexOutOfRange(f"{op}: index {v} is out of range for {n} {what} in {dim_str(d)}")
        out[i] = v
    return out


@cython.final
@cython.no_gc
cdef class Gather(Mirrored):
    """Entries index[0..m-1] along `axis` of each batch element (select_rows, select_cols)."""
    cdef int axis
    cdef int* index

    cpdef str op_name(self):
        return "select_rows" if self.axis == 0 else "select_cols"

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t pre = prod_before(&x.d, self.axis), n = dim_at(&x.d, self.axis)
        cdef Py_ssize_t m = dim_at(&self.d, self.axis)
        cdef Py_ssize_t post = total_size(&x.d) // (pre * n), p, i, src, dst
        if pre == 1:                         # single values (rows of vectors and matrices)
            for p in range(post):
                for i in range(m):
                    if backward:
                        x.grad[p * n + self.index[i]] += self.grad[p * m + i]
                    else:
                        self.val[p * m + i] = x.val[p * n + self.index[i]]
            return 0
        for p in range(post):                # the batch is folded into post
            for i in range(m):
                src = (p * n + self.index[i]) * pre
                dst = (p * m + i) * pre
                if backward:
                    add_to(pre, self.grad + dst, x.grad + src)
                else:
                    copy(pre, x.val + src, self.val + dst)
        return 0

    def generic_select(self, xp, list xs, shape):
        index = index_array(xp, self.index, dim_at(&self.d, self.axis))
        return generic.gather(xp, xs[0], self.axis, index, shape)




cdef Expression make_gather(object x, object idxs, int axis, str op):
    cdef Expression ex = as_expr(x, op)
    if type(idxs) is not list and (isinstance(idxs, (str, bytes)) or not hasattr(idxs, "__iter__")):
        raise TypeError(f"{op}: expected a list of indices, got {idxs!r:.40}")
    if type(idxs) is not list and type(idxs) is not tuple:
        idxs = list(idxs)
    cdef Gather node = Gather.__new__(Gather)
    node.axis = axis
    node.index = index_list(idxs, dim_at(&ex.d, axis), "rows" if axis == 0 else "columns", op, &ex.d)
    return add_node(node, (ex,), with_size(ex.d, axis, len(idxs)))


def select_rows(x, rs):
    """The rows rs (a list of indices, repeats allowed) of x, in that order."""
    return make_gather(x, rs, 0, "select_rows")


def select_cols(x, cs):
    """The columns cs (a list of indices, repeats allowed) of the matrix x, in that order."""
    cdef Expression ex = as_expr(x, "select_cols")
    if ex.d.nd > 2:
        raise ValueError(f"select_cols: expected a matrix, got {dim_str(&ex.d)}")
    return make_gather(ex, cs, 1, "select_cols")


@cython.final
@cython.no_gc
cdef class PickBatchElems(Mirrored):
    """Batch element b of the result is batch element index[b] of the argument."""
    cdef int* index

    cpdef str op_name(self):
        return "pick_batch_elems"

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef Py_ssize_t per = batch_size(&x.d), b
        for b in range(self.d.bd):
            if backward:
                add_to(per, self.grad + b * per, x.grad + self.index[b] * per)
            else:
                copy(per, x.val + self.index[b] * per, self.val + b * per)
        return 0

    def generic_select(self, xp, list xs, shape):
        return generic.gather(xp, xs[0], 7, index_array(xp, self.index, self.d.bd), shape)   # 7: the batch


cdef Expression make_pick_batch_elems(object x, list vs, str op):
    cdef Expression ex = as_expr(x, op)
    cdef PickBatchElems node = PickBatchElems.__new__(PickBatchElems)
    node.index = index_list(vs, ex.d.bd, "batch elements", op, &ex.d)
    cdef Dim d = ex.d
    d.bd = len(vs)
    return add_node(node, (ex,), d)


def pick_batch_elem(x, v):
    """Batch element v of x (a batch-1 expression)."""
    return make_pick_batch_elems(x, [v], "pick_batch_elem")


def pick_batch_elems(x, vs):
    """The batch elements vs of x, as a batch of len(vs)."""
    if isinstance(vs, (str, bytes)) or not hasattr(vs, "__iter__"):
        raise TypeError(f"pick_batch_elems: expected a list of batch indices, got {vs!r:.40}")
    return make_pick_batch_elems(x, list(vs), "pick_batch_elems")


@cython.final
@cython.no_gc
cdef class ConcatenateToBatch(Mirrored):
    """The arguments' batch elements one after another."""
    cpdef str op_name(self):
        return "concatenate_to_batch"

    cdef int _run(self, bint backward) except -1:
        cdef Py_ssize_t offset = 0, n
        cdef Expression x
        for x in self.args:
            n = total_size(&x.d)
            if backward:
                if x.grad != NULL:
                    add_to(n, self.grad + offset, x.grad)
            else:
                copy(n, x.val, self.val + offset)
            offset += n
        return 0

    def generic_select(self, xp, list xs, shape):
        return xp.concatenate([generic.axes8(x) for x in xs], axis=7).reshape(shape, order="F")




def concatenate_to_batch(xs):
    """One batched expression from expressions of the same shape (their batches in order)."""
    cdef tuple args = as_expr_tuple(xs, "concatenate_to_batch")
    cdef Expression first = <Expression>args[0], x
    cdef Dim d = first.d
    d.bd = 0
    for x in args:
        if not same_shape(&x.d, &first.d):
            raise ValueError("concatenate_to_batch: all expressions must have the same dimensions "
                             "(except the batch), got " + ", ".join([dim_str(&(<Expression>y).d) for y in args]))
        d.bd += x.d.bd
    return add_node(ConcatenateToBatch.__new__(ConcatenateToBatch), args, d)


# ---- strided selection -------------------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class StridedSelect(Mirrored):
    """x[from[0]:to[0]:stride[0], from[1]:..., ...] over the dimensions and the batch (the last
    entry). Axis MAX_DIMS is the batch; `start` is the input offset of the first element and
    `step[i]` the input distance between neighbours along output axis i."""
    cdef Py_ssize_t start
    cdef Py_ssize_t step[8]
    cdef int extent[8]

    cpdef str op_name(self):
        return "strided_select"

    cdef int _run(self, bint backward) except -1:
        cdef Expression x = <Expression>self.args[0]
        cdef int idx[8]
        cdef int i
        cdef Py_ssize_t off = self.start, o, n0 = self.extent[0], s0 = self.step[0], k
        cdef Py_ssize_t n = total_size(&self.d)
        for i in range(MAX_DIMS + 1):
            idx[i] = 0
        o = 0
        while o < n:
            # innermost axis as a typed loop, the others as an odometer
            if backward:
                for k in range(n0):
                    x.grad[off + k * s0] += self.grad[o + k]
            else:
                for k in range(n0):
                    self.val[o + k] = x.val[off + k * s0]
            o += n0
            i = 1
            while i <= MAX_DIMS:
                idx[i] += 1
                off += self.step[i]
                if idx[i] < self.extent[i]:
                    break
                off -= self.step[i] * self.extent[i]
                idx[i] = 0
                i += 1
        return 0

    def generic_select(self, xp, list xs, shape):
        return generic.strided(xp, xs[0], self.start, [self.step[k] for k in range(8)],
                               [self.extent[k] for k in range(8)], shape)




cdef list int_list(object v, str what, str op):
    if v is None:
        return []
    try:
        return [to_index(s, op) for s in v]
    except TypeError:
        raise TypeError(f"{op}: {what} must be a list of integers, got {v!r:.60}")


def strided_select(x, strides, range_from=[], range_to=[]):  # no-cython-lint (DyNet's defaults)
    """x[range_from[0]:range_to[0]:strides[0], ...] (numpy semantics, positive strides); missing
    entries select everything; one entry more than x has dimensions applies to the batch."""
    cdef Expression ex = as_expr(x, "strided_select")
    cdef list st = int_list(strides, "strides", "strided_select")
    cdef list fr = int_list(range_from, "range_from", "strided_select")
    cdef list to = int_list(range_to, "range_to", "strided_select")
    cdef int nd = ex.d.nd, i
    if max(len(st), len(fr), len(to)) > nd + 1:
        raise ValueError(f"strided_select: at most {nd + 1} entries (the {nd} dimensions of "
                         f"{dim_str(&ex.d)} and its batch), got strides {st}, from {fr}, to {to}")
    cdef StridedSelect node = StridedSelect.__new__(StridedSelect)
    cdef Dim d = ex.d
    cdef Py_ssize_t in_stride = 1
    node.start = 0
    for i in range(MAX_DIMS + 1):
        node.step[i] = 0
        node.extent[i] = 1
    cdef int axis, size, a, b, s
    for i in range(nd + 1):
        size = ex.d.d[i] if i < nd else ex.d.bd
        s = st[i] if i < len(st) else 1
        a = fr[i] if i < len(fr) else 0
        b = to[i] if i < len(to) else size
        what = f"dimension {i}" if i < nd else "the batch"
        if s < 1:
            raise ValueError(f"strided_select: strides must be >= 1, got {s} for {what} of {dim_str(&ex.d)}")
        if not (0 <= a < b <= size):
            raise IndexOutOfRange(f"strided_select: range [{a}, {b}) is not a non-empty range inside "
                             f"{what} (size {size}) of {dim_str(&ex.d)}")
        axis = i if i < nd else MAX_DIMS
        node.extent[axis] = (b - a + s - 1) // s
        node.step[axis] = in_stride * s
        node.start += in_stride * a
        in_stride *= size
        if i < nd:
            d.d[i] = node.extent[axis]
        else:
            d.bd = node.extent[axis]
    return add_node(node, (ex,), d)
