"""DyNet's Python API, in the sections and order of the original _dynet.pyx.

This module is the readable face of the library: it gathers the public names from the modules that
implement them (dynet/core, dynet/nodes, dynet/builders, dynet/training, dynet/io).
"""
import sys as _sys

from dynet.core import config as _config
from dynet.core import graph as _graph
from dynet.core import device as _device
from dynet.core import execution as _execution
from dynet.core import memory as _memory
from dynet.core import parampool as _parampool
from dynet.kernels.blas_setup import set_blas_threads, configure_default as _configure_blas

_configure_blas()

# ---- Initialisation: DynetParams, init, init_from_params --------------------------------------

def _gpu_ids_of_mask(mask, what):
    """DyNet's GPU mask (mask[i] nonzero: GPU i may be used) as the GPU ids that --dynet-gpu-ids
    gives (the settings keep ids under "gpu_mask")."""
    if isinstance(mask, (str, bytes)) or not hasattr(mask, "__iter__"):
        raise TypeError(f"{what}: expected a list with 0 or 1 for each GPU, got {mask!r:.60}")
    return [i for i, m in enumerate(mask) if _config.whole_number(m, what, 1)]


class DynetParams:
    """The global settings of DyNet, to be set before init() (with `import _dynet`)."""

    def __init__(self):
        self._settings = {}

    def from_args(self, shared_parameters=None):
        """Read the --dynet-* flags from sys.argv (leaving them there, but for --dynet-viz and
        --dynet-gpu, as DyNet does)."""
        self._settings.update(_config.parse_args(_sys.argv))
        if shared_parameters is not None:
            self._settings["shared_parameters"] = bool(shared_parameters)

    def from_config(self, conf):
        """Settings from dynet_config.set(...)."""
        mapping = {"mem": "mem", "seed": "seed", "autobatch": "autobatch", "profiling": "profiling",
                   "weight_decay": "weight_decay", "shared_params": "shared_parameters",
                   "requested_gpus": "requested_gpus", "api": "api"}   # (gpu_mask: below)
        if not hasattr(conf, "items"):
            raise TypeError(f"DynetParams.from_config: expected a dict of settings (as "
                            f"dynet_config.get() gives), got {type(conf).__name__}")
        for k, v in conf.items():
            if k in mapping and v is not None:
                self._settings[mapping[k]] = v
        if "gpu_mask" in conf and conf["gpu_mask"] is not None:
            self._settings["gpu_mask"] = _gpu_ids_of_mask(conf["gpu_mask"], "dynet_config.set(gpu_mask=...)")
        if "mem" in self._settings:
            _config.parse_mem(self._settings["mem"], "dynet_config.set(mem=...)")
        if "api" in self._settings:
            self._settings["api"] = _config.parse_api(self._settings["api"], "dynet_config.set(api=...)")

    def set_mem(self, mem):
        """One size in MB, DyNet 2.0's 'forward,backward,parameters' or 2.1's
        'forward,backward,parameters,scratch' (a string, or a list/tuple of numbers)."""
        if isinstance(mem, (list, tuple)):
            mem = ",".join(str(m) for m in mem)
        _config.parse_mem(mem, "DynetParams.set_mem")
        self._settings["mem"] = str(mem)

    def set_random_seed(self, random_seed):
        """Set the random seed

        Args:
            random_seed (int): the seed (0: one from the clock)
        """
        self._settings["seed"] = _config.whole_number(random_seed, "DynetParams.set_random_seed", None)

    def set_weight_decay(self, weight_decay):
        """Set the L2 weight decay applied at every update

        Args:
            weight_decay (float): lambda, in [0, 1)

        Raises:
            ValueError: if weight_decay is not in [0, 1)
        """
        if not 0 <= weight_decay < 1:
            raise ValueError(f"set_weight_decay: weight decay must be in [0, 1), got {weight_decay}")
        self._settings["weight_decay"] = float(weight_decay)

    def set_shared_parameters(self, shared_parameters):
        """Set whether parameters are shared between processes

        Args:
            shared_parameters (bool): share them
        """
        self._settings["shared_parameters"] = bool(shared_parameters)

    def set_devices(self, devices):
        """Devices to use, e.g. "CPU,GPU:0" (the first is the default), as --dynet-devices."""
        self._settings["devices"] = str(devices)

    def set_backend(self, backend):
        """'typed' (default) or 'generic' (the generic implementation on NumPy), as DYNET_BACKEND."""
        name = str(backend).strip().lower()
        if name not in _device.BACKENDS:
            raise ValueError(f"DynetParams.set_backend: expected one of {', '.join(_device.BACKENDS)}, "
                             f"got {backend!r}")
        self._settings["backend"] = name

    def set_requested_gpus(self, requested_gpus):
        """Set the number of GPUs to use

        Args:
            requested_gpus (int): how many GPUs
        """
        self._settings["requested_gpus"] = _config.whole_number(requested_gpus, "DynetParams.set_requested_gpus")

    def set_gpu_mask(self, mask):
        """Set which GPUs may be used

        Args:
            mask (list of int): 1 for each usable GPU
        """
        self._settings["gpu_mask"] = _gpu_ids_of_mask(mask, "DynetParams.set_gpu_mask")

    def set_autobatch(self, autobatch):
        """Set automatic batching

        Args:
            autobatch (int): 1 to turn it on
        """
        self._settings["autobatch"] = _config.whole_number(autobatch, "DynetParams.set_autobatch")

    def set_profiling(self, profiling):
        """Set the profiling level

        Args:
            profiling (int): the level (0: none)
        """
        self._settings["profiling"] = _config.whole_number(profiling, "DynetParams.set_profiling")

    def set_api(self, api):
        """The DyNet API level, '2.0' (the default) or '2.1'/'2.2': under 2.1, LSTMBuilder is the
        VanillaLSTMBuilder and the trainers take DyNet 2.1's defaults (see the README)."""
        self._settings["api"] = _config.parse_api(api, "DynetParams.set_api")

    def init(self):
        """Initialise DyNet with these settings (may be called again to re-initialise)."""
        _initialize(self._settings)


def _initialize(settings):
    settings = dict(settings)
    if _config.state.get("gpu_module") and not (settings.get("requested_gpus") or
                                                 settings.get("gpu_mask") or settings.get("devices")):
        settings["requested_gpus"] = 1        # `import _gdynet`: the GPU unless told otherwise
    if "weight_decay" in settings and not 0 <= float(settings["weight_decay"]) < 1:
        raise ValueError(f"--dynet-weight-decay must be in [0, 1), got {settings['weight_decay']}")
    settings["api"] = _config.parse_api(settings["api"], "api") if "api" in settings else \
        _config.default_api()
    for key, high in (("seed", None), ("autobatch", 2**31 - 1), ("profiling", 2**31 - 1),
                      ("requested_gpus", 2**31 - 1)):
        if key in settings:       # (from flags and dynet_config as well as from the setters)
            settings[key] = _config.whole_number(settings[key], key, high)
    mem = _config.parse_mem(settings.get("mem", "512"))
    shared = bool(settings.get("shared_parameters", False))
    if _config.state["initialized"] and shared != bool(_config.state["shared_parameters"]):
        raise RuntimeError(f"shared_parameters={shared}: DyNet is already initialised with "
                           f"shared_parameters={bool(_config.state['shared_parameters'])}; it can only "
                           f"be chosen at the first initialisation (--dynet-shared-parameters, "
                           f"dynet_config.set(shared_parameters=...), or DynetParams before "
                           f"`import dynet` initialises)")
    _device.configure(settings)               # the devices, the default first, and the backend
    _graph.set_pool_sizes(mem.forward, mem.backward)
    _memory.reserve_work_buffer(mem.scratch)
    _parampool.configure(mem.parameters, shared)
    _graph.set_viz(settings.get("viz", False))
    _config.state.update(settings)
    _config.reseed(int(settings.get("seed", 0)))
    _execution.configure(_config.state["autobatch"], _config.state["profiling"])
    _config.state["initialized"] = True


def init(shared_parameters=None):
    """Initialise from the command line's --dynet-* flags (for `import _dynet`)."""
    p = DynetParams()
    p.from_args(shared_parameters)
    p.init()


def init_from_params(params):
    """Initialise DyNet with the settings of a DynetParams

    Args:
        params (DynetParams): the settings (same as params.init())
    """
    params.init()


# ---- Devices (DyNet 2.1) -----------------------------------------------------------------------

from dynet.core.device import available_devices, get_device_info, DeviceInfo
from dynet.nodes.transfer import to_device


def reset_random_seed(seed):
    """Reseed the library's random generator."""
    _config.reseed(_config.whole_number(seed, "reset_random_seed", None))


# ---- ParameterCollection / Model, Parameters, initializers ------------------------------------

from dynet.core.collection import ParameterCollection, Model
from dynet.core.params import (Parameters, LookupParameters,
                               parameter, const_parameter, lookup, lookup_batch, const_lookup)
from dynet.core.initializers import (PyInitializer, NormalInitializer, UniformInitializer,
                                     ConstInitializer, IdentityInitializer, GlorotInitializer,
                                     SaxeInitializer, FromFileInitializer, NumpyInitializer)

# ---- ComputationGraph -------------------------------------------------------------------------

from dynet.core.graph import ComputationGraph, Expression, Tensor, cg, renew_cg


def cg_version():
    """The version of the current computation graph

    renew_cg() increments it; an Expression remembers the version it was made in.

    Returns:
        int: the version number
    """
    return _graph.cg().version()


def cg_checkpoint():
    """Mark the current state of the computation graph

    cg_revert() later removes every node added after this point (checkpoints nest).
    """
    _graph.cg().checkpoint()


def cg_revert():
    """Go back to the last cg_checkpoint()

    Nodes added since the checkpoint are removed; Expressions for them become stale.

    Raises:
        RuntimeError: if there is no checkpoint
    """
    _graph.cg().revert()


def print_text_graphviz():
    """Print the current computation graph in Graphviz's DOT language

    One node per expression, labelled "vN = operation(arguments) {dimensions}".
    """
    print(_graph.cg().print_graphviz())


def _has_item(names, row):
    try:
        names[row]
    except (KeyError, IndexError, TypeError):
        return False
    return True


def print_graphviz(compact=False, show_dims=True, expression_names=None, lookup_names=None,
                   collapse_birnns=False):
    """With --dynet-viz: draw the current graph in Graphviz's dot language. expression_names:
    {Expression, Parameters or LookupParameters: name} (a parameter's name labels its nodes, a
    table's its lookups, "E[3]"); lookup_names: a name per row, {LookupParameters or the table's
    name in expression_names: [names] or {row: name}}, to label lookups. collapse_birnns (DyNet
    draws a BiRNN's two states at a position as one box) draws the graph whole: a BiRNN here is
    its builders' nodes, with no state nodes to merge. Without --dynet-viz, as DyNet, only says
    how to get it."""
    if not _graph.viz_enabled():
        print("Run with --dynet-viz to get the visualization behavior.")
        return
    names, sources = {}, {}
    for key, name in dict(expression_names or {}).items():
        (sources if isinstance(key, (Parameters, LookupParameters)) else names)[key] = str(name)
    lookup_names = dict(lookup_names or {})
    for e, _ in _graph.cg().nodes_list():
        if e in names:
            continue
        looked_up = getattr(e, "looked_up", None)          # lookup nodes: (table, rows)
        if looked_up is not None:
            table, rows = looked_up()
            row_names = lookup_names.get(table, lookup_names.get(sources.get(table)))
            if row_names is not None and all(_has_item(row_names, r) for r in rows):
                names[e] = ",".join(str(row_names[r]) for r in rows)
            elif table in sources:
                names[e] = f"{sources[table]}[{','.join(str(r) for r in rows)}]"
            continue
        storage = getattr(e, "storage", None)               # parameter and whole-table nodes
        if storage is not None and storage() in sources:
            names[e] = sources[storage()]
    print(_graph.cg().print_graphviz(compact, show_dims, names))


from dynet.display import render_graph, GraphDrawing


# ---- Profiling (--dynet-profiling 1/2) ------------------------------------------------------------

def profiling_stats():
    """{operation: {"nodes", "batches", "forward_s", "backward_s", "memory_bytes"}}: what
    --dynet-profiling has measured so far (empty with profiling off)."""
    return _execution.stats()


def profiling_node_stats():
    """With --dynet-profiling 2: {node index: {"op", "dim", "forward_s", "backward_s"}} for the
    most recent graph."""
    return _execution.node_stats()


def reset_profiling():
    """Forget what --dynet-profiling has measured so far."""
    _execution.reset()


def print_profiling(detail=None):
    """Print the profiling table (printed at exit anyway under --dynet-profiling)."""
    _execution.report(detail=detail)


# ---- Expression operations --------------------------------------------------------------------

from dynet.nodes.inputs import (inputTensor, scalarInput, vecInput, inputVector, matInput,
                                inputMatrix, constant, zeroes, zeros, ones, random_normal,
                                random_bernoulli, random_uniform, random_gumbel)
from dynet.nodes.elementwise import (tanh, logistic, rectify, exp, log, square, sqrt, cube, abs,
                                     sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh,
                                     atanh, erf, lgamma, log_sigmoid, elu, selu, silu, softsign,
                                     round, ceil, floor, cmult, cdiv, bmin, bmax, pow,
                                     colwise_add)
from dynet.nodes.matmul import affine_transform
from dynet.nodes.reduce import sum_elems, sum_batches, squared_norm, l2_norm
from dynet.nodes.softmax import softmax, log_softmax, pickneglogsoftmax, pickneglogsoftmax_batch
from dynet.nodes.select import (pick, pick_batch, pick_range, pickrange, reshape, transpose,
                                concatenate, concatenate_cols)
from dynet.nodes.noise import dropout, noise
from dynet.nodes.losses_cpu import binary_log_loss
from dynet.nodes.flow import nobackprop, flip_gradient, scale_gradient, argmax
from dynet.nodes.norms import (dot_product, trace_of_product, squared_distance, l1_distance, huber_distance,
                               layer_norm, weight_norm)
from dynet.nodes.linalg_cpu import (inverse, logdet, circ_conv, circ_corr, contract3d_1d,
                                    contract3d_1d_bias, contract3d_1d_1d, contract3d_1d_1d_bias)
from dynet.nodes.losses_cpu import (sparsemax, constrained_softmax, pairwise_rank_loss,
                                    poisson_loss, hinge, hinge_batch, hinge_dim)
from dynet.nodes.reductions import (sum_dim, sum_cols, cumsum, mean_elems, mean_dim, mean_batches,
                                    std_elems, std_dim, std_batches, moment_elems, moment_dim,
                                    moment_batches, esum, average, emax, logsumexp, logsumexp_dim,
                                    max_dim, min_dim, fold_rows, kmh_ngram)
from dynet.nodes import operators as _operators   # registers Expression's + - * /
from dynet.nodes.pyop import pyop
from dynet.nodes.lstm import (vanilla_lstm_gates, vanilla_lstm_gates_concat, vanilla_lstm_gates_dropout,
                              vanilla_lstm_gates_dropout_concat, vanilla_lstm_c, vanilla_lstm_h)

# part B: inputs, dropout variants, selection, convolution and pooling, multi-expression helpers
from dynet.nodes.inputs import one_hot, sparse_inputTensor
from dynet.nodes.noise import dropout_dim, dropout_batch, block_dropout
from dynet.nodes.select import (select_rows, select_cols, pick_batch_elem, pick_batch_elems,
                                strided_select, concatenate_to_batch)
from dynet.nodes.conv import conv2d, conv2d_bias, maxpooling2d, filter1d_narrow, kmax_pooling
_graph.use_node_free_lists()      # every node module is imported by now


def forward(exps, recalculate=False):
    """Compute several expressions at once (the graph up to the newest of them)."""
    exps = list(exps)
    if not exps:
        return
    last = max(exps, key=lambda e: e.vindex)
    last.forward(recalculate)


def npvalues(exps, recalculate=False):
    """The values of several expressions as numpy arrays (one forward pass)."""
    exps = list(exps)
    forward(exps, recalculate)
    return [e.npvalue() for e in exps]


def values(exps, recalculate=False):
    """The values of several expressions, as Expression.value() gives them (one forward pass)."""
    exps = list(exps)
    forward(exps, recalculate)
    return [e.value() for e in exps]

# ---- RNN builders (dynet/builders) ------------------------------------------------------------

from dynet.builders.rnn import (_RNNBuilder, RNNState, StackedRNNState, SimpleRNNBuilder, GRUBuilder,
                                LSTMBuilder, CoupledLSTMBuilder, FastLSTMBuilder, VanillaLSTMBuilder,
                                CompactVanillaLSTMBuilder, SparseLSTMBuilder, BiRNNBuilder)
from dynet.builders.softmax import (SoftmaxBuilder, StandardSoftmaxBuilder,
                                    ClassFactoredSoftmaxBuilder)

# ---- Saving and loading ----------------------------------------------------------------------

from dynet.io import save, load, load_generator, ModelFileError

# ---- Trainers ---------------------------------------------------------------------------------

from dynet.training.trainers import (Trainer, SimpleSGDTrainer, CyclicalSGDTrainer, MomentumSGDTrainer,
                                     AdagradTrainer, AdadeltaTrainer, RMSPropTrainer, AdamTrainer,
                                     AmsgradTrainer)
