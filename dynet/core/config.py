"""Global configuration: DynetParams, the --dynet-* command-line flags, and the random generator.

Everything random in the library (initializers, dropout, noise, random_* inputs) draws from one
NumPy generator seeded by --dynet-seed, so the same seed gives the same run twice.
"""
import time

import numpy as np

# What the library was initialised with (DynetParams.init fills it).
state = {"initialized": False, "mem": "512", "seed": 0, "weight_decay": 0.0, "autobatch": 0,
         "profiling": 0, "shared_parameters": False, "requested_gpus": 0, "gpu_mask": [],
         "devices": "CPU", "backend": None, "viz": False, "gpu_module": False, "api": "2.0"}

_rng = np.random.default_rng(0)


def rng():
    """The library's random generator (numpy.random.Generator)."""
    return _rng


def reseed(seed):
    global _rng
    if not seed:
        seed = (int(time.time() * 1e6) ^ id(state)) & 0xFFFFFFFF
    _rng = np.random.default_rng(seed)
    state["seed"] = seed


class MemSizes(tuple):
    """--dynet-mem in MB: (forward, backward, parameters, scratch), DyNet 2.1's four pools."""
    __slots__ = ()

    def __new__(cls, sizes):
        return tuple.__new__(cls, sizes)

    forward = property(lambda self: self[0])
    backward = property(lambda self: self[1])
    parameters = property(lambda self: self[2])
    scratch = property(lambda self: self[3])


def parse_mem(value, flag="--dynet-mem"):
    """Every form DyNet took, in MB: one total (split in four equal pools, as DyNet 2.1), DyNet
    2.0's 'forward,backward,parameters' (the scratch pool then gets their mean), or DyNet 2.1's
    'forward,backward,parameters,scratch'. Returns MemSizes."""
    text = str(value).strip()
    parts = text.split(",")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{flag}: expected a number of MB, 'forward,backward,parameters' or "
                         f"'forward,backward,parameters,scratch' MB, got {text!r}")
    if any(s <= 0 for s in sizes):
        raise ValueError(f"{flag}: memory sizes must be positive MB, got {text!r}")
    if any(s >= 2**43 for s in sizes):          # 2**63 bytes: past any address space (and a C size)
        raise ValueError(f"{flag}: {max(sizes)} MB is more memory than a machine can address")
    if len(sizes) == 1:
        return MemSizes([max(1, sizes[0] // 4)] * 4)
    if len(sizes) == 3:
        return MemSizes(sizes + [max(1, sum(sizes) // 3)])
    if len(sizes) == 4:
        return MemSizes(sizes)
    raise ValueError(f"{flag}: expected one, three or four sizes in MB (total; forward,backward,"
                     f"parameters; forward,backward,parameters,scratch), got {len(sizes)}: {text!r}")


def whole_number(value, what, high=2**31 - 1):
    """value as an int in [0, high] (high None: no bound), else an error naming the setting and
    the value (the C level takes ints: 10**20 was an OverflowError naming nothing)."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{what}: expected a whole number, got {value!r:.60}") from None
    if number < 0 or high is not None and number > high:
        raise ValueError(f"{what}: expected a whole number from 0{f' to {high}' if high else ''}, "
                         f"got {value!r:.60}")
    return number


# flag name -> (state key, parser, takes a value)
def _int(flag):
    def parse(v):
        try:
            return int(v)
        except (TypeError, ValueError):
            raise ValueError(f"{flag}: expected an integer, got {v!r}")
    return parse


def _float(flag):
    def parse(v):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{flag}: expected a number, got {v!r}")
        return f
    return parse


def _mem(v):
    parse_mem(v)
    return str(v)


def _gpu_ids(v):
    try:
        return [int(x) for x in str(v).split(",")]
    except ValueError:
        raise ValueError(f"--dynet-gpu-ids: expected a comma-separated list of GPU ids, got {v!r}")


FLAGS = {
    "mem": ("mem", _mem, True),
    "seed": ("seed", _int("--dynet-seed"), True),
    "weight-decay": ("weight_decay", _float("--dynet-weight-decay"), True),
    "autobatch": ("autobatch", _int("--dynet-autobatch"), True),
    "profiling": ("profiling", _int("--dynet-profiling"), True),
    "gpus": ("requested_gpus", _int("--dynet-gpus"), True),
    "gpu-ids": ("gpu_mask", _gpu_ids, True),
    "devices": ("devices", str, True),
    "backend": ("backend", str, True),
    "gpu": ("requested_gpus", None, False),
    "viz": ("viz", None, False),
    "api": ("api", lambda v: parse_api(v, "--dynet-api"), True),
    "shared-parameters": ("shared_parameters", None, False),
}


# The flags that DyNet's Python module itself takes out of sys.argv (its dynet.py: --dynet-viz picks
# the drawing module, --dynet-gpu the GPU one). The others stay there: DyNet's C++ initialize
# consumes a copy, so DyNet programs declare them to their own parser (`--dynet-seed`, ...) and
# some read them back from it.
PYTHON_SWITCHES = ("viz", "gpu")


def parse_args(argv, remove=True):
    """Read the --dynet-* flags (also --dynet_*, and --flag=value) from argv.

    Returns a dict of settings; with remove=True the Python-level switches (PYTHON_SWITCHES) are
    deleted from argv in place, as DyNet does; the other flags stay for the program's own parser.
    """
    found = {}
    i = 1
    keep = list(argv[:1])
    while i < len(argv):
        arg = argv[i]
        if not isinstance(arg, str) or not (arg.startswith("--dynet-") or arg.startswith("--dynet_")):
            keep.append(arg)
            i += 1
            continue
        name, eq, inline = arg[len("--dynet-"):].partition("=")
        name = name.replace("_", "-")
        if name not in FLAGS:
            raise ValueError(f"unknown DyNet flag {arg!r}; known: "
                             + ", ".join("--dynet-" + f for f in sorted(FLAGS)))
        key, parse, takes_value = FLAGS[name]
        if not takes_value:
            found[key] = 1 if key == "requested_gpus" else True
            if name not in PYTHON_SWITCHES:
                keep.append(arg)
            i += 1
            continue
        if eq:
            value = inline
            keep.append(arg)
            i += 1
        else:
            if i + 1 >= len(argv) or (isinstance(argv[i + 1], str) and argv[i + 1].startswith("--")):
                raise ValueError(f"{arg} needs a value")
            value = argv[i + 1]
            keep.extend(argv[i:i + 2])
            i += 2
        found[key] = parse(value)
    if remove:
        argv[:] = keep
    return found


# ---- the DyNet API level ---------------------------------------------------------------------
# A few names mean different things in DyNet 2.0 (our spec) and in 2.1/2.2 (what most code in the
# wild is written for): LSTMBuilder, MomentumSGDTrainer's and CyclicalSGDTrainer's defaults. The
# level is chosen by dynet_config.set(api=...), --dynet-api, DynetParams.set_api or $DYNET_API.
API_LEVELS = {"2.0": "2.0", "2.1": "2.1", "2.2": "2.1"}


def parse_api(value, where="api"):
    """'2.0', '2.1' or '2.2' (2.2 behaves as 2.1), as a string or a number -> '2.0' or '2.1'."""
    level = API_LEVELS.get(str(value).strip())
    if level is None:
        raise ValueError(f"{where}: unknown DyNet API level {value!r}; expected one of "
                         f"{', '.join(API_LEVELS)}")
    return level


def default_api():
    """The level from $DYNET_API, else 2.0."""
    import os
    env = os.environ.get("DYNET_API")
    return parse_api(env, "$DYNET_API") if env else "2.0"


def api_2_1():
    """Whether the 2.1/2.2 meanings of LSTMBuilder and the trainers' defaults are in force."""
    return state.get("api", "2.0") == "2.1"
