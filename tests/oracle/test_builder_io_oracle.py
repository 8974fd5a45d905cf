"""Builders through dy.save / dy.load against the reference DyNet, both ways: the same subcollection
names and parameter order; files the reference saves load here and compute what the reference
computes; files saved here load in the reference and compute the same.

The wheel pickles its builders' classes as `_dynet.<class>` and its dy.load unpickles them; the
test harness loads the wheel under another name (tests/oracle/refdynet.py), so its saves and loads
run with it installed as `_dynet` for their duration.

The wheel's FastLSTMBuilder and softmax builders have no spec (its dy.save refuses them): for those,
the parameter file moves between the two through the builders' collections (save/populate), and
our dy.save file's data loads into the reference's builder."""
import contextlib
import sys

import numpy as np
import pytest

import dynet as dy
from tests.test_builder_io import CASES, files, make, outputs  # noqa: F401 (files is a fixture)

NO_REF_SPEC = {"FastLSTMBuilder", "StandardSoftmaxBuilder", "StandardSoftmaxBuilder-nobias",
               "ClassFactoredSoftmaxBuilder", "ClassFactoredSoftmaxBuilder-nobias"}
WITH_SPEC = [n for n in CASES if n not in NO_REF_SPEC]
_keep = []    # the wheel's builders do not keep their collection alive


@contextlib.contextmanager
def as_dynet(ref):
    saved = sys.modules.get("_dynet")
    sys.modules["_dynet"] = ref
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop("_dynet", None)
        else:
            sys.modules["_dynet"] = saved


def ref_collection(ref):
    m = ref.ParameterCollection()
    _keep.append(m)
    return m


def assert_close(got, want, what):
    assert len(got) == len(want)
    for i, (a, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6, err_msg=f"{what}: output {i}")


def assert_same_values(ours, theirs):
    ops, rps = ours.param_collection().parameters_list(), theirs.param_collection().parameters_list()
    assert len(ops) == len(rps)
    for p, r in zip(ops, rps):
        np.testing.assert_array_equal(np.asarray(p.as_array(), np.float32),
                                      np.asarray(r.as_array(), np.float32), err_msg=p.name())


@pytest.mark.parametrize("name", list(CASES))
def test_same_names_and_order(ref, name, files):
    """Both builders' collections, and the whole collections around them (two builders, so the
    second gets DyNet's "_1"), have the same names and shapes in the same order."""
    ctor = CASES[name][0]
    layouts = []
    for dyn, m in ((dy, dy.ParameterCollection()), (ref, ref_collection(ref))):
        m.add_parameters((2,))
        bs = [ctor(dyn, m, files), ctor(dyn, m, files)]
        _keep.extend(bs)
        layouts.append(([b.param_collection().name() for b in bs],
                        [(p.name(), tuple(p.shape())) for b in bs for p in b.param_collection().parameters_list()],
                        [(p.name(), tuple(p.shape())) for p in m.parameters_list()]))
    assert layouts[0] == layouts[1]


@pytest.mark.parametrize("name", WITH_SPEC)
def test_reference_saves_we_load(ref, name, files, tmp_path):
    rb, kind = make(name, ref, ref_collection(ref), files)
    _keep.append(rb)
    want = outputs(ref, kind, rb)
    base = str(tmp_path / "ref")
    with as_dynet(ref):
        ref.save(base, [rb])
    (ob,) = dy.load(base, dy.ParameterCollection())
    assert type(ob).__name__ == CASES[name][0](dy, dy.ParameterCollection(), files).__class__.__name__
    assert tuple(ob.spec[:3]) == tuple(rb.spec[:3])
    assert_same_values(ob, rb)
    assert_close(outputs(dy, kind, ob), want, name)


@pytest.mark.parametrize("name", WITH_SPEC)
def test_we_save_reference_loads(ref, name, files, tmp_path):
    ob, kind = make(name, dy, dy.ParameterCollection(), files)
    want = outputs(dy, kind, ob)
    base = str(tmp_path / "ours")
    dy.save(base, [ob])
    with as_dynet(ref):
        (rb,) = ref.load(base, ref_collection(ref))
    _keep.append(rb)
    assert_same_values(ob, rb)
    assert_close(outputs(ref, kind, rb), want, name)
    # and back: the reference's file of the loaded builder is the same file
    with as_dynet(ref):
        ref.save(str(tmp_path / "again"), [rb])
    assert open(str(tmp_path / "again") + ".data", "rb").read() == open(base + ".data", "rb").read()


@pytest.mark.parametrize("name", sorted(NO_REF_SPEC))
def test_parameter_files_without_reference_spec(ref, name, files, tmp_path):
    """Builders the wheel cannot dy.save: its collection's file populates ours and our dy.save
    file populates its builder; both then compute the same."""
    ctor = CASES[name][0]
    rb, kind = make(name, ref, ref_collection(ref), files, seed=7)
    _keep.append(rb)
    f = str(tmp_path / "ref.data")
    rb.param_collection().save(f)
    ob = ctor(dy, dy.ParameterCollection(), files)
    ob.param_collection().populate(f)
    assert_same_values(ob, rb)
    assert_close(outputs(dy, kind, ob), outputs(ref, kind, rb), name)

    ob, kind = make(name, dy, dy.ParameterCollection(), files, seed=8)
    base = str(tmp_path / "ours")
    dy.save(base, [ob])
    (ob2,) = dy.load(base, dy.ParameterCollection())
    rb = ctor(ref, ref_collection(ref), files)
    _keep.append(rb)
    rb.param_collection().populate(base + ".data", ob.param_collection().name())
    assert_same_values(ob2, rb)
    assert_close(outputs(ref, kind, rb), outputs(dy, kind, ob2), name)
