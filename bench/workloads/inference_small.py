"""Per-example inference with a small MLP: input 32, tanh hidden layer of 64, softmax over 10
classes; one graph per example, forward only, the probabilities read back as numpy."""
import numpy as np

UNIT = "examples/s"
CONFIGS = [{"dim": 32, "hidden": 64, "classes": 10}]


def make(dy, dim, hidden, classes):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    W1 = m.add_parameters((hidden, dim))
    b1 = m.add_parameters(hidden)
    W2 = m.add_parameters((classes, hidden))
    b2 = m.add_parameters(classes)
    xs = [list(rng.uniform(-1, 1, dim)) for _ in range(64)]
    it = [0]

    def step():
        x0 = xs[it[0] % len(xs)]
        it[0] += 1
        dy.renew_cg()
        x = dy.inputVector(x0)
        h = dy.tanh(dy.parameter(W1) * x + dy.parameter(b1))
        dy.softmax(dy.parameter(W2) * h + dy.parameter(b2)).npvalue()
        return 1

    step.model = m
    return step
