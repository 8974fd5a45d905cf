"""An MLP classifier (784-256-10) written per example, `W2 * rectify(W1 * x + b1) + b2`: 64 examples'
losses summed into one graph before backward and one SGD update; without and with
--dynet-autobatch 1."""
import numpy as np

UNIT = "examples/s"
EXAMPLES = 64
CONFIGS = [{"autobatch": 0}, {"autobatch": 1}]


def make(dy, inputs=784, hidden=256, classes=10):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    W1 = m.add_parameters((hidden, inputs))
    b1 = m.add_parameters(hidden)
    W2 = m.add_parameters((classes, hidden))
    b2 = m.add_parameters(classes)
    trainer = dy.SimpleSGDTrainer(m, 0.01)
    data = [(rng.uniform(0, 1, inputs), int(rng.integers(0, classes))) for _ in range(512)]
    it = [0]

    def step():
        dy.renew_cg()
        w1, c1, w2, c2 = dy.parameter(W1), dy.parameter(b1), dy.parameter(W2), dy.parameter(b2)
        losses = []
        for _ in range(EXAMPLES):
            x, y = data[it[0] % len(data)]
            it[0] += 1
            h = dy.rectify(w1 * dy.inputVector(x) + c1)
            losses.append(dy.pickneglogsoftmax(w2 * h + c2, y))
        loss = dy.esum(losses)
        loss.value()
        loss.backward()
        trainer.update()
        return EXAMPLES

    step.model = m
    return step
