"""Minibatched MLP classifier training: 784-H-H-10 with ReLU, softmax loss over a minibatch
(pickneglogsoftmax_batch), Adam. Counts examples. The large config is for the GPU (bench/gpu_check.sh)."""
import numpy as np

UNIT = "examples/s"
CONFIGS = [{"hidden": 512, "batch": 64}, {"hidden": 2048, "batch": 512}]


def make(dy, hidden, batch):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    W1, b1 = m.add_parameters((hidden, 784)), m.add_parameters(hidden)
    W2, b2 = m.add_parameters((hidden, hidden)), m.add_parameters(hidden)
    W3, b3 = m.add_parameters((10, hidden)), m.add_parameters(10)
    trainer = dy.AdamTrainer(m)
    data = [(rng.uniform(0, 1, (784, batch)).astype(np.float32), [int(v) for v in rng.integers(0, 10, batch)])
            for _ in range(8)]
    it = [0]

    def step():
        x, y = data[it[0] % len(data)]
        it[0] += 1
        dy.renew_cg()
        h = dy.rectify(dy.affine_transform([dy.parameter(b1), dy.parameter(W1), dy.inputTensor(x, batched=True)]))
        h = dy.rectify(dy.affine_transform([dy.parameter(b2), dy.parameter(W2), h]))
        out = dy.affine_transform([dy.parameter(b3), dy.parameter(W3), h])
        loss = dy.sum_batches(dy.pickneglogsoftmax_batch(out, y)) * (1.0 / batch)
        loss.value()
        loss.backward()
        trainer.update()
        return batch

    step.model = m
    return step
