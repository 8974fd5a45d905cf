"""Hogwild training with shared parameters: several worker processes train one model at once.

With shared_parameters, parameter values (and the trainer's moments) live in memory shared between
processes, so workers forked after the model was made update the same weights without locks, as
DyNet's --dynet-shared-parameters does. Each worker fits its own slice of a linear regression
problem; the parent then sees the weights they trained together.

    python examples/hogwild.py            (or: python examples/hogwild.py --dynet-shared-parameters)
"""
import multiprocessing as mp

import numpy as np

import dynet_config
dynet_config.set(shared_parameters=True, random_seed=1)
import dynet as dy  # noqa: E402

DIM, WORKERS, EXAMPLES, EPOCHS = 10, 4, 400, 8

rng = np.random.default_rng(0)
true_w = rng.normal(size=DIM)
X = rng.normal(size=(EXAMPLES, DIM))
Y = X @ true_w + 0.01 * rng.normal(size=EXAMPLES)

m = dy.ParameterCollection()
w = m.add_parameters((1, DIM), init=dy.ConstInitializer(0.0))
trainer = dy.MomentumSGDTrainer(m, learning_rate=0.01)


def example_loss(x, y):
    return dy.squared_distance(w * dy.inputVector(x), dy.scalarInput(y))


def mean_loss():
    dy.renew_cg()
    return dy.esum([example_loss(x, y) for x, y in zip(X, Y)]).scalar_value() / EXAMPLES


def worker(k):
    """Train on every WORKERS-th example; the updates land in the shared weights."""
    for _ in range(EPOCHS):
        for i in range(k, EXAMPLES, WORKERS):
            dy.renew_cg()
            example_loss(X[i], Y[i]).backward()
            trainer.update()


if __name__ == "__main__":
    print(f"mean loss before: {mean_loss():.5f}")
    ctx = mp.get_context("fork")          # the workers must share the parent's memory
    workers = [ctx.Process(target=worker, args=(k,)) for k in range(WORKERS)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    print(f"mean loss after {WORKERS} workers x {EPOCHS} epochs: {mean_loss():.5f}")
    print("largest weight error:", float(np.abs(w.as_array().ravel() - true_w).max()))
