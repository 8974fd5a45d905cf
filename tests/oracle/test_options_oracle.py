"""Options against the reference DyNet: initial-value ranges (Glorot rule, lookup default, scale=),
weight decay read at each forward, clip_inplace under weight decay, check_validity, and the shape of
each builder's dropout."""
import numpy as np
import pytest

import dynet as dy


def spread(a):
    a = np.abs(np.asarray(a).ravel())
    return a.max(), a.std()


def same_distribution(ours, theirs):
    """Both uniform on the same symmetric range: same maximum (to 2%), same spread (to 8%)."""
    (om, os_), (tm, ts) = spread(ours), spread(theirs)
    assert abs(om - tm) < 0.02 * tm, (om, tm)
    assert abs(os_ - ts) < 0.08 * ts, (os_, ts)


# (is_lookup on a vector leaves no dimension: DyNet divides by zero, we raise; see test_options.py)
@pytest.mark.parametrize("shape,how", [
    (shape, how) for shape in [(100, 50), (3000,), (10, 20, 30), (3, 3, 16, 32), (3000, 1)]
    for how in ["default", "scale", "glorot_gain", "glorot_is_lookup"]
    if not (how == "glorot_is_lookup" and len(shape) == 1)])
def test_parameter_init_ranges_match(ref, shape, how):
    made = []
    for lib in (dy, ref):
        m = lib.ParameterCollection()
        kw = {"default": {}, "scale": {"scale": 7.0},
              "glorot_gain": {"init": lib.GlorotInitializer(gain=1.5)},
              "glorot_is_lookup": {"init": lib.GlorotInitializer(is_lookup=True)}}[how]
        made.append(m.add_parameters(shape, **kw).as_array())
    same_distribution(*made)


@pytest.mark.parametrize("shape", [(1000, 50), (2000, 8), (100, 10, 20), (5000, 1)])
@pytest.mark.parametrize("how", ["default", "glorot", "glorot_is_lookup", "scale"])
def test_lookup_init_ranges_match(ref, shape, how):
    made = []
    for lib in (dy, ref):
        m = lib.ParameterCollection()
        kw = {"default": {}, "scale": {"scale": 7.0}, "glorot": {"init": lib.GlorotInitializer()},
              "glorot_is_lookup": {"init": lib.GlorotInitializer(True)}}[how]
        made.append(m.add_lookup_parameters(shape, **kw).as_array())
    same_distribution(*made)


def test_weight_decay_factor_at_each_forward_matches(ref):
    got = []
    for lib in (dy, ref):
        m = lib.ParameterCollection()
        m.set_weight_decay_lambda(0.5)
        p = m.add_parameters((1,), init=lib.ConstInitializer(2.0))
        t = lib.SimpleSGDTrainer(m, 0.0)
        lib.renew_cg()
        e = p.expr() * 1.0
        values = []
        for _ in range(4):
            values.append(e.value(recalculate=True))
            e.backward()
            t.update()
        got.append(values)
    assert got[0] == got[1] == [2.0, 1.0, 0.5, 0.25]


def test_clip_inplace_under_weight_decay_matches(ref):
    got = []
    for lib in (dy, ref):
        m = lib.ParameterCollection()
        m.set_weight_decay_lambda(0.5)
        p = m.add_parameters((2,), init=lib.ConstInitializer(2.0))
        t = lib.SimpleSGDTrainer(m, 0.0)
        lib.renew_cg()
        lib.sum_elems(p.expr()).backward()
        t.update()
        p.clip_inplace(-0.6, 0.6)
        lib.renew_cg()
        got.append((p.expr().npvalue(), p.as_array()))
    for a, b in zip(*got):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_check_validity_matches(ref):
    for lib in (dy, ref):
        lib.renew_cg(check_validity=True)
        assert np.isnan(lib.log(lib.scalarInput(-1)).value())     # lazy: not checked
        lib.renew_cg(immediate_compute=True, check_validity=True)
        with pytest.raises(RuntimeError, match="NaN or Inf detected"):
            lib.log(lib.scalarInput(-1))
        lib.renew_cg()


def first_output(lib, builder, x):
    lib.renew_cg()
    return builder.initial_state().add_input(lib.inputVector(list(x))).output().npvalue()


@pytest.mark.parametrize("name,output_dropped", [("CoupledLSTMBuilder", False), ("GRUBuilder", True),
                                                 ("SimpleRNNBuilder", False)])
def test_which_builders_drop_their_output(ref, name, output_dropped):
    x = np.linspace(0.1, 1, 40)
    for lib in (dy, ref):
        b = getattr(lib, name)(1, 40, 40, lib.ParameterCollection())
        b.set_dropout(0.5)
        zeros = sum(int((first_output(lib, b, x) == 0).sum()) for _ in range(3))
        assert (zeros > 10) == output_dropped, (lib.__name__, zeros)


def test_fast_lstm_dropout_changes_nothing(ref):
    x = np.linspace(0.1, 1, 6)
    for lib in (dy, ref):
        b = lib.FastLSTMBuilder(1, 6, 5, lib.ParameterCollection())
        clean = first_output(lib, b, x)
        with pytest.warns(UserWarning) if lib is dy else _no_warning_check():
            b.set_dropout(0.5)
        np.testing.assert_allclose(first_output(lib, b, x), clean)


class _no_warning_check:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_simple_rnn_input_mask_is_fixed_for_the_sequence(ref):
    """W_hx = I, W_hh = 0, b = 0: h_t = tanh(mask * x); the same x gives the same h at every step
    (one mask per sequence), zeros where the mask drops, tanh(2) where it keeps (scale 1/0.5)."""
    for lib in (dy, ref):
        b = lib.SimpleRNNBuilder(1, 6, 6, lib.ParameterCollection())
        W, U, bias = b.get_parameters()[0]
        W.set_value(np.eye(6))
        U.set_value(np.zeros((6, 6)))
        bias.set_value(np.zeros(6))
        b.set_dropouts(0.5, 0.0)
        lib.renew_cg()
        s = b.initial_state()
        x = lib.inputVector([1.0] * 6)
        outs = []
        for _ in range(3):
            s = s.add_input(x)
            outs.append(s.output().npvalue())
        assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[1], outs[2])
        assert set(np.round(outs[0], 5)) <= {0.0, round(np.tanh(2.0), 5)}
