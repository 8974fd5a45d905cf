"""Saving and loading (dynet/io.py): the text format, keys, dy.save/dy.load, the 2.0 Model API,
atomic saves, and clean errors on bad files (with a fuzzer)."""
import os
import pickle

import numpy as np
import pytest

import dynet as dy
from dynet import io as dyio
from tests.saveables import OneLayerMLP


class Affine:
    """A user object following DyNet's save protocol: param_collection(), spec, from_spec."""

    def __init__(self, model, din, dout):
        self.spec = (din, dout)
        self.pc = model.add_subcollection("affine")
        self.W = self.pc.add_parameters((dout, din))
        self.b = self.pc.add_parameters(dout)

    def param_collection(self):
        return self.pc

    @staticmethod
    def from_spec(spec, model):
        return Affine(model, *spec)


def make_model():
    pc = dy.ParameterCollection()
    W = pc.add_parameters((3, 4))
    b = pc.add_parameters(3, name="bias")
    E = pc.add_lookup_parameters((5, 2))
    sub = pc.add_subcollection("enc")
    q = sub.add_parameters((2, 2, 2), name="q")
    F = sub.add_lookup_parameters((4, 3, 2))
    return pc, [W, b, q], [E, F]


def same_shapes_model():
    return make_model()


def arrays(pc):
    return [p.as_array().copy() for p in pc.parameters_list()] + \
        [p.as_array().copy() for p in pc.lookup_parameters_list()]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def backward_through(W, E):
    dy.renew_cg()
    x = dy.inputTensor(np.arange(1.0, W.shape()[1] + 1))
    loss = dy.sum_elems(dy.parameter(W) * x) + dy.sum_elems(dy.lookup(E, 2))
    loss.forward()
    loss.backward()


# ---- format and round trips --------------------------------------------------------------------

def test_exact_text(tmp_path):
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3))
    W.set_value(np.array([[1e-8, 1.5, -3], [1e20, 123456789, 0.1]]))
    E = pc.add_lookup_parameters((3, 2), name="emb")
    E.init_from_array(np.array([[0, -0.0], [1, 2], [2.0 ** -14, -1]]))
    f = tmp_path / "m.data"
    pc.save(str(f))
    assert f.read_text() == (
        "#Parameter# /_0 {2,3} 97 ZERO_GRAD\n"
        "+9.99999994e-09 +1.00000002e+20 +1.50000000e+00 +1.23456792e+08 -3.00000000e+00 "
        "+1.00000001e-01 \n"
        "#LookupParameter# /emb {2,3} 97 ZERO_GRAD\n"
        "+0.00000000e+00 -0.00000000e+00 +1.00000000e+00 +2.00000000e+00 +6.10351562e-05 "
        "-1.00000000e+00 \n")


def test_float_formatting_matches_printf():
    from dynet.kernels import textio
    rng = np.random.default_rng(0)
    vals = np.concatenate([
        rng.standard_normal(20000).astype(np.float32),
        (rng.standard_normal(20000) * 10.0 ** rng.integers(-45, 39, 20000)).astype(np.float32),
        rng.integers(0, 2 ** 32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.float32([k * 2.0 ** -j for j in range(1, 40) for k in range(1, 200, 2)]),  # decimal ties
        np.float32([0, 1, 0.1, 1e8, 1e9, 99999999.5, 3.4028235e38, 1e-45, np.inf, -np.inf])])
    vals = vals[~np.isnan(vals)]      # glibc writes "-nan" for negative NaNs, Python "+nan"
    ours = textio.format_floats(vals).decode()
    # exact doubles of the floats, made without the FPU (a loaded reference DyNet sets
    # flush-to-zero, and then converting a denormal float gives 0)
    bits = vals.view(np.uint32).astype(np.int64)
    mant = np.where(bits >> 23 & 0xFF, (bits & 0x7FFFFF) | 0x800000, bits & 0x7FFFFF)
    exact = [(-1) ** int(b >> 31) * float(m) * 2.0 ** (max(int(b >> 23 & 0xFF), 1) - 150)
             if (b >> 23 & 0xFF) != 0xFF else float(v) for b, m, v in zip(bits, mant, vals)]
    assert ours == "".join("%+.8e " % x for x in exact)
    rd = textio.TextReader(__import__("io").BytesIO(ours.encode() + b"\n"))
    back = np.empty_like(vals)
    assert rd.read_floats(back, 0, len(vals)) == (len(vals), textio.OK)
    np.testing.assert_array_equal(back.view(np.uint32), vals.view(np.uint32))


def test_parse_other_spellings(tmp_path):
    f = tmp_path / "m.data"
    f.write_text("#Parameter# /_0 {2,3} 97 ZERO_GRAD\n1 -2.5 3e2\t0.125 nan -inf\r\n")
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3))
    pc.populate(str(f))
    v = W.as_array().ravel(order="F")
    np.testing.assert_array_equal(v[:4], [1, -2.5, 300, 0.125])
    assert np.isnan(v[4]) and v[5] == -np.inf


def test_round_trip_bit_exact(tmp_path):
    pc, ps, ls = make_model()
    ps[0].set_value(np.array([[np.nan, np.inf, -np.inf, -0.0], [1e-45, 3.4e38, 1e-30, 7],
                              [2.0 ** -14, 0.1, 1 / 3, -1e-38]], dtype=np.float32))
    f = str(tmp_path / "m.data")
    pc.save(f)
    pc2, _, _ = make_model()
    pc2.populate(f)
    for a, b in zip(arrays(pc), arrays(pc2)):
        np.testing.assert_array_equal(a.astype(np.float32).view(np.uint32),
                                      b.astype(np.float32).view(np.uint32))


def test_gradients_saved_and_restored(tmp_path):
    pc, (W, b, q), (E, F) = make_model()
    backward_through(W, E)
    f = str(tmp_path / "m.data")
    pc.save(f)
    text = open(f).read().splitlines()
    assert text[0] == "#Parameter# /_0 {3,4} 386 FULL_GRAD"     # 2 * (12 * 16 + 1)
    assert text[3].endswith("ZERO_GRAD")                         # /bias got no gradient
    lookup_header = [t for t in text if t.startswith("#LookupParameter# /_1")][0]
    assert lookup_header.endswith("FULL_GRAD")
    pc2, (W2, b2, q2), (E2, F2) = make_model()
    pc2.populate(f)
    np.testing.assert_array_equal(W2.grad_as_array(), W.grad_as_array())
    np.testing.assert_array_equal(E2.grad_as_array(), E.grad_as_array())
    assert list(E2.touched_rows()) == [2]
    pc2.save(f + "2")
    assert open(f).read() == open(f + "2").read()
    # a ZERO_GRAD entry clears gradients
    pc3, (W3, _, _), _ = make_model()
    pc3.save(f)
    pc2.populate(f)
    assert not W2.grad_as_array().any() and not E2.grad_as_array().any()


def test_keys_and_single_parameters(tmp_path):
    pc, (W, b, q), (E, F) = make_model()
    sub = [c for c in pc._children][0]
    f = str(tmp_path / "m.data")
    sub.save(f, "/foo")
    names = [l.split()[1] for l in open(f) if l.startswith("#")]
    assert names == ["/foo/q", "/foo/_0"]     # the subcollection's prefix replaced by the key
    other = dy.ParameterCollection()
    osub = other.add_subcollection("x")
    oq = osub.add_parameters((2, 2, 2))
    oF = osub.add_lookup_parameters((4, 3, 2))
    osub.populate(f, "/foo")
    np.testing.assert_array_equal(oq.as_array(), q.as_array())
    np.testing.assert_array_equal(oF.as_array(), F.as_array())

    g = str(tmp_path / "p.data")
    W.save(g)
    W.save(g, "/copy", append=True)
    E.save(g, append=True)
    heads = [l.split()[:2] for l in open(g) if l.startswith("#")]
    assert heads == [["#Parameter#", "/_0"], ["#Parameter#", "/copy"], ["#LookupParameter#", "/_1"]]
    pc2, (W2, _, _), (E2, _) = make_model()
    W2.populate(g, "/copy")
    E2.populate(g)                  # default key: its own name
    np.testing.assert_array_equal(W2.as_array(), W.as_array())
    np.testing.assert_array_equal(E2.as_array(), E.as_array())
    with pytest.raises(ValueError, match="key"):
        W.save(g, "a b")
    with pytest.raises(ValueError, match="start with '/'"):
        pc.save(g, "foo")


def test_load_param_adds_named_parameters(tmp_path):
    pc, (W, b, q), (E, F) = make_model()
    f = str(tmp_path / "m.data")
    pc.save(f)
    fresh = dy.ParameterCollection()
    p = fresh.load_param(f, "/enc/q")
    lp = fresh.load_lookup_param(f, "/enc/_0")
    assert p.name() == "/enc/q" and lp.name() == "/enc/_0"
    assert lp.shape() == F.shape()
    np.testing.assert_array_equal(p.as_array(), q.as_array())
    np.testing.assert_array_equal(lp.as_array(), F.as_array())
    assert fresh.parameters_list() == [p] and fresh.lookup_parameters_list() == [lp]
    with pytest.raises(dyio.ModelFileError, match="no #Parameter# named '/nope'"):
        fresh.load_param(f, "/nope")


def test_weight_decay_scale_hook(tmp_path):
    """Under weight decay the collection keeps a lazy factor (DyNet's way): files hold the real
    (scaled) values, and loading divides the factor out again."""
    pc = dy.ParameterCollection()
    pc.add_parameters(2, init=dy.ConstInitializer(3))
    pc._wd.scale = 0.5
    assert pc.current_weight_decay == 0.5
    f = str(tmp_path / "m.data")
    pc.save(f)
    assert open(f).read().splitlines()[1] == "+1.50000000e+00 +1.50000000e+00 "
    pc2 = dy.ParameterCollection()
    W2 = pc2.add_parameters(2)
    pc2._wd.scale = 0.25
    pc2.populate(f)
    np.testing.assert_array_equal(W2.as_array(), [6, 6])


# ---- dy.save / dy.load ---------------------------------------------------------------------------

def test_dy_save_load_objects(tmp_path):
    pc, (W, b, q), (E, F) = make_model()
    aff = Affine(pc, 4, 3)
    sub = [c for c in pc._children if c.name() == "/enc/"][0]
    base = str(tmp_path / "model")
    dy.save(base, [E, aff, W, sub])
    assert os.path.exists(base + ".data") and os.path.exists(base + ".meta")
    m2 = dy.ParameterCollection()
    m2.add_subcollection("affine")          # the loaded Affine gets another collection name
    gen = dy.load_generator(base, m2)
    assert not isinstance(gen, list)
    E2, aff2, W2, sub2 = list(gen)
    np.testing.assert_array_equal(E2.as_array(), E.as_array())
    np.testing.assert_array_equal(W2.as_array(), W.as_array())
    assert isinstance(aff2, Affine) and aff2.spec == (4, 3)
    np.testing.assert_array_equal(aff2.W.as_array(), aff.W.as_array())
    np.testing.assert_array_equal(aff2.b.as_array(), aff.b.as_array())
    assert isinstance(sub2, dy.ParameterCollection)
    np.testing.assert_array_equal(sub2.parameters_list()[0].as_array(), q.as_array())
    np.testing.assert_array_equal(sub2.lookup_parameters_list()[0].as_array(), F.as_array())
    assert dy.load(base, dy.ParameterCollection())[0].shape() == E.shape()


def test_dy_save_rejects_unsaveable(tmp_path):
    with pytest.raises(TypeError, match="cannot save an object of type int"):
        dy.save(str(tmp_path / "m"), [3])
    assert not os.path.exists(tmp_path / "m.data")


class Evil2:
    def __reduce__(self):
        return (dict, ((("a", 1),),))


def test_meta_never_runs_code(tmp_path):
    pc, (W, _, _), _ = make_model()
    base = str(tmp_path / "m")
    dy.save(base, [W])

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    with open(base + ".meta", "wb") as fh:
        pickle.dump(Evil(), fh)
    with pytest.raises(dyio.ModelFileError, match="system is not a class, or a function outside"):
        dy.load(base, dy.ParameterCollection())
    with open(base + ".meta", "wb") as fh:
        pickle.dump(("Parameters", "/_0", Evil2()), fh)
    with pytest.raises(dyio.ModelFileError, match="would run code.*REDUCE"):
        dy.load(base, dy.ParameterCollection())
    assert not os.path.exists(tmp_path / "pwned")
    with open(base + ".meta", "wb") as fh:
        fh.write(b"cnot_imported_module_xyz\nThing\n(S'a'\ntp0\n.")
    with pytest.raises(dyio.ModelFileError, match="not imported"):
        dy.load(base, dy.ParameterCollection())
    import sys
    assert "not_imported_module_xyz" not in sys.modules


def halved_tanh(x):
    return dy.tanh(x) * 0.5


def test_a_spec_may_name_functions(tmp_path):
    pc = dy.ParameterCollection()
    nets = [OneLayerMLP(pc, 3, 2, dy.rectify), OneLayerMLP(pc, 3, 2, halved_tanh),
            OneLayerMLP(pc, 3, 2, dy.tanh)]
    base = str(tmp_path / "mlps")
    dy.save(base, nets)
    with open(base + ".meta", "rb") as fh:
        meta = fh.read()
    assert b"_dynet" in meta and b"rectify" in meta      # named as the reference names it
    loaded = dy.load(base, dy.ParameterCollection())
    assert [n.act for n in loaded] == [dy.rectify, halved_tanh, dy.tanh]
    x = dy.inputVector([0.5, -1.0, 2.0])
    for a, b in zip(nets, loaded):
        np.testing.assert_allclose(b(x).npvalue(), a(x).npvalue(), rtol=1e-6)


def test_a_spec_may_not_name_the_standard_librarys_functions(tmp_path):
    import subprocess  # noqa: F401  (imported: its functions are found, and refused)
    pc = dy.ParameterCollection()
    base = str(tmp_path / "m")
    for f in (os.system, eval, lambda x: x):
        with pytest.raises(TypeError, match="cannot save the OneLayerMLP: its spec"):
            dy.save(base, [OneLayerMLP(pc, 3, 2, f)])
    assert not os.path.exists(base + ".meta")
    dy.save(base, [OneLayerMLP(pc, 3, 2, dy.tanh)])
    meta = open(base + ".meta", "rb").read()
    for name in (b"os\nsystem", b"builtins\neval", b"subprocess\ncall"):
        with open(base + ".meta", "wb") as fh:
            fh.write(meta.replace(b"_dynet\ntanh", name))
        with pytest.raises(dyio.ModelFileError, match="not a class, or a function outside"):
            dy.load(base, dy.ParameterCollection())


def test_empty_parameters_are_kept_saved_and_loaded_but_not_computed_with(tmp_path):
    # parsers (bist-parser, uuparser) make the layers an option sets to 0, and never use them
    pc = dy.ParameterCollection()
    W, b, V = pc.add_parameters((0, 4)), pc.add_parameters(0, init="he"), pc.add_parameters((2, 3))
    L, L0 = pc.add_lookup_parameters((3, 0)), pc.add_lookup_parameters((0, 5), init="glorot")
    assert [W.shape(), b.shape(), L.shape(), L0.shape()] == [(0, 4), (0,), (3, 0), (0, 5)]
    assert W.as_array().shape == (0, 4) and L.as_array().shape == (3, 0)
    for use, op in ((lambda: W * dy.inputVector([1, 2, 3, 4]), "parameter"), (lambda: dy.parameter(b), "parameter"),
                    (lambda: L[1], "lookup"), (lambda: dy.lookup_batch(L, [0, 2]), "lookup_batch"),
                    (lambda: dy.parameter(L), "parameter")):
        with pytest.raises(ValueError, match=op + r": /_\d is empty .*cannot be used in a computation"):
            use()
    trainer = dy.AdamTrainer(pc)
    dy.renew_cg()
    dy.sum_elems(dy.parameter(V) * dy.inputVector([1, 2, 3])).backward()
    trainer.update()                                     # the empty ones are updated: nothing to do
    f = str(tmp_path / "m")
    pc.save(f)
    assert "#Parameter# /_0 {0,4} 1 ZERO_GRAD\n\n" in open(f).read()
    pc2 = dy.ParameterCollection()
    shapes = [(0, 4), 0, (2, 3)]
    W2, b2, V2 = [pc2.add_parameters(s) for s in shapes]
    pc2.add_lookup_parameters((3, 0))
    pc2.add_lookup_parameters((0, 5))
    pc2.populate(f)
    np.testing.assert_array_equal(V2.as_array(), V.as_array())
    assert W2.as_array().shape == (0, 4)
    dy.save(str(tmp_path / "s"), [W, L])
    [W3, L3] = dy.load(str(tmp_path / "s"), dy.ParameterCollection())
    assert W3.shape() == (0, 4) and L3.shape() == (3, 0)


# ---- the DyNet 2.0 API --------------------------------------------------------------------------

def test_model_save_components_and_load(tmp_path):
    pc, (W, b, q), (E, F) = make_model()
    aff = Affine(pc, 4, 3)
    f = str(tmp_path / "model.txt")
    pc.save(f, [W, E, aff])
    m2 = dy.Model()
    W2, E2, aff2 = m2.load(f)
    np.testing.assert_array_equal(W2.as_array(), W.as_array())
    np.testing.assert_array_equal(E2.as_array(), E.as_array())
    np.testing.assert_array_equal(aff2.W.as_array(), aff.W.as_array())


def test_model_save_all_load_all_from_file(tmp_path):
    pc, ps, ls = make_model()
    f = str(tmp_path / "all.txt")
    pc.save_all(f)
    pc2, _, _ = make_model()
    pc2.load_all(f)
    assert_same(arrays(pc), arrays(pc2))
    pc3, _, _ = make_model()
    got = pc3.load(f)                      # no component list: the whole model
    assert len(got) == 5
    assert_same(arrays(pc), arrays(pc3))
    m = dy.Model.from_file(f)
    assert [p.name() for p in m.parameters_list()] == [p.name() for p in pc.parameters_list()]
    assert_same(arrays(pc), arrays(m))


def test_from_file_initializer(tmp_path):
    plain = tmp_path / "vals.txt"
    plain.write_text("1 2 3\n4 5\n6")
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=dy.FromFileInitializer(str(plain)))
    np.testing.assert_array_equal(W.as_array(), [[1, 3, 5], [2, 4, 6]])   # column-major
    E = pc.add_lookup_parameters((3, 2), init=dy.FromFileInitializer(str(plain)))
    np.testing.assert_array_equal(E.as_array(), [[1, 2], [3, 4], [5, 6]])
    f = str(tmp_path / "m.data")
    W.save(f)
    W2 = pc.add_parameters((2, 3), init=dy.FromFileInitializer(f))
    np.testing.assert_array_equal(W2.as_array(), W.as_array())
    (tmp_path / "short.txt").write_text("1 2 3")
    with pytest.raises(dyio.ModelFileError, match="needs 4"):
        pc.add_parameters((2, 2), init=dy.FromFileInitializer(str(tmp_path / "short.txt")))
    with pytest.raises(dyio.ModelFileError, match="dimension"):
        pc.add_parameters((3, 2), init=dy.FromFileInitializer(f))


# ---- atomic saves -------------------------------------------------------------------------------

def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    pc, (W, b, q), _ = make_model()
    f = tmp_path / "m.data"
    pc.save(str(f))
    before = f.read_bytes()
    W.set_value(np.zeros((3, 4)))
    real = dyio.textformat.write_entry
    calls = []

    def failing(fh, p, key):
        calls.append(p)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        real(fh, p, key)
    monkeypatch.setattr(dyio.textformat, "write_entry", failing)
    with pytest.raises(OSError, match="simulated"):
        pc.save(str(f))
    calls.clear()
    with pytest.raises(OSError, match="simulated"):
        pc.save(str(f), append=True)
    calls.clear()
    with pytest.raises(OSError, match="simulated"):
        dy.save(str(tmp_path / "m"), [W, b, q])
    assert f.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.data"]       # no temporary files left behind


def test_save_keeps_permissions(tmp_path):
    pc, _, _ = make_model()
    f = tmp_path / "m.data"
    pc.save(str(f))
    os.chmod(f, 0o640)
    pc.save(str(f))
    assert os.stat(f).st_mode & 0o777 == 0o640


# ---- bad input ----------------------------------------------------------------------------------

def saved_text(tmp_path, grads=False):
    pc, (W, b, q), (E, F) = make_model()
    if grads:
        backward_through(W, E)
    f = tmp_path / "good.data"
    pc.save(str(f))
    return f.read_bytes()


def populate_expect_error(tmp_path, data, match):
    f = tmp_path / "bad.data"
    f.write_bytes(data)
    pc, _, _ = make_model()
    before = arrays(pc)
    with pytest.raises(dyio.ModelFileError, match=match) as info:
        pc.populate(str(f))
    assert "bad.data" in str(info.value)
    assert_same(before, arrays(pc))      # nothing changed
    return info.value


def test_missing_file(tmp_path):
    pc, (W, _, _), _ = make_model()
    missing = str(tmp_path / "nope.data")
    with pytest.raises(FileNotFoundError, match="nope.data"):
        pc.populate(missing)
    with pytest.raises(FileNotFoundError, match="nope.data"):
        W.populate(missing)
    with pytest.raises(FileNotFoundError, match="nope.meta"):
        dy.load(str(tmp_path / "nope"), pc)


def test_truncated_file(tmp_path):
    good = saved_text(tmp_path, grads=True)
    lines = good.split(b"\n")
    # cut inside a number, at the end of a values line (no newline), and a missing gradient line
    err = populate_expect_error(tmp_path, good[:60], "truncated")
    assert err.line == 2 and err.parameter == "/_0"
    err = populate_expect_error(tmp_path, b"\n".join(lines[:2]), "truncated")
    assert err.line == 2
    err = populate_expect_error(tmp_path, b"\n".join(lines[:2]) + b"\n", "truncated")
    assert err.line == 3 and "gradients" in str(err)
    populate_expect_error(tmp_path, b"\n".join(lines[:3]) + b"\n", "the file has 1 parameters")
    populate_expect_error(tmp_path, good[:len(good) // 2].rsplit(b"\n", 1)[0], "truncated")


def test_wrong_dimension(tmp_path):
    good = saved_text(tmp_path)
    bad = good.replace(b"#Parameter# /bias {3}", b"#Parameter# /bias {4}")
    err = populate_expect_error(tmp_path, bad, r"dimension \{4\} but the parameter /bias")
    assert err.line == 3 and err.parameter == "/bias"
    pc, (W, b, q), _ = make_model()
    f = tmp_path / "bad.data"
    with pytest.raises(dyio.ModelFileError, match="dimension"):
        b.populate(str(f))


def test_unknown_key(tmp_path):
    good = saved_text(tmp_path)
    f = tmp_path / "good.data"
    pc, (W, b, q), _ = make_model()
    before = arrays(pc)
    with pytest.raises(dyio.ModelFileError, match="no #Parameter# named '/zzz'"):
        W.populate(str(f), "/zzz")
    with pytest.raises(dyio.ModelFileError, match="no parameters under the key '/zzz/'"):
        pc.populate(str(f), "/zzz")
    assert_same(before, arrays(pc))
    assert good


def test_garbage_and_binary(tmp_path):
    populate_expect_error(tmp_path, b"hello world\n", "expected a '#Parameter#'")
    populate_expect_error(tmp_path, bytes(range(256)) * 50, "binary data|header")
    populate_expect_error(tmp_path, b"\x00" * 100000, "binary data|header")
    populate_expect_error(tmp_path, b"#Parameter# /_0 {3,4 194 ZERO_GRAD\n", "bad dimension")
    populate_expect_error(tmp_path, b"#Parameter# /_0 {3,4} 19x ZERO_GRAD\n", "byte count")
    populate_expect_error(tmp_path, b"#Parameter# /_0 {3,4} 194 SOME_GRAD\n", "ZERO_GRAD or FULL_GRAD")
    populate_expect_error(tmp_path, b"#Parameter# /_0 {99999999,99999999} 194 ZERO_GRAD\n1\n",
                          "promises")


def test_number_that_does_not_parse(tmp_path):
    good = saved_text(tmp_path)
    lines = good.split(b"\n")
    toks = lines[3].split(b" ")
    toks[1] = b"+1.2345z789e-01"
    lines[3] = b" ".join(toks)
    err = populate_expect_error(tmp_path, b"\n".join(lines), r"number 2 of 3, '\+1.2345z789e-01'")
    assert err.line == 4 and err.parameter == "/bias"
    lines = good.split(b"\n")
    lines[3] = lines[3] + b"+1.00000000e+00 "
    populate_expect_error(tmp_path, b"\n".join(lines), "more than the 3 numbers")
    lines = good.split(b"\n")
    lines[3] = lines[3][:-16]
    populate_expect_error(tmp_path, b"\n".join(lines), "2 numbers where")


def _independent_parse(data):
    """A simple strict reader of the format, to check that whatever our loader accepts it read
    right: [(kind, name, dims, values, grads)]"""
    out = []
    lines = data.split(b"\n")
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        parts = lines[i].decode("ascii").split()
        dims = tuple(int(x) for x in parts[2][1:-1].split(","))
        n = int(np.prod(dims))
        full = len(parts) == 5 and parts[4] == "FULL_GRAD"
        vals = [float(t) for t in lines[i + 1].split()]
        grads = [float(t) for t in lines[i + 2].split()] if full else None
        assert len(vals) == n
        with np.errstate(over="ignore"):        # 1e39 is inf as a float32, for strtof as well
            out.append((parts[0], parts[1], dims, np.float32(vals),
                        None if grads is None else np.float32(grads)))
        i += 3 if full else 2
    return out


def test_fuzz_corrupted_files(tmp_path):
    good = saved_text(tmp_path, grads=True)
    rng = np.random.default_rng(1234)
    f = tmp_path / "fuzz.data"
    pc, _, _ = make_model()
    before = arrays(pc)
    outcomes = {"error": 0, "loaded": 0}
    specials = b" \n#{},.+-e0123456789xZ\x00\xff"
    for trial in range(400):
        data = bytearray(good)
        for _ in range(rng.integers(1, 4)):
            if not data:
                break
            kind = rng.integers(0, 5)
            pos = int(rng.integers(0, len(data)))
            if kind == 0:
                data[pos] = int(rng.integers(0, 256))
            elif kind == 1:
                data[pos] = specials[int(rng.integers(0, len(specials)))]
            elif kind == 2:
                del data[pos:pos + int(rng.integers(1, 20))]
            elif kind == 3:
                data[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 10)), dtype=np.uint8))
            else:
                del data[pos:]
        f.write_bytes(bytes(data))
        try:
            pc.populate(str(f))
        except dyio.ModelFileError as e:
            assert "fuzz.data" in str(e)
            assert_same(before, arrays(pc))
            outcomes["error"] += 1
            continue
        # accepted: it must be a well-formed file that says exactly what was loaded
        entries = _independent_parse(bytes(data))
        got = [p.values for p in pc.parameters_list()] + [p.values for p in pc.lookup_parameters_list()]
        for (kind, name, dims, vals, grads), v in zip(entries, got):
            np.testing.assert_array_equal(v, vals)
        outcomes["loaded"] += 1
        pc, _, _ = make_model()
        before = arrays(pc)
    assert outcomes["error"] > 300


def test_fuzz_corrupted_meta(tmp_path):
    pc, (W, b, q), (E, F) = make_model()
    aff = Affine(pc, 4, 3)
    base = str(tmp_path / "m")
    dy.save(base, [W, aff, E])
    good = open(base + ".meta", "rb").read()
    rng = np.random.default_rng(7)
    for trial in range(300):
        data = bytearray(good)
        pos = int(rng.integers(0, len(data)))
        if trial % 3 == 0:
            data[pos] = int(rng.integers(0, 256))
        elif trial % 3 == 1:
            del data[pos:pos + int(rng.integers(1, 8))]
        else:
            del data[pos:]
        open(base + ".meta", "wb").write(bytes(data))
        try:
            dy.load(base, dy.ParameterCollection())
        except dyio.ModelFileError as e:
            assert "m.meta" in str(e) or "m.data" in str(e)
