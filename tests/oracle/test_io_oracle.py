"""Model files against the reference DyNet, in both directions: files it writes load here, files
written here load there, and both write the same bytes for the same values."""
import os
import subprocess
import sys

import numpy as np

import dynet as dy
from tests.oracle.refdynet import ROOT, oracle_dir
from tests.saveables import OneLayerMLP


class Affine:
    """A user object with DyNet's save protocol, written against the API both modules share."""

    def __init__(self, model, din, dout):
        self.spec = (din, dout)
        self.pc = model.add_subcollection("affine")
        self.W = self.pc.add_parameters((dout, din))
        self.b = self.pc.add_parameters(dout)
        self.E = self.pc.add_lookup_parameters((5, dout))

    def param_collection(self):
        return self.pc

    @staticmethod
    def from_spec(spec, model):
        return Affine(model, *spec)


def build(m):
    """The same structure in either module: named and unnamed parameters, lookup tables and a
    nested subcollection."""
    pc = m.ParameterCollection()
    ps = [pc.add_parameters((3, 4)), pc.add_parameters(5, name="bias")]
    ls = [pc.add_lookup_parameters((6, 3))]
    sub = pc.add_subcollection("enc")
    ps.append(sub.add_parameters((2, 3, 2), name="q"))
    ls.append(sub.add_lookup_parameters((4, 2)))
    inner = sub.add_subcollection()
    ps.append(inner.add_parameters((1,)))
    return pc, sub, ps, ls


def values(ps, ls):
    return [np.asarray(p.as_array(), dtype=np.float32) for p in ps] + \
        [np.asarray(l.as_array(), dtype=np.float32).reshape(l.shape()) for l in ls]


def assert_values_equal(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_reference_file_loads_here(ref, tmp_path):
    rpc, _, rps, rls = build(ref)
    f = str(tmp_path / "ref.data")
    rpc.save(f)
    pc, _, ps, ls = build(dy)
    assert [p.name() for p in ps] == [p.name() for p in rps]
    assert [p.name() for p in ls] == [p.name() for p in rls]
    pc.populate(f)
    assert_values_equal(values(ps, ls), values(rps, rls))
    g = str(tmp_path / "ours.data")
    pc.save(g)
    assert open(g, "rb").read() == open(f, "rb").read()


def test_our_file_loads_in_reference(ref, tmp_path):
    pc, _, ps, ls = build(dy)
    # (no inf/nan here: the reference writes them but its reader stops at them and leaves zeros)
    ps[0].set_value(np.float32([[3e38, -0.0, 1e-30, 2.0 ** -14], [1, 2, 3, 4], [0.1, 0.2, 0.3, 1e30]]))
    f = str(tmp_path / "ours.data")
    pc.save(f)
    rpc, _, rps, rls = build(ref)
    rpc.populate(f)
    assert_values_equal(values(rps, rls), values(ps, ls))
    g = str(tmp_path / "ref.data")
    rpc.save(g)
    assert open(g, "rb").read() == open(f, "rb").read()


def test_gradients_both_ways(ref, tmp_path):
    rpc, _, rps, rls = build(ref)
    ref.renew_cg()
    loss = ref.sum_elems(ref.parameter(rps[0]) * ref.inputTensor(np.arange(1.0, 5.0))) + \
        ref.sum_elems(ref.lookup(rls[0], 4))
    loss.forward()
    loss.backward()
    f = str(tmp_path / "ref.data")
    rpc.save(f)
    assert "FULL_GRAD" in open(f).read()
    pc, _, ps, ls = build(dy)
    pc.populate(f)
    np.testing.assert_array_equal(ps[0].grad_as_array(), rps[0].grad_as_array())
    np.testing.assert_array_equal(ls[0].grad_as_array(), rls[0].grad_as_array())
    g = str(tmp_path / "ours.data")
    pc.save(g)
    assert open(g, "rb").read() == open(f, "rb").read()
    rpc2, _, rps2, rls2 = build(ref)
    rpc2.populate(g)
    np.testing.assert_array_equal(rls2[0].grad_as_array(), rls[0].grad_as_array())


def test_subcollections_with_keys(ref, tmp_path):
    rpc, rsub, rps, rls = build(ref)
    f = str(tmp_path / "ref.data")
    rsub.save(f, "/foo")
    rpc.save(f, "/whole", append=True)
    pc, sub, ps, ls = build(dy)
    sub.populate(f, "/foo")
    assert_values_equal(values([ps[2], ps[3]], [ls[1]]), values([rps[2], rps[3]], [rls[1]]))
    pc2, _, ps2, ls2 = build(dy)
    pc2.populate(f, "/whole")
    assert_values_equal(values(ps2, ls2), values(rps, rls))
    # and the other way
    g = str(tmp_path / "ours.data")
    sub.save(g, "/bar/")
    pc.save(g, "/all", append=True)
    rpc2, rsub2, rps2, rls2 = build(ref)
    rsub2.populate(g, "/bar")
    rpc3, rsub3, rps3, rls3 = build(ref)
    rpc3.populate(g, "/all")
    assert_values_equal(values(rps3, rls3), values(ps, ls))
    assert_values_equal(values([rps2[2], rps2[3]], [rls2[1]]), values([ps[2], ps[3]], [ls[1]]))
    h = str(tmp_path / "ref2.data")
    rsub3.save(h, "/bar/")
    rpc3.save(h, "/all", append=True)
    assert open(h, "rb").read() == open(g, "rb").read()


def test_single_parameters_with_keys(ref, tmp_path):
    rpc, _, rps, rls = build(ref)
    f = str(tmp_path / "ref.data")
    rps[2].save(f, "/one")
    rls[0].save(f, "/table", append=True)
    pc, _, ps, ls = build(dy)
    ps[2].populate(f, "/one")
    ls[0].populate(f, "/table")
    assert_values_equal(values([ps[2]], [ls[0]]), values([rps[2]], [rls[0]]))
    loaded = dy.ParameterCollection()
    p = loaded.load_param(f, "/one")
    lp = loaded.load_lookup_param(f, "/table")
    assert p.name() == "/one" and lp.name() == "/table"
    assert_values_equal(values([p], [lp]), values([rps[2]], [rls[0]]))
    g = str(tmp_path / "ours.data")
    ps[2].save(g, "/one")
    ls[0].save(g, "/table", append=True)
    assert open(g, "rb").read() == open(f, "rb").read()
    rloaded = ref.ParameterCollection()
    rp = rloaded.load_param(g, "/one")
    rlp = rloaded.load_lookup_param(g, "/table")
    assert_values_equal(values([rp], [rlp]), values([ps[2]], [ls[0]]))


def test_dy_save_user_object_reference_to_ours(ref, tmp_path):
    rpc, _, rps, rls = build(ref)
    raff = Affine(rpc, 3, 2)
    base = str(tmp_path / "ref")
    ref.save(base, [rls[0], raff, rps[1]])
    model = dy.ParameterCollection()
    E, aff, b = dy.load(base, model)
    assert isinstance(aff, Affine)
    assert_values_equal(values([b, aff.W, aff.b], [E, aff.E]),
                        values([rps[1], raff.W, raff.b], [rls[0], raff.E]))


def test_dy_save_user_object_ours_to_reference(ref, tmp_path):
    pc, _, ps, ls = build(dy)
    aff = Affine(pc, 3, 2)
    base = str(tmp_path / "ours")
    dy.save(base, [ls[0], aff, ps[1]])
    rmodel = ref.ParameterCollection()
    rE, raff, rb = ref.load(base, rmodel)
    assert isinstance(raff, Affine)
    assert_values_equal(values([rb, raff.W, raff.b], [rE, raff.E]),
                        values([ps[1], aff.W, aff.b], [ls[0], aff.E]))
    # and the reference writes the same data file for them
    rbase = str(tmp_path / "ref")
    ref.save(rbase, [rE, raff, rb])
    assert open(rbase + ".data", "rb").read() == open(base + ".data", "rb").read()


def test_from_file_initializer_plain_numbers(ref, tmp_path):
    f = tmp_path / "numbers.txt"
    f.write_text("0.5 -1 2.25\n3e-3 4\n5 6 7 8 9 10 11\n")
    ours = dy.ParameterCollection().add_parameters((3, 4), init=dy.FromFileInitializer(str(f)))
    theirs = ref.ParameterCollection().add_parameters((3, 4), init=ref.FromFileInitializer(str(f).encode()))
    np.testing.assert_array_equal(ours.as_array(), theirs.as_array())


def test_a_spec_with_an_operation_loads_both_ways(ref, tmp_path):
    ours = OneLayerMLP(dy.ParameterCollection(), 3, 2, dy.rectify)
    dy.save(str(tmp_path / "ours"), [ours])
    [theirs] = ref.load(str(tmp_path / "ours"), ref.ParameterCollection())
    # (in this process the reference's unpickler finds our module under its name, _dynet)
    assert theirs.act.__name__ == "rectify" and b"_dynet\nrectify" in open(tmp_path / "ours.meta", "rb").read()
    np.testing.assert_array_equal(theirs.W.as_array(), ours.W.as_array())
    # the other way in a process of the reference's own (here its pickler would find our _dynet)
    code = ("import numpy as np, _dynet as r; p = r.DynetParams(); p.init()\n"
            "from tests.saveables import OneLayerMLP\n"
            "a = OneLayerMLP(r.ParameterCollection(), 3, 2, r.logistic)\n"
            f"r.save({str(tmp_path / 'ref')!r}, [a]); np.save({str(tmp_path / 'W.npy')!r}, a.W.as_array())")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([oracle_dir(), ROOT]))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    [back] = dy.load(str(tmp_path / "ref"), dy.ParameterCollection())
    assert back.act is dy.logistic
    np.testing.assert_array_equal(back.W.as_array(), np.load(tmp_path / "W.npy"))


def test_empty_parameters_load_both_ways(ref, tmp_path):
    def build(m):
        pc = m.ParameterCollection()
        ps = [pc.add_parameters((0, 4)), pc.add_parameters(0), pc.add_parameters((2, 2))]
        return pc, ps, pc.add_lookup_parameters((3, 0))
    ours, ps, _ = build(dy)
    theirs, rps, _ = build(ref)
    ours.save(str(tmp_path / "ours"))
    theirs.populate(str(tmp_path / "ours"))
    np.testing.assert_array_equal(rps[2].as_array(), ps[2].as_array())
    theirs.save(str(tmp_path / "ref"))
    again, back, _ = build(dy)
    again.populate(str(tmp_path / "ref"))
    np.testing.assert_array_equal(back[2].as_array(), ps[2].as_array())
    assert [p.shape() for p in back] == [tuple(p.shape()) for p in rps] == [(0, 4), (0,), (2, 2)]
    assert open(tmp_path / "ours", "rb").read() == open(tmp_path / "ref", "rb").read()
