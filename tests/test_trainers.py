"""Trainers without the reference: learning rate 0, excluded parameters, the scale s, update_subset,
schedules, restart, weight decay, and bad input."""
import numpy as np
import pytest

import dynet as dy
from dynet.core import config

ALL = ["SimpleSGDTrainer", "CyclicalSGDTrainer", "MomentumSGDTrainer", "AdagradTrainer",
       "AdadeltaTrainer", "RMSPropTrainer", "AdamTrainer", "AmsgradTrainer"]
WITH_RATE = [n for n in ALL if n not in ("AdadeltaTrainer", "CyclicalSGDTrainer")]


def model(seed=0):
    rng = np.random.default_rng(seed)
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 2), init=dy.NumpyInitializer(rng.uniform(-1, 1, (3, 2))))
    b = m.add_parameters((3,), init=dy.NumpyInitializer(rng.uniform(-1, 1, (3,))))
    E = m.add_lookup_parameters((5, 2), init=dy.NumpyInitializer(rng.uniform(-1, 1, (5, 2))))
    return m, W, b, E


def loss_of(W, b, E, rows=(1, 3), w_update=True, e_update=True, scale=1.0):
    dy.renew_cg()
    Wx = dy.parameter(W, update=w_update)
    terms = [dy.squared_norm(dy.tanh(Wx * dy.lookup(E, r, update=e_update) + b)) for r in rows]
    loss = dy.esum(terms) * scale
    v = loss.value()
    loss.backward()
    return v


def snapshot(*ps):
    return [p.as_array().copy() for p in ps]


def make(name, m, **kw):
    return getattr(dy, name)(m, **kw)


# ---- learning rate 0, excluded parameters ---------------------------------------------------

@pytest.mark.parametrize("name", WITH_RATE)
def test_learning_rate_zero_changes_nothing(name):
    m, W, b, E = model()
    t = make(name, m, learning_rate=0.0)
    before = snapshot(W, b, E)
    for _ in range(3):
        loss_of(W, b, E)
        t.update()
    for x, y in zip(before, snapshot(W, b, E)):
        np.testing.assert_array_equal(x, y)
    assert not W.grad_as_array().any() and not E.grad_as_array().any()   # gradients were cleared


def test_cyclical_learning_rate_zero_changes_nothing():
    m, W, b, E = model()
    t = dy.CyclicalSGDTrainer(m, learning_rate_min=0.0, learning_rate_max=0.0, gamma=1.0)
    before = snapshot(W, b, E)
    loss_of(W, b, E)
    t.update()
    for x, y in zip(before, snapshot(W, b, E)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", ALL)
def test_update_false_leaves_parameters_unchanged(name):
    m, W, b, E = model()
    t = make(name, m)
    before = snapshot(W, E)
    for _ in range(3):
        loss_of(W, b, E, w_update=False, e_update=False)
        t.update()
    after = snapshot(W, E)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(b.as_array(), model()[2].as_array())   # b itself was trained


@pytest.mark.parametrize("name", ALL)
def test_set_updated_false_is_skipped_even_with_moments(name):
    m, W, b, E = model()
    t = make(name, m)
    loss_of(W, b, E)
    t.update()                      # moments now nonzero
    W.set_updated(False)
    E.set_updated(False)
    assert not W.is_updated()
    before = snapshot(W, E)
    for _ in range(2):
        loss_of(W, b, E)
        t.update()
    for x, y in zip(before, snapshot(W, E)):
        np.testing.assert_array_equal(x, y)
    W.set_updated(True)
    loss_of(W, b, E)
    t.update()
    assert not np.array_equal(before[0], W.as_array())


def test_momentum_moves_parameters_without_gradient():
    """DyNet updates every parameter at every update: momentum keeps moving an unused one."""
    m, W, b, E = model()
    t = dy.MomentumSGDTrainer(m, learning_rate=0.1, mom=0.5)
    loss_of(W, b, E)
    t.update()
    w1 = W.as_array()
    dy.renew_cg()
    loss = dy.squared_norm(dy.parameter(b))      # W gets no gradient this time
    loss.value()
    loss.backward()
    t.update()
    assert not np.array_equal(w1, W.as_array())


def test_sparse_and_dense_lookup_updates():
    for sparse in (True, False):
        m, W, b, E = model()
        t = dy.AdamTrainer(m, alpha=0.1)
        t.set_sparse_updates(sparse)
        assert t.get_sparse_updates() == sparse
        loss_of(W, b, E, rows=(1, 3))
        t.update()
        e1 = E.as_array()
        loss_of(W, b, E, rows=(0,))
        t.update()
        e2 = E.as_array()
        moved = [not np.array_equal(e1[r], e2[r]) for r in range(5)]
        # sparse: only the looked-up row; dense: row 0, and rows 1, 3 through their moments
        assert moved == ([True, False, False, False, False] if sparse else [True, True, False, True, False])


# ---- the update rule details ------------------------------------------------------------------

def test_sgd_step_and_scale():
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m, 0.1)
    t.set_clip_threshold(0)
    w0 = W.as_array()
    loss_of(W, b, E)
    g = W.grad_as_array()
    t.update(0.5)
    np.testing.assert_allclose(W.as_array(), w0 - 0.1 * 0.5 * g, rtol=1e-6, atol=1e-7)


def test_clipping_uses_global_norm_and_scale():
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m, 1.0)
    assert t.get_clip_threshold() == 5.0
    t.set_clip_threshold(0.1)
    w0, b0, e0 = snapshot(W, b, E)
    loss_of(W, b, E, scale=3.0)
    gW, gb, gE = W.grad_as_array(), b.grad_as_array(), E.grad_as_array()
    norm = np.sqrt((gW ** 2).sum() + (gb ** 2).sum() + (gE ** 2).sum())
    assert 2 * norm > 0.1
    t.update(2.0)                    # s * norm > threshold: the step is threshold / norm
    np.testing.assert_allclose(W.as_array(), w0 - 0.1 / norm * gW, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(E.as_array(), e0 - 0.1 / norm * gE, rtol=1e-5, atol=1e-7)
    assert t.clips == 1 and t.updates == 1


def test_a_given_gradient_norm_replaces_the_clipping_pass():
    # update(grad_norm=...) (dynet.distributed passes the norm it computed while averaging):
    # clipping scales by threshold / that norm, whatever the gradient's own norm is
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m, 1.0)
    t.set_clip_threshold(0.1)
    w0, e0 = snapshot(W, E)
    loss_of(W, b, E)
    gW, gE = W.grad_as_array(), E.grad_as_array()
    t.update(grad_norm=40.0)
    np.testing.assert_allclose(W.as_array(), w0 - 0.1 / 40.0 * gW, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(E.as_array(), e0 - 0.1 / 40.0 * gE, rtol=1e-5, atol=1e-7)
    assert t.clips == 1
    # below the threshold: no clipping, the plain step
    w0 = W.as_array().copy()
    loss_of(W, b, E)
    gW = W.grad_as_array()
    t.update(grad_norm=0.05)
    np.testing.assert_allclose(W.as_array(), w0 - gW, rtol=1e-5, atol=1e-7)
    assert t.clips == 1 and t.updates == 2


def test_a_given_gradient_norm_that_is_bad():
    m, W, b, E = model()
    t = dy.AdamTrainer(m)
    loss_of(W, b, E)
    with pytest.raises(ValueError, match=r"AdamTrainer.update: grad_norm must be >= 0 \(or None\), got -1"):
        t.update(grad_norm=-1.0)
    before = snapshot(W, b, E)
    with pytest.raises(RuntimeError, match="Magnitude of gradient is bad: inf"):
        t.update(grad_norm=float("inf"))
    for x, y in zip(before, snapshot(W, b, E)):
        np.testing.assert_array_equal(x, y)
    assert t.updates == 0 and not W.grad_as_array().any()       # the gradients were dropped
    loss_of(W, b, E)
    with pytest.raises(RuntimeError, match="Magnitude of gradient is bad: nan"):
        t.update(grad_norm=float("nan"))
    loss_of(W, b, E)
    t.update(grad_norm=None)                # training goes on
    assert t.updates == 1 and np.isfinite(W.as_array()).all()


def test_clip_threshold_nonpositive_turns_clipping_off():
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m, 0.01)
    t.set_clip_threshold(-1)
    assert t.get_clip_threshold() <= 0
    w0 = W.as_array()
    loss_of(W, b, E, scale=1000.0)
    g = W.grad_as_array()
    t.update()
    np.testing.assert_allclose(W.as_array(), w0 - 0.01 * g, rtol=1e-5, atol=1e-6)
    assert t.clips == 0


def test_adam_first_step_is_learning_rate_times_sign():
    m, W, b, E = model()
    t = dy.AdamTrainer(m, alpha=0.01)
    w0 = W.as_array()
    loss_of(W, b, E)
    g = W.grad_as_array()
    t.update()
    # m = 0.1 g, v = 0.001 g^2, lr_t = 0.01 sqrt(0.001) / 0.1 -> step 0.01 * sign(g)
    np.testing.assert_allclose(W.as_array(), w0 - 0.01 * np.sign(g), rtol=1e-4, atol=1e-6)


def test_update_subset():
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m, 0.1)
    w0, b0, e0 = snapshot(W, b, E)
    loss_of(W, b, E)
    gb = b.grad_as_array()
    t.update_subset([0], [])
    assert not np.array_equal(W.as_array(), w0)
    np.testing.assert_array_equal(b.as_array(), b0)
    np.testing.assert_array_equal(E.as_array(), e0)
    np.testing.assert_array_equal(b.grad_as_array(), gb)      # kept for a later update
    t.update_subset([1], [0])
    np.testing.assert_allclose(b.as_array(), b0 - 0.1 * gb, rtol=1e-6)
    assert not np.array_equal(E.as_array(), e0)


def test_update_epoch_and_learning_rate():
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m, e0=0.2, edecay=0.5)
    t.update_epoch()
    assert t.learning_rate == pytest.approx(0.2 / 1.5)
    t.update_epoch(2)
    assert t.learning_rate == pytest.approx(0.2 / 2.5)
    t.learning_rate = 0.05
    assert t.learning_rate == pytest.approx(0.05)
    t.update_epoch(0)
    assert t.learning_rate == pytest.approx(0.05)     # decays from the value set
    t.set_learning_rate(0.3)
    assert t.learning_rate == pytest.approx(0.3)


def test_defaults_follow_the_reference_text():
    m = dy.ParameterCollection()
    assert dy.SimpleSGDTrainer(m).learning_rate == pytest.approx(0.1)
    assert dy.MomentumSGDTrainer(m).learning_rate == pytest.approx(0.1)
    assert dy.MomentumSGDTrainer(m).momentum == pytest.approx(0.9)
    assert dy.AdagradTrainer(m).eps == pytest.approx(1e-20)
    assert dy.AdadeltaTrainer(m).rho == pytest.approx(0.95)
    assert dy.RMSPropTrainer(m).learning_rate == pytest.approx(0.001)
    a = dy.AdamTrainer(m)
    assert (a.learning_rate, a.beta_1, a.beta_2, a.eps) == pytest.approx((0.001, 0.9, 0.999, 1e-8))
    c = dy.CyclicalSGDTrainer(m)
    assert (c.e_min, c.e_max, c.step_size, c.gamma) == pytest.approx((0.01, 0.1, 2000, 0.0))
    assert dy.AdamTrainer(m, 0.5).learning_rate == pytest.approx(0.5)
    assert dy.SimpleSGDTrainer(m, learning_rate=0.5).learning_rate == pytest.approx(0.5)
    assert dy.CyclicalSGDTrainer(m, e0_min=0.2, e0_max=0.4).learning_rate == pytest.approx(0.2)


def test_cyclical_schedule():
    m, W, b, E = model()
    t = dy.CyclicalSGDTrainer(m, learning_rate_min=0.01, learning_rate_max=0.1, step_size=3, gamma=0.9)
    seen = []
    for _ in range(8):
        seen.append(t.learning_rate)
        loss_of(W, b, E)
        t.update()
    want = [0.01]
    for it in range(7):
        cycle = np.floor(1 + it / 6)
        x = abs(it / 3 - 2 * cycle + 1)
        want.append(0.01 + 0.09 * max(0, 1 - x) * 0.9 ** it)
    np.testing.assert_allclose(seen, want, rtol=1e-6)


# (Adam's bias correction counts all updates, restart included, as in DyNet: not compared here)
@pytest.mark.parametrize("name", ["MomentumSGDTrainer", "AdagradTrainer", "RMSPropTrainer"])
def test_restart_clears_moments(name):
    results = []
    for restart in (False, True):
        m, W, b, E = model()
        t = make(name, m)
        if restart:
            loss_of(W, b, E, rows=(2, 1))
            t.update()
            t.restart(0.05)
            assert t.learning_rate == pytest.approx(0.05)
            t.learning_rate = make(name, m).learning_rate
            _, W0, b0, E0 = model()
            W.set_value(W0.as_array())
            b.set_value(b0.as_array())
            E.init_from_array(E0.as_array())
        loss_of(W, b, E)
        t.update()
        results.append(snapshot(W, b, E))
    for x, y in zip(*results):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_status_prints_and_resets(capsys):
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m)
    t.set_clip_threshold(1e-3)
    loss_of(W, b, E)
    t.update()
    t.status()
    err = capsys.readouterr().err
    assert "clips=1" in err and "updates=1" in err
    assert t.clips_since_status == 0 and t.updates_since_status == 0 and t.clips == 1


def test_subcollection_trainer_updates_only_its_parameters():
    m = dy.ParameterCollection()
    sub = m.add_subcollection("s")
    p = m.add_parameters((2,), init=dy.ConstInitializer(1.0))
    q = sub.add_parameters((2,), init=dy.ConstInitializer(1.0))
    t = dy.SimpleSGDTrainer(sub, 0.1)
    dy.renew_cg()
    loss = dy.sum_elems(dy.parameter(p) + dy.parameter(q))
    loss.value()
    loss.backward()
    t.update()
    np.testing.assert_allclose(q.as_array(), [0.9, 0.9], rtol=1e-6)
    np.testing.assert_array_equal(p.as_array(), [1.0, 1.0])


# ---- weight decay ---------------------------------------------------------------------------

def test_weight_decay_is_lazy_and_rescales():
    m = dy.ParameterCollection()
    m.set_weight_decay_lambda(0.5)
    assert m.get_weight_decay() == pytest.approx(0.5)
    p = m.add_parameters((2,), init=dy.ConstInitializer(1.0))
    E = m.add_lookup_parameters((3, 2), init=dy.ConstInitializer(1.0))
    t = dy.SimpleSGDTrainer(m, 0.0)
    dy.renew_cg()
    t.update()
    np.testing.assert_array_equal(p.as_array(), [1.0, 1.0])       # stored values: untouched
    dy.renew_cg()
    np.testing.assert_allclose(dy.parameter(p).npvalue(), [0.5, 0.5])
    np.testing.assert_allclose(dy.lookup(E, 2).npvalue(), [0.5, 0.5])
    np.testing.assert_allclose(dy.parameter(E).npvalue(), np.full((2, 3), 0.5))
    dy.renew_cg()
    t.update()                       # factor 0.25, not below the threshold
    t.update()                       # 0.125 < 0.25: folded into the stored values
    np.testing.assert_allclose(p.as_array(), [0.125, 0.125])
    np.testing.assert_allclose(E.as_array(), np.full((3, 2), 0.125))
    dy.renew_cg()
    np.testing.assert_allclose(dy.parameter(p).npvalue(), [0.125, 0.125])


def test_weight_decay_gradient_step_is_on_real_values():
    m = dy.ParameterCollection()
    m.set_weight_decay_lambda(0.2)
    p = m.add_parameters((1,), init=dy.ConstInitializer(1.0))
    t = dy.SimpleSGDTrainer(m, 0.1)
    real = 1.0
    for _ in range(3):
        dy.renew_cg()
        loss = dy.sum_elems(dy.square(dy.parameter(p)))
        assert loss.value() == pytest.approx(real ** 2, rel=1e-5)
        loss.backward()
        t.update()
        real = (real - 0.1 * 2 * real) * 0.8
    dy.renew_cg()
    assert dy.parameter(p).value() == pytest.approx(real, rel=1e-5)


def test_weight_decay_frozen_parameters_decay_smoothly():
    """DyNet folds the factor only into updated parameters, so a frozen one jumps back up at the
    rescale; here all parameters are folded, so the frozen one's real value decays steadily."""
    m = dy.ParameterCollection()
    m.set_weight_decay_lambda(0.5)
    p = m.add_parameters((1,), init=dy.ConstInitializer(1.0))
    p.set_updated(False)
    t = dy.SimpleSGDTrainer(m, 0.1)
    for k in range(1, 5):
        t.update()
        dy.renew_cg()
        assert dy.parameter(p).value() == pytest.approx(0.5 ** k)


def test_weight_decay_with_update_subset():
    m = dy.ParameterCollection()
    m.set_weight_decay_lambda(0.5)
    p = m.add_parameters((1,), init=dy.ConstInitializer(1.0))
    t = dy.SimpleSGDTrainer(m, 0.1)
    t.update_subset([], [])
    dy.renew_cg()
    assert dy.parameter(p).value() == pytest.approx(0.5)


def test_weight_decay_from_global_setting(monkeypatch):
    params = dy.DynetParams()
    params.set_weight_decay(0.01)
    assert params._settings["weight_decay"] == 0.01
    monkeypatch.setitem(config.state, "weight_decay", 0.01)
    assert dy.ParameterCollection().get_weight_decay() == pytest.approx(0.01)
    assert config.parse_args(["prog", "--dynet-weight-decay", "0.002"])["weight_decay"] == 0.002


def test_weight_decay_bad_values():
    m = dy.ParameterCollection()
    with pytest.raises(ValueError, match="set_weight_decay_lambda"):
        m.set_weight_decay_lambda(-0.1)
    with pytest.raises(ValueError, match="set_weight_decay_lambda"):
        m.set_weight_decay(1.5)
    with pytest.raises(ValueError, match="set_weight_decay"):
        dy.DynetParams().set_weight_decay(-1)


# ---- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_trainer_needs_a_collection(name):
    with pytest.raises(TypeError, match=f"{name}: the first argument must be a ParameterCollection"):
        getattr(dy, name)([1, 2])


@pytest.mark.parametrize("name", WITH_RATE)
def test_negative_learning_rate(name):
    m = dy.ParameterCollection()
    with pytest.raises(ValueError, match="learning rate must be"):
        make(name, m, learning_rate=-0.1)
    t = make(name, m)
    with pytest.raises(ValueError, match="-1"):
        t.learning_rate = -1
    with pytest.raises(ValueError):
        t.set_learning_rate(float("nan"))


def test_bad_hyperparameters():
    m = dy.ParameterCollection()
    with pytest.raises(ValueError, match="AdamTrainer: beta_1"):
        dy.AdamTrainer(m, beta_1=1.0)
    with pytest.raises(ValueError, match="RMSPropTrainer: rho"):
        dy.RMSPropTrainer(m, rho=-0.5)
    with pytest.raises(ValueError, match="CyclicalSGDTrainer: step_size"):
        dy.CyclicalSGDTrainer(m, step_size=0)
    with pytest.raises(ValueError, match="upper learning rate"):
        dy.CyclicalSGDTrainer(m, learning_rate_min=0.5, learning_rate_max=0.1)
    with pytest.raises(TypeError, match="either e0 or learning_rate"):
        dy.SimpleSGDTrainer(m, e0=0.1, learning_rate=0.2)


def test_update_subset_bad_indices():
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m)
    with pytest.raises(IndexError, match="parameter index 2 is out of range .* 2 parameters"):
        t.update_subset([2], [])
    with pytest.raises(IndexError, match="lookup parameter index -1"):
        t.update_subset([], [-1])
    with pytest.raises(TypeError, match="index 'a' is not an integer"):
        t.update_subset(["a"], [])
    with pytest.raises(TypeError, match="must be a list"):
        t.update_subset(3, [])


def test_nan_gradient_raises_and_keeps_the_model():
    m, W, b, E = model()
    t = dy.AdamTrainer(m)
    loss_of(W, b, E)
    t.update()
    before = snapshot(W, b, E)
    dy.renew_cg()
    loss = dy.sum_elems(dy.log(dy.parameter(W) * 0.0)) + dy.squared_norm(dy.lookup(E, 1))
    loss.value()
    loss.backward()
    with pytest.raises(RuntimeError, match="Magnitude of gradient is bad"):
        t.update()
    for x, y in zip(before, snapshot(W, b, E)):
        np.testing.assert_array_equal(x, y)
    assert not np.isnan(W.grad_as_array()).any()       # the bad gradient was dropped
    assert t.updates == 1
    loss_of(W, b, E)
    t.update()                                           # training goes on
    assert np.isfinite(W.as_array()).all() and t.updates == 2


def test_nan_gradient_without_clipping_goes_into_the_model():
    """As in DyNet: with clipping off nothing is checked."""
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m)
    t.set_clip_threshold(0)
    dy.renew_cg()
    loss = dy.sum_elems(dy.log(dy.parameter(W) * 0.0))
    loss.value()
    loss.backward()
    t.update()
    assert not np.isfinite(W.as_array()).all()


def test_bad_scale():
    m, W, b, E = model()
    t = dy.SimpleSGDTrainer(m)
    with pytest.raises(ValueError, match="scale s must be finite"):
        t.update(float("inf"))


def test_updates_flush_subnormal_numbers_and_restore_the_float_mode():
    """The update rules run with flush-to-zero on x86 (a moment decaying towards zero slowed every
    Intel update 5x once it went subnormal): a result below the smallest normal float becomes 0,
    and the caller's floating-point mode is as it was before (NumPy's results unchanged)."""
    import platform
    # (whether this thread keeps subnormals depends on what the process loaded: a library built
    # with -ffast-math, the reference DyNet among them, turns flushing on when it is loaded)
    before = np.float32(1e-39) * np.float32(1.0)
    pc = dy.ParameterCollection()
    p = pc.add_parameters(1)
    p.set_value(np.array([2e-38]))
    trainer = dy.SimpleSGDTrainer(pc, 1.0)
    dy.renew_cg()
    loss = dy.dot_product(dy.parameter(p), dy.inputVector([1.5e-38]))
    loss.backward()
    trainer.update()
    if platform.machine() in ("x86_64", "AMD64", "i686"):
        assert p.as_array()[0] == 0.0                      # 5e-39 would be subnormal
    assert np.float32(1e-39) * np.float32(1.0) == before     # the thread's mode as it was
