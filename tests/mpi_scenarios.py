"""Programs that tests/test_distributed.py runs under `mpirun -np N` (and as one plain process).

    python tests/mpi_scenarios.py train OUT.npz [--as-ranks N]
        trains every configuration of CASES; under mpirun each rank trains on its shard with
        minibatches of BATCH; with --as-ranks N one process trains on the union (minibatches of
        N * BATCH), which must give the same parameters. Rank 0 writes them to OUT.npz, with a flag
        saying whether every rank ended with exactly the same values.
    python tests/mpi_scenarios.py fail RANK      rank RANK raises during training
    python tests/mpi_scenarios.py mismatch WHEN  rank 1 builds a differently shaped model (WHEN:
                                                 "start"), or adds a parameter later ("late")
    python tests/mpi_scenarios.py save-load DIR  rank 0 saves, every rank loads
    python tests/mpi_scenarios.py transport RANK HOW
                                                 rank RANK refuses shared memory (HOW: "refuse",
                                                 DYNET_MPI_SHARED_MEMORY=0) or finds it full when
                                                 the slots must grow ("full") or when the gradients
                                                 move into shared memory ("full-gradients"); every
                                                 rank trains a few steps and prints the transport
                                                 it used
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dynet as dy                      # noqa: E402
import dynet.distributed as dd          # noqa: E402

BATCH, ITEMS, DIM, HIDDEN, CLASSES, EPOCHS = 4, 72, 5, 8, 3, 2

# name -> (trainer, clip threshold (0: off), sparse updates, vocabulary, use DistributedTrainer,
# updates per graph: more than 1 recomputes the same graph, whose expressions were made before the
# first update moved the gradients into shared memory)
CASES = {
    "sgd": ("sgd", 0.0, True, 30, True, 1),
    "adam_clipped": ("adam", 0.05, True, 30, True, 1),
    "momentum_dense_updates": ("momentum", 0.5, False, 30, True, 1),   # with weight decay
    "sgd_small_table_clipped": ("sgd", 0.3, True, 3, False, 1),   # every row touched: dense path
    "adam_static_graph": ("adam", 0.0, True, 30, True, 3),
}


def dataset(vocab):
    rng = np.random.default_rng(7)
    return [(int(rng.integers(vocab)), rng.normal(size=DIM).astype(np.float32),
             int(rng.integers(CLASSES))) for _ in range(ITEMS)]


def build(vocab, seed):
    rng = np.random.default_rng(seed)
    m = dy.ParameterCollection()

    def init(*shape):
        return dy.NumpyInitializer(rng.normal(0, 0.5, shape).astype(np.float32))
    params = {"E": m.add_lookup_parameters((vocab, 6), init=rng.normal(0, 0.5, (vocab, 6)).astype(np.float32)),
              "W1": m.add_parameters((HIDDEN, 6 + DIM), init=init(HIDDEN, 6 + DIM)),
              "b1": m.add_parameters(HIDDEN, init=init(HIDDEN)),
              "W2": m.add_parameters((CLASSES, HIDDEN), init=init(CLASSES, HIDDEN)),
              "b2": m.add_parameters(CLASSES, init=init(CLASSES)),
              # used only by examples of class 0: some ranks' minibatches have none
              "P": m.add_parameters((2, HIDDEN), init=init(2, HIDDEN))}
    return m, params


def make_trainer(kind, m):
    return {"sgd": lambda: dy.SimpleSGDTrainer(m, 0.2),
            "adam": lambda: dy.AdamTrainer(m, 0.01),
            "momentum": lambda: dy.MomentumSGDTrainer(m, 0.1)}[kind]()


def batch_loss(params, batch):
    words = [w for w, _, _ in batch]
    labels = [y for _, _, y in batch]
    x = dy.inputTensor(np.stack([v for _, v, _ in batch], axis=1), batched=True)
    h = dy.tanh(params["W1"] * dy.concatenate([dy.lookup_batch(params["E"], words), x]) + params["b1"])
    losses = dy.pickneglogsoftmax_batch(params["W2"] * h + params["b2"], labels)
    if 0 in labels:
        mask = dy.inputTensor(np.array([[1.0 if y == 0 else 0.0 for y in labels]]), batched=True)
        losses = losses + dy.cmult(mask, dy.squared_norm(params["P"] * h))
    return dy.mean_batches(losses)


def train(case, ranks_as_one):
    kind, clip, sparse, vocab, wrap, repeats = CASES[case]
    data = dataset(vocab)
    # every rank initialises differently: the broadcast from rank 0 must make them equal
    m, params = build(vocab, seed=1 + 1000 * dd.rank())
    if case == "momentum_dense_updates":
        m.set_weight_decay_lambda(0.01)
    if dd.rank() != 0:      # as if trained elsewhere: the broadcast must bring rank 0's factor too
        m.weight_decay_state().scale = 0.5
    initial = {f"{case}/{k}@start": p.as_array().copy() for k, p in params.items()}
    trainer = make_trainer(kind, m)
    trainer.set_clip_threshold(clip)
    trainer.set_sparse_updates(sparse)
    if wrap:
        trainer = dd.DistributedTrainer(trainer)
    else:
        dd.broadcast_parameters(m)
    batch = BATCH * (ranks_as_one or 1)
    norm_errors = []        # the norm allreduce_gradients returns against the gradient's (-1: None)
    for epoch in range(EPOCHS):
        mine = dd.shard(data, epoch=epoch, seed=3, world_size=1 if ranks_as_one else None,
                        rank=0 if ranks_as_one else None)
        assert len(mine) == (ITEMS if ranks_as_one else ITEMS // dd.world_size())
        for start in range(0, len(mine), batch):
            dy.renew_cg()
            loss = batch_loss(params, mine[start:start + batch])
            for repeat in range(repeats):
                loss.forward(recalculate=repeat > 0)
                loss.backward()
                if not wrap:
                    norm = dd.allreduce_gradients(m)
                    want = np.sqrt(sum(np.sum(p.grad_as_array().astype(np.float64) ** 2)
                                       for p in params.values()))
                    norm_errors.append(-1.0 if norm is None else abs(norm - want) / want)
                trainer.update()
    return dict(initial, **{f"{case}/{k}": p.as_array().copy() for k, p in params.items()},
                **{f"clips:{case}": np.array(trainer.clips),
                   f"norm_errors:{case}": np.array(norm_errors)})


def run_train(out, ranks_as_one):
    results = {}
    for case in CASES:
        results.update(train(case, ranks_as_one))
    flat = np.concatenate([v.ravel() for k, v in sorted(results.items()) if not k.endswith("@start")])
    everyone = dd.allgather_object(flat)
    results["consistent"] = np.array(all(np.array_equal(v, everyone[0]) for v in everyone))
    results["world_size"] = np.array(dd.world_size())
    results["transport"] = np.array(dd.gradient_transport())
    if dd.rank() == 0:
        np.savez(out, **results)


def run_fail(bad_rank):
    m, params = build(30, seed=1)
    trainer = dd.DistributedTrainer(dy.SimpleSGDTrainer(m))
    data = dataset(30)
    for step in range(3):
        if step == 1 and dd.rank() == bad_rank:
            raise ValueError(f"deliberate failure at step {step}")
        dy.renew_cg()
        batch_loss(params, data[:BATCH]).backward()
        trainer.update()


def run_mismatch(when):
    m = dy.ParameterCollection()
    W = m.add_parameters((4, 8))
    m.add_parameters((3, 4) if dd.rank() == 0 or when == "late" else (3, 5))
    trainer = dd.DistributedTrainer(dy.SimpleSGDTrainer(m))
    if when == "late" and dd.rank() == 1:
        m.add_parameters((2, 2))        # after the broadcast: the all-reduce must notice
    for _ in range(2):
        dy.renew_cg()
        dy.squared_norm(W * dy.inputVector(list(range(8)))).backward()
        trainer.update()


def run_transport(rank, how):
    if dd.rank() == rank and how == "refuse":
        os.environ["DYNET_MPI_SHARED_MEMORY"] = "0"
    elif dd.rank() == rank and how == "full":   # no room for the slots to grow at the first update
        dd._shared_memory_free = lambda: 0
    elif dd.rank() == rank:         # "full-gradients": room for the slots, then none for the gradients
        asked = []

        def free_space():
            asked.append(1)
            return 1 << 30 if len(asked) == 1 else 0
        dd._shared_memory_free = free_space
    m, params = build(30, seed=1)
    trainer = dd.DistributedTrainer(dy.SimpleSGDTrainer(m))
    data = dd.shard(dataset(30), seed=2)
    for start in range(0, 3 * BATCH, BATCH):
        dy.renew_cg()
        batch_loss(params, data[start:start + BATCH]).backward()
        trainer.update()
    values = np.concatenate([p.as_array().ravel() for p in m.parameters_list()])
    same = all(np.array_equal(v, values) for v in dd.allgather_object(values))
    print(f"rank {dd.rank()} transport {dd.gradient_transport()} same={same}", flush=True)


def run_save_load(directory):
    m, params = build(30, seed=1 + 1000 * dd.rank())   # differs per rank before loading
    base = os.path.join(directory, "model")
    dd.save(base, [m])
    dd.save_model(m, base + ".txt")
    (m2,) = dd.load(base, dy.ParameterCollection())
    m3, _ = build(30, seed=5 + dd.rank())
    dd.populate_model(m3, base + ".txt")
    mine = np.concatenate([p.as_array().ravel() for p in m2.parameters_list() + m3.parameters_list()]
                          + [p.as_array().ravel() for p in m2.lookup_parameters_list()])
    everyone = dd.allgather_object(mine)
    if dd.rank() == 0:
        saved = np.concatenate([p.as_array().ravel() for p in m.parameters_list() * 2]
                               + [p.as_array().ravel() for p in m.lookup_parameters_list()])
        ok = all(np.array_equal(v, saved) for v in everyone)
        print(f"save-load ranks={len(everyone)} equal={ok}")


if __name__ == "__main__":
    dd.init()
    what = sys.argv[1]
    if what == "train":
        as_one = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--as-ranks" else 0
        run_train(sys.argv[2], as_one)
    elif what == "fail":
        run_fail(int(sys.argv[2]))
    elif what == "mismatch":
        run_mismatch(sys.argv[2])
    elif what == "transport":
        run_transport(int(sys.argv[2]), sys.argv[3])
    elif what == "save-load":
        run_save_load(sys.argv[2])
    else:
        raise SystemExit(f"unknown scenario {what}")
