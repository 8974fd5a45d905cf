"""Minibatched MLP classifier training: `dim` inputs, `layers` rectifier layers of `hidden`,
`classes` outputs, softmax loss over a minibatch (pickneglogsoftmax_batch), Adam or SGD. Counts
examples. The first two configs are the issue's 784-512-512-10 MLP with Adam at batch 64 and its
large variant (batch 512, hidden 2048: bench/gpu_check.sh compares it on the GPU and the CPU)."""
import numpy as np

UNIT = "examples/s"
CONFIGS = [{"dim": 784, "hidden": 512, "layers": 2, "classes": 10, "batch": 64, "trainer": "adam"},
           {"dim": 784, "hidden": 2048, "layers": 2, "classes": 10, "batch": 512, "trainer": "adam"},
           # examples/mlp.py, larger: one rectifier layer, SGD (the CPU's per-node cost shows)
           {"dim": 64, "hidden": 128, "layers": 1, "classes": 10, "batch": 32, "trainer": "sgd"}]


def make(dy, dim, hidden, layers, classes, batch, trainer):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    sizes = [dim] + [hidden] * layers
    hidden_layers = [(m.add_parameters((sizes[k + 1], sizes[k])), m.add_parameters(sizes[k + 1]))
                     for k in range(layers)]
    W_out, b_out = m.add_parameters((classes, hidden)), m.add_parameters(classes)
    t = dy.AdamTrainer(m) if trainer == "adam" else dy.SimpleSGDTrainer(m, 0.1)
    data = [(rng.uniform(0, 1, (dim, batch)).astype(np.float32),
             [int(v) for v in rng.integers(0, classes, batch)]) for _ in range(8)]
    it = [0]

    def step():
        x, y = data[it[0] % len(data)]
        it[0] += 1
        dy.renew_cg()
        h = dy.inputTensor(x, batched=True)
        for W, b in hidden_layers:
            h = dy.rectify(dy.affine_transform([dy.parameter(b), dy.parameter(W), h]))
        out = dy.affine_transform([dy.parameter(b_out), dy.parameter(W_out), h])
        loss = dy.sum_batches(dy.pickneglogsoftmax_batch(out, y)) * (1.0 / batch)
        loss.value()
        loss.backward()
        t.update()
        return batch

    step.model = m
    return step
