"""Setting up the BLAS (scipy's OpenBLAS): which kernels it uses and how many threads.

Kernels: OpenBLAS picks its kernels by CPU model, and on AVX-512 CPUs that it does not know as such
(e.g. AMD Zen 4) it falls back to AVX2 kernels that are 10-30% slower on the products of a typical
model. Where the CPU reports AVX-512 (F, BW, DQ, VL) and the user has not chosen
(OPENBLAS_CORETYPE unset), we ask for the SkylakeX kernels. This only works before scipy's OpenBLAS
is loaded, so `dynet` calls prefer_avx512_kernels() before importing anything that loads it; set
DYNET_BLAS_CORETYPE=default to leave OpenBLAS's own choice.

Threads:
OpenBLAS's own threading spins waiting threads; for the matrix sizes of typical DyNet models
(hundreds of rows, batches of tens) on a machine whose cores are shared, that costs far more than it
gains (a minibatched LSTM language model ran 4-100x slower with two threads on a loaded 2-core
machine). So, like DyNet's Eigen, we use one thread unless told otherwise: OPENBLAS_NUM_THREADS
(or DYNET_BLAS_THREADS) in the environment, or dy.set_blas_threads(n).
"""
import ctypes
import glob
import os
import sys

AVX512 = ("avx512f", "avx512bw", "avx512dq", "avx512vl")


def prefer_avx512_kernels():
    """Ask OpenBLAS for its AVX-512 kernels where the CPU has AVX-512 and nobody chose otherwise."""
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("DYNET_BLAS_CORETYPE", "auto") != "auto":
        return
    if "scipy.linalg" in sys.modules:     # already loaded: too late to choose
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return
    if all(flag in flags for flag in AVX512):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"

_threads_variable_set_here = False


def load_without_worker_threads():
    """OpenBLAS starts its worker threads when it is loaded, and idle workers spin for a while
    whenever they run out of work: on a 2-core machine two spinning workers (NumPy's OpenBLAS and
    scipy's) took 5% of the CPU from a per-sentence tagger that never gives them work (we use one
    thread, see above). Where nobody asked for threads, the libraries are loaded with
    OPENBLAS_NUM_THREADS=1 (no workers); restore_environment() takes the variable out again once
    they are loaded, so that child processes are not affected. set_blas_threads(n) still starts
    workers later."""
    global _threads_variable_set_here
    if any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "DYNET_BLAS_THREADS", "OMP_NUM_THREADS",
                                       "GOTO_NUM_THREADS")):
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    _threads_variable_set_here = True


def restore_environment():
    """Undo load_without_worker_threads()'s change of the environment."""
    global _threads_variable_set_here
    if _threads_variable_set_here:
        os.environ.pop("OPENBLAS_NUM_THREADS", None)
        _threads_variable_set_here = False


_setters = []


def _find_setters():
    """The thread-count setters of scipy's OpenBLAS (the typed kernels' products) and of NumPy's
    (the generic implementation's products on the CPU)."""
    if _setters:
        return _setters[0]
    found = []
    candidates = [("scipy", "scipy.libs", "libscipy_openblas*.so*",
                   ("scipy_openblas_set_num_threads", "openblas_set_num_threads")),
                  ("numpy", "numpy.libs", "libscipy_openblas64*.so*",
                   ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_"))]
    for package, libs, pattern, names in candidates:
        try:
            module = __import__(package)
            libdir = os.path.join(os.path.dirname(os.path.dirname(module.__file__)), libs)
            for path in glob.glob(os.path.join(libdir, pattern)):
                lib = ctypes.CDLL(path)
                fn = next((getattr(lib, n) for n in names if hasattr(lib, n)), None)
                if fn is not None:
                    fn.argtypes = [ctypes.c_int]
                    found.append(fn)
                    break
        except (OSError, ImportError):
            pass
    _setters.append(found)
    return found


def set_blas_threads(n):
    """Let BLAS calls use n threads. Returns False where the BLAS offers no control."""
    try:
        n = int(n)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"set_blas_threads: the number of threads must be a whole number, got {n!r:.40}") from None
    if not 1 <= n <= 4096:         # (the BLAS takes a C int: 10**30 was cut to whatever fit)
        raise ValueError(f"set_blas_threads: the number of threads must be from 1 to 4096, got {n}")
    fns = _find_setters()
    for fn in fns:
        fn(n)
    return bool(fns)


def configure_default():
    """One thread, unless the environment asks for more."""
    wanted = os.environ.get("DYNET_BLAS_THREADS") or \
        (None if _threads_variable_set_here else os.environ.get("OPENBLAS_NUM_THREADS"))
    try:
        n = int(wanted) if wanted else 1
    except ValueError:
        n = 1
    set_blas_threads(max(1, n))
