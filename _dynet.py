"""`import _dynet as dy`: DyNet's API without initialising; call dy.init() or DynetParams().init()."""
import dynet_config as _dynet_config

_dynet_config._importing_raw_module = True
try:
    from dynet._dynet import *  # noqa: F401,F403
    from dynet._dynet import _initialize  # noqa: F401
finally:
    _dynet_config._importing_raw_module = False
