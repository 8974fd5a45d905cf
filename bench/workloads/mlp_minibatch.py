"""A minibatched MLP classifier (as examples/mlp.py, larger): input 64, a rectifier layer of 128,
10 classes, batches of 32 (one batched graph per minibatch); forward, backward, SGD update."""
import numpy as np

UNIT = "examples/s"
CONFIGS = [{"dim": 64, "hidden": 128, "classes": 10, "batch": 32}]


def make(dy, dim, hidden, classes, batch):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    W1 = m.add_parameters((hidden, dim))
    b1 = m.add_parameters(hidden)
    W2 = m.add_parameters((classes, hidden))
    b2 = m.add_parameters(classes)
    trainer = dy.SimpleSGDTrainer(m, 0.1)
    data = [(rng.uniform(-1, 1, (dim, batch)), [int(c) for c in rng.integers(0, classes, batch)])
            for _ in range(16)]
    it = [0]

    def step():
        xs, ys = data[it[0] % len(data)]
        it[0] += 1
        dy.renew_cg()
        x = dy.inputTensor(xs, batched=True)
        h = dy.rectify(dy.affine_transform([dy.parameter(b1), dy.parameter(W1), x]))
        s = dy.affine_transform([dy.parameter(b2), dy.parameter(W2), h])
        loss = dy.sum_batches(dy.pickneglogsoftmax_batch(s, ys))
        loss.scalar_value()
        loss.backward()
        trainer.update()
        return batch

    step.model = m
    return step
