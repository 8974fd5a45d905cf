"""Data-parallel training across processes, on MPI (mpi4py): `import dynet.distributed as dd`.

Every process (rank) holds the whole model and trains on its own slice of each minibatch. Rank 0's
parameter values are broadcast at the start; after each `backward()` the gradients are averaged
across ranks, so that every rank makes the same update -- the one a single process would make on
the union of the ranks' minibatches (with each rank's loss the mean over its own examples)::

    import dynet as dy
    import dynet.distributed as dd

    dd.init()                                       # the MPI world; a world of one without MPI
    trainer = dd.DistributedTrainer(dy.AdamTrainer(m))   # broadcasts m from rank 0
    for epoch in range(10):
        for batch in minibatches(dd.shard(train, epoch=epoch, seed=1), 32):
            dy.renew_cg()
            loss = dy.mean_batches(...)
            loss.backward()
            trainer.update()                        # all-reduce (averaged), then the update
    dd.save_model(m, "model.txt")                   # rank 0 writes, the others wait

    mpirun -np 2 python train.py        (or plain `python train.py`: a world of one)

Without the wrapper: `dd.broadcast_parameters(m)` once before training, and
`dd.allreduce_gradients(m)` between `loss.backward()` and `trainer.update()`.

Averaged are the gradient of every parameter that has one on some rank (so a parameter used on one
rank only is updated everywhere) and, for each lookup table, the union of the touched rows -- or the
whole table when the union covers every row. Since every rank then holds the same averaged gradient,
the trainer's clipping sees the global gradient norm. Ranks on one machine (the usual case) exchange
gradients through shared memory: the dense gradients are moved into a shared window at the first
update (backward then writes them there), and each rank averages its share of every rank's
gradients in place (`gradient_transport()` says "shared memory"). Ranks on
several machines, or any rank with DYNET_MPI_SHARED_MEMORY=0, use MPI collectives: two small
all-gathers, then one all-reduce of a fused float32 buffer ("MPI collectives").

A rank that raises an uncaught exception prints it with its rank number and aborts the whole job
(MPI_Abort), so the other ranks never wait forever in a collective. Every rank must make the same
sequence of updates (`shard` gives every rank the same number of items); a rank that leaves early
without an exception (sys.exit, a shorter loop) leaves the others waiting.

Everything that touches parameter internals is in `_ModelTensors`; everything that talks to MPI is
in `_MPIWorld` and the two exchanges, `_SharedMemoryExchange` and `_CollectiveExchange` (a GPU world
on NCCL would be another world with its own exchange).
"""
import math
import os
import sys
import time
import traceback
import weakref
import zlib

import numpy as np

from dynet.core.collection import ParameterCollection
from dynet.training.trainers import Trainer
from dynet.kernels.reduce import Rendezvous, average_shared, sum_squares

__all__ = ["init", "is_initialized", "rank", "world_size", "barrier", "broadcast_object",
           "allgather_object", "broadcast_parameters",
           "allreduce_gradients", "gradient_transport", "seconds_waiting", "DistributedTrainer", "shard_indices",
           "shard", "save", "load", "save_model", "populate_model"]

# Environment variables the common MPI launchers set in the processes they start (Open MPI, MPICH
# and Intel MPI through PMI, PMIx-based launchers): their presence means "started by mpirun".
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS")
_LAUNCHER_VARS = _LAUNCHER_SIZE_VARS + ("PMIX_RANK",)


# ---- worlds: who the ranks are and the collectives between them ----------------------------------

class _LocalWorld:
    """A world of one process: every collective is the identity."""
    rank = 0
    size = 1

    def barrier(self):
        pass

    def bcast(self, buf, root=0):
        pass

    def allreduce_sum(self, buf):
        pass

    def allgather_object(self, obj):
        return [obj]

    def bcast_object(self, obj, root=0):
        return obj

    def allgather_ints(self, values):
        return np.asarray(values, dtype=np.int64).reshape(1, -1)

    def allgatherv_ints(self, values, counts):
        return [np.asarray(values, dtype=np.int64)]


class _MPIWorld:
    """The ranks of an mpi4py communicator (COMM_WORLD by default)."""

    def __init__(self, comm):
        from mpi4py import MPI
        self._MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._exchange = None

    def barrier(self):
        self.comm.Barrier()

    def bcast(self, buf, root=0):
        self.comm.Bcast(buf, root=root)

    def allreduce_sum(self, buf):
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)

    def allgather_object(self, obj):
        return self.comm.allgather(obj)

    def bcast_object(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    def allgather_ints(self, values):
        """Every rank gives k int64 values (the same k everywhere): a (ranks, k) array. This is the
        first collective of an update, where the ranks wait for the slowest: see _wait_until."""
        values = np.ascontiguousarray(values, dtype=np.int64)
        out = np.empty((self.size, values.size), dtype=np.int64)
        request = self.comm.Iallgather(values, out)
        _wait_until(request.Test)
        return out

    def allgatherv_ints(self, values, counts):
        """Every rank gives its int64 values, counts[r] of them on rank r: one array per rank."""
        values = np.ascontiguousarray(values, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        recv = np.empty(int(counts.sum()), dtype=np.int64)
        self.comm.Allgatherv(values, [recv, counts, self._MPI.INT64_T])
        return np.split(recv, np.cumsum(counts)[:-1])

    def abort(self, code):
        self.comm.Abort(code)

    def gradient_exchange(self):
        """How gradients are averaged (chosen at the first update; a collective): through shared
        memory when every rank is on this machine, unless DYNET_MPI_SHARED_MEMORY=0 on some rank or
        the window cannot be made; through MPI collectives otherwise."""
        if self._exchange is None:
            MPI = self._MPI
            node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
            wanted = os.environ.get("DYNET_MPI_SHARED_MEMORY", "1").strip() != "0"
            if self.comm.allreduce(wanted and node.Get_size() == self.size, op=MPI.LAND):
                try:
                    exchange = _SharedMemoryExchange(node)
                except MPI.Exception:
                    exchange = None
                if self.comm.allreduce(exchange is not None, op=MPI.LAND):
                    self._exchange = exchange
                elif exchange is not None:
                    exchange.close()
            if self._exchange is None:
                self._exchange = _CollectiveExchange(self)
        return self._exchange

    def use_collectives(self):
        """Average gradients through MPI collectives from now on (every rank calls it together)."""
        self._exchange = _CollectiveExchange(self)
        return self._exchange


# Open MPI settings, unless the user chose others (read by MPI_Init, so set before mpi4py loads):
# waiting ranks yield the CPU instead of spinning (on a busy or oversubscribed machine a spinning
# rank takes the core its partner needs: all-reduces became 5-10x slower on a loaded 2-core
# machine), and shared-memory messages are copied through the shared segment rather than with
# cross-memory attach, which containers often forbid or slow down.
_OPEN_MPI_DEFAULTS = {"OMPI_MCA_mpi_yield_when_idle": "1",
                      "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}

# waiting for the other ranks (_wait_until): poll this long, then sleep from the first to the
# longest interval between polls
_SPIN_SECONDS, _FIRST_SLEEP, _LONGEST_SLEEP = 3e-4, 5e-5, 2e-4
# the shared-memory exchange's rendezvous (reduce.Rendezvous): poll this long, then sleep on a futex
# until woken (re-checking after the timeout, in case a wake-up was missed)
_RENDEZVOUS_SPIN_SECONDS, _RENDEZVOUS_TIMEOUT = 1e-4, 0.05

_world = None


def _launcher_size():
    """The number of processes the MPI launcher started, from its environment (None: not started by
    a launcher, or it does not say)."""
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def init(comm=None, use_mpi=None):
    """Join the MPI world (once; later calls return the same world). Returns (rank, world size).

    comm: an mpi4py communicator to train over (default: MPI.COMM_WORLD).
    use_mpi: None (default) uses MPI when the process was started by an MPI launcher (mpirun,
    mpiexec, srun with PMI) and is a world of one otherwise, without importing mpi4py; True always
    imports mpi4py; False is a world of one. A process started by a launcher with several ranks but
    without mpi4py raises, since each rank would otherwise train alone without noticing."""
    global _world
    if _world is not None:
        if comm is not None and getattr(_world, "comm", None) is not comm:
            raise RuntimeError("dynet.distributed.init: already initialised with another "
                               "communicator")
        return _world.rank, _world.size
    if use_mpi not in (None, True, False):
        raise TypeError(f"dynet.distributed.init: use_mpi must be None, True or False, got {use_mpi!r}")
    if comm is not None:
        world = _MPIWorld(comm)
    elif use_mpi is False or (use_mpi is None and
                              not any(v in os.environ for v in _LAUNCHER_VARS)):
        world = _LocalWorld()
    else:
        for name, value in _OPEN_MPI_DEFAULTS.items():
            os.environ.setdefault(name, value)
        try:
            from mpi4py import MPI
        except ImportError as e:
            launched = _launcher_size()
            if use_mpi or (launched or 1) > 1:
                why = "use_mpi=True" if use_mpi else f"started by an MPI launcher with {launched} processes"
                raise RuntimeError(
                    f"dynet.distributed.init: MPI is needed ({why}) "
                    f"but mpi4py cannot be imported ({e}); install it with "
                    f"`pip install mpi4py` (it needs an MPI library, e.g. Debian's "
                    f"openmpi-bin libopenmpi-dev)") from None
            world = _LocalWorld()
        else:
            world = _MPIWorld(MPI.COMM_WORLD)
    _world = world
    if world.size > 1:
        _install_fault_handler(world)
    return world.rank, world.size


def is_initialized():
    """Whether init() has set up the processes"""
    return _world is not None


def _the_world():
    if _world is None:
        init()
    return _world


def rank():
    """This process's rank, 0 .. world_size() - 1 (initialises the world on first use)."""
    return _the_world().rank


def world_size():
    """The number of processes training together (1 without MPI)."""
    return _the_world().size


def barrier():
    """Wait until every rank gets here."""
    _the_world().barrier()


def _check_root(root, world, op):
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < world.size:
        raise ValueError(f"dynet.distributed.{op}: root {root!r} is not a rank of this world of "
                         f"{world.size}")
    return int(root)


def broadcast_object(obj, root=0):
    """Rank `root`'s `obj` (any picklable object: a vocabulary, a file name), on every rank."""
    world = _the_world()
    return world.bcast_object(obj, _check_root(root, world, "broadcast_object"))


def allgather_object(obj):
    """Every rank's `obj` (picklable), as a list indexed by rank, on every rank."""
    return _the_world().allgather_object(obj)


def _install_fault_handler(world):
    """An uncaught exception on one rank stops every rank: print it with the rank number, then
    MPI_Abort (the others may be waiting for this rank in a collective and would never return)."""
    def excepthook(etype, value, tb):
        text = "".join(traceback.format_exception(etype, value, tb))
        try:
            sys.stderr.write(f"dynet.distributed: rank {world.rank} of {world.size} failed, stopping "
                             f"every rank:\n{text}rank {world.rank}: {etype.__name__}: {value}\n")
            sys.stderr.flush()
        finally:
            world.abort(1)
    sys.excepthook = excepthook


# ---- the model's tensors: the only place that touches parameter internals ------------------------

class _ModelTensors:
    """The parameters of a collection as flat float32 arrays, in a fixed order, and their gradient
    bookkeeping (has a gradient / touched rows)."""

    def __init__(self, model):
        self.weight_decay = model.weight_decay_state()
        self.params = model.parameters_list()
        self.lookups = model.lookup_parameters_list()
        self.lookup_rows = [int(lp.shape()[0]) for lp in self.lookups]
        self.sizes = np.array([self.dense_grad(p).size for p in self.params], dtype=np.int64)
        self.row_sizes = [lp.grads.size // n for lp, n in zip(self.lookups, self.lookup_rows)]
        self.shape_code = zlib.crc32(repr([s for _, s in self.signature()[0]]
                                          + [s for _, s in self.signature()[1]]).encode())
        # _Contribution.meta() when every parameter has a gradient and no lookup row was touched
        self.full_meta = np.concatenate([np.ones(len(self.params)),
                                         np.zeros(len(self.lookups))]).astype(np.int64)
        self.full_meta.flags.writeable = False

    def signature(self):
        return ([(p.name(), tuple(p.shape())) for p in self.params],
                [(lp.name(), tuple(lp.shape())) for lp in self.lookups])

    def values(self):
        return [p.values for p in self.params] + [lp.values for lp in self.lookups]

    def weight_decay_scale(self):
        return self.weight_decay.scale

    def set_weight_decay_scale(self, scale):
        self.weight_decay.scale = float(scale)

    @staticmethod
    def dense_grad(p):
        return p.grads

    def dense_layout(self, align):
        """Where each dense gradient starts when they lie one after another, each on a multiple of
        `align` floats, and the floats they take in all (at least `align`)."""
        padded = (self.sizes + align - 1) // align * align
        offsets = np.concatenate([[0], np.cumsum(padded)]).astype(np.int64)
        return offsets[:-1], max(int(offsets[-1]), align)

    def move_dense_grads(self, buf, offsets):
        """Keep the dense gradients in `buf` (a float32 array; parameter i at offsets[i]) from now
        on, their values carried over."""
        for p, offset, size in zip(self.params, offsets, self.sizes):
            p.use_gradient_storage(buf[offset:offset + size])

    def move_dense_grads_home(self):
        """Give the dense gradients private memory again, their values carried over."""
        from dynet.core import parampool
        for p, size in zip(self.params, self.sizes):
            p.use_gradient_storage(parampool.private_zeros(int(size)))

    @staticmethod
    def has_gradient(p):
        return p.has_gradient()

    @staticmethod
    def mark_gradient(p):
        p.mark_gradient()

    def table_grad(self, k):
        """Lookup table k's gradient as (rows, row size), a view."""
        return self.lookups[k].grads.reshape(self.lookup_rows[k], -1)

    def touched_rows(self, k):
        return self.lookups[k].touched_rows()

    def mark_rows_touched(self, k, rows):
        self.lookups[k].mark_rows_touched(rows)


_tensors_cache = weakref.WeakKeyDictionary()


def _tensors_of(model):
    """The model's _ModelTensors, remade when parameters were added since."""
    t = _tensors_cache.get(model)
    if (t is None or len(t.params) != len(model.parameters_list())
            or len(t.lookups) != len(model.lookup_parameters_list())):
        t = _ModelTensors(model)
        _tensors_cache[model] = t
    return t


def _check_model(model, op):
    if not isinstance(model, ParameterCollection):
        raise TypeError(f"dynet.distributed.{op}: expected a ParameterCollection (Model), got "
                        f"{type(model).__name__}")


class _Buffer:
    """A float32 buffer reused across updates (grown when needed)."""

    def __init__(self):
        self._data = np.empty(0, dtype=np.float32)

    def get(self, n):
        if self._data.size < n:
            self._data = np.empty(max(n, int(self._data.size * 1.25)), dtype=np.float32)
        return self._data[:n]


_buffer = _Buffer()


# ---- broadcast and all-reduce --------------------------------------------------------------------

def _describe_mismatch(signatures):
    """The first difference between rank 0's model and another rank's, in words (None: the same)."""
    base_p, base_l = signatures[0]
    for r, (ps, ls) in enumerate(signatures[1:], start=1):
        for what, mine, base in (("parameters", ps, base_p), ("lookup parameters", ls, base_l)):
            if len(mine) != len(base):
                return (f"rank {r} has {len(mine)} {what} but rank 0 has {len(base)}")
            for i, ((name, shape), (bname, bshape)) in enumerate(zip(mine, base)):
                if shape != bshape:
                    return (f"{what} {i} ({name}) has shape {shape} on rank {r} but {bshape} "
                            f"({bname}) on rank 0")
    return None


def broadcast_parameters(model, root=0):
    """Copy every parameter value of `model` (and the lazy weight-decay factor) from rank `root` to
    all ranks (one message). Raises ValueError on every rank when the ranks' models differ in number
    or shapes of parameters."""
    _check_model(model, "broadcast_parameters")
    world = _the_world()
    root = _check_root(root, world, "broadcast_parameters")
    if world.size == 1:
        return
    t = _tensors_of(model)
    problem = _describe_mismatch(world.allgather_object(t.signature()))
    if problem is not None:
        raise ValueError(f"dynet.distributed.broadcast_parameters: the models differ across ranks: "
                         f"{problem}; every rank must build the same model")
    values = t.values()
    buf = _buffer.get(sum(v.size for v in values) + 1)
    offset = 0
    for v in values:
        if world.rank == root:
            buf[offset:offset + v.size] = v
        offset += v.size
    if world.rank == root:
        buf[offset] = t.weight_decay_scale()    # stored values times this are the real values
    world.bcast(buf, root=root)
    offset = 0
    for v in values:
        v[...] = buf[offset:offset + v.size]
        offset += v.size
    t.set_weight_decay_scale(buf[offset])


def allreduce_gradients(model):
    """Average the gradients of `model` across ranks, in place, so that each rank's next update is
    the same. Ranks on one machine exchange them through shared memory (one synchronisation per
    update); otherwise one all-reduce of a fused buffer, preceded by two small all-gathers (the
    models' shapes; which parameters have gradients and which lookup rows were touched).

    Returns the L2 norm of the averaged gradient (of the whole model, the same on every rank) when
    the exchange computed it on the way (shared memory), else None: DistributedTrainer passes it
    to the trainer's update (grad_norm), which then clips without another pass over the gradients."""
    _check_model(model, "allreduce_gradients")
    world = _the_world()
    if world.size == 1:
        return None
    t = _tensors_of(model)
    mine = _Contribution(t)
    exchange = world.gradient_exchange()
    done = exchange.average(t, mine)
    if done is None:                # out of shared memory: every rank goes on with the collectives
        exchange = world.use_collectives()
        done = exchange.average(t, mine)
    if not done:
        problem = _describe_mismatch(world.allgather_object(t.signature()))
        raise ValueError(f"dynet.distributed.allreduce_gradients: the models differ across ranks: "
                         f"{problem}; every rank must build the same model")
    return exchange.grad_norm


def gradient_transport():
    """How allreduce_gradients moves gradients between the ranks: "shared memory" (every rank on
    this machine), "MPI collectives" (ranks on several machines, or DYNET_MPI_SHARED_MEMORY=0 on
    some rank) or "none" (a world of one). On a world of several, the first call (or the first
    allreduce_gradients) is a collective: every rank must make it."""
    world = _the_world()
    if world.size == 1:
        return "none"
    return world.gradient_exchange().name


class _Contribution:
    """What this rank brings to an update: which parameters have a gradient, which rows of each
    lookup table were touched, and the header the ranks compare (a model changed on one rank must
    raise, not feed mismatched sizes to the exchange)."""

    def __init__(self, t):
        # (Python lists and cached arrays: NumPy's per-call overhead was most of this per update)
        self.flags = [p.has_gradient() for p in t.params]
        self.all_flags = all(self.flags)
        self.touched = [t.touched_rows(k) for k in range(len(t.lookups))] if t.lookups else []
        self.rows = sum(map(len, self.touched))
        self.header = (len(t.params), len(t.lookups), t.shape_code)
        self._t = t

    def missing(self):
        """Which parameters have no gradient on this rank (a bool array)."""
        return ~np.array(self.flags, dtype=bool)

    def meta(self):
        """flags, touched-row counts and the touched rows, as one int64 array (what the other
        ranks need to read this rank's gradients)"""
        if self.all_flags and not self.rows:        # the usual case: the same array every update
            return self._t.full_meta
        return np.concatenate([np.array(self.flags, dtype=np.int64),
                               [len(rows) for rows in self.touched]] + self.touched).astype(np.int64)


def _parse_meta(meta, nparams, nlookups):
    """_Contribution.meta() back into (flags, touched rows per table)."""
    flags = meta[:nparams]
    bounds = nparams + nlookups + np.concatenate([[0], np.cumsum(meta[nparams:nparams + nlookups])])
    return flags, [meta[bounds[k]:bounds[k + 1]] for k in range(nlookups)]


def _write_sum(t, k, union, parts, scale=None):
    """Lookup table k's gradient on the rows `union` (sorted): the sum of each rank's
    (rows, row gradients), in rank order, times `scale` (None: 1); those rows marked as touched.
    Returns the squared L2 norm of that sum."""
    table = t.table_grad(k)
    total = np.zeros((len(union), table.shape[1]), dtype=np.float32)
    for rows, grads in parts:
        total[np.searchsorted(union, rows)] += grads      # a rank's rows are distinct
    if scale is not None:
        total *= scale
    if len(union) == t.lookup_rows[k]:
        table[...] = total
        t.mark_rows_touched(k, None)
    else:
        table[union] = total
        t.mark_rows_touched(k, union)
    return sum_squares(total)


class _CollectiveExchange:
    """Gradient averaging through MPI collectives (ranks on several machines): two small
    all-gathers say which parameters have a gradient and which lookup rows were touched on any
    rank, then one in-place Allreduce sums a fused float32 buffer of those gradients (of a table,
    the union of the touched rows, or the whole table when that is every row)."""

    name = "MPI collectives"
    grad_norm = None                # (not computed here: the trainer computes it if it clips)

    def __init__(self, world):
        self.world = world

    def average(self, t, mine):
        """False (on every rank) when the ranks' models differ."""
        world = self.world
        nparams, nlookups = len(t.params), len(t.lookups)
        headers = world.allgather_ints(list(mine.header) + [sum(len(r) for r in mine.touched)])
        if (headers[:, :3] != headers[0, :3]).any():
            return False
        per_rank = [_parse_meta(meta, nparams, nlookups)
                    for meta in world.allgatherv_ints(mine.meta(), nparams + nlookups + headers[:, 3])]
        needed = (np.flatnonzero(np.any([flags for flags, _ in per_rank], axis=0)) if nparams
                  else [])
        unions = [np.unique(np.concatenate([touched[k] for _, touched in per_rank]))
                  for k in range(nlookups)]
        grads = [t.dense_grad(t.params[i]) for i in needed]
        table_sizes = [len(u) * t.table_grad(k).shape[1] for k, u in enumerate(unions)]
        if not grads and not any(table_sizes):
            return True
        buf = _buffer.get(sum(g.size for g in grads) + sum(table_sizes))
        offset = 0
        for g in grads:
            buf[offset:offset + g.size] = g
            offset += g.size
        for k, u in enumerate(unions):
            if len(u):
                np.take(t.table_grad(k), u, axis=0,
                        out=buf[offset:offset + table_sizes[k]].reshape(len(u), -1))
                offset += table_sizes[k]
        world.allreduce_sum(buf)
        scale = np.float32(1.0 / world.size)
        offset = 0
        for i, g in zip(needed, grads):
            np.multiply(buf[offset:offset + g.size], scale, out=g)
            t.mark_gradient(t.params[i])
            offset += g.size
        for k, u in enumerate(unions):
            if len(u):
                rows = buf[offset:offset + table_sizes[k]].reshape(len(u), -1)
                _write_sum(t, k, u, [(u, rows)], scale)
                offset += table_sizes[k]
        return True


class _SharedMemoryExchange:
    """Gradient averaging for ranks on one machine, through two MPI-3 shared-memory windows.

    The dense parameters' gradients live in the gradient window, each rank's in its own segment
    (moved there at the first update with Parameters.use_gradient_storage, so backward writes them
    there): averaging them is a reduce-scatter in place, in chunks of 32 KB that the ranks claim
    from a shared counter (kernels/reduce.average_shared): a rank averages a chunk of every rank's
    gradients (each value divided by the number of ranks, summed in rank order: every rank ends with
    the same bits whoever took the chunk, and dividing first loses nothing with 2 or 4 ranks) and
    writes the average back into that chunk of every rank's gradient. So each value is read once and
    written once per rank, with no copy out of the parameters and no Python per parameter; and a
    rank whose partner is late (set aside by the scheduler on a busy machine) does the partner's
    chunks instead of waiting for it.
    once per rank, with no copy out of the parameters and no Python per parameter.

    The slot window holds, per rank, what the ranks must agree on (header, which parameters have a
    gradient, which lookup rows were touched) and the touched lookup rows, divided by the number of
    ranks; every rank sums the union of those rows itself. Slots alternate between two halves by
    update parity, and grow on every rank together (a collective) when a contribution does not fit
    (the update is then repeated).

    An update has one rendezvous: once every rank has stamped its slot with the update's number
    ("my gradients are final, my slot is written"), the ranks check the headers and average; once
    the counter of finished chunks says every chunk is done, every gradient is the average, and no
    rank touches another's gradients again before the next update's rendezvous."""

    name = "shared memory"
    # bytes 0-3: the stamp (int32: the update's number), 4-7: unused; then int64s: params, lookups,
    # shape code, meta ints, floats, bytes needed, wants the gradients (re)bound
    _HEADER_BYTES = 64
    _ALIGN = 16                     # floats: each parameter's gradient starts on a 64-byte line
    _CHUNK = 8192                   # floats: the reduce-scatter's unit of work (32 KB)

    def __init__(self, node):
        from mpi4py import MPI
        self._MPI = MPI
        self.comm = node
        self.rank, self.size = node.Get_rank(), node.Get_size()
        self.scale = np.float32(1.0 / self.size)
        self.win = None                 # the slot window
        self.grad_win = None            # the gradient window
        self.bound = None               # the _ModelTensors whose gradients are in grad_win
        self.grad_norm = None           # the L2 norm of the last averaged gradient
        self.capacity = 0
        self.updates = 0
        self._allocate(self._HEADER_BYTES)
        import atexit
        atexit.register(self.close)

    def _shared_window(self, nbytes):
        """A new window of `nbytes` per rank (a collective), locked for the whole session (Sync is
        then a memory barrier), and each rank's segment as a uint8 array."""
        win = self._MPI.Win.Allocate_shared(nbytes, 1, comm=self.comm)
        segments = [np.frombuffer(win.Shared_query(r)[0], dtype=np.uint8, count=nbytes)
                    for r in range(self.size)]
        win.Lock_all(self._MPI.MODE_NOCHECK)
        return win, segments

    def _free(self, win):
        if win is not None and not self._MPI.Is_finalized():
            win.Unlock_all()
            win.Free()

    def _has_room(self, nbytes):
        """Whether every rank sees room on the shared-memory filesystem for a new window of
        `nbytes` per rank (a collective): a window larger than the free space would not fail when
        made but kill the process (SIGBUS) when written."""
        room = _shared_memory_free()
        return self.comm.allreduce(room is None or room > 2 * nbytes * self.size,
                                   op=self._MPI.LAND)

    def _allocate(self, capacity):
        """(Re)make the slot window with slots of at least `capacity` bytes; a collective."""
        self._free(self.win)
        self.win = None
        capacity = -(-capacity // 64) * 64
        # two halves of slots, then (rank 0's only) the reduce-scatter's chunk counters
        self.win, segments = self._shared_window(2 * capacity + 64)
        self.capacity = capacity
        self.slots = [[seg[half * capacity:(half + 1) * capacity] for seg in segments]
                      for half in (0, 1)]
        self.headers = [[slot[:self._HEADER_BYTES].view(np.int64) for slot in slots]
                        for slots in self.slots]
        # each half's rendezvous: on bytes 0-3 of every rank's slot
        words = [[slot[:4].view(np.int32) for slot in slots] for slots in self.slots]
        for half in (0, 1):
            words[half][self.rank][0] = -1
        self.ready = [Rendezvous(words[half], self.rank, _RENDEZVOUS_SPIN_SECONDS,
                                 _RENDEZVOUS_TIMEOUT) for half in (0, 1)]
        # chunks claimed, chunks done: counting up from self.chunks_before (the same on every rank)
        self.counters = segments[0][2 * capacity:2 * capacity + 8].view(np.int32)
        if self.rank == 0:
            self.counters[:] = 0
        self.chunks_before = 0
        self.win.Sync()
        self.comm.Barrier()
        self.win.Sync()

    def _unbind(self):
        """Give the bound parameters private gradient memory again (the gradients copied)."""
        if self.bound is not None:
            self.bound.move_dense_grads_home()
        self.bound = None

    def _bind(self, t):
        """Move the dense gradients of `t` into a new gradient window (a collective); False (on
        every rank, nothing moved) when the shared-memory filesystem has no room for it."""
        align = self._ALIGN
        offsets, floats = t.dense_layout(align)
        chunks = -(-floats // self._CHUNK)
        # each rank's gradients, then (rank 0's only) the squared norm of each chunk's averages
        nbytes = 4 * floats + 8 * chunks
        if not self._has_room(nbytes):
            return False
        win, segments = self._shared_window(nbytes)
        self._unbind()
        self._free(self.grad_win)
        self.grad_win = win
        self.grads = [seg[:4 * floats].view(np.float32) for seg in segments]
        self.chunk_norms = segments[0][4 * floats:nbytes].view(np.float64)
        mine = self.grads[self.rank]
        mine[...] = 0
        t.move_dense_grads(mine, offsets)
        self.bound = t
        self.chunks = chunks
        win.Sync()
        self.comm.Barrier()         # every rank's gradients are in place before anyone sums them
        win.Sync()
        return True

    def close(self):
        """Give the gradients private memory back and free the windows (also at exit)."""
        if self._MPI.Is_finalized():
            return
        self._unbind()
        self._free(self.grad_win)
        self._free(self.win)
        self.grad_win = self.win = None

    @staticmethod
    def _rendezvous(rendezvous, n):
        """Stamp this rank's word of `rendezvous` with `n` and wait until every rank's holds it
        (what a rank wrote before its stamp is visible to the others after theirs: the stamps are
        fenced)."""
        waited = rendezvous.meet(n & 0x7FFFFFFF)
        if waited:
            _add_waiting(waited)

    def average(self, t, mine):
        """False (on every rank) when the ranks' models differ; None (on every rank, the windows
        closed) when the gradients outgrow the free shared memory."""
        n = self.updates + 1
        half = n % 2
        meta = mine.meta()
        floats = sum(len(rows) * d for rows, d in zip(mine.touched, t.row_sizes)) if mine.rows else 0
        start = self._HEADER_BYTES + 8 * meta.size
        needed = start + 4 * floats
        if needed <= self.capacity:
            slot = self.slots[half][self.rank]
            slot[self._HEADER_BYTES:start].view(np.int64)[:] = meta
            if floats:
                self._write_rows(t, mine, slot[start:needed].view(np.float32))
        self.headers[half][self.rank][1:8] = mine.header + (meta.size, floats, needed,
                                                            self.bound is not t)
        self._rendezvous(self.ready[half], n)
        self.updates = n
        # (lists: a few Python comparisons cost less than NumPy's per-call overhead)
        headers = [h[1:8].tolist() for h in self.headers[half]]
        if any(h[:3] != headers[0][:3] for h in headers):
            return False
        largest = max(h[5] for h in headers)
        if largest > self.capacity:
            first = self.capacity == self._HEADER_BYTES
            capacity = max(largest, 0 if first else int(1.25 * self.capacity))
            if not self._has_room(2 * capacity):
                self.close()
                return None
            self._allocate(capacity)
            return self.average(t, mine)
        if any(h[6] for h in headers) and not self._bind(t):
            self.close()
            return None
        rows_norm = self._sum_rows(t, half, headers) if any(h[4] for h in headers) else 0.0
        waited = average_shared(self.grads, self.counters, self.chunks_before, self._CHUNK,
                                self.scale, _RENDEZVOUS_SPIN_SECONDS, _RENDEZVOUS_TIMEOUT,
                                self.chunk_norms)
        self.chunks_before = (self.chunks_before + self.chunks) & 0xFFFFFFFF
        # (every rank sums the same numbers in the same order: the same bits everywhere)
        self.grad_norm = math.sqrt(float(self.chunk_norms.sum()) + rows_norm)
        if waited:
            _add_waiting(waited)
        if not mine.all_flags:          # (the usual case skips this: every parameter has one)
            for i in np.flatnonzero(self._flags_anywhere(t, half).astype(bool) & mine.missing()):
                t.mark_gradient(t.params[i])    # a gradient from another rank only
        return True

    def _flags_anywhere(self, t, half):
        """Which parameters have a gradient on some rank (int64 flags, from the slots' metas)."""
        end = self._HEADER_BYTES + 8 * len(t.params)
        return np.bitwise_or.reduce([slot[self._HEADER_BYTES:end].view(np.int64)
                                     for slot in self.slots[half]])

    def _write_rows(self, t, mine, buf):
        """This rank's touched lookup rows, divided by the number of ranks, into its slot."""
        offset = 0
        for k, rows in enumerate(mine.touched):
            if len(rows):
                out = buf[offset:offset + len(rows) * t.row_sizes[k]].reshape(len(rows), -1)
                np.take(t.table_grad(k), rows, axis=0, out=out)
                out *= self.scale
                offset += out.size

    def _sum_rows(self, t, half, headers):
        """Every rank's touched rows summed, in rank order, into this rank's lookup gradients; the
        squared L2 norm of those sums."""
        nparams, nlookups = len(t.params), len(t.lookups)
        parts = [[] for _ in range(nlookups)]
        for slot, (_, _, _, nmeta, nfloats, _, _) in zip(self.slots[half], headers):
            start = self._HEADER_BYTES + 8 * nmeta
            _, touched = _parse_meta(slot[self._HEADER_BYTES:start].view(np.int64), nparams,
                                     nlookups)
            buf, offset = slot[start:start + 4 * nfloats].view(np.float32), 0
            for k, rows in enumerate(touched):
                size = len(rows) * t.row_sizes[k]
                parts[k].append((rows, buf[offset:offset + size].reshape(len(rows), -1)))
                offset += size
        norm = 0.0
        for k in range(nlookups):
            union = np.unique(np.concatenate([rows for rows, _ in parts[k]]))
            if len(union):
                norm += _write_sum(t, k, union, parts[k])
        return norm


def _shared_memory_free():
    """Free bytes where Open MPI keeps shared-memory windows (/dev/shm unless
    OMPI_MCA_osc_sm_backing_directory says otherwise; containers often give it only 64 MB), or
    None when that cannot be told."""
    directory = os.environ.get("OMPI_MCA_osc_sm_backing_directory", "/dev/shm")
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _wait_until(ready):
    """Wait for the other ranks: poll for a moment (they are usually about to arrive), then sleep
    between polls, longer and longer, so that a rank waiting for a slower one gives its CPU away
    (on a busy or oversubscribed machine a spinning rank takes the core the slower one needs)."""
    if ready():
        return
    start = time.perf_counter()
    while time.perf_counter() - start < _SPIN_SECONDS:
        if ready():
            _count_waiting(start)
            return
    delay = _FIRST_SLEEP
    while not ready():
        time.sleep(delay)
        delay = min(2 * delay, _LONGEST_SLEEP)
    _count_waiting(start)


_seconds_waiting = 0.0


def _count_waiting(start):
    _add_waiting(time.perf_counter() - start)


def _add_waiting(seconds):
    global _seconds_waiting
    _seconds_waiting += seconds


def seconds_waiting():
    """Seconds this rank has spent waiting for the other ranks to arrive at gradient exchanges
    since the process started (of the shared-memory exchange's rendezvous and the collectives'
    first all-gather): on a busy machine, the part of allreduce_gradients that is the others'
    lateness rather than this rank's work (bench/distributed.py --breakdown shows both)."""
    return _seconds_waiting


class DistributedTrainer:
    """Wraps a trainer: broadcasts the model from rank 0 when made, and `update()` averages the
    gradients across ranks before the wrapped trainer's update. Everything else (learning rate,
    clipping, status, ...) is the wrapped trainer's."""

    def __init__(self, trainer, broadcast=True):
        model = getattr(trainer, "model", None)
        if not hasattr(trainer, "update") or model is None:
            raise TypeError(f"DistributedTrainer: expected a trainer (e.g. dy.SimpleSGDTrainer), got "
                            f"{type(trainer).__name__}")
        self.trainer = trainer
        _the_world()
        if broadcast:
            broadcast_parameters(model)

    def update(self, s=1.0):
        """Average the gradients across processes, then update as the wrapped trainer does

        Args:
            s (float): scale of the gradients (as Trainer.update)
        """
        norm = allreduce_gradients(self.trainer.model)
        if norm is not None and isinstance(self.trainer, Trainer):
            self.trainer.update(s, grad_norm=norm)
        else:
            self.trainer.update(s)

    def update_subset(self, updated_params, updated_lookups, s=1.0):
        """Average the gradients across processes, then update only the given parameters

        Args:
            updated_params (list of Parameters): the parameters to update
            updated_lookups (list of LookupParameters): the lookup tables to update
            s (float): scale of the gradients (as Trainer.update)
        """
        allreduce_gradients(self.trainer.model)
        self.trainer.update_subset(updated_params, updated_lookups, s)

    def status(self):
        """The wrapped trainer's status line, printed by rank 0 only."""
        if rank() == 0:
            self.trainer.status()

    def __getattr__(self, name):
        return getattr(self.__dict__["trainer"], name)

    def __setattr__(self, name, value):
        if name == "trainer":
            object.__setattr__(self, name, value)
        else:
            setattr(self.trainer, name, value)

    def __repr__(self):
        return f"<DistributedTrainer of {self.trainer.whoami()} on {world_size()} rank(s)>"


# ---- data sharding -------------------------------------------------------------------------------

def _check_int(value, name, op, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"dynet.distributed.{op}: {name} must be an integer >= {minimum}, "
                         f"got {value!r}")
    return int(value)


def shard_indices(n, epoch=0, seed=0, shuffle=True, rank=None, world_size=None):
    """The indices of this rank's slice of a dataset of n items for this epoch.

    The n items are permuted with a generator seeded by (seed, epoch) -- the same permutation on every
    rank, a new one each epoch -- cut to a multiple of the world size (so every rank makes the same
    number of updates), and dealt out round-robin: rank r gets positions r, r + N, r + 2N, ...
    So minibatch i of size B on every rank together is the permutation's items i*N*B .. (i+1)*N*B - 1:
    what one process with minibatches of N*B sees (`world_size=1`)."""
    op = "shard_indices"
    n = _check_int(n, "n", op, 0)
    epoch = _check_int(epoch, "epoch", op, 0)
    seed = _check_int(seed, "seed", op, 0)
    size = _check_int(_the_world().size if world_size is None else world_size, "world_size", op, 1)
    r = _the_world().rank if rank is None else rank
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < size:
        raise ValueError(f"dynet.distributed.{op}: rank {r!r} is not in 0..{size - 1}")
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    return order[:n - n % size][r::size]


def shard(data, epoch=0, seed=0, shuffle=True, rank=None, world_size=None):
    """This rank's slice of `data` (a sequence or an array, indexed along its first axis) for this
    epoch: a list (an array for a NumPy array). See shard_indices."""
    try:
        n = len(data)
    except TypeError:
        raise TypeError(f"dynet.distributed.shard: data must be a sequence or an array, got "
                        f"{type(data).__name__}") from None
    idx = shard_indices(n, epoch, seed, shuffle, rank, world_size)
    if isinstance(data, np.ndarray):
        return data[idx]
    return [data[int(i)] for i in idx]


# ---- saving and loading --------------------------------------------------------------------------

def save(basename, objects):
    """dy.save from rank 0 only (the files are written once); every rank returns after it is done."""
    from dynet import io as dyio
    if rank() == 0:
        dyio.save(basename, objects)
    barrier()


def load(basename, model):
    """dy.load on every rank (each rebuilds the saved objects in its own `model`)."""
    from dynet import io as dyio
    return dyio.load(basename, model)


def save_model(model, fname, key=""):
    """model.save(fname) from rank 0 only; every rank returns after it is done."""
    _check_model(model, "save_model")
    if rank() == 0:
        model.save(fname, key)
    barrier()


def populate_model(model, fname, key=""):
    """model.populate(fname) on every rank."""
    _check_model(model, "populate_model")
    model.populate(fname, key)
