"""DyNet 2.1/2.2 behaviours real code relies on, against the reference: the Tensor API, reusable
expressions, gradient availability, renew_cg's result, NumPy indices and float sizes, and the
2.1 API level (LSTMBuilder, trainer defaults). (print_graphviz has no reference here: the wheel's
lives in its --dynet-viz module, which re-implements the API symbolically.)"""
import numpy as np
import pytest

import dynet as dy
from dynet.core import config

M = np.array([[0.1, 3, 0.2, 4], [1, 2, 0.5, -1], [7, 0, 0.3, 0.6]])


def both(ref, build):
    """build(module) with ours and the reference, each in a new graph."""
    dy.renew_cg()
    ref.renew_cg()
    return build(dy), build(ref)


# ---- Tensor ----------------------------------------------------------------------------------

A = np.random.default_rng(2).permutation(24).astype(float)     # distinct values: no ties
VALUES = {"matrix": lambda m: m.inputTensor(M),
          "vector": lambda m: m.inputVector(A[:5]),
          "batched": lambda m: m.inputTensor(A.reshape(3, 2, 4), batched=True),
          "3d": lambda m: m.inputTensor(A.reshape(4, 3, 2))}
CALLS = {"as_numpy": lambda t: t.as_numpy(),
         "argmax": lambda t: t.argmax().as_numpy(),
         "argmax_1": lambda t: t.argmax(1).as_numpy(),
         "topk_values": lambda t: t.topk(0, 2)[0].as_numpy(),
         "topk_indices": lambda t: t.topk(0, 2)[1].as_numpy(),
         "topk_1": lambda t: t.topk(1, 2)[1].as_numpy()}
CASES = [(v, c) for v in VALUES for c in CALLS if not (v == "vector" and c.endswith("_1"))]


@pytest.mark.parametrize("value,call", CASES, ids=[f"{v}-{c}" for v, c in CASES])
def test_tensor_matches(ref, value, call):
    ours, theirs = both(ref, lambda m: CALLS[call](VALUES[value](m).tensor_value()))
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_categorical_sample_matches_in_distribution(ref):
    probs = np.array([[0.6, 0.1, 0.3], [0.3, 0.2, 0.1], [0.1, 0.7, 0.6]])
    counts = []
    for m in (dy, ref):
        m.renew_cg()
        t = m.log_softmax(m.inputTensor(np.log(probs))).tensor_value()
        draws = np.concatenate([t.categorical_sample_log_prob().as_numpy() for _ in range(4000)])
        assert draws.shape == (4000, 3) and draws.dtype == np.int64
        counts.append(np.stack([np.bincount(draws[:, c], minlength=3) for c in range(3)]) / 4000)
    np.testing.assert_allclose(counts[0], probs.T, atol=0.05)       # 5+ standard errors
    np.testing.assert_allclose(counts[0], counts[1], atol=0.06)


# ---- reusable expressions --------------------------------------------------------------------

def test_reusable_expressions_match(ref):
    def run(m, lp):
        m.renew_cg()
        x = m.inputTensor(np.array([1.0, 2, 3]), reusable_expr=True)
        e = m.lookup(lp, 1)
        p = m.pick(x, 0)
        y = m.tanh(x * 0.5) + m.concatenate([e, e[0:1]]) * p
        out = [y.npvalue()]
        x.set(np.array([-1.0, 0.5, 2]))
        out.append(y.npvalue(recalculate=True))
        e.set(3)
        out.append(np.array(y.value(recalculate=True)))
        p.set_index(2)
        m.forward([y], recalculate=True)
        out.append(y.npvalue())
        return out
    table = np.random.default_rng(4).uniform(-1, 1, (5, 2))
    lp = dy.ParameterCollection().add_lookup_parameters((5, 2), init=table)
    rlp = ref.ParameterCollection().add_lookup_parameters((5, 2), init=table)
    for a, b in zip(run(dy, lp), run(ref, rlp)):
        np.testing.assert_allclose(a, b, rtol=1e-5)


# ---- gradients, renew_cg -----------------------------------------------------------------------

def test_gradient_availability_matches(ref):
    def outcomes(m):
        g = m.renew_cg()
        out = [type(g).__name__]
        x = m.inputVector([1.0, 2.0])
        try:
            x.gradient()
            out.append("value")
        except RuntimeError:
            out.append("RuntimeError")
        W = m.ParameterCollection().add_parameters((2, 2), init=0.5)
        unused = m.inputVector([3.0, 4.0])
        loss = m.sum_elems(W * x)
        loss.backward()
        out += [list(x.gradient()), list(unused.gradient())]
        later = m.sum_elems(x * 2)
        try:
            later.gradient()
            out.append("value")
        except RuntimeError:
            out.append("RuntimeError")
        return out
    assert outcomes(dy) == outcomes(ref)


# ---- indices and sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda m: m.pickneglogsoftmax_batch(m.inputTensor(M, batched=True), np.array([0, 2, 1, 1])),
    lambda m: m.pick_batch(m.inputTensor(M, batched=True), np.array([2, 1, 0, 0])),
    lambda m: m.pick(m.inputVector([1.0, 2, 3]), np.int64(2)),
    lambda m: m.select_rows(m.inputTensor(M), np.array([2, 0])),
    lambda m: m.hinge_batch(m.inputTensor(M, batched=True), np.array([1, 0, 2, 2])),
    lambda m: m.pick_batch_elems(m.inputTensor(M, batched=True), np.array([3, 1])),
    lambda m: m.reshape(m.inputTensor(M), (2, 6.0)),
    lambda m: m.reshape(m.inputTensor(M), (4.0, 3)),
    lambda m: m.zeros((2.0, 3)) + m.inputTensor(np.ones((2, 3))),
])
def test_index_and_size_spellings_match(ref, build):
    ours, theirs = both(ref, build)
    assert ours.dim() == theirs.dim()
    np.testing.assert_allclose(ours.npvalue(), theirs.npvalue(), rtol=1e-6)


def test_float_sizes_of_parameters_and_builders_match(ref):
    for m in (dy, ref):
        pc = m.ParameterCollection()
        assert pc.add_parameters((48.0, 32)).shape() in ((48, 32), [48, 32])
        assert tuple(pc.add_lookup_parameters((10.0, 3)).shape()) == (10, 3)
        b = m.VanillaLSTMBuilder(2.0, 10, 64.0, pc)
        assert [tuple(p.shape()) for p in b.get_parameters()[1]] == [(256, 64), (256, 64), (256,)]


# ---- the 2.1 API level -----------------------------------------------------------------------

@pytest.fixture
def api_21():
    saved = config.state["api"]
    config.state["api"] = "2.1"
    yield
    config.state["api"] = saved


def test_lstmbuilder_at_21_is_the_references(ref, api_21):
    m, rm = dy.ParameterCollection(), ref.ParameterCollection()
    ob, rb = dy.LSTMBuilder(2, 3, 4, m), ref.LSTMBuilder(2, 3, 4, rm)
    rng = np.random.default_rng(8)
    for ol, rl in zip(ob.get_parameters(), rb.get_parameters()):
        for op, rp in zip(ol, rl):
            assert op.shape() == tuple(rp.shape())
            v = rng.uniform(-0.5, 0.5, op.shape())
            op.set_value(v)
            rp.set_value(v)
    xs = rng.uniform(-1, 1, (5, 3))
    outs = []
    for mod, b in ((dy, ob), (ref, rb)):
        mod.renew_cg()
        outs.append([o.npvalue() for o in b.initial_state().transduce([mod.inputVector(x) for x in xs])])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lstmbuilder_with_21_arguments_is_the_references(ref):
    m, rm = dy.ParameterCollection(), ref.ParameterCollection()
    ob, rb = dy.LSTMBuilder(1, 3, 4, m, True, 0.5), ref.LSTMBuilder(1, 3, 4, rm, True, 0.5)
    assert [p.shape() for p in ob.get_parameters()[0]] == [tuple(p.shape()) for p in rb.get_parameters()[0]]
    assert type(ob).__name__ == "VanillaLSTMBuilder" and ob.ln_lstm and ob.forget_bias == 0.5


@pytest.mark.parametrize("trainer", ["MomentumSGDTrainer", "CyclicalSGDTrainer"])
def test_trainer_defaults_at_21_are_the_references(ref, api_21, trainer):
    """Three updates with every argument at its default give the same parameters."""
    results = []
    for mod in (dy, ref):
        pc = mod.ParameterCollection()
        W = pc.add_parameters((3, 2), init=np.arange(6.0).reshape(3, 2) / 10)
        t = getattr(mod, trainer)(pc)
        for step in range(3):
            mod.renew_cg()
            loss = mod.squared_norm(W * mod.inputVector([1.0, -0.5 * step]) - mod.inputVector([1.0, 0, 2]))
            loss.backward()
            t.update()
        results.append(W.as_array())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-7)
