"""Builders through dy.save / dy.load (DyNet 2.1's protocol: spec, from_spec, param_collection):
every builder round-trips into a fresh collection and computes the same outputs; the subcollection
names and parameter order are DyNet's (the reference comparison is in
tests/oracle/test_builder_io_oracle.py, which reuses the table below)."""
import numpy as np
import pytest

import dynet as dy
from dynet import io as dyio

IN, HID, T = 3, 4, 3
CLUSTERS = "a w0\na w1\nb w2\na w3\nb w4\nc w5\n"     # cluster "c" is a singleton
WORDS = {"w0": 0, "w1": 1, "w2": 2, "w3": 3, "w4": 4, "w5": 5}

# the reference wheel's name for each of our classes where they differ (see DESIGN.md)
REF_NAMES = {"LSTMBuilder": "CoupledLSTMBuilder"}


def cls(dyn, name):
    return getattr(dyn, name if dyn is dy else REF_NAMES.get(name, name))


def rnn(name, layers=2, **kw):
    return lambda dyn, m, files: cls(dyn, name)(layers, IN, HID, m, **kw)


def birnn(factory, layers=2):
    return lambda dyn, m, files: dyn.BiRNNBuilder(layers, IN, 2 * HID, m, cls(dyn, factory))


def standard(bias=True):
    return lambda dyn, m, files: dyn.StandardSoftmaxBuilder(IN, 5, m, bias)


def factored(bias=True):
    return lambda dyn, m, files: dyn.ClassFactoredSoftmaxBuilder(IN, files["clusters"], dict(WORDS),
                                                                 m, bias)


# name: (constructor (module, model, files) -> builder, kind, the subcollection's name and the
# shapes of its parameters in creation order, as the reference DyNet creates them)
V16 = [(16, 3), (16, 4), (16,), (16, 4), (16, 4), (16,)]
COUPLED = [(4, 3), (4, 4), (4, 4), (4,), (4, 3), (4, 4), (4, 4), (4,), (4, 3), (4, 4), (4,)]
CASES = {
    "SimpleRNNBuilder": (rnn("SimpleRNNBuilder"), "rnn", "simple-rnn-builder",
                         [(4, 3), (4, 4), (4,), (4, 4), (4, 4), (4,)]),
    "GRUBuilder": (rnn("GRUBuilder"), "rnn", "gru-builder",
                   [(4, 3), (4, 4), (4,)] * 3 + [(4, 4), (4, 4), (4,)] * 3),
    "LSTMBuilder": (rnn("LSTMBuilder"), "rnn", "lstm-builder",
                    COUPLED + [(4, 4) if s == (4, 3) else s for s in COUPLED]),
    "CoupledLSTMBuilder": (rnn("CoupledLSTMBuilder", 1), "rnn", "lstm-builder", COUPLED),
    "VanillaLSTMBuilder": (rnn("VanillaLSTMBuilder"), "rnn", "vanilla-lstm-builder", V16),
    "VanillaLSTMBuilder-forget-bias": (rnn("VanillaLSTMBuilder", forget_bias=0.25), "rnn",
                                       "vanilla-lstm-builder", V16),
    "VanillaLSTMBuilder-ln": (rnn("VanillaLSTMBuilder", ln_lstm=True), "rnn", "vanilla-lstm-builder", V16),
    "CompactVanillaLSTMBuilder": (rnn("CompactVanillaLSTMBuilder"), "rnn",
                                  "compact-vanilla-lstm-builder", V16),
    "FastLSTMBuilder": (rnn("FastLSTMBuilder", 1), "rnn", "fast-lstm-builder",
                        [(4, 1) if s == (4, 4) and i in (2, 6) else s for i, s in enumerate(COUPLED)]),
    "SparseLSTMBuilder": (rnn("SparseLSTMBuilder", 1), "rnn", "vanilla-lstm-builder",
                          [(16, 3), (16, 4), (16, 3), (16, 4), (16,)]),
    "BiRNNBuilder-vanilla": (birnn("VanillaLSTMBuilder"), "birnn", "birnn",
                             [(16, 3), (16, 4), (16,)] * 2 + [(16, 8), (16, 4), (16,)] * 2),
    # our LSTMBuilder is the wheel's CoupledLSTMBuilder, also as a class inside the spec
    "BiRNNBuilder-lstm": (birnn("LSTMBuilder", 1), "birnn", "birnn", COUPLED * 2),
    "BiRNNBuilder-gru": (birnn("GRUBuilder", 1), "birnn", "birnn",
                         [(4, 3), (4, 4), (4,)] * 6),
    "StandardSoftmaxBuilder": (standard(), "softmax", "standard-softmax-builder", [(5, 3), (5,)]),
    "StandardSoftmaxBuilder-nobias": (standard(False), "softmax", "standard-softmax-builder", [(5, 3)]),
    "ClassFactoredSoftmaxBuilder": (factored(), "factored", "class-factored-softmax-builder",
                                    [(3, 3), (3,), (3, 3), (3,), (2, 3), (2,)]),
    "ClassFactoredSoftmaxBuilder-nobias": (factored(False), "factored",
                                           "class-factored-softmax-builder", [(3, 3), (3, 3), (2, 3)]),
}


@pytest.fixture
def files(tmp_path):
    f = tmp_path / "clusters.txt"
    f.write_text(CLUSTERS)
    return {"clusters": str(f)}


def randomize(name, builder, seed=0):
    """Distinct values in every parameter of the builder (sparsity masks 0/1; FastLSTM's peepholes
    zero, since the reference leaves them out of its equations)."""
    rng = np.random.default_rng(seed)
    ps = builder.param_collection().parameters_list()
    for k, p in enumerate(ps):
        shape = tuple(p.shape())
        if name == "SparseLSTMBuilder" and k in (2, 3):
            v = (rng.random(shape) > 0.3).astype(np.float64)
        elif name == "FastLSTMBuilder" and shape == (HID, 1):
            v = np.zeros(shape)
        else:
            v = rng.uniform(-0.8, 0.8, shape)
        p.set_value(v)


def outputs(dyn, kind, builder, seed=1):
    """What the builder computes on fixed inputs, as numpy arrays (works with either module)."""
    rng = np.random.default_rng(seed)
    dyn.renew_cg()
    if kind in ("rnn", "birnn"):
        xs = [dyn.inputTensor(rng.uniform(-1, 1, IN)) for _ in range(T)]
        if kind == "rnn":
            outs = builder.initial_state().transduce(xs)
        else:
            outs = builder.transduce(xs)
        return [o.npvalue() for o in outs]
    x = dyn.inputTensor(rng.uniform(-1, 1, IN))
    if kind == "softmax":
        return [builder.full_log_distribution(x).npvalue()] + \
            [np.float32(builder.neg_log_softmax(x, c).scalar_value()) for c in range(5)]
    return [builder.class_log_distribution(x).npvalue()] + \
        [np.float32(builder.neg_log_softmax(x, w).scalar_value()) for w in range(6)]


def make(name, dyn, m, files, seed=0):
    ctor, kind, _, _ = CASES[name]
    b = ctor(dyn, m, files)
    randomize(name, b, seed)
    return b, kind


@pytest.mark.parametrize("name", list(CASES))
def test_names_and_order(name, files):
    ctor, _, sub, shapes = CASES[name]
    m = dy.ParameterCollection()
    m.add_parameters((2,))
    for suffix in ("", "_1"):
        b = ctor(dy, m, files)
        pc = b.param_collection()
        assert pc.name() == f"/{sub}{suffix}/"
        ps = pc.parameters_list()
        assert [tuple(p.shape()) for p in ps] == shapes
        if not name.startswith("BiRNN"):
            assert [p.name() for p in ps] == [f"/{sub}{suffix}/_{i}" for i in range(len(ps))]
        assert pc.lookup_parameters_list() == []


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip(name, files, tmp_path):
    m = dy.ParameterCollection()
    m.add_parameters((2, 2))
    CASES[name][0](dy, m, files)            # another one first: the saved one has a "_1" name
    b, kind = make(name, dy, m, files)
    want = outputs(dy, kind, b)
    base = str(tmp_path / "model")
    dy.save(base, [b])
    m2 = dy.ParameterCollection()
    (b2,) = dy.load(base, m2)
    assert type(b2) is type(b)
    assert b2.spec == b.spec
    assert b2.param_collection().name() == "/" + CASES[name][2] + "/"
    for p, q in zip(b.param_collection().parameters_list(), b2.param_collection().parameters_list()):
        np.testing.assert_array_equal(q.as_array(), p.as_array())
    got = outputs(dy, kind, b2)
    assert len(got) == len(want)
    for a, w in zip(got, want):
        np.testing.assert_array_equal(a, w)


def test_several_objects_in_one_file(files, tmp_path):
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((7, IN))
    lstm, _ = make("VanillaLSTMBuilder", dy, m, files, seed=3)
    gru, _ = make("GRUBuilder", dy, m, files, seed=4)
    sm, _ = make("StandardSoftmaxBuilder", dy, m, files, seed=5)
    base = str(tmp_path / "model")
    dy.save(base, [E, lstm, gru, sm])
    m2 = dy.ParameterCollection()
    m2.add_subcollection("gru-builder")      # loaded objects may get other names: order decides
    gen = dy.load_generator(base, m2)
    E2, lstm2, gru2, sm2 = list(gen)
    np.testing.assert_array_equal(E2.as_array(), E.as_array())
    assert gru2.param_collection().name() == "/gru-builder_1/"
    for old, new, kind in ((lstm, lstm2, "rnn"), (gru, gru2, "rnn"), (sm, sm2, "softmax")):
        for a, w in zip(outputs(dy, kind, new), outputs(dy, kind, old)):
            np.testing.assert_array_equal(a, w)


def test_layer_norm_parameters_live_in_the_parent_collection(files, tmp_path):
    """As in DyNet, the layer-norm gains and biases are created in the collection given to the
    constructor: dy.save of the builder writes only W_x, W_h, b per layer, and loading recreates
    the gains and biases at 1 and 0."""
    m = dy.ParameterCollection()
    b = dy.VanillaLSTMBuilder(2, IN, HID, m, ln_lstm=True)
    assert [p.name() for p in m.parameters_list()] == \
        [f"/vanilla-lstm-builder/_{i}" for i in range(3)] + [f"/_{i}" for i in range(6)] + \
        [f"/vanilla-lstm-builder/_{i}" for i in range(3, 6)] + [f"/_{i}" for i in range(6, 12)]
    base = str(tmp_path / "ln")
    dy.save(base, [b])
    assert open(base + ".data").read().count("#Parameter#") == 6
    m2 = dy.ParameterCollection()
    dy.load(base, m2)
    loaded = [p.as_array() for p in m2.parameters_list() if not p.name().startswith("/vanilla")]
    assert len(loaded) == 12
    assert all(np.all(v == (1 if i % 2 == 0 else 0)) for i, v in enumerate(loaded))


def test_sparse_masks_are_saved(files, tmp_path):
    m = dy.ParameterCollection()
    b = dy.SparseLSTMBuilder(1, IN, HID, m)
    randomize("SparseLSTMBuilder", b)
    b.set_sparsity(0.5)
    Wx, Wh, bias, Mx, Mh = b.get_parameters()[0]
    assert [p.name() for p in (Wx, Wh, Mx, Mh, bias)] == [f"/vanilla-lstm-builder/_{i}" for i in range(5)]
    base = str(tmp_path / "sparse")
    dy.save(base, [b])
    (b2,) = dy.load(base, dy.ParameterCollection())
    for p, q in zip(b.get_parameters()[0], b2.get_parameters()[0]):
        np.testing.assert_array_equal(q.as_array(), p.as_array())
    assert b2.get_parameters()[0][3].as_array().sum() == Mx.as_array().sum() < Mx.as_array().size
    for a, w in zip(outputs(dy, "rnn", b2), outputs(dy, "rnn", b)):
        np.testing.assert_array_equal(a, w)


def test_specs():
    m = dy.ParameterCollection()
    assert dy.SimpleRNNBuilder(2, 3, 4, m).spec == (2, 3, 4)
    assert dy.VanillaLSTMBuilder(1, 3, 4, m, True, 0.5).spec == (1, 3, 4, True, 0.5)
    assert dy.SparseLSTMBuilder(1, 3, 4, m).spec == (1, 3, 4, False, 1.0)
    assert dy.CompactVanillaLSTMBuilder(1, 3, 4, m).spec == (1, 3, 4)
    assert dy.BiRNNBuilder(1, 3, 4, m, dy.GRUBuilder).spec == (1, 3, 4, dy.GRUBuilder, None)
    assert dy.StandardSoftmaxBuilder(3, 5, m, False).spec == (3, 5, False)
    b = dy.GRUBuilder.from_spec((1, 3, 4), m)
    assert isinstance(b, dy.GRUBuilder) and b.param_collection().name() == "/gru-builder/"


def test_birnn_from_builder_layers_cannot_be_saved(tmp_path):
    m = dy.ParameterCollection()
    layers = [(dy.GRUBuilder(1, IN, 2, m), dy.GRUBuilder(1, IN, 2, m))]
    bi = dy.BiRNNBuilder(1, IN, 4, m, None, layers)
    base = str(tmp_path / "bi")
    with pytest.raises(TypeError, match="cannot save the BiRNNBuilder.*not a GRUBuilder object"):
        dy.save(base, [bi])
    import os
    assert not os.path.exists(base + ".data") and not os.path.exists(base + ".meta")


def test_bad_specs_name_the_file(tmp_path):
    m = dy.ParameterCollection()
    base = str(tmp_path / "m")
    dy.save(base, [dy.GRUBuilder(1, IN, HID, m)])
    meta = open(base + ".meta", "rb").read()
    for bad, msg in ((meta.replace(b"K\x01", b"K\x05", 1), "populate|file has"),
                     (meta.replace(b"K\x04", b"J\xff\xff\xff\xff", 1), "hidden_dim must be a positive"),
                     (meta.replace(b"gru-builder", b"xyz-builder", 1), "no parameters under")):
        assert bad != meta
        open(base + ".meta", "wb").write(bad)
        with pytest.raises(dyio.ModelFileError, match=msg) as e:
            dy.load(base, dy.ParameterCollection())
        assert "m.meta" in str(e.value) or "m.data" in str(e.value)
    with pytest.raises(ValueError, match="GRUBuilder.from_spec: expected a tuple"):
        dy.GRUBuilder.from_spec((1, 2), m)
    with pytest.raises(ValueError, match="factory must be a builder class"):
        dy.BiRNNBuilder.from_spec((1, 3, 4, dict, None), m)
