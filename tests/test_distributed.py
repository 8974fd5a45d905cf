"""dynet.distributed: data sharding and the world of one in this process; training, faults, saving and
loading under `mpirun -np 2` and `-np 3` over loopback (tests/mpi_scenarios.py), compared with one
process training on the union of the minibatches."""
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import dynet as dy
import dynet.distributed as dd
from dynet.kernels.reduce import Rendezvous, average_in_place, average_shared, sum_squares
from tests.mpi_launch import mpirun_command, mpirun_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = os.path.join(ROOT, "tests", "mpi_scenarios.py")
TIMEOUT = 180   # seconds: a hang fails the test instead of blocking CI


# ---- in this process: a world of one -------------------------------------------------------------

def test_world_of_one_without_launcher():
    assert dd.init() == (0, 1)
    assert (dd.rank(), dd.world_size()) == (0, 1)
    assert dd.broadcast_object({"a": 1}) == {"a": 1}
    assert dd.allgather_object(5) == [5]
    assert dd.gradient_transport() == "none"
    assert dd.seconds_waiting() >= 0.0
    dd.barrier()


def test_shard_indices_partition_the_epoch_permutation():
    n, size = 23, 3
    whole = dd.shard_indices(n, epoch=2, seed=9, rank=0, world_size=1)
    assert sorted(whole.tolist()) == list(range(n))
    parts = [dd.shard_indices(n, epoch=2, seed=9, rank=r, world_size=size) for r in range(size)]
    assert [len(p) for p in parts] == [7, 7, 7]   # cut to a multiple of the world size
    # minibatch i of B on every rank together = items i*N*B .. (i+1)*N*B-1 of one process's order
    B = 2
    for i in range(3):
        union = np.concatenate([p[i * B:(i + 1) * B] for p in parts])
        assert sorted(union.tolist()) == sorted(whole[i * size * B:(i + 1) * size * B].tolist())
    # reshuffled per epoch, the same for the same (seed, epoch)
    assert not np.array_equal(dd.shard_indices(n, epoch=3, seed=9, rank=0, world_size=1), whole)
    assert np.array_equal(dd.shard_indices(n, epoch=2, seed=9, rank=0, world_size=1), whole)
    assert dd.shard_indices(5, shuffle=False, rank=1, world_size=2).tolist() == [1, 3]


def test_shard_data_lists_and_arrays():
    data = [f"s{i}" for i in range(10)]
    idx = dd.shard_indices(10, epoch=1, seed=4, rank=1, world_size=2)
    assert dd.shard(data, epoch=1, seed=4, rank=1, world_size=2) == [data[i] for i in idx]
    arr = np.arange(20).reshape(10, 2)
    assert np.array_equal(dd.shard(arr, epoch=1, seed=4, rank=1, world_size=2), arr[idx])
    assert dd.shard(data) == [data[i] for i in dd.shard_indices(10)]   # this world: all of it


@pytest.mark.parametrize("kwargs, words", [
    (dict(n=-1), "n must be an integer >= 0"),
    (dict(n=4, rank=2, world_size=2), "rank 2 is not in 0..1"),
    (dict(n=4, world_size=0), "world_size must be an integer >= 1"),
    (dict(n=4, epoch=1.5), "epoch must be an integer"),
    (dict(n=4, seed=-3), "seed must be an integer >= 0"),
])
def test_shard_bad_input(kwargs, words):
    with pytest.raises(ValueError, match="shard_indices: " + words):
        dd.shard_indices(**kwargs)


def test_bad_arguments_name_the_operation():
    with pytest.raises(TypeError, match="shard: data must be a sequence"):
        dd.shard(5)
    with pytest.raises(TypeError, match="allreduce_gradients: expected a ParameterCollection"):
        dd.allreduce_gradients("model")
    with pytest.raises(ValueError, match="broadcast_parameters: root 1 is not a rank of this world of 1"):
        dd.broadcast_parameters(dy.ParameterCollection(), root=1)
    with pytest.raises(TypeError, match="DistributedTrainer: expected a trainer"):
        dd.DistributedTrainer(object())


def test_init_bad_argument(monkeypatch):
    monkeypatch.setattr(dd, "_world", None)
    with pytest.raises(TypeError, match="init: use_mpi must be None, True or False, got 'yes'"):
        dd.init(use_mpi="yes")


def test_distributed_trainer_in_a_world_of_one_is_the_trainer():
    def train(wrap):
        m = dy.ParameterCollection()
        W = m.add_parameters((3, 4), init=dy.ConstInitializer(0.3))
        E = m.add_lookup_parameters((5, 4), init=dy.ConstInitializer(0.1))
        t = dy.SimpleSGDTrainer(m, 0.5)
        if wrap:
            t = dd.DistributedTrainer(t)
            t.set_clip_threshold(0.2)      # reaches the wrapped trainer
            assert t.get_clip_threshold() == pytest.approx(0.2)
            t.learning_rate = 0.4
        else:
            t.set_clip_threshold(0.2)
            t.learning_rate = 0.4
        for k in range(3):
            dy.renew_cg()
            dy.squared_norm(W * E[k] - dy.inputVector([1, 2, 3])).backward()
            t.update()
        return W.as_array(), E.as_array()
    for a, b in zip(train(False), train(True)):
        np.testing.assert_array_equal(a, b)


def test_mark_gradient_and_rows_touched_are_applied_by_update():
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2), init=dy.ConstInitializer(1.0))
    E = m.add_lookup_parameters((4, 2), init=dy.ConstInitializer(1.0))
    t = dy.SimpleSGDTrainer(m, 1.0)
    t.set_clip_threshold(0)
    assert not W.has_gradient()
    W.grads[...] = 0.5
    E.grads[2:4] = 0.25   # row 1 (values 2, 3 of the flat table)
    W.mark_gradient()
    E.mark_rows_touched([1])
    assert W.has_gradient() and E.touched_rows().tolist() == [1]
    t.update()
    np.testing.assert_allclose(W.as_array(), np.full((2, 2), 0.5))
    np.testing.assert_allclose(E.as_array(), [[1, 1], [0.75, 0.75], [1, 1], [1, 1]])
    assert not W.has_gradient() and E.touched_rows().tolist() == []
    E.mark_rows_touched(None)
    assert E.touched_rows().tolist() == [0, 1, 2, 3]
    with pytest.raises(IndexError, match="mark_rows_touched: row 4 is out of range .* with 4 rows"):
        E.mark_rows_touched([0, 4])


def test_gradient_storage_moved_under_a_live_graph_accumulates_and_is_cleared_there():
    # what the shared-memory exchange does at its first update: the gradients move into the
    # window while this graph's expressions exist, and later backward passes write there
    def train(move):
        m = dy.ParameterCollection()
        W = m.add_parameters((3, 4), init=dy.ConstInitializer(0.3))
        b = m.add_parameters(3, init=dy.ConstInitializer(0.1))
        t = dy.SimpleSGDTrainer(m, 0.5)
        dy.renew_cg()
        loss = dy.squared_norm(W * dy.inputVector([1, 2, 3, 4]) + b)
        loss.backward()
        store = np.full(W.grads.size + 5, 9.0, dtype=np.float32)
        if move:
            before = W.grads.copy()
            old = W.use_gradient_storage(store[2:2 + W.grads.size])
            np.testing.assert_array_equal(old, before)        # the previous array, returned
            np.testing.assert_array_equal(store[2:-3], before)  # contents carried over
            assert np.shares_memory(W.grads, store)
        loss.forward(recalculate=True)
        loss.backward()                  # the same graph again: accumulates into the new storage
        grads = W.grad_as_array()
        t.update()
        if move:
            assert np.all(store[2:-3] == 0) and np.all(store[:2] == 9) and np.all(store[-3:] == 9)
        dy.renew_cg()
        dy.squared_norm(W * dy.inputVector([0, 1, 0, 1]) - b).backward()   # a new graph
        t.update()
        return grads, W.as_array(), b.as_array()
    for a, b in zip(train(False), train(True)):
        np.testing.assert_array_equal(a, b)


def test_gradient_storage_bad_input_names_the_parameter_and_sizes():
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 4), name="W")
    with pytest.raises(ValueError, match=r"use_gradient_storage: /W needs a writable contiguous 1-D "
                                         r"float32 array of 12 values, got a float32 array of shape \(11,\)"):
        W.use_gradient_storage(np.zeros(11, dtype=np.float32))
    with pytest.raises(ValueError, match="got a float64 array of shape"):
        W.use_gradient_storage(np.zeros(12))
    with pytest.raises(ValueError, match="of 12 values, got a non-contiguous float32 array"):
        W.use_gradient_storage(np.zeros(24, dtype=np.float32)[::2])
    frozen = np.zeros(12, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="got a read-only float32 array of shape"):
        W.use_gradient_storage(frozen)
    with pytest.raises(ValueError, match="got list"):
        W.use_gradient_storage([0.0] * 12)
    assert W.grads.size == 12 and not np.shares_memory(W.grads, frozen)


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_average_in_place_is_the_scaled_sum_in_rank_order_in_every_buffer(ranks):
    rng = np.random.default_rng(ranks)
    n, start, stop = 5000, 37, 4501           # more than one block of the kernel
    bufs = [rng.normal(size=n).astype(np.float32) for _ in range(ranks)]
    before = [b.copy() for b in bufs]
    scale = np.float32(1.0 / ranks)
    want = before[0][start:stop] * scale
    for b in before[1:]:
        want = want + b[start:stop] * scale
    average_in_place(bufs, start, stop, scale)
    for b, old in zip(bufs, before):
        np.testing.assert_allclose(b[start:stop], want, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(b[start:stop], bufs[0][start:stop])   # the same bits
        np.testing.assert_array_equal(b[:start], old[:start])
        np.testing.assert_array_equal(b[stop:], old[stop:])


def test_average_in_place_bad_input():
    a, b = np.zeros(8, dtype=np.float32), np.zeros(9, dtype=np.float32)
    with pytest.raises(ValueError, match="average_in_place: buffers of 8 and 9 values"):
        average_in_place([a, b], 0, 8, 0.5)
    with pytest.raises(ValueError, match=r"average_in_place: range 2:9 outside buffers of 8 values"):
        average_in_place([a, a.copy()], 2, 9, 0.5)
    with pytest.raises(ValueError, match="average_in_place: expected writable contiguous 1-D float32"):
        average_in_place([a, np.zeros(8)], 0, 8, 0.5)


@pytest.mark.parametrize("callers", [1, 3])
def test_average_shared_splits_the_chunks_among_the_callers_with_the_same_bits(callers):
    # threads stand in for the ranks (average_shared releases the GIL); whoever takes a chunk, every
    # buffer ends with average_in_place's bits, and one caller alone does every chunk
    rng = np.random.default_rng(callers)
    n, chunk, base = 5 * 4096 + 100, 4096, 2**32 - 3        # 6 chunks; the counters wrap around
    bufs = [rng.normal(size=n).astype(np.float32) for _ in range(3)]
    want = [b.copy() for b in bufs]
    average_in_place(want, 0, n, np.float32(1 / 3))
    counters = np.array([base, base], dtype=np.uint32).view(np.int32)
    waited = []
    threads = [threading.Thread(target=lambda: waited.append(
        average_shared(bufs, counters, base, chunk, np.float32(1 / 3), 1e-3, 30.0)))
        for _ in range(callers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(waited) == callers and all(0.0 <= w < 10.0 for w in waited)
    assert counters.view(np.uint32).tolist() == [(base + 6) % 2**32] * 2
    for b, w in zip(bufs, want):
        np.testing.assert_array_equal(b, w)
    # the next call counts on from there: nothing left to claim at the old base
    again = [b.copy() for b in bufs]
    assert average_shared(again, counters, base, chunk, np.float32(1 / 3)) == 0.0
    for b, a in zip(bufs, again):
        np.testing.assert_array_equal(b, a)


def test_average_shared_writes_each_chunks_squared_norm():
    # the clipping norm computed while averaging: sums[k] is the squared L2 norm of chunk k's
    # averages, the same bits whoever took the chunk (two callers, then one)
    rng = np.random.default_rng(5)
    n, chunk = 3 * 4096 + 40, 4096                          # 4 chunks, the last one short
    original = [rng.normal(size=n).astype(np.float32) for _ in range(2)]
    results = []
    for callers in (2, 1):
        bufs = [b.copy() for b in original]
        counters = np.zeros(2, dtype=np.int32)
        sums = np.full(5, -1.0)
        threads = [threading.Thread(target=average_shared,
                                    args=(bufs, counters, 0, chunk, np.float32(0.5), 1e-3, 30.0, sums))
                   for _ in range(callers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        results.append(sums.copy())
        avg = bufs[0].astype(np.float64)
        want = [np.sum(avg[k * chunk:(k + 1) * chunk] ** 2) for k in range(4)]
        np.testing.assert_allclose(sums[:4], want, rtol=1e-6)
        assert sums[4] == -1.0                              # one word per chunk, no more
    np.testing.assert_array_equal(results[0], results[1])


def test_sum_squares_is_the_same_wherever_the_array_lies():
    rng = np.random.default_rng(2)
    x = rng.normal(size=5001).astype(np.float32)
    np.testing.assert_allclose(sum_squares(x), np.sum(x.astype(np.float64) ** 2), rtol=1e-6)
    shifted = np.empty(5002, dtype=np.float32)[1:]          # another alignment, the same values
    shifted[...] = x
    assert sum_squares(shifted) == sum_squares(x)
    assert sum_squares(np.zeros(0, dtype=np.float32)) == 0.0
    with pytest.raises(ValueError, match="sum_squares: expected a contiguous float32 array"):
        sum_squares(x.astype(np.float64))
    with pytest.raises(ValueError, match="sum_squares: expected a contiguous float32 array"):
        sum_squares(x[::2])


def test_average_shared_bad_input():
    a, counters = np.zeros(32, dtype=np.float32), np.zeros(2, dtype=np.int32)
    with pytest.raises(ValueError, match="average_shared: chunk 24 must be a positive multiple of 16"):
        average_shared([a, a.copy()], counters, 0, 24, 0.5)
    with pytest.raises(ValueError, match="average_shared: counters must be 2 writable int32 words"):
        average_shared([a, a.copy()], np.zeros(1, dtype=np.int32), 0, 16, 0.5)
    with pytest.raises(ValueError, match="average_shared: buffers of 32 and 16 values"):
        average_shared([a, np.zeros(16, dtype=np.float32)], counters, 0, 16, 0.5)
    with pytest.raises(ValueError, match="average_shared: no buffers"):
        average_shared([], counters, 0, 16, 0.5)
    with pytest.raises(ValueError, match="average_shared: sums must be 2 writable float64 words"):
        average_shared([a, a.copy()], counters, 0, 16, 0.5, 1e-4, 0.05, np.zeros(1))
    with pytest.raises(ValueError, match="average_shared: sums must be 2 writable float64 words"):
        average_shared([a, a.copy()], counters, 0, 16, 0.5, 1e-4, 0.05, np.zeros(2, np.float32))


@pytest.mark.parametrize("spin", [0.0, 5.0], ids=["sleeping", "spinning"])
def test_rendezvous_returns_once_every_rank_has_stamped(spin):
    # the shared-memory exchange's rendezvous, with threads standing in for the other ranks (meet
    # releases the GIL); a long futex timeout, so that only a wake-up ends a sleeping wait in time
    words = [np.full(1, 6, dtype=np.int32) for _ in range(3)]
    ranks = [Rendezvous(words, r, spin, 30.0) for r in range(3)]
    waited = {}

    def meet(r, delay):
        time.sleep(delay)
        waited[r] = ranks[r].meet(7)
    threads = [threading.Thread(target=meet, args=(r, d)) for r, d in ((1, 0.05), (2, 0.2))]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    waited[0] = ranks[0].meet(7)
    took = time.monotonic() - t0
    for th in threads:
        th.join()
    assert [int(w[0]) for w in words] == [7, 7, 7]
    assert 0.2 <= took < 10.0, took
    assert 0.15 <= waited[0] <= took + 1e-3         # rank 0 waited for rank 2, and says so
    assert 0.1 <= waited[1] and waited[2] == 0.0    # rank 2 came last: everyone was there
    assert ranks[0].meet(7) == 0.0                   # already there: returns at once


def test_a_signal_interrupts_a_rank_waiting_for_a_partner_that_never_comes():
    # Ctrl-C (here an alarm whose handler raises) must stop a rank waiting in the rendezvous or for
    # the others' chunks: the wait releases the GIL but checks for signals after each futex sleep
    import signal

    class Alarm(Exception):
        pass

    def raise_alarm(signum, frame):
        raise Alarm()
    previous = signal.signal(signal.SIGALRM, raise_alarm)
    try:
        words = [np.zeros(1, dtype=np.int32) for _ in range(2)]
        bufs = [np.zeros(64, dtype=np.float32) for _ in range(2)]
        counters = np.array([7, 3], dtype=np.int32)   # 4 chunks claimed by a partner that is gone
        for wait in (lambda: Rendezvous(words, 0, 0.0, 0.01).meet(1),
                     lambda: average_shared(bufs, counters, 3, 16, 0.5, 0.0, 0.01)):
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            t0 = time.monotonic()
            with pytest.raises(Alarm):
                wait()
            assert time.monotonic() - t0 < 5.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_rendezvous_bad_input():
    words = [np.zeros(1, dtype=np.int32) for _ in range(2)]
    with pytest.raises(ValueError, match="Rendezvous: rank 2 is not one of the 2 words"):
        Rendezvous(words, 2)
    with pytest.raises(ValueError, match="Rendezvous: expected writable aligned int32 arrays"):
        Rendezvous([words[0], np.zeros(1)], 0)
    with pytest.raises(ValueError, match="Rendezvous: spin -1.0 must be >= 0 and timeout 0.05"):
        Rendezvous(words, 0, -1.0)


# ---- under mpirun ----------------------------------------------------------------------------------

def _mpi_missing():
    if shutil.which("mpirun") is None:
        return "mpirun not found (install openmpi-bin libopenmpi-dev; .ci/run does)"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py not installed (pip install mpi4py, or '.[distributed]'; .ci/run does)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=f"MPI tests skipped: {_mpi_missing()}")


def mpirun(np_, *args, timeout=TIMEOUT, env=None):
    """Run tests/mpi_scenarios.py on np_ ranks over loopback; returns (returncode, output, seconds).
    env: variables added to every rank's environment."""
    cmd = mpirun_command(np_) + [sys.executable, SCENARIOS, *args]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, cwd=ROOT, env=dict(mpirun_env(ROOT), **(env or {})),
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mpirun -np {np_} {' '.join(args)} hung for {timeout} s: {e.stdout} {e.stderr}")
    return out.returncode, out.stdout + out.stderr, time.monotonic() - t0


def one_process(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "PMIX"))}
    out = subprocess.run([sys.executable, SCENARIOS, *args], cwd=ROOT, env=dict(env, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


# the two ways gradients travel: DYNET_MPI_SHARED_MEMORY's value -> dd.gradient_transport()
TRANSPORTS = {"1": "shared memory", "0": "MPI collectives"}


@needs_mpi
@pytest.mark.parametrize("shared_memory", sorted(TRANSPORTS))
@pytest.mark.parametrize("ranks", [2, 3])
def test_training_on_ranks_equals_one_process_on_the_union(ranks, shared_memory, tmp_path):
    rc, output, _ = mpirun(ranks, "train", str(tmp_path / "mpi.npz"),
                           env={"DYNET_MPI_SHARED_MEMORY": shared_memory})
    assert rc == 0, output
    one_process("train", str(tmp_path / "one.npz"), "--as-ranks", str(ranks))
    got, want = np.load(tmp_path / "mpi.npz"), np.load(tmp_path / "one.npz")
    assert int(got["world_size"]) == ranks and int(want["world_size"]) == 1
    assert str(got["transport"]) == TRANSPORTS[shared_memory] and str(want["transport"]) == "none"
    assert bool(got["consistent"]), "the ranks ended with different parameters"
    keys = [k for k in want.files if "/" in k and not k.endswith("@start")]
    assert len(keys) == 30 and sorted(keys) == sorted(k for k in got.files if "/" in k
                                                      and not k.endswith("@start"))
    for k in keys:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5, err_msg=k)
    # clipping happened, at the same updates: it saw the global gradient norm
    for case in ("adam_clipped", "momentum_dense_updates", "sgd_small_table_clipped"):
        assert int(got[f"clips:{case}"]) == int(want[f"clips:{case}"]) > 0, case
    # allreduce_gradients returns the averaged gradient's norm where it computes it on the way
    # (shared memory; the wrapped cases pass it to the trainer's clipping), else None (-1 here)
    errors, alone = got["norm_errors:sgd_small_table_clipped"], want["norm_errors:sgd_small_table_clipped"]
    assert len(errors) == len(alone) > 0 and (alone == -1).all()
    if TRANSPORTS[shared_memory] == "shared memory":
        assert (errors >= 0).all() and errors.max() < 1e-5, errors
    else:
        assert (errors == -1).all(), errors
    # every parameter moved (P only through the ranks whose minibatches had class 0)
    still = [k for k in keys if np.max(np.abs(want[k] - want[k + "@start"])) < 1e-3]
    assert still == [], still


@needs_mpi
def test_a_failing_rank_stops_the_job_with_its_rank():
    rc, output, seconds = mpirun(2, "fail", "1", timeout=120)
    assert rc != 0
    assert "rank 1: ValueError: deliberate failure at step 1" in output, output
    assert "rank 0: ValueError" not in output


@needs_mpi
def test_mismatched_models_are_detected_at_broadcast():
    rc, output, _ = mpirun(2, "mismatch", "start", timeout=120)
    assert rc != 0
    assert ("broadcast_parameters: the models differ across ranks: parameters 1 (/_1) has shape "
            "(3, 5) on rank 1 but (3, 4) (/_1) on rank 0") in output, output


@needs_mpi
@pytest.mark.parametrize("shared_memory", sorted(TRANSPORTS))
def test_a_model_changed_on_one_rank_is_detected_at_the_all_reduce(shared_memory):
    rc, output, _ = mpirun(2, "mismatch", "late", timeout=120,
                           env={"DYNET_MPI_SHARED_MEMORY": shared_memory})
    assert rc != 0
    assert ("allreduce_gradients: the models differ across ranks: rank 1 has 3 parameters but rank "
            "0 has 2") in output, output


@needs_mpi
@pytest.mark.parametrize("rank,how", [(0, "refuse"), (1, "refuse"), (1, "full"), (0, "full-gradients")])
def test_one_rank_refusing_shared_memory_makes_every_rank_use_collectives(rank, how):
    # the choice is made together: ranks on different transports would wait for each other forever;
    # "full", "full-gradients": a window would outgrow the free shared memory (a SIGBUS when
    # written), so the ranks go on through the collectives from that update on (the gradients back
    # in private memory)
    rc, output, _ = mpirun(2, "transport", str(rank), how, timeout=120)
    assert rc == 0, output
    for r in (0, 1):
        assert f"rank {r} transport MPI collectives same=True" in output, output


@needs_mpi
def test_rank_0_saves_and_every_rank_loads(tmp_path):
    rc, output, _ = mpirun(3, "save-load", str(tmp_path))
    assert rc == 0, output
    assert "save-load ranks=3 equal=True" in output, output
    assert sorted(os.listdir(tmp_path)) == ["model.data", "model.meta", "model.txt"]


@needs_mpi
def test_example_runs_with_mpirun_and_alone():
    env = mpirun_env(ROOT)
    example = os.path.join(ROOT, "examples", "distributed_mlp.py")
    for cmd, transport in ((mpirun_command(2) + [sys.executable, example, "--epochs", "2"],
                            "shared memory"), ([sys.executable, example, "--epochs", "2"], "none")):
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert out.returncode == 0, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        assert len([l for l in lines if l.startswith("epoch ")]) == 2, out.stdout
        accuracy = float(lines[1].split("test accuracy ")[1].split()[0])
        assert accuracy > 0.8, out.stdout
        assert f"gradients through {transport})" in lines[1], out.stdout
        assert "reloaded on every rank: identical" in out.stdout


def test_launched_by_mpirun_without_mpi4py_raises(monkeypatch):
    # each rank would otherwise train alone, silently
    monkeypatch.setattr(dd, "_world", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)      # import mpi4py -> ImportError
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="init: MPI is needed .started by an MPI launcher with 2 "
                                           "processes. but mpi4py cannot be imported"):
        dd.init()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")       # a launcher's world of one: fine
    assert dd.init() == (0, 1)
