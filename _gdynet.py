"""`import _gdynet as dy`: DyNet on the GPU (through CuPy). Raises RuntimeError where no GPU can be used."""
from dynet.core.device import gpu_available as _gpu_available

_ok, _why = _gpu_available()
if not _ok:
    raise RuntimeError("_gdynet needs a GPU: " + _why)

from _dynet import *  # noqa: F401,F403,E402
