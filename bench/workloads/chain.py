"""Per example: x = tanh(W x + b) 100 times, then squared_norm(x); forward, backward, SGD update."""
import numpy as np

UNIT = "examples/s"
CONFIGS = [{"dim": 32}, {"dim": 256}]
LAYERS = 100


def make(dy, dim):
    m = dy.ParameterCollection()
    rng = np.random.default_rng(0)
    W = m.add_parameters((dim, dim))
    b = m.add_parameters(dim)
    W.set_value(rng.uniform(-1, 1, (dim, dim)) / np.sqrt(dim))
    b.set_value(np.full(dim, 0.01))
    trainer = dy.SimpleSGDTrainer(m, 0.001)
    x0 = rng.uniform(-1, 1, dim)

    def step():
        dy.renew_cg()
        Wp, bp = dy.parameter(W), dy.parameter(b)
        x = dy.inputVector(x0)
        for _ in range(LAYERS):
            x = dy.tanh(Wp * x + bp)
        loss = dy.squared_norm(x)
        loss.value()
        loss.backward()
        trainer.update()
        return 1

    step.model = m   # the reference's trainer dangles if its collection is garbage-collected
    return step
