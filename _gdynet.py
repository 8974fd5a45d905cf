"""`import _gdynet as dy`: DyNet on the GPU (through CuPy), as DyNet's GPU build of _dynet.

Like `import _dynet`, it does not initialise: dy.init() or DynetParams().init() then put the graph,
the pools and the parameters on GPU:0 unless the settings name other devices (--dynet-gpus,
--dynet-gpu-ids, --dynet-devices). Importing it raises RuntimeError where no GPU can be used, saying
what to install or that CUDA sees no GPU.
"""
from dynet.core.device import gpu_available as _gpu_available

_ok, _why = _gpu_available()
if not _ok:
    raise RuntimeError("_gdynet needs a GPU: " + _why)

from _dynet import *  # noqa: F401,F403,E402
from _dynet import _initialize  # noqa: F401,E402
from dynet.core import config as _config  # noqa: E402

_config.state["gpu_module"] = True
