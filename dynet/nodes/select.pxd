from dynet.core.graph cimport Expression

# pick and pick_batch (batched: one index per batch element), for e[i] (operators.pyx)
cdef Expression make_pick(object e, object indices, int axis, bint batched, str op)
