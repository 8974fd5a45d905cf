"""The generic (array) implementation of every node against its typed implementation.

Each graph is built and differentiated on the typed path (forward, backward(full=True)); then every
node's `generic_forward` runs on NumPy arrays made from its arguments' typed values and must give
the node's typed value, and `generic_backward`, given the node's typed gradient, must give
contributions that add up to each argument's typed gradient. Both are float32 arrays shaped
(dims..., batch) in Fortran order, as the contract in dynet/core/graph.pyx says.
"""
import inspect
import importlib
import pkgutil

import numpy as np
import pytest

import dynet as dy
import dynet.nodes
from dynet.core import config
from dynet.core.graph import Expression, Mirrored, cg
from dynet.nodes.lstm import _gates as lstm_gates
from dynet.nodes.pyop import PyOpNode
from tests.optable import CASES

# 1e-5 relative. The absolute floor is relative to the largest value of the compared array: a
# value computed as a float32 sum of terms (a product, a reduction, a cancelling gradient) is only
# as exact as its largest terms, and the two paths add them in different orders.
RTOL = 1e-5
ATOL = 1e-6


def as_array(values, dim):
    """An npvalue()/gradient() result as the generic path sees it: float32, (dims..., batch), F."""
    dims, bd = dim
    a = np.asarray(values, dtype=np.float32).reshape(tuple(dims) + (bd,), order="F")
    return np.asfortranarray(a)


def has_generic(node):
    """Node types with a generic implementation to check. PyOpNode (the rare operations written
    on NumPy: losses, linalg, cumsum, ...) is another engineer's conversion and is left out while
    it has none; so are node types outside dynet.nodes that do not have one yet."""
    cls = type(node)
    overridden = cls.generic_forward is not Expression.generic_forward
    if cls is PyOpNode:
        return overridden
    return overridden or cls.__module__.startswith("dynet.nodes")


def close(got, want, what):
    finite = np.abs(want[np.isfinite(want)])           # log_softmax's excluded rows are -inf
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale, err_msg=what)


def check_graph(seed=None):
    """Every node of the current graph (after a typed forward and backward(full=True)): generic
    forward against the typed value, generic backward against the typed gradients. With `seed`,
    the library's generator is reseeded first (the typed pass must have run right after the same
    reseed), so random nodes draw the same values."""
    nodes = cg().nodes_list()
    value = {n.vindex: as_array(n.npvalue(), n.dim()) for n, _ in nodes}
    grad = {n.vindex: as_array(n.gradient(), n.dim()) for n, _ in nodes}
    summed = {}
    incomplete = set()       # arguments of nodes left out: their gradient has parts not checked
    if seed is not None:
        config.reseed(seed)
    checked = 0
    for node, args in nodes:
        if not has_generic(node):
            incomplete.update(a.vindex for a in args)
            continue
        xs = [value[a.vindex] for a in args]
        out = np.zeros_like(value[node.vindex], order="F")
        node.generic_forward(np, xs, out)
        close(out, value[node.vindex], f"generic_forward of {node.op_name()} (v{node.vindex})")
        for i, a in enumerate(args):
            dxi = np.zeros_like(xs[i], order="F")
            node.generic_backward(np, xs, value[node.vindex], grad[node.vindex], i, dxi)
            summed[a.vindex] = summed.get(a.vindex, 0) + dxi
        checked += 1
    for index, g in summed.items():
        if index not in incomplete:
            close(g, grad[index], f"generic_backward: gradient of node v{index} "
                                  f"({nodes[index][0].op_name()})")
    return checked


def _inputs(args):
    return [dy.inputTensor(np.asarray(a, dtype=np.float64), batched=b) for a, b in args]


def run_case(build, args, seed=3):
    """Build build(*inputs), take the loss sum(out * R) as the gradient checks do, run the typed
    path, then check every node's generic implementation."""
    dy.renew_cg()
    xs = _inputs(args)
    out = build(*xs)
    config.reseed(seed)                       # the typed forward pass draws after this
    value = out.npvalue()
    proj = np.random.default_rng(1).uniform(-1, 1, value.shape)
    loss = dy.sum_batches(dy.sum_elems(dy.cmult(out, dy.inputTensor(proj, batched=out.dim()[1] > 1))))
    loss.backward(full=True)
    return check_graph(seed)


PARAMS = [(c, m) for c in CASES for m in c.modes()]


@pytest.mark.parametrize("case,mode", PARAMS, ids=[f"{c.name}-{m}" for c, m in PARAMS])
def test_optable_case(case, mode):
    rng = np.random.default_rng(7)
    assert run_case(lambda *xs: case.build(dy, *xs), case.make_inputs(rng, mode)) > 0


# ---- every elementwise row, and the other variants the table does not reach ------------------

def _u(low, high, shape=(5,)):
    return lambda rng, batched: [(rng.uniform(low, high, shape + ((3,) if batched else ())), batched)]


UNARY_CASES = {
    "tanh": (dy.tanh, -2, 2), "logistic": (dy.logistic, -3, 3), "rectify": (dy.rectify, -1, 1),
    "exp": (dy.exp, -2, 2), "log": (dy.log, 0.2, 3), "square": (dy.square, -2, 2),
    "sqrt": (dy.sqrt, 0.2, 3), "cube": (dy.cube, -2, 2), "abs": (dy.abs, -1, 1),
    "sin": (dy.sin, -3, 3), "cos": (dy.cos, -3, 3), "tan": (dy.tan, -1, 1),
    "asin": (dy.asin, -0.9, 0.9), "acos": (dy.acos, -0.9, 0.9), "atan": (dy.atan, -3, 3),
    "sinh": (dy.sinh, -2, 2), "cosh": (dy.cosh, -2, 2), "asinh": (dy.asinh, -3, 3),
    "acosh": (dy.acosh, 1.2, 3), "atanh": (dy.atanh, -0.9, 0.9), "erf": (dy.erf, -2, 2),
    "lgamma": (dy.lgamma, 0.3, 5), "log_sigmoid": (dy.log_sigmoid, -5, 5),
    "elu": (lambda x: dy.elu(x, 0.7), -2, 2), "selu": (dy.selu, -2, 2),
    "silu": (lambda x: dy.silu(x, 1.5), -3, 3), "softsign": (dy.softsign, -3, 3),
    "round": (dy.round, -3, 3), "ceil": (dy.ceil, -3, 3), "floor": (dy.floor, -3, 3),
    "round_straight_through": (lambda x: dy.round(x, "straight_through_gradient"), -3, 3),
    "ceil_straight_through": (lambda x: dy.ceil(x, "straight_through_gradient"), -3, 3),
    "floor_straight_through": (lambda x: dy.floor(x, "straight_through_gradient"), -3, 3),
    "affine": (lambda x: 0.25 - 1.5 * x, -2, 2),
    "scalar_div": (lambda x: 2.0 / x, 0.5, 2), "pow_scalar": (lambda x: x ** 2.5, 0.2, 2),
    "pow_scalar_negative": (lambda x: dy.pow(x, -1.5), 0.5, 2),
}


@pytest.mark.parametrize("name", sorted(UNARY_CASES))
@pytest.mark.parametrize("batched", [False, True])
def test_unary_rows(name, batched):
    fn, low, high = UNARY_CASES[name]
    rng = np.random.default_rng(5)
    run_case(fn, _u(low, high, (3, 2))(rng, batched))


def test_round_halves_away_from_zero():
    dy.renew_cg()
    x = dy.inputTensor(np.array([-2.5, -0.5, 0.5, 1.5, 2.5, 0.49999997]))
    y = dy.round(x)
    y.npvalue()
    out = np.zeros((6, 1), dtype=np.float32, order="F")
    y.generic_forward(np, [as_array(x.npvalue(), x.dim())], out)
    np.testing.assert_array_equal(out[:, 0], [-3, -1, 1, 2, 3, 0])


BINARY_CASES = {
    # name: (build, shapes of a and b (one batch element), low, high, batches of a and b)
    "bmin": (dy.bmin, (3, 2), (3, 2), -1, 1),
    "bmax": (dy.bmax, (3, 2), (3, 2), -1, 1),
    "pow": (dy.pow, (4,), (4,), 0.3, 2),
    "cdiv_broadcast_rows": (dy.cdiv, (3, 4), (1, 4), 0.5, 2),
    "cmult_broadcast_both": (dy.cmult, (3, 1), (1, 4), -1, 1),
    "sub_broadcast_3d": (lambda a, b: a - b, (2, 3, 4), (2, 1, 4), -1, 1),
    "add_broadcast_vector": (lambda a, b: a + b, (3, 4), (3,), -1, 1),
}


@pytest.mark.parametrize("name", sorted(BINARY_CASES))
@pytest.mark.parametrize("batches", [(1, 1), (3, 3), (3, 1), (1, 3)])
def test_binary_broadcasting(name, batches):
    fn, sa, sb, low, high = BINARY_CASES[name]
    rng = np.random.default_rng(9)
    args = [(rng.uniform(low, high, s + ((n,) if n > 1 else ())), n > 1) for s, n in zip((sa, sb), batches)]
    run_case(fn, args)


MORE_CASES = {
    # name: (build, [(shape incl. batch, batched)])
    # (the loss reads only the rows kept: the others are -inf)
    "log_softmax_restrict": (lambda x: dy.select_rows(dy.log_softmax(x, restrict=[0, 2, 3]), [0, 2, 3]),
                             [((5, 3), True)]),
    "log_softmax_restrict_matrix": (lambda x: dy.select_rows(dy.log_softmax(x, restrict=[1, 2]), [1, 2]),
                                    [((4, 2), False)]),
    "softmax_matrix_batched": (dy.softmax, [((4, 3, 2), True)]),
    "pickneglogsoftmax_batch_of_one_x": (lambda x: dy.pickneglogsoftmax_batch(x, [0, 3, 1]), [((5,), False)]),
    "matmul_batched_matrix": (lambda a, b: a * b, [((3, 4, 2), True), ((4, 2), False)]),
    "matmul_both_batched": (lambda a, b: a * b, [((3, 4, 2), True), ((4, 2, 2), True)]),
    "affine_matrix_bias_batched": (lambda b, W, x: dy.affine_transform([b, W, x]),
                                   [((3, 2, 2), True), ((3, 4), False), ((4, 2), False)]),
    "affine_batched_weights": (lambda b, W, x: dy.affine_transform([b, W, x]),
                               [((3,), False), ((3, 4, 2), True), ((4,), False)]),
    "pick_dim2_batched_indices": (lambda x: dy.pick_batch(x, [1, 0, 2], 2), [((2, 3, 4), False)]),
    "pick_range_dim1": (lambda x: dy.pick_range(x, 1, 3, 1), [((2, 4, 3), True)]),
    "select_cols_batched": (lambda x: dy.select_cols(x, [1, 1, 0]), [((3, 2, 2), True)]),
    "concatenate_broadcast_batch": (lambda a, b: dy.concatenate([a, b], d=1),
                                    [((3, 2, 2), True), ((3, 1), False)]),
    "transpose_batched": (dy.transpose, [((2, 3, 3), True)]),
    "reshape_matrix": (lambda x: dy.reshape(x, (2, 6)), [((3, 4, 2), True)]),
    "sum_dim_batch_only": (lambda x: dy.sum_dim(x, [], True), [((3, 2, 3), True)]),
    "std_dim_masked": (lambda x: dy.std_dim(x, [1], False, 6), [((3, 4, 2), True)]),
    "max_dim_batched": (lambda x: dy.max_dim(x, 1), [((3, 4, 2), True)]),
    "moment_dim_batch": (lambda x: dy.moment_dim(x, [0], 3, True), [((3, 2, 3), True)]),
    "emax_broadcast": (lambda a, b: dy.emax([a, b]), [((3, 2), True), ((3,), False)]),
    "layer_norm_broadcast_gain": (lambda x, g, b: dy.layer_norm(x, g, b),
                                  [((5, 3), True), ((5,), False), ((5,), False)]),
    "huber_broadcast": (lambda a, b: dy.huber_distance(a, b, 0.3), [((4, 3), True), ((4,), False)]),
    "l1_distance_matrix": (dy.l1_distance, [((2, 3, 2), True), ((2, 3, 2), True)]),
    "dot_product_broadcast": (dy.dot_product, [((4,), False), ((4, 3), True)]),
    "filter1d_batched_filters": (dy.filter1d_narrow, [((3, 5), False), ((3, 2, 2, 2), True)]),
    "kmax_pooling_batched_d0": (lambda x: dy.kmax_pooling(x, 2, 0), [((4, 3, 2), True)]),
    "argmax_batched": (lambda x: dy.argmax(x, "straight_through_gradient"), [((5, 3), True)]),
    # seven dimensions: the most a value has (8 axes with the batch)
    "cmult_7d_broadcast": (dy.cmult, [((2, 1, 2, 1, 2, 1, 2, 2), True), ((2, 3, 1, 2, 1, 2, 2), False)]),
    "transpose_4d": (lambda x: dy.transpose(x, [3, 1, 0, 2]), [((2, 3, 2, 2, 2), True)]),
    "sum_dim_7d": (lambda x: dy.sum_dim(x, [1, 4, 6]), [((2, 2, 1, 2, 3, 1, 2, 2), True)]),
    # the builders' first step: no recurrent term
    "lstm_gates_no_h": (lambda x, Wx, Wh, b: lstm_gates([x], None, Wx, Wh, b, forget_bias=0.5),
                        [((3, 2), True), ((8, 3), False), ((8, 2), False), ((8,), False)]),
    "lstm_c_no_c": (lambda g: dy.vanilla_lstm_c(None, g), [((8, 2), True)]),
    "lstm_h_broadcast_gates": (dy.vanilla_lstm_h, [((2, 3), True), ((8,), False)]),
    "lstm_c_broadcast": (dy.vanilla_lstm_c, [((2,), False), ((8, 3), True)]),
}


@pytest.mark.parametrize("name", sorted(MORE_CASES))
def test_more_variants(name):
    fn, specs = MORE_CASES[name]
    rng = np.random.default_rng(4)
    run_case(fn, [(rng.uniform(-1, 1, s), b) for s, b in specs])


def test_repeated_argument():
    rng = np.random.default_rng(2)
    run_case(lambda a: dy.cmult(a, a) + dy.select_rows(a, [0, 0, 1]) * 1.0,
             [(rng.uniform(-1, 1, (3, 2)), True)])


# ---- random nodes: the same seed draws the same values on both paths ------------------------

RANDOM_CASES = {
    "dropout": lambda x: dy.dropout(x, 0.5),
    "dropout_dim": lambda x: dy.dropout_dim(x, 1, 0.3),
    "dropout_batch": lambda x: dy.dropout_batch(x, 0.5),
    "block_dropout": lambda x: dy.block_dropout(x, 0.5),
    "noise": lambda x: dy.noise(x, 0.4),
    "random_normal": lambda x: dy.cmult(x, dy.random_normal((4, 3), 0.5, 2.0, batch_size=2)),
    "random_bernoulli": lambda x: dy.cmult(x, dy.random_bernoulli((4, 3), 0.3, 2.0, batch_size=2)),
    "random_uniform": lambda x: dy.cmult(x, dy.random_uniform((4, 3), -1.0, 3.0, batch_size=2)),
    "random_gumbel": lambda x: dy.cmult(x, dy.random_gumbel((4, 3), 0.0, 1.5, batch_size=2)),
    "constant": lambda x: dy.cmult(x, dy.constant((4, 3), 2.5)),
    "lstm_weight_noise": lambda x: dy.vanilla_lstm_gates(
        dy.pick_range(dy.reshape(x, (12,), batch_size=2), 0, 3), dy.pick_range(dy.reshape(x, (12,), batch_size=2), 3, 5),
        dy.inputTensor(np.linspace(-1, 1, 24).reshape(8, 3)), dy.inputTensor(np.linspace(1, -1, 16).reshape(8, 2)),
        dy.inputTensor(np.linspace(-0.5, 0.5, 8)), weightnoise_std=0.2),
}


@pytest.mark.parametrize("name", sorted(RANDOM_CASES))
def test_random_nodes_with_the_same_seed(name):
    rng = np.random.default_rng(6)
    run_case(RANDOM_CASES[name], [(rng.uniform(-1, 1, (4, 3, 2)), True)], seed=21)


def test_dropout_mask_kept_for_backward():
    dy.renew_cg()
    x = dy.inputTensor(np.ones((50, 4)))
    y = dy.dropout(x, 0.5)
    y.npvalue()
    xs = [np.ones((50, 4, 1), dtype=np.float32, order="F")]
    out = np.zeros((50, 4, 1), dtype=np.float32, order="F")
    config.reseed(99)
    y.generic_forward(np, xs, out)
    assert 0.2 < np.mean(out == 0) < 0.8
    dx = np.zeros_like(out)
    y.generic_backward(np, xs, out, np.full_like(out, 3.0), 0, dx)
    np.testing.assert_array_equal(dx, 3.0 * out)         # the forward pass's mask, scaled by 3


# ---- graphs from the builders (parameter and lookup nodes as leaves) -----------------------


@pytest.mark.parametrize("builder", ["VanillaLSTMBuilder", "LSTMBuilder", "GRUBuilder", "SimpleRNNBuilder"])
def test_builder_graphs(builder):
    config.reseed(5)
    m = dy.ParameterCollection()
    rnn = getattr(dy, builder)(2, 3, 4, m)
    if builder == "VanillaLSTMBuilder":
        rnn.set_dropouts(0.2, 0.3)
    E = m.add_lookup_parameters((10, 3))
    W = m.add_parameters((5, 4))
    dy.renew_cg()
    if builder == "VanillaLSTMBuilder":
        rnn.set_dropout_masks(batch_size=2)
    s = rnn.initial_state()
    losses = []
    for t, (w1, w2) in enumerate([(1, 2), (3, 4), (5, 6)]):
        s = s.add_input(dy.lookup_batch(E, [w1, w2]))
        losses.append(dy.pickneglogsoftmax_batch(W * s.output(), [t, t + 1]))
    config.reseed(8)
    loss = dy.sum_batches(dy.esum(losses))
    loss.npvalue()
    loss.backward(full=True)
    assert check_graph(seed=8) > 0


# ---- a whole graph on the generic path ---------------------------------------------------------


def run_generic(loss, seed):
    """Forward and backward through every node of the graph on the generic path alone (each node
    reads the generic values of its arguments, as the generic backend will), then compare the
    values and the gradients with the typed ones. Nodes without a generic implementation (the
    parameter nodes until the device seam gives them one) take their typed value."""
    nodes = cg().nodes_list()
    config.reseed(seed)
    value = {}
    for node, args in nodes:
        typed = as_array(node.npvalue(), node.dim())
        if has_generic(node):
            value[node.vindex] = np.zeros_like(typed, order="F")
            node.generic_forward(np, [value[a.vindex] for a in args], value[node.vindex])
            close(value[node.vindex], typed, f"generic value of {node.op_name()} (v{node.vindex})")
        else:
            value[node.vindex] = typed
    grad = {n.vindex: np.zeros_like(value[n.vindex], order="F") for n, _ in nodes}
    grad[loss.vindex][...] = 1
    for node, args in reversed(nodes[:loss.vindex + 1]):
        for i, a in enumerate(args):
            node.generic_backward(np, [value[b.vindex] for b in args], value[node.vindex],
                                  grad[node.vindex], i, grad[a.vindex])
    for node, _ in nodes[:loss.vindex + 1]:
        close(grad[node.vindex], as_array(node.gradient(), node.dim()),
              f"generic gradient of {node.op_name()} (v{node.vindex})")


@pytest.mark.parametrize("builder", ["VanillaLSTMBuilder", "GRUBuilder"])
def test_whole_graph_on_the_generic_path(builder):
    config.reseed(5)
    m = dy.ParameterCollection()
    rnn = getattr(dy, builder)(1, 3, 4, m)
    E = m.add_lookup_parameters((10, 3))
    W = m.add_parameters((5, 8))
    dy.renew_cg()
    s = rnn.initial_state()
    hs = []
    for w1, w2 in [(1, 2), (3, 4), (5, 6)]:
        s = s.add_input(dy.dropout(dy.lookup_batch(E, [w1, w2]), 0.3))
        hs.append(s.output())
    scores = [W * dy.concatenate([h, dy.tanh(h)]) for h in hs]
    loss = dy.sum_batches(dy.esum([dy.pickneglogsoftmax_batch(sc, [0, 3]) for sc in scores]))
    config.reseed(8)
    loss.npvalue()
    loss.backward(full=True)
    run_generic(loss, seed=8)


# ---- every node class has a generic implementation -------------------------------------------


def _node_classes():
    for info in pkgutil.iter_modules(dynet.nodes.__path__):
        module = importlib.import_module(f"dynet.nodes.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Expression) and cls.__module__ == module.__name__ and cls is not Mirrored:
                yield cls


def test_every_node_class_has_a_generic_implementation():
    classes = list(_node_classes())
    assert len(classes) > 30
    missing = []
    for cls in classes:
        if cls is PyOpNode and cls.generic_forward is Expression.generic_forward:
            continue        # the NumPy-path node: converted separately (see has_generic)
        for name in ("generic_forward", "generic_backward"):
            if getattr(cls, name) is getattr(Expression, name):
                missing.append(f"{cls.__name__}.{name}")
        if issubclass(cls, Mirrored) and cls.generic_forward is Mirrored.generic_forward \
                and cls.generic_select is Mirrored.generic_select:
            missing.append(f"{cls.__name__}.generic_select")
    assert not missing, "node classes without a generic implementation: " + ", ".join(missing)
