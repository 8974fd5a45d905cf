"""Which devices can be used. The CPU always; a GPU through CuPy when it imports and sees a device."""


def gpu_available():
    try:
        import cupy
    except Exception as e:  # ImportError, or a CUDA library that fails to load
        return False, f"CuPy is not installed or cannot load CUDA ({type(e).__name__}: {e})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return False, f"CUDA reports no usable device ({e})"
    if n < 1:
        return False, "CUDA reports no device"
    return True, ""
