"""How many threads the BLAS (scipy's OpenBLAS) may use.

OpenBLAS's own threading spins waiting threads; for the matrix sizes of typical DyNet models
(hundreds of rows, batches of tens) on a machine whose cores are shared, that costs far more than it
gains (a minibatched LSTM language model ran 4-100x slower with two threads on a loaded 2-core
machine). So, like DyNet's Eigen, we use one thread unless told otherwise: OPENBLAS_NUM_THREADS
(or DYNET_BLAS_THREADS) in the environment, or dy.set_blas_threads(n).
"""
import ctypes
import glob
import os

_setter = []


def _find_setter():
    if _setter:
        return _setter[0]
    fn = None
    try:
        import scipy
        libdir = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
        for path in glob.glob(os.path.join(libdir, "libscipy_openblas*.so*")):
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
                if hasattr(lib, name):
                    fn = getattr(lib, name)
                    fn.argtypes = [ctypes.c_int]
                    break
            if fn:
                break
    except OSError:
        fn = None
    _setter.append(fn)
    return fn


def set_blas_threads(n):
    """Let BLAS calls use n threads. Returns False where the BLAS offers no control."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_blas_threads: the number of threads must be >= 1, got {n}")
    fn = _find_setter()
    if fn is None:
        return False
    fn(n)
    return True


def configure_default():
    """One thread, unless the environment asks for more."""
    wanted = os.environ.get("DYNET_BLAS_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS")
    try:
        n = int(wanted) if wanted else 1
    except ValueError:
        n = 1
    set_blas_threads(max(1, n))
