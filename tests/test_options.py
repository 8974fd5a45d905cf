"""Options that must do what DyNet does with them (issue 12): --dynet-mem's forms and pools,
shared_parameters (Hogwild training in forked processes), --dynet-viz, save()'s mixed spellings,
weight decay read at every forward, clip_inplace under weight decay, the Glorot rule and scale=.
Initialisation options run in fresh interpreters (they are read at import)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dynet as dy
from dynet.core import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(code, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# ---- --dynet-mem -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,sizes", [
    ("512", (128, 128, 128, 128)),          # one total: four equal pools (DyNet 2.1)
    ("64,32,16", (64, 32, 16, 37)),          # DyNet 2.0: forward, backward, parameters
    ("64,32,16,8", (64, 32, 16, 8)),         # DyNet 2.1: ... and scratch
])
def test_mem_forms(text, sizes):
    mem = config.parse_mem(text)
    assert tuple(mem) == sizes
    assert (mem.forward, mem.backward, mem.parameters, mem.scratch) == sizes


@pytest.mark.parametrize("text,message", [
    ("1,2", "got 2"), ("1,2,3,4,5", "got 5"), ("0", "positive"), ("4,-1,4", "positive"),
    ("lots", "expected a number of MB"),
])
def test_bad_mem_names_the_option(text, message):
    with pytest.raises(ValueError, match="DynetParams.set_mem") as err:
        dy.DynetParams().set_mem(text)
    assert message in str(err.value)


def test_every_mem_number_is_used():
    """forward/backward size the graph's pools, parameters the parameter pool's blocks, scratch the
    work buffer of node temporaries."""
    out = run("""
        import dynet as dy
        from dynet.core import parampool, memory
        m = dy.ParameterCollection()
        m.add_parameters((10, 10))
        print(dy.cg().memory["forward"], parampool.reserved_bytes() >> 20,
              memory.work_buffer_bytes() >> 20)
        dy.renew_cg()
        from dynet.core.graph import cg
        """, "--dynet-mem", "3,5,2,7")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1:] == ["2", "7"]
    out = run("""
        import dynet_config
        dynet_config.set(mem="16,16,4,1")
        import dynet as dy
        from dynet.core import parampool
        dy.ParameterCollection().add_parameters(3)
        print(parampool.reserved_bytes() >> 20)
        """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4"]


def test_set_mem_takes_a_list_of_four():
    p = dy.DynetParams()
    p.set_mem([8, 8, 8, 8])
    assert p._settings["mem"] == "8,8,8,8"


# ---- shared_parameters -------------------------------------------------------------------------

HOGWILD = """
    import multiprocessing as mp, numpy as np
    import dynet as dy
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2), init=dy.ConstInitializer(1.0))
    E = m.add_lookup_parameters((3, 2), init=dy.ConstInitializer(0.0))
    t = dy.MomentumSGDTrainer(m, learning_rate=0.1, mom=0.5)
    def child():
        W.set_value(np.full((2, 2), 3.0))
    def train():
        dy.renew_cg()
        (dy.sum_elems(W * dy.inputVector([1, 1])) + dy.sum_elems(E[1])).backward()
        t.update()
    ctx = mp.get_context("fork")
    p = ctx.Process(target=child); p.start(); p.join()
    after_set = W.as_array()[0, 0]
    moves = []
    for _ in range(2):
        before = W.as_array()[0, 0]
        p = ctx.Process(target=train); p.start(); p.join()
        moves.append(round(float(before - W.as_array()[0, 0]), 4))
    print(after_set, moves, E.as_array()[1].tolist() != [0.0, 0.0])
    """


def test_shared_parameters_are_trained_by_forked_workers():
    """A child's set_value and its trainer updates are seen by the parent; the momentum a first
    child left is used by the next one (the trainer's moments are shared too)."""
    out = run(HOGWILD, "--dynet-shared-parameters")
    assert out.returncode == 0, out.stderr
    # dL/dW[0,0] = 1 each time: the first step is 0.1, the second 0.1 + 0.5 * 0.1
    assert out.stdout.split(maxsplit=1)[0] == "3.0"
    assert out.stdout.split(maxsplit=1)[1].strip() == "[0.1, 0.15] True"


def test_without_shared_parameters_children_change_nothing():
    out = run(HOGWILD)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.0 [0.0, 0.0] False"


@pytest.mark.parametrize("setup", [
    "import dynet_config; dynet_config.set(shared_parameters=1); import dynet as dy",
    "import _dynet as dy; dy.init(shared_parameters=True)",
    "import _dynet as dy; p = dy.DynetParams(); p.set_shared_parameters(True); p.init()",
])
def test_shared_parameters_every_spelling(setup):
    out = run(setup + "\nfrom dynet.core import parampool; print(parampool.is_shared())")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_shared_parameters_after_init_is_an_error():
    out = run("""
        import dynet as dy
        p = dy.DynetParams(); p.set_shared_parameters(True); p.init()
        """)
    assert out.returncode != 0
    assert "RuntimeError: shared_parameters=True: DyNet is already initialised" in out.stderr


def test_shared_parameters_with_weight_decay_is_an_error():
    out = run("""
        import dynet as dy
        m = dy.ParameterCollection(); W = m.add_parameters(2)
        t = dy.SimpleSGDTrainer(m)
        dy.sum_elems(W.expr()).backward()
        t.update()
        """, "--dynet-shared-parameters", "--dynet-weight-decay", "0.1")
    assert out.returncode != 0
    assert "SimpleSGDTrainer.update: weight decay with shared_parameters is not supported" in out.stderr


# ---- --dynet-viz -------------------------------------------------------------------------------

def test_viz_builds_graphs_without_computing_and_draws_them():
    out = run("""
        import dynet as dy
        m = dy.ParameterCollection()
        W = m.add_parameters((3, 2)); E = m.add_lookup_parameters((5, 2))
        x = E[4]
        y = dy.tanh(W * x)
        print(y.value(), y.npvalue(), y.scalar_value(), y.vec_value(), y.dim())
        dy.print_graphviz(expression_names={y: "hidden"}, lookup_names={E: list("abcde")})
        try:
            dy.log(dy.inputVector([-1.0]) * W)
        except ValueError as e:
            print("dims checked:", "{3,2}" in str(e))
        for f in (lambda: dy.sum_elems(y).backward(), lambda: dy.SimpleSGDTrainer(m).update()):
            try:
                f()
            except RuntimeError as e:
                print("refused:", "--dynet-viz" in str(e))
        """, "--dynet-viz")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "None None 0.0 [] ((3,), 1)"
    dot = "\n".join(lines[1:-3])
    assert dot.startswith("digraph G {") and dot.endswith("}")
    assert 'N0 [label="e\\nv0 = lookup(/_1, [4]) {2}"];' in dot
    assert 'N3 [label="hidden\\nv3 = tanh(v2) {3}"];' in dot
    assert "N0 -> N2;" in dot and "N2 -> N3;" in dot
    assert lines[-3:] == ["dims checked: True", "refused: True", "refused: True"]


def test_viz_names_parameters_and_tables_and_takes_dynets_arguments():
    # DyNet's viz_birnn.py: a table named in expression_names, its rows named through that name,
    # and collapse_birnns (drawn whole here: no state nodes to merge)
    out = run("""
        import dynet as dy
        m = dy.Model(); E = m.add_lookup_parameters((5, 4)); W = m.add_parameters((3, 6))
        bi = dy.BiRNNBuilder(1, 4, 6, m, dy.LSTMBuilder)
        y = W * bi.transduce([E[1], E[2], E[3]])[0]
        dy.print_graphviz(expression_names={E: "emb", W: "W"}, lookup_names={"emb": {1: "a", 2: "b"}},
                          collapse_birnns=True)
        """, "--dynet-viz")
    assert out.returncode == 0, out.stderr
    labels = [line.split('[label="')[1].split("\\n")[0] for line in out.stdout.splitlines() if "[label=" in line]
    named = [label for label in labels if not label.startswith("v")]
    assert named == ["a", "b", "emb[3]", "W"], labels      # rows 1 and 2 named, row 3 by the table
    assert out.stdout.rstrip().endswith("}")


def test_print_graphviz_without_viz_says_how(capsys):
    dy.inputVector([1.0])
    dy.print_graphviz()
    assert capsys.readouterr().out.strip() == "Run with --dynet-viz to get the visualization behavior."


# ---- save(): DyNet 2.0 and 2.1 spellings -------------------------------------------------------

def test_save_with_components_and_key_or_append_is_an_error(tmp_path):
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2))
    f = str(tmp_path / "model")
    for kwargs in ({"key": "/x"}, {"append": True}):
        with pytest.raises(ValueError, match="DyNet 2.0's save\\(fname, components\\) takes neither"):
            m.save(f, [W], **kwargs)
    m.save(f, [W])                          # 2.0: the components and their .meta
    assert os.path.exists(f + ".meta")
    m.save(f + "2", "/k")                   # 2.1: key (and append) honoured
    m.save(f + "2", key="/j", append=True)
    text = open(f + "2").read()
    assert "#Parameter# /k/_0" in text and "#Parameter# /j/_0" in text
    with pytest.raises(TypeError, match="key given twice"):
        m.save(f, "/a", key="/b")


# ---- weight decay ------------------------------------------------------------------------------

def test_weight_decay_factor_is_read_at_every_forward():
    """A static graph recomputed after updates uses the current factor (DyNet: 2, 1, 0.5, 0.25)."""
    m = dy.ParameterCollection()
    m.set_weight_decay_lambda(0.5)
    p = m.add_parameters((1,), init=dy.ConstInitializer(2.0))
    E = m.add_lookup_parameters((1, 1), init=dy.ConstInitializer(2.0))
    t = dy.SimpleSGDTrainer(m, 0.0)
    dy.renew_cg()
    e = p.expr() * 1.0
    row = E[0] * 1.0
    values, rows = [], []
    for _ in range(4):
        values.append(e.value(recalculate=True))
        rows.append(row.value(recalculate=True))
        e.backward()
        t.update()
    assert values == rows == [2.0, 1.0, 0.5, 0.25]


def test_clip_inplace_clips_real_values_under_weight_decay():
    m = dy.ParameterCollection()
    m.set_weight_decay_lambda(0.5)
    p = m.add_parameters((2,), init=dy.ConstInitializer(2.0))
    t = dy.SimpleSGDTrainer(m, 0.0)
    dy.sum_elems(p.expr()).backward()
    t.update()                               # factor 0.5: real value 1.0, stored 2.0
    p.clip_inplace(-0.6, 0.6)
    dy.renew_cg()
    np.testing.assert_allclose(p.expr().npvalue(), [0.6, 0.6], rtol=1e-6)
    np.testing.assert_allclose(p.as_array(), [1.2, 1.2], rtol=1e-6)


# ---- initial values: DyNet's Glorot rule -------------------------------------------------------

def glorot_bound(dims, gain=1.0):
    if len(dims) == 4:
        field = dims[0] * dims[1]
        return gain * np.sqrt(6.0 / (dims[2] * field + dims[3] * field))
    return gain * np.sqrt(3.0 * len(dims) / sum(dims))


def assert_uniform(a, bound):
    a = np.asarray(a).ravel()
    assert np.abs(a).max() <= bound * (1 + 1e-6)
    assert np.abs(a).max() > 0.95 * bound          # the whole range is used
    assert abs(a.std() - bound / np.sqrt(3)) < 0.08 * bound


@pytest.mark.parametrize("shape,dims", [
    ((100, 50), (100, 50)),                   # sqrt(6/150)
    ((300,), (300,)),                         # a vector: sqrt(3/300), not sqrt(6/300)
    ((10, 20, 30), (10, 20, 30)),             # sqrt(9/60)
    ((3, 3, 4, 8), (3, 3, 4, 8)),             # convolution filter
])
def test_default_parameter_init_is_dynets_glorot(shape, dims):
    m = dy.ParameterCollection()
    assert_uniform(m.add_parameters(shape).as_array(), glorot_bound(dims))
    # scale= is the range of init='uniform' only, not a gain of the default Glorot (as DyNet)
    assert_uniform(m.add_parameters(shape, scale=10).as_array(), glorot_bound(dims))


@pytest.mark.parametrize("shape,dims", [
    ((1000, 50), (50, 1000)),                 # DyNet's default for tables: the row count counts
    ((100, 10, 20), (10, 20, 100)),
])
def test_default_lookup_init_is_dynets(shape, dims):
    m = dy.ParameterCollection()
    assert_uniform(m.add_lookup_parameters(shape).as_array(), glorot_bound(dims))


def test_glorot_is_lookup_and_gain():
    m = dy.ParameterCollection()
    G = dy.GlorotInitializer
    # is_lookup leaves out DyNet's last dimension: a table's row count, a matrix's column count
    assert_uniform(m.add_lookup_parameters((1000, 50), init=G(is_lookup=True)).as_array(), np.sqrt(3 / 50))
    assert_uniform(m.add_parameters((100, 50), init=G(is_lookup=True)).as_array(), np.sqrt(3 / 100))
    assert_uniform(m.add_parameters((100, 50), init=G(gain=2)).as_array(), 2 * np.sqrt(6 / 150))
    with pytest.raises(ValueError, match="GlorotInitializer\\(is_lookup=True\\): a parameter of shape \\(5,\\)"):
        m.add_parameters(5, init=G(is_lookup=True))


def test_viz_compact_drops_names():
    out = run("""
        import dynet as dy
        dy.tanh(dy.inputVector([1.0, 2.0]))
        dy.print_graphviz(compact=True, show_dims=False)
        """, "--dynet-viz")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "digraph G {", "  rankdir=LR;", '  N0 [label="inputVector"];', '  N1 [label="tanh"];',
        "  N0 -> N1;", "}"]
