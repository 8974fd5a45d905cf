"""The minibatched MLP classifier of examples/mlp.py, trained data-parallel on several processes.

    python examples/distributed_mlp.py                  one process
    mpirun -np 2 python examples/distributed_mlp.py     two processes, each on half of every minibatch

Every rank builds the same model (rank 0's initial values are broadcast), trains on its shard of the
data (reshuffled each epoch with one seed), and the gradients are averaged across ranks before each
update: the result is that of one process with minibatches of (number of ranks) x BATCH. Rank 0
prints the progress and saves the model; then every rank loads it back.
Options: --epochs N (default 10), --save BASENAME (default: a temporary directory).
"""
import argparse
import os
import tempfile

import numpy as np

import dynet as dy
import dynet.distributed as dd

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--save", default=None, help="basename for dy.save (default: a temporary dir)")
args, _ = parser.parse_known_args()   # (--dynet-* flags stay in sys.argv, as with DyNet)

rank, size = dd.init()
rng = np.random.default_rng(0)   # the same data on every rank; shard() picks each rank's part
CLASSES, DIM, HIDDEN, BATCH = 3, 10, 32, 16   # BATCH: per rank
centers = rng.normal(0, 2, (CLASSES, DIM))


def sample(n):
    labels = rng.integers(0, CLASSES, n)
    return (centers[labels] + rng.normal(0, 1.5, (n, DIM))).astype(np.float32), labels


train_x, train_y = sample(3000)
test_x, test_y = sample(600)

m = dy.ParameterCollection()
W1 = m.add_parameters((HIDDEN, DIM))
b1 = m.add_parameters(HIDDEN)
W2 = m.add_parameters((CLASSES, HIDDEN))
b2 = m.add_parameters(CLASSES)
trainer = dd.DistributedTrainer(dy.AdamTrainer(m))   # broadcasts rank 0's values


def scores(xs):
    """xs: (n, DIM) -> a batch of n score vectors."""
    x = dy.inputTensor(xs.T, batched=True)
    h = dy.rectify(dy.affine_transform([b1, W1, x]))
    return dy.affine_transform([b2, W2, h])


for epoch in range(args.epochs):
    mine = dd.shard_indices(len(train_y), epoch=epoch, seed=1)
    total = 0.0
    for start in range(0, len(mine), BATCH):
        idx = mine[start:start + BATCH]
        dy.renew_cg()
        # the mean over this rank's examples; the averaged gradient is then the mean over all ranks'
        loss = dy.mean_batches(dy.pickneglogsoftmax_batch(scores(train_x[idx]), list(train_y[idx])))
        total += loss.scalar_value() * len(idx)
        loss.backward()
        trainer.update()
    transport = dd.gradient_transport()     # every rank asks (the first time, it is a collective)
    if rank == 0:
        dy.renew_cg()
        predicted = scores(test_x).npvalue().argmax(axis=0)
        print(f"epoch {epoch}  loss (rank 0's shard) {total / len(mine):.4f}  "
              f"test accuracy {np.mean(predicted == test_y):.3f}  ({size} process(es), gradients "
              f"through {transport})", flush=True)

with tempfile.TemporaryDirectory() as tmp:
    base = dd.broadcast_object(args.save or os.path.join(tmp, "mlp"))   # rank 0's path everywhere
    dd.save(base, [m])                                # written once, by rank 0
    (loaded,) = dd.load(base, dy.ParameterCollection())   # read back on every rank
    same = all(np.array_equal(a.as_array(), b.as_array())
               for a, b in zip(m.parameters_list(), loaded.parameters_list()))
    if rank == 0:
        print(f"saved and reloaded on every rank: {'identical' if same else 'DIFFERENT'}")
    dd.barrier()   # rank 0 removes its directory only after every rank has read it
