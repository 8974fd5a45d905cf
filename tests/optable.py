"""The table of operations that the gradient tests and the oracle tests both run.

A row is Case(name, build, shapes): `build(dy, *inputs)` builds the expression with the module `dy`
(ours, or the reference for oracle tests), `shapes` are the shapes of the inputs (one batch element).
Each case runs unbatched, with every input batched (batch 3), and with only the first input batched
(DyNet's broadcasting of batch-1 arguments) unless the case says otherwise.
"""
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


@dataclass
class Case:
    name: str
    build: Callable
    shapes: Sequence[tuple]
    batched: bool = True            # also run with batch size 3
    mixed: bool = True              # also run with only the first argument batched
    low: float = -1.0               # inputs are drawn uniformly from [low, high]
    high: float = 1.0
    oracle: bool = True             # compare with the reference DyNet
    oracle_build: Callable = None   # a different spelling for the reference, if needed
    oracle_modes: Sequence[str] = ("single", "batched", "mixed")   # where the reference can run it
    oracle_grads: Sequence[int] = None   # which arguments' gradients to compare (default: all)
    rtol: float = 2e-2
    atol: float = 2e-3
    eps: float = 1e-3
    inputs: Callable = None         # custom input maker: rng, batch -> list of (array, batched)

    def make_inputs(self, rng, mode):
        """mode: 'single', 'batched' or 'mixed'."""
        if self.inputs is not None:
            return self.inputs(rng, mode)
        out = []
        for i, shape in enumerate(self.shapes):
            batched = mode == "batched" or (mode == "mixed" and i == 0)
            full = tuple(shape) + ((3,) if batched else ())
            out.append((rng.uniform(self.low, self.high, full), batched))
        return out

    def modes(self):
        return ["single"] + (["batched"] if self.batched else []) + (["mixed"] if self.mixed and self.batched and len(self.shapes) > 1 else [])


def cases_ids(cases):
    return [c.name for c in cases]


CASES = [
    # arithmetic
    Case("add", lambda dy, a, b: a + b, [(3, 2), (3, 2)]),
    Case("sub", lambda dy, a, b: a - b, [(3, 2), (3, 2)]),
    Case("neg", lambda dy, a: -a, [(4,)]),
    Case("scalar_add", lambda dy, a: a + 2.5, [(4,)]),
    Case("scalar_radd", lambda dy, a: 2.5 + a, [(4,)], oracle=False),   # the reference raises TypeError
    Case("scalar_rsub", lambda dy, a: 1 - a, [(4,)], oracle_build=lambda dy, a: -a + 1),
    Case("scalar_mul", lambda dy, a: a * 3.0, [(4,)]),
    Case("scalar_rmul", lambda dy, a: 3.0 * a, [(4,)], oracle_build=lambda dy, a: a * 3.0),
    Case("scalar_div", lambda dy, a: a / 4.0, [(4,)]),
    Case("cmult", lambda dy, a, b: dy.cmult(a, b), [(3, 2), (3, 2)]),
    Case("cmult_broadcast", lambda dy, a, b: dy.cmult(a, b), [(3, 2), (3, 1)], mixed=False),
    Case("cdiv", lambda dy, a, b: dy.cdiv(a, b), [(3,), (3,)], low=0.5, high=2.0),
    Case("colwise_add", lambda dy, a, b: dy.colwise_add(a, b), [(3, 4), (3,)]),
    # matrix products
    Case("matmul", lambda dy, a, b: a * b, [(3, 4), (4, 2)]),
    Case("matvec", lambda dy, a, b: a * b, [(3, 4), (4,)]),
    Case("affine_transform", lambda dy, b, W, x: dy.affine_transform([b, W, x]), [(3,), (3, 4), (4,)]),
    Case("affine_transform_2", lambda dy, b, W, x, V, y: dy.affine_transform([b, W, x, V, y]),
         [(2,), (2, 3), (3,), (2, 4), (4,)]),
    # elementwise
    Case("tanh", lambda dy, a: dy.tanh(a), [(5,)]),
    Case("logistic", lambda dy, a: dy.logistic(a), [(5,)]),
    Case("rectify", lambda dy, a: dy.rectify(a), [(5,)]),
    Case("exp", lambda dy, a: dy.exp(a), [(5,)]),
    Case("log", lambda dy, a: dy.log(a), [(5,)], low=0.5, high=2.0),
    Case("square", lambda dy, a: dy.square(a), [(5,)]),
    Case("sqrt", lambda dy, a: dy.sqrt(a), [(5,)], low=0.5, high=2.0),
    # softmaxes and losses
    Case("softmax", lambda dy, a: dy.softmax(a), [(5,)]),
    Case("softmax_matrix", lambda dy, a: dy.softmax(a), [(4, 3)]),
    Case("log_softmax", lambda dy, a: dy.log_softmax(a), [(5,)]),
    # the reference refuses one index for a batch; we use it for every batch element
    Case("pickneglogsoftmax", lambda dy, a: dy.pickneglogsoftmax(a, 2), [(5,)], oracle_modes=("single",)),
    Case("pickneglogsoftmax_batch", lambda dy, a: dy.pickneglogsoftmax_batch(a, [0, 3, 1]), [(5,)],
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (5, 3)), True)]),
    # the reference has no batched binary_log_loss, and its gradient for the target y is not
    # d/dy of its own loss (finite differences confirm ours), so only x's gradient is compared
    Case("binary_log_loss", lambda dy, a, b: dy.binary_log_loss(dy.logistic(a), b), [(4,), (4,)],
         oracle_modes=("single",), oracle_grads=(0,),
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (4, 3) if mode == "batched" else (4,)), mode == "batched"),
                                   (rng.uniform(0, 1, (4, 3) if mode == "batched" else (4,)), mode == "batched")]),
    # reductions and norms
    Case("esum", lambda dy, a, b, c: dy.esum([a, b, c]), [(3,), (3,), (3,)]),
    Case("sum_elems", lambda dy, a: dy.sum_elems(a), [(3, 2)]),
    Case("sum_batches", lambda dy, a: dy.sum_batches(a), [(3,)]),
    Case("squared_norm", lambda dy, a: dy.squared_norm(a), [(4,)]),
    Case("squared_distance", lambda dy, a, b: dy.squared_distance(a, b), [(4,), (4,)]),
    # selection and shape
    Case("pick", lambda dy, a: dy.pick(a, 2), [(4,)]),
    Case("pick_dim1", lambda dy, a: dy.pick(a, 1, 1), [(3, 4)]),
    Case("pick_batch", lambda dy, a: dy.pick_batch(a, [1, 0, 3]), [(4,)],
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (4, 3)), True)]),
    Case("concatenate", lambda dy, a, b: dy.concatenate([a, b]), [(3,), (2,)]),
    Case("concatenate_cols", lambda dy, a, b: dy.concatenate_cols([a, b]), [(3,), (3,)]),
    Case("concatenate_d1", lambda dy, a, b: dy.concatenate([a, b], d=1), [(2, 3), (2, 1)]),
    Case("reshape", lambda dy, a: dy.reshape(a, (2, 3)), [(6,)]),
    Case("transpose", lambda dy, a: dy.transpose(a), [(2, 3)]),
    Case("transpose_vector", lambda dy, a: dy.transpose(a), [(3,)]),
    Case("pick_range", lambda dy, a: dy.pickrange(a, 1, 3), [(4,)]),
    # ---- LSTM ops (issue 4) ----
    # x_t and h_tm1 (and masks, c) can be batched; the matrices and the bias cannot. The reference
    # refuses most mixed batch sizes (its checks compare sizes that include the batch), so "mixed"
    # (only the first argument batched, the rest broadcast) is checked by finite differences only.
    Case("vanilla_lstm_gates", lambda dy, x, h, Wx, Wh, b: dy.vanilla_lstm_gates(x, h, Wx, Wh, b),
         [(3,), (2,), (8, 3), (8, 2), (8,)], inputs=lambda rng, mode: _lstm_inputs(
             rng, mode, [(3,), (2,), (8, 3), (8, 2), (8,)], 2)),
    Case("vanilla_lstm_gates_concat",
         lambda dy, x1, x2, h, Wx, Wh, b: dy.vanilla_lstm_gates_concat([x1, x2], h, Wx, Wh, b),
         [(2,), (1,), (2,), (8, 3), (8, 2), (8,)], inputs=lambda rng, mode: _lstm_inputs(
             rng, mode, [(2,), (1,), (2,), (8, 3), (8, 2), (8,)], 3), oracle_modes=("single", "batched")),
    # the reference gives no gradient for the masks (constants in its builders); ours does
    Case("vanilla_lstm_gates_dropout",
         lambda dy, x, h, Wx, Wh, b, mx, mh: dy.vanilla_lstm_gates_dropout(x, h, Wx, Wh, b, mx, mh),
         [(3,), (2,), (8, 3), (8, 2), (8,), (3,), (2,)], oracle_grads=(0, 1, 2, 3, 4),
         oracle_modes=("single", "batched"),
         inputs=lambda rng, mode: _lstm_inputs(
             rng, mode, [(3,), (2,), (8, 3), (8, 2), (8,), (3,), (2,)], 2, masks=True)),
    Case("vanilla_lstm_gates_dropout_concat",
         lambda dy, x1, x2, h, Wx, Wh, b, mx, mh: dy.vanilla_lstm_gates_dropout_concat(
             [x1, x2], h, Wx, Wh, b, mx, mh),
         [(2,), (1,), (2,), (8, 3), (8, 2), (8,), (3,), (2,)], oracle_grads=(0, 1, 2, 3, 4, 5),
         oracle_modes=("single", "batched"),
         inputs=lambda rng, mode: _lstm_inputs(
             rng, mode, [(2,), (1,), (2,), (8, 3), (8, 2), (8,), (3,), (2,)], 3, masks=True)),
    Case("vanilla_lstm_c", lambda dy, c, g: dy.vanilla_lstm_c(c, g), [(3,), (12,)],
         oracle_modes=("single", "batched")),
    Case("vanilla_lstm_h", lambda dy, c, g: dy.vanilla_lstm_h(c, g), [(3,), (12,)],
         oracle_modes=("single", "batched")),
]


def _lstm_inputs(rng, mode, shapes, n_vectors, masks=False):
    """Inputs of the fused LSTM gates: the first n_vectors (x's and h) and the masks may be batched
    (all of them in 'batched' mode, the first in 'mixed'); Wx, Wh and b never are. Masks are
    scaled 0/1 draws, as dropout makes them."""
    out = []
    for i, shape in enumerate(shapes):
        is_mask = masks and i >= len(shapes) - 2
        batchable = i < n_vectors or is_mask
        batched = batchable and (mode == "batched" or (mode == "mixed" and i == 0))
        full = tuple(shape) + ((3,) if batched else ())
        if is_mask:
            out.append(((rng.random(full) < 0.7) / 0.7, batched))
        else:
            out.append((rng.uniform(-1, 1, full), batched))
    return out
