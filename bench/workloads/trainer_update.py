"""Trainer.update() on a big model: 20 matrices of 1000 x 500 (10 million parameters) and a
100,000 x 64 lookup table of which 200 rows get gradients (sparse updates, the default; clipping on,
the default). Each step builds a tiny graph that gives every matrix and the 200 rows a gradient
(sum_elems of each matrix, squared norm of the looked-up rows) and runs backward; only update() is
timed, by config "timed": "update" (the issue's measure), or the whole step with "timed": "step"."""
import time

import numpy as np

UNIT = "updates/s"
CONFIGS = [{"trainer": "SimpleSGDTrainer", "timed": "update"}, {"trainer": "AdamTrainer", "timed": "update"},
           {"trainer": "AdamTrainer", "timed": "step"}]
MATRICES, ROWS, COLS = 20, 1000, 500
VOCAB, EMBED, TOUCHED = 100_000, 64, 200


def make(dy, trainer, timed="update"):
    m = dy.ParameterCollection()
    rng = np.random.default_rng(0)
    init = dy.UniformInitializer(0.05)
    Ws = [m.add_parameters((ROWS, COLS), init=init) for _ in range(MATRICES)]
    E = m.add_lookup_parameters((VOCAB, EMBED), init=init)
    t = getattr(dy, trainer)(m)
    batches = [sorted(rng.choice(VOCAB, TOUCHED, replace=False).tolist()) for _ in range(16)]
    count = [0]

    def step():
        dy.renew_cg()
        rows = batches[count[0] % len(batches)]
        count[0] += 1
        terms = [dy.sum_elems(W) * 1e-4 for W in Ws]
        terms.append(dy.sum_batches(dy.squared_norm(dy.lookup_batch(E, rows))))
        loss = dy.esum(terms)
        loss.value()
        loss.backward()
        t0 = time.perf_counter()
        t.update()
        return (1, time.perf_counter() - t0) if timed == "update" else 1

    step.model = (m, t, Ws, E)   # the reference's trainer dangles if its collection is collected
    return step
