"""The table of operations that the gradient tests and the oracle tests both run.

A row is Case(name, build, shapes): `build(dy, *inputs)` builds the expression with the module `dy`
(ours, or the reference for oracle tests), `shapes` are the shapes of the inputs (one batch element).
Each case runs unbatched, with every input batched (batch 3), and with only the first input batched
(DyNet's broadcasting of batch-1 arguments) unless the case says otherwise.
"""
from dataclasses import dataclass
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
    gradcheck: bool = True          # False where backward is not d(forward) by design (gradient flow ops)

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


# ---- input makers for rows whose inputs are not plain uniform draws ----

def _inputs_of(*makers):
    """inputs= for Case: each maker(rng, batched) gives one input; batching follows the mode."""
    def make(rng, mode):
        return [(mk(rng, mode == "batched" or (mode == "mixed" and i == 0)),
                 mode == "batched" or (mode == "mixed" and i == 0)) for i, mk in enumerate(makers)]
    return make


def _matrix(n, diag):
    """Well-conditioned n x n matrices: diag * I + small noise (invertible, positive determinant)."""
    def mk(rng, batched):
        m = diag * np.eye(n) + rng.uniform(-0.3, 0.3, (n, n))
        return np.stack([m + rng.uniform(-0.1, 0.1, (n, n)) for _ in range(3)], -1) if batched else m
    return mk


def _uniform(shape, low, high):
    return lambda rng, batched: rng.uniform(low, high, tuple(shape) + ((3,) if batched else ()))


def _batch_only(shape):
    """A batch of 3 in every mode (ops whose arguments name one target per batch element)."""
    return lambda rng, mode: [(rng.uniform(-1, 1, tuple(shape) + (3,)), True)]


def _set(e, values):
    """An input expression given new values with set() (DyNet's reusable inputs)."""
    e.set(values)
    return e


# the reference (dynet38) has no batched form of these operations ("does not support batching")
REF_UNBATCHED = ("single",)


def _first_batched(rng, mode, shapes):
    """Inputs where only the first (the data) is batched outside 'single' mode: filters and biases
    of convolutions cannot be batched."""
    return [(rng.uniform(-1, 1, tuple(s) + ((3,) if i == 0 and mode != "single" else ())),
             i == 0 and mode != "single") for i, s in enumerate(shapes)]


def _distinct(rng, mode, shapes):
    """Inputs whose values are at least 0.05 apart, so finite differences never cross a max/argmax."""
    out = []
    for i, s in enumerate(shapes):
        batched = mode == "batched" or (mode == "mixed" and i == 0)
        full = tuple(s) + ((3,) if batched else ())
        out.append((rng.permutation(int(np.prod(full))).reshape(full) * 0.05 - 1.0, batched))
    return out


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


CASES = [
    # ---- arithmetic ----
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
    # ---- matrix products ----
    Case("matmul", lambda dy, a, b: a * b, [(3, 4), (4, 2)]),
    Case("matvec", lambda dy, a, b: a * b, [(3, 4), (4,)]),
    Case("affine_transform", lambda dy, b, W, x: dy.affine_transform([b, W, x]), [(3,), (3, 4), (4,)]),
    Case("affine_transform_2", lambda dy, b, W, x, V, y: dy.affine_transform([b, W, x, V, y]),
         [(2,), (2, 3), (3,), (2, 4), (4,)]),
    # ---- elementwise maps ----
    Case("tanh", lambda dy, a: dy.tanh(a), [(5,)]),
    Case("logistic", lambda dy, a: dy.logistic(a), [(5,)]),
    Case("rectify", lambda dy, a: dy.rectify(a), [(5,)]),
    Case("exp", lambda dy, a: dy.exp(a), [(5,)]),
    Case("log", lambda dy, a: dy.log(a), [(5,)], low=0.5, high=2.0),
    Case("square", lambda dy, a: dy.square(a), [(5,)]),
    Case("sqrt", lambda dy, a: dy.sqrt(a), [(5,)], low=0.5, high=2.0),
    Case("cube", lambda dy, a: dy.cube(a), [(5,)]),
    Case("abs", lambda dy, a: dy.abs(a), [(5,)]),
    Case("sin", lambda dy, a: dy.sin(a), [(5,)]),
    Case("cos", lambda dy, a: dy.cos(a), [(5,)]),
    Case("tan", lambda dy, a: dy.tan(a), [(5,)]),
    Case("asin", lambda dy, a: dy.asin(a), [(5,)], low=-0.9, high=0.9),
    Case("acos", lambda dy, a: dy.acos(a), [(5,)], low=-0.9, high=0.9),
    Case("atan", lambda dy, a: dy.atan(a), [(5,)], low=-2.0, high=2.0),
    Case("sinh", lambda dy, a: dy.sinh(a), [(5,)]),
    Case("cosh", lambda dy, a: dy.cosh(a), [(5,)]),
    Case("asinh", lambda dy, a: dy.asinh(a), [(5,)], low=-2.0, high=2.0),
    Case("acosh", lambda dy, a: dy.acosh(a), [(5,)], low=1.2, high=3.0),
    Case("atanh", lambda dy, a: dy.atanh(a), [(5,)], low=-0.9, high=0.9),
    Case("erf", lambda dy, a: dy.erf(a), [(5,)], low=-2.0, high=2.0),
    Case("lgamma", lambda dy, a: dy.lgamma(a), [(5,)], low=0.5, high=3.0),
    Case("log_sigmoid", lambda dy, a: dy.log_sigmoid(a), [(5,)], low=-3.0, high=3.0),
    Case("softsign", lambda dy, a: dy.softsign(a), [(5,)], low=-3.0, high=3.0),
    Case("elu", lambda dy, a: dy.elu(a), [(5,)], low=-2.0, high=2.0),
    Case("elu_alpha", lambda dy, a: dy.elu(a, alpha=0.5), [(5,)], low=-2.0, high=2.0),
    Case("selu", lambda dy, a: dy.selu(a), [(5,)], low=-2.0, high=2.0),
    Case("silu", lambda dy, a: dy.silu(a), [(5,)], low=-2.0, high=2.0),
    # with beta != 1 the reference's gradient is not d/dx of its own value (finite differences
    # confirm ours), so values are compared
    Case("silu_beta", lambda dy, a: dy.silu(a, beta=0.5), [(5,)], low=-2.0, high=2.0, oracle_grads=()),
    # round, ceil, floor: zero gradient by default; the straight-through gradient is the identity's
    # (not d(forward); tests/test_elementwise_gradient_modes.py checks it). The reference's gradient
    # does not follow the mode (the same call gives zero in one run and the identity's in another),
    # so its values are compared; it needs the mode spelled out
    Case("round", lambda dy, a: dy.round(a), [(5,)], low=-3.0, high=3.0, oracle_grads=(),
         oracle_build=lambda dy, a: dy.round(a, "zero_gradient")),
    Case("ceil", lambda dy, a: dy.ceil(a), [(5,)], low=-3.0, high=3.0, oracle_grads=(),
         oracle_build=lambda dy, a: dy.ceil(a, "zero_gradient")),
    Case("floor", lambda dy, a: dy.floor(a), [(5,)], low=-3.0, high=3.0, oracle_grads=(),
         oracle_build=lambda dy, a: dy.floor(a, "zero_gradient")),
    Case("round_straight_through", lambda dy, a: dy.round(a, gradient_mode="straight_through_gradient"),
         [(5,)], low=-3.0, high=3.0, gradcheck=False, oracle_grads=()),
    Case("ceil_straight_through", lambda dy, a: dy.ceil(a, gradient_mode="straight_through_gradient"),
         [(5,)], low=-3.0, high=3.0, gradcheck=False, oracle_grads=()),
    Case("floor_straight_through", lambda dy, a: dy.floor(a, gradient_mode="straight_through_gradient"),
         [(5,)], low=-3.0, high=3.0, gradcheck=False, oracle_grads=()),
    # the reference does not broadcast a batch-1 argument in bmin/bmax
    Case("bmin", lambda dy, a, b: dy.bmin(a, b), [(3, 2), (3, 2)], oracle_modes=("single", "batched")),
    Case("bmax", lambda dy, a, b: dy.bmax(a, b), [(3, 2), (3, 2)], oracle_modes=("single", "batched")),
    # the reference takes one exponent for the whole batch
    Case("pow", lambda dy, a, b: dy.pow(a, b), [(4,), (1,)], low=0.5, high=2.0, oracle_modes=("single", "mixed")),
    Case("pow_number", lambda dy, a: dy.pow(a, 1.7), [(4,)], low=0.5, high=2.0,
         oracle_build=lambda dy, a: dy.pow(a, dy.scalarInput(1.7))),   # the reference takes expressions
    # elementwise exponents: the reference's pow takes a scalar exponent only
    Case("pow_elementwise", lambda dy, a, b: dy.pow(a, b), [(4,), (4,)], low=0.5, high=2.0, oracle=False),
    # ---- softmaxes ----
    Case("softmax", lambda dy, a: dy.softmax(a), [(5,)]),
    Case("softmax_matrix", lambda dy, a: dy.softmax(a), [(4, 3)]),
    Case("log_softmax", lambda dy, a: dy.log_softmax(a), [(5,)]),
    Case("softmax_rows", lambda dy, a: dy.softmax(a, d=1), [(4, 3)]),
    Case("sparsemax", lambda dy, a: dy.sparsemax(a), [(5,)], low=-2.0, high=2.0,
         oracle_modes=REF_UNBATCHED),
    Case("constrained_softmax", lambda dy, a, u: dy.constrained_softmax(a, u), [(4,), (4,)],
         inputs=_inputs_of(_uniform((4,), -2.0, 2.0), _uniform((4,), 0.3, 0.7)),
         oracle_modes=REF_UNBATCHED),
    # ---- losses ----
    # the reference refuses one index for a batch; we use it for every batch element
    # bounds that sum to less than 1: every entry is capped (p = u), as in DyNet
    Case("constrained_softmax_low_bounds", lambda dy, a, u: dy.constrained_softmax(a, u), [(4,), (4,)],
         inputs=_inputs_of(_uniform((4,), -2.0, 2.0), _uniform((4,), 0.05, 0.2)),
         oracle_modes=REF_UNBATCHED),
    Case("pickneglogsoftmax", lambda dy, a: dy.pickneglogsoftmax(a, 2), [(5,)], oracle_modes=("single",)),
    Case("pickneglogsoftmax_batch", lambda dy, a: dy.pickneglogsoftmax_batch(a, [0, 3, 1]), [(5,)],
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (5, 3)), True)]),
    # the reference has no batched binary_log_loss, and its gradient for the target y is not
    # d/dy of its own loss (finite differences confirm ours), so only x's gradient is compared
    Case("binary_log_loss", lambda dy, a, b: dy.binary_log_loss(dy.logistic(a), b), [(4,), (4,)],
         oracle_modes=("single",), oracle_grads=(0,),
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (4, 3) if mode == "batched" else (4,)), mode == "batched"),
                                   (rng.uniform(0, 1, (4, 3) if mode == "batched" else (4,)), mode == "batched")]),
    # the reference does not broadcast a batch-1 argument here
    Case("pairwise_rank_loss", lambda dy, a, b: dy.pairwise_rank_loss(a, b), [(1, 3), (1, 3)],
         oracle_modes=("single", "batched")),
    # the reference does not broadcast a batch-1 argument here
    Case("pairwise_rank_loss_m", lambda dy, a, b: dy.pairwise_rank_loss(a, b, m=0.5), [(1,), (1,)],
         oracle_modes=("single", "batched")),
    # the reference's gradient ignores the incoming gradient (it is exp(ll) - x
    # whatever the loss is multiplied by), and it has no batched form; values are compared
    Case("poisson_loss", lambda dy, a: dy.poisson_loss(a, 3), [(1,)],
         oracle_modes=("single",), oracle_grads=()),
    # the reference refuses one index for a batch; we use it for every batch element
    Case("hinge", lambda dy, a: dy.hinge(a, 2), [(5,)],
         oracle_modes=("single",)),
    # the reference refuses one index for a batch; we use it for every batch element
    Case("hinge_m", lambda dy, a: dy.hinge(a, 0, m=0.5), [(5,)],
         oracle_modes=("single",)),
    Case("hinge_batch", lambda dy, a: dy.hinge_batch(a, [0, 3, 1]), [(5,)], inputs=_batch_only((5,))),
    Case("hinge_dim", lambda dy, a: dy.hinge_dim(a, [0, 2, 1, 2]), [(3, 4)]),
    Case("hinge_dim_d1", lambda dy, a: dy.hinge_dim(a, [1, 0, 2], d=1, m=0.5), [(3, 4)]),
    # ---- reductions: lists, whole values, dimensions, batches ----
    Case("esum", lambda dy, a, b, c: dy.esum([a, b, c]), [(3,), (3,), (3,)]),
    # with a broadcast argument the reference's gradient is wrong (finite differences confirm ours)
    Case("average", lambda dy, a, b, c: dy.average([a, b, c]), [(3, 2), (3, 2), (3, 2)],
         oracle_modes=("single", "batched")),
    # the reference refuses mixed batch sizes here
    Case("emax", lambda dy, a, b, c: dy.emax([a, b, c]), [(3, 2), (3, 2), (3, 2)],
         oracle_modes=("single", "batched")),
    Case("logsumexp", lambda dy, a, b, c: dy.logsumexp([a, b, c]), [(3, 2), (3, 2), (3, 2)]),
    Case("sum_elems", lambda dy, a: dy.sum_elems(a), [(3, 2)]),
    Case("sum_batches", lambda dy, a: dy.sum_batches(a), [(3,)]),
    Case("sum_dim", lambda dy, a: dy.sum_dim(a, [0]), [(3, 4)]),
    Case("sum_dim_01", lambda dy, a: dy.sum_dim(a, [0, 1]), [(3, 4)]),
    Case("sum_dim_b", lambda dy, a: dy.sum_dim(a, [1], True), [(3, 4)]),
    Case("sum_cols", lambda dy, a: dy.sum_cols(a), [(3, 4)],    # not in the wheel: sum_dim(x, [1])
         oracle_build=lambda dy, a: dy.sum_dim(a, [1])),
    Case("cumsum", lambda dy, a: dy.cumsum(a), [(3, 4)]),
    Case("cumsum_d1", lambda dy, a: dy.cumsum(a, 1), [(3, 4)]),
    Case("mean_elems", lambda dy, a: dy.mean_elems(a), [(3, 4)]),
    Case("mean_dim", lambda dy, a: dy.mean_dim(a, [1], False), [(3, 4)]),
    Case("mean_dim_b", lambda dy, a: dy.mean_dim(a, [0], True), [(3, 4)]),
    Case("mean_dim_n", lambda dy, a: dy.mean_dim(a, [0], False, 5), [(3, 4)]),
    Case("mean_batches", lambda dy, a: dy.mean_batches(a), [(3,)]),
    Case("std_elems", lambda dy, a: dy.std_elems(a), [(3, 4)]),
    Case("std_dim", lambda dy, a: dy.std_dim(a, [1], False), [(3, 4)]),
    Case("std_dim_b", lambda dy, a: dy.std_dim(a, [0], True), [(3, 4)]),
    # the reference ignores n in std_dim; ours uses it as mean_dim does (masked std)
    Case("std_dim_n", lambda dy, a: dy.std_dim(a, [0], False, 5), [(3, 4)], oracle=False),
    # std over a batch of 1 is 0: the reference's gradient is NaN there, ours 0
    Case("std_batches", lambda dy, a: dy.std_batches(a), [(3,)], batched=True,
         oracle_modes=("batched",)),
    Case("moment_elems", lambda dy, a: dy.moment_elems(a, 3), [(3, 4)]),
    Case("moment_dim", lambda dy, a: dy.moment_dim(a, [0], 2, False), [(3, 4)]),
    Case("moment_dim_n", lambda dy, a: dy.moment_dim(a, [1], 3, False, 6), [(3, 4)]),
    Case("moment_batches", lambda dy, a: dy.moment_batches(a, 2), [(3,)]),
    Case("logsumexp_dim", lambda dy, a: dy.logsumexp_dim(a), [(3, 4)]),
    Case("logsumexp_dim_d1", lambda dy, a: dy.logsumexp_dim(a, 1), [(3, 4)]),
    Case("max_dim", lambda dy, a: dy.max_dim(a), [(3, 4)]),
    Case("max_dim_d1", lambda dy, a: dy.max_dim(a, 1), [(3, 4)]),
    Case("min_dim", lambda dy, a: dy.min_dim(a), [(3, 4)]),
    Case("min_dim_d1", lambda dy, a: dy.min_dim(a, 1), [(3, 4)]),
    # ---- norms and distances ----
    Case("squared_norm", lambda dy, a: dy.squared_norm(a), [(4,)]),
    Case("l2_norm", lambda dy, a: dy.l2_norm(a), [(4,)]),
    Case("l2_norm_matrix", lambda dy, a: dy.l2_norm(a), [(3, 2)]),
    Case("dot_product", lambda dy, a, b: dy.dot_product(a, b), [(4,), (4,)]),
    Case("squared_distance", lambda dy, a, b: dy.squared_distance(a, b), [(4,), (4,)]),
    Case("l1_distance", lambda dy, a, b: dy.l1_distance(a, b), [(4,), (4,)],
         oracle_modes=REF_UNBATCHED),
    Case("huber_distance", lambda dy, a, b: dy.huber_distance(a, b), [(6,), (6,)], low=-2.0, high=2.0,
         oracle_modes=REF_UNBATCHED),
    Case("huber_distance_c", lambda dy, a, b: dy.huber_distance(a, b, c=0.5), [(6,), (6,)],
         oracle_modes=REF_UNBATCHED),
    Case("layer_norm", lambda dy, x, g, b: dy.layer_norm(x, g, b), [(5,), (5,), (5,)]),
    Case("weight_norm", lambda dy, w, g: dy.weight_norm(w, g), [(3, 2), (1,)],
         oracle_modes=REF_UNBATCHED),
    # ---- linear algebra ----
    Case("inverse", lambda dy, a: dy.inverse(a), [(3, 3)], inputs=_inputs_of(_matrix(3, 1.0)),
         oracle_modes=REF_UNBATCHED),
    Case("logdet", lambda dy, a: dy.logdet(a), [(3, 3)], inputs=_inputs_of(_matrix(3, 2.0)),
         oracle_modes=REF_UNBATCHED),
    Case("trace_of_product", lambda dy, a, b: dy.trace_of_product(a, b), [(3, 2), (3, 2)],
         oracle_modes=REF_UNBATCHED),
    Case("circ_conv", lambda dy, a, b: dy.circ_conv(a, b), [(4,), (4,)],
         oracle_modes=REF_UNBATCHED),
    Case("circ_corr", lambda dy, a, b: dy.circ_corr(a, b), [(4,), (4,)],
         oracle_modes=REF_UNBATCHED),
    # the reference's value is wrong in some entries without a bias (with a bias it agrees:
    # contract3d_1d_bias below); ours is checked against the formula by finite differences
    Case("contract3d_1d", lambda dy, x, y: dy.contract3d_1d(x, y), [(2, 3, 4), (4,)],
         oracle=False),
    Case("contract3d_1d_bias", lambda dy, x, y, b: dy.contract3d_1d_bias(x, y, b), [(2, 3, 4), (4,), (2, 3)]),
    Case("contract3d_1d_1d", lambda dy, x, y, z: dy.contract3d_1d_1d(x, y, z), [(2, 3, 4), (4,), (3,)],
         oracle_modes=REF_UNBATCHED),
    Case("contract3d_1d_1d_bias", lambda dy, x, y, z, b: dy.contract3d_1d_1d_bias(x, y, z, b),
         [(2, 3, 4), (4,), (3,), (2,)],
         oracle_modes=REF_UNBATCHED),
    # ---- selection and shape ----
    Case("pick", lambda dy, a: dy.pick(a, 2), [(4,)]),
    Case("pick_dim1", lambda dy, a: dy.pick(a, 1, 1), [(3, 4)]),
    Case("pick_range", lambda dy, a: dy.pickrange(a, 1, 3), [(4,)]),
    Case("pick_range_d1", lambda dy, a: dy.pick_range(a, 1, 3, 1), [(3, 4)]),
    Case("pick_batch", lambda dy, a: dy.pick_batch(a, [1, 0, 3]), [(4,)],
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (4, 3)), True)]),
    Case("pick_batch_elem", lambda dy, a: dy.pick_batch_elem(a, 1), [(2, 3)], batched=False,
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (2, 3, 3)), True)]),
    Case("pick_batch_elems", lambda dy, a: dy.pick_batch_elems(a, [2, 0]), [(2, 3)], batched=False,
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (2, 3, 3)), True)]),
    Case("pick_batch_elems_repeat", lambda dy, a: dy.pick_batch_elems(a, [1, 1, 0, 2]), [(4,)], batched=False,
         inputs=lambda rng, mode: [(rng.uniform(-1, 1, (4, 3)), True)]),
    Case("select_rows", lambda dy, a: dy.select_rows(a, [3, 0, 3]), [(4, 3)]),
    Case("select_rows_vector", lambda dy, a: dy.select_rows(a, [4, 1]), [(5,)]),
    Case("select_rows_3d", lambda dy, a: dy.select_rows(a, [2, 0]), [(3, 2, 2)]),
    Case("select_cols", lambda dy, a: dy.select_cols(a, [2, 0, 2]), [(3, 4)]),
    Case("strided_select", lambda dy, a: dy.strided_select(a, [2, 2], [1, 0], [4, 5]), [(4, 5)]),
    Case("strided_select_batch", lambda dy, a: dy.strided_select(a, [1, 1, 2], [0, 1], [3, 3]), [(3, 3)]),
    Case("strided_select_3d", lambda dy, a: dy.strided_select(a, [1, 2, 3], [1, 0, 1], [3, 3, 5]), [(3, 3, 5)]),
    Case("strided_select_defaults", lambda dy, a: dy.strided_select(a, [2]), [(5, 2)],
         oracle_build=lambda dy, a: dy.strided_select(a, [2], [], [])),
    Case("slice_range", lambda dy, a: a[1:3], [(5,)]),
    Case("slice_open", lambda dy, a: a[2:], [(5,)]),
    Case("slice_step", lambda dy, a: a[0:5:2], [(5,)]),
    Case("slice_negative", lambda dy, a: a[-2:], [(5,)], oracle_build=lambda dy, a: a[3:]),  # the reference refuses it
    Case("index", lambda dy, a: a[2], [(5,)]),
    Case("index_negative", lambda dy, a: a[-1], [(5,)]),
    Case("index_matrix_row", lambda dy, a: a[1], [(3, 4)]),
    Case("slice_matrix_rows", lambda dy, a: a[0:2], [(3, 4)]),
    Case("slice_tuple", lambda dy, a: a[0:2, 1:4:2], [(3, 4)]),
    Case("index_tuple", lambda dy, a: a[1, 0:3], [(3, 4)],     # the reference only takes slices in tuples
         oracle_build=lambda dy, a: dy.pick(a[1:2, 0:3], 0, 0)),
    Case("concatenate", lambda dy, a, b: dy.concatenate([a, b]), [(3,), (2,)]),
    Case("concatenate_cols", lambda dy, a, b: dy.concatenate_cols([a, b]), [(3,), (3,)]),
    Case("concatenate_d1", lambda dy, a, b: dy.concatenate([a, b], d=1), [(2, 3), (2, 1)]),
    Case("concatenate_d2", lambda dy, a, b: dy.concatenate([a, b], d=2), [(2, 3, 2), (2, 3, 1)]),
    Case("concatenate_d2_matrices", lambda dy, a, b: dy.concatenate([a, b], d=2), [(2, 3), (2, 3)]),
    Case("concatenate_to_batch", lambda dy, a, b, c: dy.concatenate_to_batch([a, b, c]), [(3, 2), (3, 2), (3, 2)]),
    Case("reshape", lambda dy, a: dy.reshape(a, (2, 3)), [(6,)]),
    Case("reshape_batch_size", lambda dy, a: dy.reshape(a, (3,), batch_size=2 * a.dim()[1]), [(6,)]),
    Case("reshape_batch_to_cols", lambda dy, a: dy.reshape(a, (6, a.dim()[1])), [(6,)]),
    Case("transpose", lambda dy, a: dy.transpose(a), [(2, 3)]),
    Case("transpose_vector", lambda dy, a: dy.transpose(a), [(3,)]),
    Case("transpose_3d", lambda dy, a: dy.transpose(a, [2, 0, 1]), [(2, 3, 4)]),
    Case("transpose_3d_swap", lambda dy, a: dy.transpose(a, [1, 0, 2]), [(2, 3, 2)]),
    # ---- inputs: the layout is checked through an elementwise product with a varying input ----
    Case("one_hot", lambda dy, a: dy.cmult(a, dy.one_hot(4, 2)), [(4,)]),
    Case("one_hot_batch", lambda dy, a: dy.cmult(a, dy.one_hot(4, [2, 0, 3])), [(4,)]),
    Case("sparse_inputTensor", lambda dy, a: dy.cmult(a, dy.sparse_inputTensor(([0, 2], [1, 0]), [5.0, -2.0], (3, 2))),
         [(3, 2)]),
    Case("sparse_inputTensor_batched",
         lambda dy, a: dy.cmult(a, dy.sparse_inputTensor(([0, 2, 1], [1, 0, 1], [0, 2, 2]), [5.0, -2.0, 3.0],
                                                         (3, 2, 3), batched=True, defval=0.5)), [(3, 2)]),
    Case("inputTensor_3d", lambda dy, a: a * 2.0, [(2, 3, 4)]),
    Case("inputTensor_4d", lambda dy, a: dy.cmult(a, dy.inputTensor(np.arange(24.0).reshape(2, 3, 2, 2))),
         [(2, 3, 2, 2)]),
    Case("inputVector", lambda dy, a: dy.cmult(a, dy.inputVector([1.0, -2.0, 3.0, 0.5])), [(4,)]),
    # the reference's inputMatrix raises DeprecationWarning; inputTensor is its spelling there
    Case("inputMatrix", lambda dy, a: dy.cmult(a, dy.inputMatrix([1.0, 2, 3, 4, 5, 6], (3, 2))), [(3, 2)],
         oracle_build=lambda dy, a: dy.cmult(a, dy.inputTensor(np.arange(1.0, 7).reshape(3, 2, order="F")))),
    Case("scalarInput", lambda dy, a: a * dy.scalarInput(-1.5), [(4,)]),
    Case("vecInput_set", lambda dy, a: dy.cmult(a, _set(dy.vecInput(4), [1.0, -2.0, 3.0, 0.5])), [(4,)]),
    # likewise matInput (and set() gives it its values)
    Case("matInput_set", lambda dy, a: dy.cmult(a, _set(dy.matInput(3, 2), [1.0, 2, 3, 4, 5, 6])), [(3, 2)],
         oracle_build=lambda dy, a: dy.cmult(a, dy.inputTensor(np.arange(1.0, 7).reshape(3, 2, order="F")))),
    Case("constant", lambda dy, a: dy.cmult(a, dy.constant((4,), 2.5)), [(4,)]),
    Case("ones", lambda dy, a: dy.cmult(a, dy.ones((3, 2))) * 2.0, [(3, 2)]),
    Case("zeros", lambda dy, a: a + dy.zeros((4,)), [(4,)]),
    Case("zeroes", lambda dy, a: a + dy.zeroes((4,)), [(4,)]),
    # ---- random operations: at p = 0 they are the identity (their randomness: test_random_ops.py) ----
    Case("dropout_p0", lambda dy, a: dy.dropout(a, 0.0), [(3, 2)]),
    Case("dropout_dim_p0", lambda dy, a: dy.dropout_dim(a, 1, 0.0), [(3, 2)]),
    Case("dropout_batch_p0", lambda dy, a: dy.dropout_batch(a, 0.0), [(3, 2)]),
    # the reference's block_dropout refuses batches; ours decides once for the whole expression
    Case("block_dropout_p0", lambda dy, a: dy.block_dropout(a, 0.0), [(3, 2)], oracle_modes=("single",)),
    Case("block_dropout_p1", lambda dy, a: dy.block_dropout(a, 1.0), [(3, 2)], oracle_modes=("single",)),
    # ---- gradient flow: backward is deliberately not d(forward); only the reference checks it ----
    Case("nobackprop", lambda dy, a, b: dy.cmult(a, dy.nobackprop(b)), [(4,), (4,)], gradcheck=False),
    Case("flip_gradient", lambda dy, a, b: dy.cmult(a, dy.flip_gradient(b)), [(4,), (4,)], gradcheck=False),
    Case("scale_gradient", lambda dy, a, b: dy.cmult(a, dy.scale_gradient(b, 0.3)), [(4,), (4,)],
         gradcheck=False),
    Case("scale_gradient_default", lambda dy, a: dy.scale_gradient(a), [(4,)]),
    # a copy to the CPU (test_devices.py crosses devices); the reference's to_device on one device
    # returns zeros, so it is not compared
    Case("to_device", lambda dy, a: dy.tanh(dy.to_device(a * 2, "CPU")), [(3, 2)], oracle=False),
    Case("argmax", lambda dy, a: dy.argmax(a, "zero_gradient"), [(5,)]),
    Case("argmax_straight_through", lambda dy, a: dy.argmax(a, "straight_through_gradient"), [(5,)],
         gradcheck=False),
    # ---- convolution and pooling: x (H x W x Ci) batched or not; filters and bias never batched ----
    Case("conv2d_valid", lambda dy, x, f: dy.conv2d(x, f, [1, 1]), [(5, 6, 2), (3, 2, 2, 3)], eps=1e-2,
         mixed=False, inputs=lambda rng, mode: _first_batched(rng, mode, [(5, 6, 2), (3, 2, 2, 3)])),
    Case("conv2d_valid_stride", lambda dy, x, f: dy.conv2d(x, f, [2, 3]), [(7, 8, 2), (3, 3, 2, 2)], eps=1e-2,
         mixed=False, inputs=lambda rng, mode: _first_batched(rng, mode, [(7, 8, 2), (3, 3, 2, 2)])),
    Case("conv2d_same", lambda dy, x, f: dy.conv2d(x, f, [1, 1], is_valid=False), [(5, 6, 2), (3, 4, 2, 2)],
         eps=1e-2, mixed=False, inputs=lambda rng, mode: _first_batched(rng, mode, [(5, 6, 2), (3, 4, 2, 2)])),
    Case("conv2d_same_stride", lambda dy, x, f: dy.conv2d(x, f, [2, 2], is_valid=False), [(7, 5, 1), (2, 3, 1, 2)],
         eps=1e-2, mixed=False, inputs=lambda rng, mode: _first_batched(rng, mode, [(7, 5, 1), (2, 3, 1, 2)])),
    Case("conv2d_bias", lambda dy, x, f, b: dy.conv2d_bias(x, f, b, [1, 1]), [(5, 5, 2), (3, 3, 2, 3), (3,)],
         eps=1e-2, mixed=False, inputs=lambda rng, mode: _first_batched(rng, mode, [(5, 5, 2), (3, 3, 2, 3), (3,)])),
    Case("conv2d_bias_same_stride", lambda dy, x, f, b: dy.conv2d_bias(x, f, b, [2, 1], is_valid=False),
         [(6, 5, 3), (4, 3, 3, 2), (2,)], eps=1e-2, mixed=False,
         inputs=lambda rng, mode: _first_batched(rng, mode, [(6, 5, 3), (4, 3, 3, 2), (2,)])),
    Case("maxpooling2d", lambda dy, x: dy.maxpooling2d(x, [2, 2], [2, 2]), [(6, 5, 2)],
         inputs=lambda rng, mode: _distinct(rng, mode, [(6, 5, 2)])),
    Case("maxpooling2d_same", lambda dy, x: dy.maxpooling2d(x, [3, 2], [2, 2], is_valid=False), [(5, 5, 2)],
         inputs=lambda rng, mode: _distinct(rng, mode, [(5, 5, 2)])),
    # SAME with a stride larger than the window: the reference's backward pads by a negative
    # amount its forward does not use, so its gradient lands beside the maximum; values agree
    Case("maxpooling2d_same_wide_stride", lambda dy, x: dy.maxpooling2d(x, [1, 2], [2, 4], is_valid=False),
         [(5, 8, 1)], oracle_grads=(), inputs=lambda rng, mode: _distinct(rng, mode, [(5, 8, 1)])),
    Case("maxpooling2d_overlap_2d", lambda dy, x: dy.maxpooling2d(x, [2, 3], [1, 2]), [(4, 6)],
         inputs=lambda rng, mode: _distinct(rng, mode, [(4, 6)])),
    # the reference computes filter1d_narrow on the first batch element only
    Case("filter1d_narrow", lambda dy, x, f: dy.filter1d_narrow(x, f), [(3, 6), (3, 2)], oracle_modes=("single",)),
    Case("filter1d_narrow_multi", lambda dy, x, f: dy.filter1d_narrow(x, f), [(3, 6), (3, 2, 4)],
         oracle_modes=("single",)),
    Case("kmax_pooling", lambda dy, x: dy.kmax_pooling(x, 2), [(3, 6)],
         inputs=lambda rng, mode: _distinct(rng, mode, [(3, 6)])),
    Case("kmax_pooling_d0", lambda dy, x: dy.kmax_pooling(x, 3, 0), [(5, 3)],
         inputs=lambda rng, mode: _distinct(rng, mode, [(5, 3)])),
    Case("kmax_pooling_k1", lambda dy, x: dy.kmax_pooling(x, 1), [(4, 5)],
         inputs=lambda rng, mode: _distinct(rng, mode, [(4, 5)])),
    Case("fold_rows", lambda dy, a: dy.fold_rows(a), [(4, 3)],
         oracle_modes=REF_UNBATCHED),
    Case("fold_rows_3", lambda dy, a: dy.fold_rows(a, nrows=3), [(6,)],
         oracle_modes=REF_UNBATCHED),
    Case("kmh_ngram", lambda dy, a: dy.kmh_ngram(a, 2), [(3, 4)],
         oracle_modes=REF_UNBATCHED),
    # ---- fused LSTM cell operations ----
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
    # the coupled LSTM's cells (internal: the builders make them), against their composition
    Case("coupled_lstm_c", lambda dy, i, w, c: _coupled().coupled_lstm_c(i, w, c), [(4,), (4,), (4,)],
         low=-2, high=2, oracle_build=lambda dy, i, w, c: dy.cmult(dy.logistic(-i), c) +
         dy.cmult(dy.logistic(i), dy.tanh(w))),
    Case("coupled_lstm_c_start", lambda dy, i, w: _coupled().coupled_lstm_c(i, w), [(4,), (4,)],
         low=-2, high=2, oracle_build=lambda dy, i, w: dy.cmult(dy.logistic(i), dy.tanh(w))),
    Case("coupled_lstm_h", lambda dy, o, c: _coupled().coupled_lstm_h(o, c), [(4,), (4,)],
         low=-2, high=2, oracle_build=lambda dy, o, c: dy.cmult(dy.logistic(o), dy.tanh(c))),
]


def _coupled():
    from dynet.nodes import lstm_coupled
    return lstm_coupled
