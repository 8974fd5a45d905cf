"""Configure DyNet before `import dynet` (the notebook way): dynet_config.set(mem=..., ...)."""
import builtins

_KEY = "__DYNET_CONFIG"
_GPU_KEY = "__DYNET_GPU"
_importing_raw_module = False
# the levels dynet/core/config.py knows (not imported here: that would initialise dynet)
_API_LEVELS = ("2.0", "2.1", "2.2")


def set(mem="512", random_seed=0, autobatch=0, profiling=0, weight_decay=0,
        shared_parameters=0, requested_gpus=0, gpu_mask=None, api=None):
    """Remember the settings that `import dynet` will initialise with. `api` is the DyNet API level
    ('2.0', the default, or '2.1'/'2.2': LSTMBuilder and trainer defaults as in DyNet 2.1)."""
    if api is not None and str(api).strip() not in _API_LEVELS:
        raise ValueError(f"dynet_config.set: unknown DyNet API level api={api!r}; expected one of "
                         f"{', '.join(_API_LEVELS)}")
    conf = {"mem": mem, "seed": random_seed, "autobatch": autobatch, "profiling": profiling,
            "weight_decay": weight_decay, "shared_params": shared_parameters,
            "requested_gpus": requested_gpus, "gpu_mask": list(gpu_mask) if gpu_mask else [],
            "api": api}
    setattr(builtins, _KEY, conf)


def set_gpu(flag=True):
    """Ask for a GPU at `import dynet` (a RuntimeError there if none can be used)."""
    setattr(builtins, _GPU_KEY, bool(flag))
    conf = get()
    if conf is None:
        set(requested_gpus=1 if flag else 0)
    else:
        conf["requested_gpus"] = 1 if flag else 0


def gpu():
    return getattr(builtins, _GPU_KEY, None)


def get():
    return getattr(builtins, _KEY, None)
