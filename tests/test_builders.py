"""RNN builders, states, BiRNN and softmax builders: finite-difference gradients (inputs and every
parameter), batching, variational dropout by hand, the state API and error messages."""
import os

import numpy as np
import pytest

import dynet as dy
from tests.gradcheck import check_gradients

NAMES = ["SimpleRNNBuilder", "GRUBuilder", "LSTMBuilder", "CoupledLSTMBuilder", "FastLSTMBuilder",
         "VanillaLSTMBuilder", "CompactVanillaLSTMBuilder", "SparseLSTMBuilder"]
IN, HID = 3, 2


def make(name, layers=2, seed=0, **kw):
    m = dy.ParameterCollection()
    b = getattr(dy, name)(layers, IN, HID, m, **kw)
    rng = np.random.default_rng(seed)
    for li, layer in enumerate(b.get_parameters()):
        for k, p in enumerate(layer):
            if name == "SparseLSTMBuilder" and k >= 3:
                continue
            p.set_value(rng.uniform(-0.8, 0.8, p.shape()))
    return m, b


def seq_loss(b, xs, proj, vecs=None):
    outs = b.initial_state(vecs).transduce(xs)
    return dy.sum_batches(dy.esum([dy.sum_elems(dy.cmult(o, dy.inputTensor(p, batched=o.dim()[1] > 1)))
                                   for o, p in zip(outs, proj)]))


def is_lstm(name):
    return "LSTM" in name


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
@pytest.mark.parametrize("name", NAMES)
def test_input_and_state_gradients(name, batched):
    """d loss / d inputs and d loss / d initial state by finite differences."""
    m, b = make(name)
    rng = np.random.default_rng(1)
    T, B = 3, 2
    nstate = 2 * (2 if is_lstm(name) else 1)
    xs = [(rng.uniform(-1, 1, (IN, B) if batched else IN), batched) for _ in range(T)]
    s0 = [(rng.uniform(-1, 1, HID), False) for _ in range(nstate)]

    def build(*es):
        outs = b.initial_state(list(es[T:])).transduce(list(es[:T]))
        return dy.concatenate(outs)
    check_gradients(build, xs + s0, rtol=3e-2, atol=3e-3)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_gradients(name):
    """Every parameter's gradient against central differences of the loss."""
    m, b = make(name, **({"forget_bias": 0.5} if name == "VanillaLSTMBuilder" else {}))
    rng = np.random.default_rng(2)
    T = 3
    xs_np = [rng.uniform(-1, 1, (IN, 2)) for _ in range(T)]
    proj = [rng.uniform(-1, 1, (HID, 2)) for _ in range(T)]

    def loss_value():
        dy.renew_cg()
        return seq_loss(b, [dy.inputTensor(x, batched=True) for x in xs_np], proj).scalar_value()

    dy.renew_cg()
    seq_loss(b, [dy.inputTensor(x, batched=True) for x in xs_np], proj).backward()
    eps = 1e-3
    for li, layer in enumerate(b.get_parameters()):
        for k, p in enumerate(layer):
            if name == "SparseLSTMBuilder" and k >= 3:
                continue        # the masks are constants
            grad = np.ascontiguousarray(p.grad_as_array())
            vals = np.ascontiguousarray(p.as_array())
            flat = vals.reshape(-1)
            for j in rng.choice(flat.size, min(5, flat.size), replace=False):
                orig = flat[j]
                flat[j] = orig + eps
                p.set_value(vals)
                up = loss_value()
                flat[j] = orig - eps
                p.set_value(vals)
                down = loss_value()
                flat[j] = orig
                p.set_value(vals)
                num = (up - down) / (2 * eps)
                got = grad.reshape(-1)[j]
                assert abs(got - num) <= 3e-3 + 3e-2 * abs(num), (name, li, k, j, got, num)


@pytest.mark.parametrize("name", NAMES)
def test_lookup_batch_equals_separate_sequences(name):
    m, b = make(name)
    lp = m.add_lookup_parameters((10, IN))
    words = [[1, 4, 7], [2, 2, 9], [0, 5, 3], [8, 1, 1]]
    dy.renew_cg()
    outs = b.initial_state().transduce([dy.lookup_batch(lp, w) for w in words])
    batched = np.stack([o.npvalue() for o in outs])
    for k in range(3):
        dy.renew_cg()
        single = [o.npvalue() for o in b.initial_state().transduce([dy.lookup(lp, w[k]) for w in words])]
        np.testing.assert_allclose(batched[:, :, k], np.stack(single), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_batch1_initial_state_broadcasts(name):
    """An unbatched initial state with batched inputs is used for every batch element."""
    m, b = make(name)
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, (IN, 2)) for _ in range(3)]
    s0 = [rng.uniform(-1, 1, HID) for _ in range(4 if is_lstm(name) else 2)]
    dy.renew_cg()
    outs = b.initial_state_from_raw_vectors(s0).transduce([dy.inputTensor(x, batched=True) for x in xs])
    got = outs[-1].npvalue()
    for k in range(2):
        dy.renew_cg()
        one = b.initial_state_from_raw_vectors(s0).transduce([dy.inputTensor(x[:, k]) for x in xs])
        np.testing.assert_allclose(got[:, k], one[-1].npvalue(), rtol=1e-5, atol=1e-6)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("batch", [1, 3])
def test_vanilla_variational_dropout_by_hand(batch):
    """With the masks fixed for the sequence, the result is the documented dynamics with the masks
    applied by hand: x -> m_x * x, h_{t-1} -> m_h * h_{t-1} (masks scaled by 1/(1-d))."""
    m, b = make("VanillaLSTMBuilder", layers=2)
    b.set_dropouts(0.3, 0.4)
    rng = np.random.default_rng(4)
    xs = [rng.uniform(-1, 1, (IN, batch)) for _ in range(4)]
    dy.renew_cg()
    s = b.initial_state()
    b.set_dropout_masks(batch)
    outs = [o.npvalue().reshape(HID, batch) for o in s.transduce([dy.inputTensor(x, batched=True) for x in xs])]
    masks = [(mx.npvalue().reshape(-1, batch), mh.npvalue().reshape(-1, batch)) for mx, mh in b._masks]
    for mx, mh in masks:   # scaled Bernoulli draws
        assert set(np.round(np.unique(mx), 4)) <= {0.0, round(1 / 0.7, 4)}
        assert set(np.round(np.unique(mh), 4)) <= {0.0, round(1 / 0.6, 4)}
    params = [[p.as_array() for p in layer] for layer in b.get_parameters()]
    H = HID
    h = [None, None]
    c = [None, None]
    for t, x in enumerate(xs):
        inp = x
        for i, (Wx, Wh, bias) in enumerate(params):
            a = Wx @ (inp * masks[i][0]) + bias[:, None]
            if h[i] is not None:
                a = a + Wh @ (h[i] * masks[i][1])
            it, ft, ot = sigmoid(a[:H]), sigmoid(a[H:2 * H] + 1.0), sigmoid(a[2 * H:3 * H])
            gt = np.tanh(a[3 * H:])
            c[i] = it * gt if c[i] is None else ft * c[i] + it * gt
            h[i] = ot * np.tanh(c[i])
            inp = h[i]
        np.testing.assert_allclose(outs[t], h[1], rtol=1e-4, atol=1e-5)


def test_vanilla_dropout_masks_drawn_per_sequence_and_disabled():
    m, b = make("VanillaLSTMBuilder", layers=1)
    x = np.ones(IN)
    dy.renew_cg()
    clean = b.initial_state().add_input(dy.inputTensor(x)).output().npvalue()
    b.set_dropout(0.5)
    dy.renew_cg()
    s = b.initial_state()
    m1 = b._masks
    s.add_input(dy.inputTensor(x))
    assert b._masks is not None and m1 is None        # drawn at the first input
    first = b._masks
    s.add_input(dy.inputTensor(x)).add_input(dy.inputTensor(x))
    assert b._masks is first                          # fixed for the sequence
    b.initial_state()
    assert b._masks is None                           # a new sequence draws new ones
    b.disable_dropout()
    dy.renew_cg()
    np.testing.assert_allclose(b.initial_state().add_input(dy.inputTensor(x)).output().npvalue(), clean)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "FastLSTMBuilder"])
def test_set_dropout_changes_training_and_disable_restores(name):
    m, b = make(name, layers=1)
    xs = [np.linspace(-1, 1, IN) + t for t in range(3)]
    dy.renew_cg()
    clean = b.initial_state().transduce([dy.inputTensor(x) for x in xs])[-1].npvalue()
    b.set_dropout(0.5)
    dy.renew_cg()
    diffs = [np.abs(b.initial_state().transduce([dy.inputTensor(x) for x in xs])[-1].npvalue() - clean).max()
             for _ in range(5)]
    assert max(diffs) > 1e-4
    b.disable_dropout()
    dy.renew_cg()
    np.testing.assert_allclose(b.initial_state().transduce([dy.inputTensor(x) for x in xs])[-1].npvalue(), clean)


def test_compact_weightnoise():
    m, b = make("CompactVanillaLSTMBuilder", layers=1)
    x = dy.inputTensor
    dy.renew_cg()
    clean = b.initial_state().add_input(x(np.ones(IN))).output().npvalue()
    b.set_weightnoise(0.5)
    dy.renew_cg()
    out = b.initial_state().add_input(x(np.ones(IN)))
    assert np.abs(out.output().npvalue() - clean).max() > 1e-4
    dy.sum_elems(out.output()).backward()   # gradients flow through the noisy weights
    assert np.abs(b.get_parameters()[0][0].grad_as_array()).sum() > 0
    with pytest.raises(ValueError, match="set_weightnoise"):
        b.set_weightnoise(-1)


def test_sparse_lstm_set_sparsity():
    m, b = make("SparseLSTMBuilder", layers=1)
    b.set_sparsity(0.5)
    Wx, Wh, bias, Mx, Mh = b.get_parameters()[0]
    for W, M in ((Wx, Mx), (Wh, Mh)):
        w, mask = np.abs(W.as_array()), M.as_array()
        assert mask.sum() == W.as_array().size - int(0.5 * w.size)
        assert w[mask == 1].min() >= w[mask == 0].max()
    # the masked weights do not matter
    dy.renew_cg()
    out = b.initial_state().add_input(dy.inputTensor(np.ones(IN))).output().npvalue()
    W = Wx.as_array()
    W[Mx.as_array() == 0] = 123.0
    Wx.set_value(W)
    dy.renew_cg()
    np.testing.assert_allclose(b.initial_state().add_input(dy.inputTensor(np.ones(IN))).output().npvalue(), out)


# ---- the state API ----

def test_parameter_expressions_need_initial_state():
    m, b = make("VanillaLSTMBuilder")
    dy.renew_cg()
    with pytest.raises(ValueError, match="initial_state"):
        b.get_parameter_expressions()
    b.initial_state()
    exprs = b.get_parameter_expressions()
    assert [len(l) for l in exprs] == [3, 3]
    np.testing.assert_allclose(exprs[0][0].npvalue(), b.get_parameters()[0][0].as_array())
    dy.renew_cg()
    with pytest.raises(ValueError, match="initial_state"):
        b.get_parameter_expressions()


@pytest.mark.parametrize("name", NAMES)
def test_state_api(name):
    m, b = make(name)
    lstm = is_lstm(name)
    dy.renew_cg()
    s0 = b.initial_state()
    assert s0.h() == () and s0.s() == () and s0.prev() is None and s0.b() is b
    xs = [dy.inputTensor(np.full(IN, 0.1 * t)) for t in range(3)]
    states = s0.add_inputs(xs)
    outs = s0.transduce(xs)
    for st, o in zip(states, outs):
        np.testing.assert_allclose(st.output().npvalue(), o.npvalue())
        assert len(st.h()) == 2 and len(st.s()) == (4 if lstm else 2)
        np.testing.assert_allclose(st.h()[-1].npvalue(), o.npvalue())
        assert st.s()[-2:] == st.h()       # cells first, then outputs
    assert states[2].prev() is states[1] and states[0].prev() is s0
    # set_h / set_s start a new branch
    new_h = [dy.inputTensor(np.full(HID, 0.5)), dy.inputTensor(np.full(HID, -0.5))]
    sh = states[1].set_h(new_h)
    assert sh.prev() is states[1]
    np.testing.assert_allclose(sh.h()[1].npvalue(), [-0.5] * HID)
    if lstm:
        assert sh.s()[0] is states[1].s()[0]     # the cells are kept
        cells = [dy.inputTensor(np.full(HID, 0.25)) for _ in range(2)]
        ss = states[1].set_s(cells + new_h)
        np.testing.assert_allclose(ss.s()[0].npvalue(), [0.25] * HID)
        only_c = states[1].set_s(cells)
        assert only_c.h() == states[1].h()
    # continuing from a set state equals starting from it
    a = sh.add_input(xs[0]).output().npvalue()
    full = (list(sh.s()))
    b2 = b.initial_state(full).add_input(xs[0]).output().npvalue()
    np.testing.assert_allclose(a, b2, rtol=1e-6)


def test_state_errors():
    m, b = make("VanillaLSTMBuilder")
    dy.renew_cg()
    with pytest.raises(ValueError, match="initial_state: expected 4"):
        b.initial_state([dy.inputTensor(np.zeros(HID))])
    with pytest.raises(ValueError, match=r"\{2\}"):
        b.initial_state([dy.inputTensor(np.zeros(5))] * 4)
    s = b.initial_state()
    with pytest.raises(ValueError, match="lstm.*Wx"):
        s.add_input(dy.inputTensor(np.zeros(IN + 1)))
    with pytest.raises(ValueError, match="set_h: expected 2"):
        s.set_h([dy.inputTensor(np.zeros(HID))])
    with pytest.raises(ValueError, match="set_s"):
        s.set_s([dy.inputTensor(np.zeros(HID))] * 3)
    with pytest.raises(ValueError, match="affine_transform"):
        make("GRUBuilder")[1].initial_state().add_input(dy.inputTensor(np.zeros(IN + 2)))
    with pytest.raises(TypeError, match="transduce: expected a list of expressions, got int"):
        s.transduce(5)
    with pytest.raises(TypeError, match="add_inputs: expected a list of expressions, got NoneType"):
        s.add_inputs(None)
    outs = s.transduce(iter([dy.inputTensor(np.zeros(IN))] * 2))      # any iterable
    assert len(outs) == 2 and outs[1].npvalue().shape == (HID,)
    with pytest.raises(ValueError, match="layers"):
        dy.VanillaLSTMBuilder(0, 3, 4, m)
    with pytest.raises(ValueError, match="set_dropouts"):
        b.set_dropouts(1.5, 0)


def test_update_false_loads_constant_parameters():
    m, b = make("VanillaLSTMBuilder")
    dy.renew_cg()
    out = b.initial_state(update=False).add_input(dy.inputTensor(np.ones(IN))).output()
    for l in b.get_parameters():
        for p in l:
            p.scale_gradient(0)
    dy.sum_elems(out).backward()
    assert all(np.abs(p.grad_as_array()).sum() == 0 for l in b.get_parameters() for p in l)


# ---- BiRNN and stacked states ----

def test_birnn_transduce_and_add_inputs():
    m = dy.ParameterCollection()
    bi = dy.BiRNNBuilder(2, IN, 6, m, dy.VanillaLSTMBuilder)
    xs_np = [np.random.default_rng(t).uniform(-1, 1, IN) for t in range(4)]
    dy.renew_cg()
    xs = [dy.inputTensor(x) for x in xs_np]
    outs = bi.transduce(xs)
    assert len(outs) == 4 and outs[0].dim() == ((6,), 1)
    # by hand from its layers
    (f1, b1), (f2, b2) = bi.builder_layers
    fs = f1.initial_state().transduce(xs)
    bs = b1.initial_state().transduce(xs[::-1])[::-1]
    mid = [dy.concatenate([f, b]) for f, b in zip(fs, bs)]
    fs = f2.initial_state().transduce(mid)
    bs = b2.initial_state().transduce(mid[::-1])[::-1]
    for o, f, b in zip(outs, fs, bs):
        np.testing.assert_allclose(o.npvalue(), np.concatenate([f.npvalue(), b.npvalue()]), rtol=1e-6)
    pairs = bi.add_inputs(xs)
    for (sf, sb), o in zip(pairs, outs):
        np.testing.assert_allclose(np.concatenate([sf.output().npvalue(), sb.output().npvalue()]),
                                   o.npvalue(), rtol=1e-6)
    dy.sum_elems(dy.esum(outs)).backward()
    assert np.abs(f1.get_parameters()[0][0].grad_as_array()).sum() > 0
    with pytest.raises(ValueError, match="even"):
        dy.BiRNNBuilder(1, IN, 5, m, dy.LSTMBuilder)


def test_stacked_rnn_state():
    m = dy.ParameterCollection()
    b1, b2 = dy.GRUBuilder(1, IN, 4, m), dy.GRUBuilder(1, 4, HID, m)
    dy.renew_cg()
    xs = [dy.inputTensor(np.full(IN, 0.2 * t)) for t in range(3)]
    st = dy.StackedRNNState([b1.initial_state(), b2.initial_state()])
    states = st.add_inputs(xs)
    by_hand = b2.initial_state().transduce(b1.initial_state().transduce(xs))
    np.testing.assert_allclose(states[-1].output().npvalue(), by_hand[-1].npvalue(), rtol=1e-6)
    assert states[1].prev() is states[0] and len(states[0].h()) == 2


# ---- softmax builders ----

def test_standard_softmax_builder():
    m = dy.ParameterCollection()
    sm = dy.StandardSoftmaxBuilder(4, 5, m)
    dy.renew_cg()
    x = dy.inputTensor(np.array([0.3, -0.2, 0.5, 0.1]))
    logp = sm.full_log_distribution(x).npvalue()
    np.testing.assert_allclose(np.exp(logp).sum(), 1, rtol=1e-5)
    for c in range(5):
        np.testing.assert_allclose(sm.neg_log_softmax(x, c).scalar_value(), -logp[c], rtol=1e-5)
    draws = [sm.sample(x) for _ in range(2000)]
    freq = np.bincount(draws, minlength=5) / 2000
    np.testing.assert_allclose(freq, np.exp(logp), atol=0.05)
    with pytest.raises(IndexError, match="class 5"):
        sm.neg_log_softmax(x, 5)
    assert len(sm.param_collection().parameters_list()) == 2
    no_bias = dy.StandardSoftmaxBuilder(4, 5, m, bias=False)
    assert no_bias.full_logits(x).dim() == ((5,), 1)

    def build(xe):
        return sm.neg_log_softmax_batch(xe, [0, 4, 2])
    check_gradients(build, [(np.random.default_rng(0).uniform(-1, 1, (4, 3)), True)])


def test_class_factored_softmax_builder(tmp_path):
    f = tmp_path / "clusters"
    f.write_text("c1 a\nc1 b\nc2 d\nc1 e\nc3 z\n")
    words = {"a": 0, "b": 1}
    m = dy.ParameterCollection()
    sm = dy.ClassFactoredSoftmaxBuilder(3, str(f), words, m)
    assert words == {"a": 0, "b": 1, "d": 2, "e": 3, "z": 4}
    for k, p in enumerate(sm.param_collection().parameters_list()):
        p.set_value(np.random.default_rng(k).uniform(-1, 1, p.shape()))
    dy.renew_cg()
    xv = np.array([0.4, -0.3, 0.9])
    x = dy.inputTensor(xv)
    logp = sm.full_log_distribution(x).npvalue()
    np.testing.assert_allclose(np.exp(logp).sum(), 1, rtol=1e-5)
    for w in range(5):
        np.testing.assert_allclose(sm.neg_log_softmax(x, w).scalar_value(), -logp[w], rtol=1e-4)
    xb = np.random.default_rng(9).uniform(-1, 1, (3, 4))
    dy.renew_cg()
    batch = sm.neg_log_softmax_batch(dy.inputTensor(xb, batched=True), [0, 2, 3, 4]).npvalue().ravel()
    for k, w in enumerate([0, 2, 3, 4]):
        dy.renew_cg()
        np.testing.assert_allclose(batch[k], sm.neg_log_softmax(dy.inputTensor(xb[:, k]), w).scalar_value(),
                                   rtol=1e-5)
    dy.renew_cg()
    draws = [sm.sample(dy.inputTensor(xv)) for _ in range(2000)]
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / 2000, np.exp(logp), atol=0.05)

    def build(xe):
        return sm.neg_log_softmax_batch(xe, [1, 2, 3])
    check_gradients(build, [(np.random.default_rng(0).uniform(-1, 1, (3, 3)), True)])
    with pytest.raises(IndexError, match="no cluster"):
        sm.neg_log_softmax(x, 7)


def test_class_factored_softmax_cluster_file_must_be_a_name():
    # an int was opened as a file descriptor: the builder read stdout, then closed it
    r, w = os.pipe()
    try:
        for bad in (r, None, 2.5):
            with pytest.raises(TypeError, match="ClassFactoredSoftmaxBuilder: cluster_file must be a file name"):
                dy.ClassFactoredSoftmaxBuilder(3, bad, {}, dy.ParameterCollection())
        os.fstat(r)                     # still open
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("name", NAMES)
def test_whoami_names_the_builder_class(name):
    m, b = make(name, layers=1)
    # LSTMBuilder builds the builder it stands for (at the default API level, the coupled one)
    want = "CoupledLSTMBuilder" if name == "LSTMBuilder" else getattr(dy, name).__name__
    assert b.whoami() == type(b).__name__ == want


TYPED_STEPS = ["SimpleRNNBuilder", "GRUBuilder", "LSTMBuilder", "CoupledLSTMBuilder", "FastLSTMBuilder",
               "VanillaLSTMBuilder", "CompactVanillaLSTMBuilder"]


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("start", ["none", "given"])
@pytest.mark.parametrize("name", TYPED_STEPS)
def test_typed_steps_make_the_nodes_of_the_python_step(name, layers, start):
    """add_input and transduce run the builders' steps made at C level (builders/cells.pyx): the
    graph has the same nodes, in the same order, as the Python _step makes (forced here by taking
    the typed steps away from the builder), and the outputs and the gradients through them are
    the same bit for bit."""
    from dynet.core import execution
    m, b = make(name, layers=layers)
    rng = np.random.default_rng(layers)
    xs_np = [rng.uniform(-1, 1, IN) for _ in range(5)]
    parts = 2 if "LSTM" in name else 1
    s0_np = [rng.uniform(-1, 1, HID) for _ in range(parts * layers)] if start == "given" else None
    results = []
    try:
        for how in ("python", "add_input", "transduce"):
            if how == "python":
                b._steps = lambda s, xs: None
            else:
                b.__dict__.pop("_steps", None)
            execution.configure(0, 2)
            dy.renew_cg()
            xs = [dy.inputTensor(x) for x in xs_np]
            s0 = [dy.inputTensor(v) for v in s0_np] if s0_np is not None else None
            s = b.initial_state(s0)
            if how == "transduce":
                outs = s.transduce(xs)
            else:
                outs = []
                for x in xs:
                    s = s.add_input(x)
                    outs.append(s.output())
            loss = dy.sum_elems(dy.concatenate(outs))
            loss.backward()
            nodes = [(r["op"], r["dim"]) for r in execution.node_stats().values()]
            results.append((nodes, [o.npvalue() for o in outs],
                            [p.grad_as_array().copy() for layer in b.get_parameters() for p in layer]))
            for layer in b.get_parameters():
                for p in layer:
                    p.scale_gradient(0)
    finally:
        execution.configure(0, 0)
        execution.reset()
    (nodes_py, outs_py, grads_py) = results[0]
    assert len(nodes_py) > 5 * layers and len(outs_py) == 5
    for nodes, outs, grads in results[1:]:
        assert nodes == nodes_py
        for u, v in zip(outs, outs_py):
            np.testing.assert_array_equal(u, v)
        for u, v in zip(grads, grads_py):
            np.testing.assert_array_equal(u, v)
    assert any(np.abs(g).max() > 0 for g in grads_py)


@pytest.mark.parametrize("name", ["SimpleRNNBuilder", "GRUBuilder", "VanillaLSTMBuilder", "CoupledLSTMBuilder",
                                  "FastLSTMBuilder", "CompactVanillaLSTMBuilder"])
def test_a_builder_of_input_dim_0_is_made_saved_and_loaded(name, tmp_path):
    # as in DyNet: taggers build the character LSTM that --c_in_dim 0 turns off, and never use it
    m = dy.ParameterCollection()
    b = getattr(dy, name)(1, 0, 8, m)
    assert 0 in m.parameters_list()[0].shape()
    m.save(str(tmp_path / "m"))
    m2 = dy.ParameterCollection()
    getattr(dy, name)(1, 0, 8, m2)
    m2.populate(str(tmp_path / "m"))
    dy.renew_cg()
    with pytest.raises(ValueError, match="is empty .*cannot be used in a computation"):
        b.initial_state().add_input(dy.inputVector([1.0]))
    bi = dy.BiRNNBuilder(1, 0, 8, dy.ParameterCollection(), getattr(dy, name))
    assert len(bi.builder_layers) == 1
    with pytest.raises(ValueError, match="input_dim must be a non-negative integer, got -1"):
        getattr(dy, name)(1, -1, 8, m)
