"""Dimension helpers: construction from Python shapes, comparison, and DyNet's `{3,4}X2` printing."""
from libc.string cimport memset
from itertools import islice
from math import isfinite
from numbers import Real


cdef Dim make_dim(object shape, int bd=1, bint allow_empty=False) except *:
    """Build a Dim from an int or a sequence of ints; errors name the bad value. allow_empty: sizes
    of 0 are allowed (a parameter may be empty, as in DyNet; an expression may not)."""
    cdef Dim out
    memset(&out, 0, sizeof(Dim))
    if isinstance(shape, int) or (not isinstance(shape, (tuple, list)) and isinstance(shape, Real)
                                  and not hasattr(shape, "__len__")):
        shape = (shape,)
    cdef bint read_all = isinstance(shape, (tuple, list))
    if read_all:
        shape = tuple(shape)
    else:
        # any other iterable: read no more than a dimension can have (an expression of a billion
        # values, or an endless generator, would otherwise fill the memory before the check)
        try:
            shape = tuple(islice(iter(shape), MAX_DIMS + 1))
        except TypeError:
            raise TypeError(f"dimension must be an int or a tuple of ints, got {type(shape).__name__}")
    if len(shape) > MAX_DIMS:
        raise ValueError(f"DyNet tensors have at most {MAX_DIMS} dimensions, got {len(shape)}"
                         f"{'' if read_all else ' or more'}: {shape}")
    cdef int i
    for i, s in enumerate(shape):
        if not isinstance(s, int):
            if isinstance(s, Real) and not hasattr(s, "__index__"):
                # DyNet truncates a float size (sizes computed with / in Python 2-era code)
                if not isfinite(s):
                    raise ValueError(f"dimension sizes must be finite, got {s!r} in {shape}")
            elif not hasattr(s, "__index__"):
                raise TypeError(f"dimension sizes must be integers, got {s!r} in {shape}")
            s = int(s)
        if s <= 0 and not (s == 0 and allow_empty):
            raise ValueError(f"dimension sizes must be positive, got {s} in {shape}")
        if s > 2**31 - 1:
            raise ValueError(f"dimension size {s} is too large")
        out.d[i] = s
    out.nd = len(shape)
    if bd <= 0:
        raise ValueError(f"batch size must be positive, got {bd}")
    out.bd = bd
    return out


cdef Dim make_dim2(int a, int b, int bd) noexcept:
    cdef Dim out
    memset(&out, 0, sizeof(Dim))
    out.d[0] = a
    out.d[1] = b
    out.nd = 2
    out.bd = bd
    return out


cdef Dim make_dim1(int a, int bd) noexcept:
    cdef Dim out
    memset(&out, 0, sizeof(Dim))
    out.d[0] = a
    out.nd = 1
    out.bd = bd
    return out


cdef tuple dim_shape(const Dim* d):
    return tuple([d.d[i] for i in range(d.nd)])


cdef str dim_str(const Dim* d):
    s = "{" + ",".join([str(d.d[i]) for i in range(d.nd)]) + "}"
    if d.bd > 1:
        s += "X" + str(d.bd)
    return s


cdef Dim truncated(Dim d) noexcept:
    """Drop trailing dimensions of size 1 ({3,1} is {3}), keeping at least one."""
    while d.nd > 1 and d.d[d.nd - 1] == 1:
        d.nd -= 1
    return d


cdef bint same_shape(const Dim* a, const Dim* b) noexcept:
    """Same per-batch-element shape, ignoring trailing 1s (DyNet treats {3} and {3,1} alike)."""
    cdef Dim ta = truncated(a[0])
    cdef Dim tb = truncated(b[0])
    if ta.nd != tb.nd:
        return False
    cdef int i
    for i in range(ta.nd):
        if ta.d[i] != tb.d[i]:
            return False
    return True
