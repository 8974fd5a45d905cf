# Devices: where values, gradients and parameters live, and which implementation of a node runs there.
from dynet.core.dim cimport Dim
from dynet.core.memory cimport Arena


cdef class Device:
    cdef readonly str kind          # "CPU" or "GPU"
    cdef readonly int device_id     # the GPU's CUDA id (0 for the CPU)
    cdef readonly str name          # "CPU", "GPU:0"
    cdef readonly object xp         # the array module: numpy or cupy
    cdef readonly bint on_host      # its memory is host memory (a raw pointer may be read)
    cdef bint host_loops            # the typed CPU loops run here (else the generic implementation)
    cdef public Arena fwd           # node values
    cdef public Arena bwd           # node gradients
    cdef object _allocator          # None (host memory) or the CuPy allocator

    cdef object view(self, float* p, const Dim* d)
    cdef object flat_view(self, float* p, Py_ssize_t n)


cdef Device cpu_device()
cdef Device default_device_c()      # where leaves go unless they name a device
cdef Device resolve(object name, str what)
