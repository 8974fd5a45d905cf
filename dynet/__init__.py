"""DyNet's Python API, re-implemented: `import dynet as dy`.

Importing the package initialises it, as DyNet does: from `dynet_config.set(...)` if that was called
before the import (the notebook way), else from the --dynet-* flags of sys.argv (which stay there,
as with DyNet, but for the Python-level switches --dynet-viz and --dynet-gpu).
`import _dynet` gives the same API without initialising (call dy.init() or DynetParams().init()).
"""
import sys as _sys

from dynet.kernels import blas_setup as _blas_setup
_blas_setup.prefer_avx512_kernels()   # before anything loads scipy's OpenBLAS
_blas_setup.load_without_worker_threads()

import dynet_config as _dynet_config  # noqa: E402
try:
    from dynet._dynet import *  # noqa: E402,F401,F403
finally:
    _blas_setup.restore_environment()
from dynet import _dynet as _impl  # noqa: E402

from dynet._version import __package_version__  # noqa: E402

# DyNet code checks dynet.__version__ for the DyNet API level; this package's own release number is
# dynet.__package_version__ (also `importlib.metadata.version("dynet-py")` when installed).
__version__ = "2.1"

if not getattr(_dynet_config, "_importing_raw_module", False):
    _conf = _dynet_config.get()
    _params = _impl.DynetParams()
    if _conf is None:
        _params.from_args()
    else:
        _params.from_config(_conf)
        _params._settings.update(_impl._config.parse_args(_sys.argv))
        if _dynet_config.gpu():
            _params.set_requested_gpus(1)
    _params.init()
    _dynet_config._initialized_by_import = True
