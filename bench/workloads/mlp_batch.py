"""Minibatched MLP classifier training: 784 inputs, two hidden layers of 256 (rectify), 10 classes,
minibatches of 64 (inputTensor batched, affine_transform, pickneglogsoftmax_batch, mean_batches);
forward, backward, SGD. Counts examples. bench/distributed.py also runs it on several processes."""
import numpy as np

UNIT = "examples/s"
CONFIGS = [{"inputs": 784, "hidden": 256, "classes": 10, "batch": 64}]


def make(dy, inputs, hidden, classes, batch, wrap_trainer=None):
    """wrap_trainer: e.g. dynet.distributed.DistributedTrainer (bench/distributed.py)."""
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    W1, b1 = m.add_parameters((hidden, inputs)), m.add_parameters(hidden)
    W2, b2 = m.add_parameters((hidden, hidden)), m.add_parameters(hidden)
    W3, b3 = m.add_parameters((classes, hidden)), m.add_parameters(classes)
    trainer = dy.SimpleSGDTrainer(m, 0.05)
    if wrap_trainer is not None:
        trainer = wrap_trainer(trainer)
    batches = [(rng.normal(size=(inputs, batch)), [int(y) for y in rng.integers(0, classes, batch)])
               for _ in range(10)]
    it = [0]

    def step():
        x, labels = batches[it[0] % len(batches)]
        it[0] += 1
        dy.renew_cg()
        h = dy.inputTensor(x, batched=True)
        for W, b in ((W1, b1), (W2, b2)):
            h = dy.rectify(dy.affine_transform([b, W, h]))
        loss = dy.mean_batches(dy.pickneglogsoftmax_batch(dy.affine_transform([b3, W3, h]), labels))
        loss.value()
        loss.backward()
        trainer.update()
        return batch

    step.model = m
    return step
