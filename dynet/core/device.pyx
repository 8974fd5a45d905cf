"""Devices (DyNet's Device_CPU / Device_GPU): the seam between the graph and the memory it computes in.

A Device has a kind and an id, an array module `xp` (NumPy or CuPy), an allocator that its pools (the
forward and backward arenas) and the parameters use, `view(ptr, dim)` (an `xp` array over its memory,
shaped (dims..., batch) in Fortran order), copies to and from the host, and `host_loops`: whether the
typed CPU loops may run on it. The instances:

    CPU            the typed loops (the fast path)
    CPU, generic   NumPy with the typed loops off (DYNET_BACKEND=generic): every node, trainer rule
                   and kernel runs its generic implementation, so the GPU's code path is tested on
                   every CPU
    GPU:n          CuPy, the generic implementation with fused kernels for the hot primitives

There is one CPU device per process; whether it runs the typed or the generic implementation is the
process's backend (`set_backend`). GPUs are added by init (--dynet-gpus, --dynet-gpu-ids,
--dynet-devices, dynet_config.set_gpu, DynetParams.set_requested_gpus); the first device named is the
default device, on which parameters and inputs are put unless told otherwise.
"""
import os

cimport numpy as cnp
import numpy as np

from dynet.core.dim cimport Dim, total_size, dim_shape
from dynet.core.memory cimport Arena

cnp.import_array()

CUPY_INSTALL = ("install CuPy for CUDA 12 with `pip install 'dynet-py[gpu]'` "
                "(or `pip install cupy-cuda12x`)")


cdef class Device:
    """A computation device (DyNet's Device): kind, id, name, array module, memory pools."""

    def __init__(self, str kind, int device_id, object xp, bint host_loops, object allocator=None):
        self.kind = kind
        self.device_id = device_id
        self.name = "CPU" if kind == "CPU" else f"{kind}:{device_id}"
        self.xp = xp
        self.on_host = allocator is None
        self.host_loops = host_loops and self.on_host
        self._allocator = allocator
        self.fwd = Arena("forward", 16, allocator)
        self.bwd = Arena("backward", 16, allocator)

    def set_pool_sizes(self, size_t fwd_mb, size_t bwd_mb):
        """New forward and backward pools (--dynet-mem); only between graphs."""
        self.fwd = Arena("forward", fwd_mb, self._allocator)
        self.bwd = Arena("backward", bwd_mb, self._allocator)

    @property
    def typed(self):
        """Whether the typed CPU loops run on this device (False: the generic implementation)."""
        return self.host_loops

    # ---- memory -------------------------------------------------------------------------------
    cdef object flat_view(self, float* p, Py_ssize_t n):
        """A 1-D float32 array over n floats of this device's memory (no copy)."""
        cdef cnp.npy_intp size = n
        if self._allocator is None:
            return cnp.PyArray_SimpleNewFromData(1, &size, cnp.NPY_FLOAT32, p)
        return self._allocator.view(<size_t>p, n)

    cdef object view(self, float* p, const Dim* d):
        """The value at p of dimension d as an array shaped (dims..., batch), column-major."""
        return self.flat_view(p, total_size(d)).reshape(dim_shape(d) + (d.bd,), order="F")

    def zeros(self, Py_ssize_t n):
        """A new 1-D float32 array of n zeros in this device's memory (parameter storage)."""
        if self._allocator is None:
            return np.zeros(n, dtype=np.float32)
        return self._allocator.zeros(n)

    def pointer(self, arr):
        """The address of an array of this device (its first element)."""
        if self._allocator is None:
            return <size_t>cnp.PyArray_DATA(<cnp.ndarray?>arr)
        return int(arr.data.ptr)

    def to_host(self, arr):
        """A NumPy array with the values of `arr` (itself if it is already one)."""
        if self._allocator is None:
            return np.asarray(arr)
        return self._allocator.to_host(arr)

    def from_host(self, arr):
        """An array of this device with the values of the host array (or list) `arr`."""
        if self._allocator is None:
            return np.array(arr, dtype=np.float32)
        return self._allocator.from_host(np.asarray(arr, dtype=np.float32))

    def copy_in(self, arr):
        """An array of this device with the values of `arr`, an array of any device."""
        if self._allocator is None:
            return arr.get() if hasattr(arr, "get") and not isinstance(arr, np.ndarray) else arr
        return self._allocator.from_any(arr)

    def assign(self, dst, values):
        """dst[...] = values, for `values` a host array (or anything NumPy takes) of dst's size."""
        if self._allocator is None:
            dst[...] = values
        else:
            self._allocator.assign(dst, np.asarray(values, dtype=np.float32))

    def scatter_add(self, dst, idx, src):
        """dst[idx] += src with repeated indices accumulating (lookup gradients)."""
        if self._allocator is None:
            np.add.at(dst, idx, src)
        else:
            self._allocator.scatter_add(dst, idx, src)

    def activate(self):
        """Make this the current CUDA device (for a process with several GPUs)."""
        if self._allocator is not None:
            self._allocator.activate()

    def synchronize(self):
        if self._allocator is not None:
            self._allocator.synchronize()

    def __repr__(self):
        impl = "typed" if self.host_loops else ("generic" if self.on_host else "cupy")
        return f"<Device {self.name} ({impl})>"


class _CupyAllocator:
    """GPU memory through CuPy (its memory pool): blocks for the arenas, arrays for parameters."""

    def __init__(self, cupy, int device_id):
        self.cp = cupy
        self.device_id = device_id
        self.cuda_device = cupy.cuda.Device(device_id)
        self.live = {}                 # address -> MemoryPointer (keeps the block alive)

    def activate(self):
        self.cuda_device.use()

    def synchronize(self):
        self.cuda_device.synchronize()

    def alloc(self, size_t nbytes):
        with self.cuda_device:
            mem = self.cp.cuda.alloc(max(nbytes, 256))
        self.live[int(mem.ptr)] = mem
        return int(mem.ptr)

    def free(self, size_t ptr):
        self.live.pop(ptr, None)

    def zero(self, size_t ptr, size_t nbytes):
        with self.cuda_device:
            self.cp.cuda.runtime.memset(ptr, 0, nbytes)

    def view(self, size_t ptr, Py_ssize_t n):
        cp = self.cp
        mem = cp.cuda.UnownedMemory(ptr, max(n, 1) * 4, self, self.device_id)
        return cp.ndarray((n,), dtype=cp.float32, memptr=cp.cuda.MemoryPointer(mem, 0))

    def zeros(self, Py_ssize_t n):
        with self.cuda_device:
            return self.cp.zeros(n, dtype=self.cp.float32)

    def to_host(self, arr):
        return self.cp.asnumpy(arr)

    def from_host(self, arr):
        with self.cuda_device:
            return self.cp.asarray(arr)

    def from_any(self, arr):
        with self.cuda_device:
            return self.cp.asarray(arr)      # host arrays and other GPUs' arrays are copied

    def assign(self, dst, values):
        if values.size != dst.size:
            raise ValueError(f"cannot assign {values.size} values to {dst.size}")
        with self.cuda_device:
            dst[...] = self.cp.asarray(values.reshape(dst.shape))

    def scatter_add(self, dst, idx, src):
        import cupyx
        with self.cuda_device:
            cupyx.scatter_add(dst, idx, src)


# ---- the registry -------------------------------------------------------------------------------

# typed: the CPU's typed loops; generic: the generic implementation on NumPy; gpu: as typed, and init
# puts the default device on GPU:0 (unless the settings name devices) -- how the test suite and the
# benchmarks are run on a GPU
BACKENDS = ("typed", "generic", "gpu")
cdef Device _cpu = Device("CPU", 0, np, True)
cdef list _devices = [_cpu]        # the available devices, the default first
cdef Device _default = _cpu


cdef Device cpu_device():
    return _cpu


def cpu():
    """The CPU device."""
    return _cpu


cdef Device default_device_c():
    return _default


def default_device():
    return _default


def backend():
    """'typed' (the CPU's typed loops), 'generic' (every node's generic implementation on NumPy) or
    'gpu' (the default device is a GPU)."""
    if _default.kind == "GPU" and not _default.on_host:
        return "gpu"
    return "typed" if _cpu.host_loops else "generic"


def set_backend(name):
    """Run the CPU's typed loops ('typed') or the generic implementation on NumPy ('generic').
    Call between graphs (renew_cg), e.g. before building a model: nodes of a graph keep theirs."""
    name = str(name).strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"DYNET_BACKEND / --dynet-backend: expected one of {', '.join(BACKENDS)}, "
                         f"got {name!r}")
    _cpu.host_loops = name != "generic"


def backend_from_environment():
    """The backend DYNET_BACKEND names (default 'typed')."""
    return os.environ.get("DYNET_BACKEND", "typed") or "typed"


set_backend(backend_from_environment())    # DYNET_BACKEND=generic: the whole process, from the start


def gpu_available():
    """(True, "") where CuPy imports and CUDA sees a device, else (False, what to do about it)."""
    try:
        import cupy
    except ImportError:
        return False, "CuPy is not installed: " + CUPY_INSTALL
    except Exception as e:    # a CUDA library that fails to load
        return False, f"CuPy cannot load CUDA ({type(e).__name__}: {e}); " + CUPY_INSTALL
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return False, f"CuPy is installed but CUDA reports no usable GPU ({e})"
    if n < 1:
        return False, "CuPy is installed but CUDA reports no GPU"
    return True, ""


def _names():
    return ", ".join(d.name for d in _devices)


def parse_name(name, str what="device"):
    """('CPU', 0) or ('GPU', n) for a device name; RuntimeError for anything else."""
    text = name.decode() if isinstance(name, bytes) else name
    if not isinstance(text, str):
        raise TypeError(f"{what}: a device name must be a string such as 'CPU' or 'GPU:0', "
                        f"got {type(name).__name__}")
    t = text.strip().upper()
    if t == "CPU" or t == "CPU:0":
        return "CPU", 0
    kind, sep, num = t.partition(":")
    if kind == "GPU" and sep and num.isdigit():
        return "GPU", int(num)
    raise RuntimeError(f"Invalid device name: {text!r} ({what}); available devices: {_names()}")


cdef Device resolve(object name, str what):
    """The device called `name` (None or '' for the default device); RuntimeError naming it and the
    available devices where there is none."""
    if name is None or (isinstance(name, (str, bytes)) and not name):
        return _default
    if isinstance(name, Device):
        if name in _devices:
            return <Device>name
        name = (<Device>name).name
    elif isinstance(name, DeviceInfo):
        name = name.name
    kind, num = parse_name(name, what)
    cdef Device d
    for d in _devices:
        if d.kind == kind and d.device_id == num:
            return d
    raise RuntimeError(f"Invalid device name: {name!r} ({what}): not an available device; available "
                       f"devices: {_names()}" +
                       ("" if kind == "CPU" else
                        " (ask for GPUs with --dynet-gpus N, --dynet-gpu-ids or --dynet-devices)"))


def get_device(name=None, what="device"):
    """The Device called `name` (None: the default device)."""
    return resolve(name, what)


def _gpu_device(int device_id, int count):
    import cupy
    if not 0 <= device_id < count:
        raise RuntimeError(f"Invalid device name: 'GPU:{device_id}': CUDA sees {count} GPU(s) "
                           f"(GPU:0 to GPU:{count - 1})")
    for d in _devices:
        if d.kind == "GPU" and d.device_id == device_id:
            return d
    return Device("GPU", device_id, cupy, False, _CupyAllocator(cupy, device_id))


def configure(settings):
    """Set up the devices from init's settings: the backend, then --dynet-devices (the first named
    is the default), or --dynet-gpu-ids / --dynet-gpus (the first GPU is the default, the CPU stays
    available); the pools of each are sized by --dynet-mem (fwd, bwd MB). Returns the default."""
    global _devices, _default
    name = settings.get("backend") or backend_from_environment()
    set_backend(name)
    names = str(settings.get("devices") or "CPU")
    wanted = [n.strip() for n in names.split(",") if n.strip()] or ["CPU"]
    ids = list(settings.get("gpu_mask") or [])
    ngpus = int(settings.get("requested_gpus") or 0)
    if str(name).strip().lower() == "gpu" and not (ids or ngpus or settings.get("devices")):
        ngpus = 1
    if ngpus < 0:
        raise ValueError(f"--dynet-gpus: expected a number of GPUs >= 0, got {ngpus}")
    parsed = [parse_name(n, "--dynet-devices") for n in wanted]
    gpu_ids = [i for k, i in parsed if k == "GPU"]
    if not gpu_ids and (ids or ngpus):
        gpu_ids = ids if ids else list(range(ngpus))
        if ids and ngpus and ngpus != len(ids):
            raise ValueError(f"--dynet-gpus {ngpus} does not match --dynet-gpu-ids "
                             f"{','.join(map(str, ids))} ({len(ids)} GPUs)")
        parsed = [("GPU", i) for i in gpu_ids] + [("CPU", 0)]
    devices = []
    if gpu_ids:
        ok, why = gpu_available()
        if not ok:
            raise RuntimeError(f"DyNet GPU support was requested (GPU:{gpu_ids[0]}, by --dynet-gpus/"
                               f"--dynet-gpu-ids/--dynet-devices/dynet_config.set_gpu) but no GPU "
                               f"can be used: {why}")
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    for kind, num in parsed:
        d = _cpu if kind == "CPU" else _gpu_device(num, count)
        if d not in devices:
            devices.append(d)
    if _cpu not in devices:
        devices.append(_cpu)       # the CPU is always there (inputs are read from it, as in DyNet)
    _devices = devices
    _default = devices[0]
    return _default


def set_pool_sizes(size_t fwd_mb, size_t bwd_mb):
    """Size the pools of every device but the CPU (each thread's graph has its own CPU pools)."""
    cdef Device d
    for d in _devices:
        if d is not _cpu:
            d.set_pool_sizes(fwd_mb, bwd_mb)


def devices():
    """The available Device objects, the default first."""
    return list(_devices)


# ---- DyNet's Python API -------------------------------------------------------------------------

class DeviceInfo:
    """What DyNet tells about a device: its name ('CPU', 'GPU:0'), id and type (0 CPU, 1 GPU)."""
    CPU = 0
    GPU = 1

    def __init__(self, name, id, type):
        self.name = name
        self.id = id
        self.type = type

    def __repr__(self):
        return f"DeviceInfo(name={self.name!r}, id={self.id}, type={self.type})"


def available_devices():
    """We use the term Device to refer to a computation device (the CPU, a GPU), named 'CPU',
    'GPU:0', ... Parameters and LookupParameters are put on a device when they are made (the default
    device unless device= names one); parameter expressions live on their parameter's device, inputs
    on the device they name, other expressions on the device of their arguments (combining
    expressions of two devices is an error); dy.to_device(e, name) copies one across.
    Returns the names of the available devices, the default first."""
    return [d.name for d in _devices]


def get_device_info(name):
    """The DeviceInfo (name, id, type) of the device called `name`."""
    cdef Device d = resolve(name, "get_device_info")
    return DeviceInfo(d.name, d.device_id if d.kind == "GPU" else 0,
                      DeviceInfo.GPU if d.kind == "GPU" else DeviceInfo.CPU)


def simulate_gpu(int device_id, bint default=False):
    """Add GPU:device_id simulated on the host (NumPy memory, the generic implementation) to the
    available devices (first, as the default device, if `default`): code that spans devices
    (to_device, parameters on a GPU, the generic trainer rules, builders on a GPU) is then tested on
    a machine without a GPU. The next configure()/init removes it. Takes effect at renew_cg."""
    global _default
    d = Device("GPU", device_id, np, False)
    if default:
        _devices.insert(0, d)
        _default = d
    else:
        _devices.append(d)
