"""Averaging float32 buffers in place, for dynet.distributed's shared-memory exchange: each rank
averages its share of every rank's gradient (a reduce-scatter) and writes the result back into all
of them, in one pass that reads each value once and writes each once."""
cimport cython
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef enum:
    BLOCK = 2048            # floats summed in a buffer on the stack (8 KB: stays in L1)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void average_block(float** bufs, int n, Py_ssize_t start, Py_ssize_t count, float scale,
                        float* acc) noexcept nogil:
    cdef Py_ssize_t i
    cdef int r
    cdef float* src = bufs[0] + start
    for i in range(count):
        acc[i] = src[i] * scale
    for r in range(1, n):
        src = bufs[r] + start
        for i in range(count):
            acc[i] += src[i] * scale
    for r in range(n):
        memcpy(bufs[r] + start, acc, count * sizeof(float))


def average_in_place(list buffers, Py_ssize_t start, Py_ssize_t stop, float scale):
    """buffers[r][start:stop] = sum over r of buffers[r][start:stop] * scale, for every r: the
    ranks' values, each multiplied by `scale` (1 / the number of ranks), summed in rank order, so
    every buffer ends with the same bits. buffers: writable contiguous 1-D float32 arrays."""
    cdef int n = len(buffers), r
    if n == 0:
        return
    cdef Py_ssize_t size = -1, pos, count
    for b in buffers:
        if (not isinstance(b, np.ndarray) or b.dtype != np.float32 or b.ndim != 1
                or not b.flags.c_contiguous or not b.flags.writeable):
            raise ValueError(f"average_in_place: expected writable contiguous 1-D float32 arrays, "
                             f"got {b!r:.60}")
        if size >= 0 and b.size != size:
            raise ValueError(f"average_in_place: buffers of {size} and {b.size} values")
        size = b.size
    if not 0 <= start <= stop <= size:
        raise ValueError(f"average_in_place: range {start}:{stop} outside buffers of {size} values")
    cdef float** bufs = <float**>malloc(n * sizeof(float*))
    if bufs == NULL:
        raise MemoryError("average_in_place")
    cdef float acc[BLOCK]
    for r in range(n):
        bufs[r] = <float*>cnp.PyArray_DATA(buffers[r])
    with nogil:
        pos = start
        while pos < stop:
            count = min(BLOCK, stop - pos)
            average_block(bufs, n, pos, count, scale, acc)
            pos += count
    free(bufs)
