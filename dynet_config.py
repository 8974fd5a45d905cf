"""Configure DyNet before `import dynet` (the notebook way): dynet_config.set(mem=..., ...)."""
import builtins
import warnings

_KEY = "__DYNET_CONFIG"
_GPU_KEY = "__DYNET_GPU"
_importing_raw_module = False
_initialized_by_import = False    # set by `import dynet` once it has initialised from the settings


def _warn_if_too_late(name):
    # DyNet reads these settings once, at `import dynet`; later calls silently did nothing there.
    if _initialized_by_import:
        warnings.warn(f"dynet_config.{name}() after `import dynet` has no effect: DyNet was already "
                      "initialised. Call it before the first `import dynet` (in a notebook: restart "
                      "the kernel), or re-initialise explicitly with dy.DynetParams().init().",
                      RuntimeWarning, stacklevel=3)


# the levels dynet/core/config.py knows (not imported here: that would initialise dynet)
_API_LEVELS = ("2.0", "2.1", "2.2")


def set(mem="512", random_seed=0, autobatch=0, profiling=0, weight_decay=0,
        shared_parameters=0, requested_gpus=0, gpu_mask=None, api=None):
    """Remember the settings that `import dynet` will initialise with.

    Args:
        mem (str or int): memory in MB, "512" or "forward,backward,parameters" ("256,256,512")
        random_seed (int): the random seed (0: a seed from the clock)
        autobatch (int): 1 to ask for automatic batching
        profiling (int): profiling level
        weight_decay (float): L2 weight decay per update, in [0, 1)
        shared_parameters (int): 1 to share parameters between processes
        requested_gpus (int): number of GPUs wanted
        gpu_mask (list of int): which GPUs may be used: 1 at the position of each (DyNet's mask;
            [0, 1] is GPU 1 alone, as --dynet-gpu-ids 1)
        api (str): the DyNet API level: '2.0' (the default) or '2.1'/'2.2' (LSTMBuilder and
            trainer defaults as in DyNet 2.1)

    Raises:
        ValueError: if api is not a known level

    Warns:
        RuntimeWarning: when called after `import dynet`, where it has no effect.
    """
    _warn_if_too_late("set")
    if api is not None and str(api).strip() not in _API_LEVELS:
        raise ValueError(f"dynet_config.set: unknown DyNet API level api={api!r}; expected one of "
                         f"{', '.join(_API_LEVELS)}")
    if gpu_mask is not None and (isinstance(gpu_mask, (str, bytes)) or not hasattr(gpu_mask, "__iter__")):
        raise TypeError(f"dynet_config.set: gpu_mask must be a list with 0 or 1 for each GPU, got "
                        f"{gpu_mask!r:.60}")
    conf = {"mem": mem, "seed": random_seed, "autobatch": autobatch, "profiling": profiling,
            "weight_decay": weight_decay, "shared_params": shared_parameters,
            "requested_gpus": requested_gpus, "gpu_mask": list(gpu_mask) if gpu_mask else [],
            "api": api}
    setattr(builtins, _KEY, conf)


def set_gpu(flag=True):
    """Ask for a GPU at `import dynet` (a RuntimeError there if none can be used).

    Args:
        flag (bool): whether to use the GPU

    Warns:
        RuntimeWarning: when called after `import dynet`, where it has no effect.
    """
    _warn_if_too_late("set_gpu")
    setattr(builtins, _GPU_KEY, bool(flag))
    conf = get()
    if conf is None:
        set(requested_gpus=1 if flag else 0)
    else:
        conf["requested_gpus"] = 1 if flag else 0


def gpu():
    """Whether set_gpu() asked for a GPU (None if it was not called)."""
    return getattr(builtins, _GPU_KEY, None)


def get():
    """The settings given to set(), as a dict (None if set() was not called)."""
    return getattr(builtins, _KEY, None)
