"""Load the reference DyNet (PyPI `dynet38`) beside this package, for oracle tests and benchmarks.

dynet38 ships top-level modules named `dynet`, `_dynet` and `dynet_config`, the same names as ours,
so it is never installed into site-packages next to us: `python -m tests.oracle.install` puts it in
`.oracle/` (or $DYNET_ORACLE_DIR), and `load()` imports its extension module by path under another
name, leaving our `_dynet` in sys.modules untouched.
"""
import glob
import importlib.machinery
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_cached = []


def oracle_dir():
    return os.environ.get("DYNET_ORACLE_DIR") or os.path.join(ROOT, ".oracle")


def load(seed=1, autobatch=0):
    """The reference _dynet module, initialised (with --dynet-autobatch `autobatch`), or None where
    dynet38 is not installed. The first call initialises it; later calls return the same module."""
    if _cached:
        return _cached[0]
    found = glob.glob(os.path.join(oracle_dir(), "_dynet*.so"))
    if not found:
        _cached.append(None)
        return None
    saved = sys.modules.pop("_dynet", None)
    try:
        loader = importlib.machinery.ExtensionFileLoader("_dynet", found[0])
        spec = importlib.util.spec_from_file_location("_dynet", found[0], loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    finally:
        sys.modules.pop("_dynet", None)
        if saved is not None:
            sys.modules["_dynet"] = saved
    params = module.DynetParams()
    params.set_random_seed(seed)
    params.set_mem(1024)
    if autobatch:
        params.set_autobatch(autobatch)
    params.init()
    _cached.append(module)
    return module
