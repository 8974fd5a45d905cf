"""Builder dropout as DyNet applies it, checked at the level of the masks: SimpleRNN and the LSTMs
use variational dropout (masks drawn once per sequence on x, h and, for CoupledLSTM, c); GRU drops
x and its output at every step; FastLSTM has no dropout."""
import numpy as np
import pytest

import dynet as dy

IN, HID = 3, 4


def make(name, layers=2, seed=0):
    m = dy.ParameterCollection()
    b = getattr(dy, name)(layers, IN, HID, m)
    rng = np.random.default_rng(seed)
    for layer in b.get_parameters():
        for p in layer:
            p.set_value(rng.uniform(-0.8, 0.8, p.shape()))
    return b


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def run_sequence(b, xs, batch, explicit_masks=True):
    dy.renew_cg()
    s = b.initial_state()
    if explicit_masks:
        b.set_dropout_masks(batch)
    outs = [o.npvalue().reshape(HID, batch)
            for o in s.transduce([dy.inputTensor(x, batched=True) for x in xs])]
    masks = [[None if mk is None else mk.npvalue().reshape(-1, batch) for mk in layer]
             for layer in b._masks]
    return outs, masks


def inputs(batch, n=4, seed=4):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (IN, batch)) for _ in range(n)]


@pytest.mark.parametrize("batch", [1, 3])
def test_simple_rnn_masks_x_and_h_per_sequence(batch):
    b = make("SimpleRNNBuilder")
    b.set_dropouts(0.3, 0.4)
    xs = inputs(batch)
    outs, masks = run_sequence(b, xs, batch)
    for mx, mh in masks:
        assert set(np.round(np.unique(mx), 4)) <= {0.0, round(1 / 0.7, 4)}
        assert set(np.round(np.unique(mh), 4)) <= {0.0, round(1 / 0.6, 4)}
    params = [[p.as_array() for p in layer] for layer in b.get_parameters()]
    h = [None, None]
    for t, x in enumerate(xs):
        inp = x
        for i, (W, U, bias) in enumerate(params):
            a = W @ (inp * masks[i][0]) + bias[:, None]
            if h[i] is not None:
                a = a + U @ (h[i] * masks[i][1])
            h[i] = np.tanh(a)
            inp = h[i]
        np.testing.assert_allclose(outs[t], h[1], rtol=1e-4, atol=1e-5)


def test_simple_rnn_rate_zero_leaves_that_part_alone():
    b = make("SimpleRNNBuilder", layers=1)
    b.set_dropouts(0.0, 0.5)
    dy.renew_cg()
    b.initial_state().add_input(dy.inputTensor(np.ones(IN)))
    assert b._masks[0][0] is None and b._masks[0][1] is not None


@pytest.mark.parametrize("name", ["CoupledLSTMBuilder", "LSTMBuilder"])
@pytest.mark.parametrize("batch", [1, 2])
def test_coupled_lstm_masks_x_h_c_per_sequence_and_no_output_dropout(name, batch):
    b = make(name)
    b.set_dropout(0.4)
    xs = inputs(batch)
    outs, masks = run_sequence(b, xs, batch)
    assert all(len(layer) == 3 for layer in masks)
    params = [[p.as_array() for p in layer] for layer in b.get_parameters()]
    h, c = [None, None], [None, None]
    for t, x in enumerate(xs):
        inp = x
        for i, (x2i, h2i, c2i, bi, x2o, h2o, c2o, bo, x2c, h2c, bc) in enumerate(params):
            mx, mh, mc = masks[i]
            xin = inp * mx
            if h[i] is None:
                it = sigmoid(x2i @ xin + bi[:, None])
                c[i] = it * np.tanh(x2c @ xin + bc[:, None])
                ot = sigmoid(x2o @ xin + c2o @ c[i] + bo[:, None])
            else:
                hp, cp = h[i] * mh, c[i] * mc
                it = sigmoid(x2i @ xin + h2i @ hp + c2i @ cp + bi[:, None])
                wt = np.tanh(x2c @ xin + h2c @ hp + bc[:, None])
                c[i] = (1 - it) * cp + it * wt
                ot = sigmoid(x2o @ xin + h2o @ hp + c2o @ c[i] + bo[:, None])
            h[i] = ot * np.tanh(c[i])
            inp = h[i]
        np.testing.assert_allclose(outs[t], h[1], rtol=1e-4, atol=1e-5)   # the output undropped


@pytest.mark.parametrize("name", ["SimpleRNNBuilder", "CoupledLSTMBuilder", "VanillaLSTMBuilder"])
def test_masks_drawn_at_first_input_with_its_batch_size_and_renewed_per_sequence(name):
    b = make(name, layers=1)
    b.set_dropout(0.5)
    dy.renew_cg()
    s = b.initial_state()
    assert b._masks is None
    s = s.add_input(dy.inputTensor(np.ones((IN, 3)), batched=True))
    first = b._masks
    assert first[0][0].dim() == ((IN,), 3)
    s.add_input(dy.inputTensor(np.ones((IN, 3)), batched=True))
    assert b._masks is first
    b.initial_state()
    assert b._masks is None


def test_fast_lstm_has_no_dropout():
    b = make("FastLSTMBuilder", layers=1)
    dy.renew_cg()
    xs = [dy.inputTensor(x[:, 0]) for x in inputs(1)]
    clean = b.initial_state().transduce(xs)[-1].npvalue()
    with pytest.warns(UserWarning, match="FastLSTMBuilder has no dropout"):
        b.set_dropout(0.5)
    dy.renew_cg()
    xs = [dy.inputTensor(x[:, 0]) for x in inputs(1)]
    np.testing.assert_allclose(b.initial_state().transduce(xs)[-1].npvalue(), clean)


def test_gru_drops_input_and_output_at_every_step():
    m = dy.ParameterCollection()
    b = dy.GRUBuilder(1, 40, 40, m)
    b.set_dropout(0.5)
    dy.renew_cg()
    s = b.initial_state().add_input(dy.inputTensor(np.linspace(0.1, 1, 40)))
    out = s.output().npvalue()
    assert 5 < (out == 0).sum() < 35                 # the output itself is dropped
    assert (s.h()[0].npvalue() == 0).sum() < 5       # (the state is not)


@pytest.mark.parametrize("name,call", [
    ("SimpleRNNBuilder", lambda b: b.set_dropouts(0.2, 1.0)),
    ("SimpleRNNBuilder", lambda b: b.set_dropout(-0.1)),
    ("CoupledLSTMBuilder", lambda b: b.set_dropout(1.5)),
])
def test_bad_rates_name_the_builder(name, call):
    b = make(name, layers=1)
    with pytest.raises(ValueError, match=name + r"\.set_dropouts?: rates must be in \[0, 1\)"):
        call(b)


def test_set_dropout_masks_checks_batch_size():
    b = make("SimpleRNNBuilder", layers=1)
    b.set_dropout(0.5)
    dy.renew_cg()
    b.initial_state()
    with pytest.raises(ValueError, match="SimpleRNNBuilder.set_dropout_masks: batch_size"):
        b.set_dropout_masks(0)
