"""The DyNet API level: 2.0 (the spec, the default) or 2.1/2.2, chosen by dynet_config.set(api=...),
--dynet-api, DynetParams.set_api or $DYNET_API. Under 2.1, LSTMBuilder is the VanillaLSTMBuilder and
MomentumSGDTrainer/CyclicalSGDTrainer take DyNet 2.1's defaults; without it, an LSTMBuilder call with
2.1-only arguments builds the 2.1 builder. Choosing the level happens at initialisation, so those
cases run in a fresh interpreter."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dynet as dy
from dynet.core import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# what each level's names are, printed by a fresh interpreter
REPORT = """
b = dy.LSTMBuilder(1, 3, 4, dy.ParameterCollection())
m = dy.ParameterCollection(); m.add_parameters(1)
print(type(b).__name__, isinstance(b, dy.LSTMBuilder), round(dy.MomentumSGDTrainer(m).learning_rate, 4),
      dy.CyclicalSGDTrainer(m).gamma)
"""
LEVEL_20 = "CoupledLSTMBuilder True 0.1 0.0"
LEVEL_21 = "VanillaLSTMBuilder True 0.01 1.0"


def run(code, *args, env=None):
    full = dict(os.environ, PYTHONPATH=ROOT)
    full.pop("DYNET_API", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("how,code,args,env,want", [
    ("default", "import dynet as dy" + REPORT, [], None, LEVEL_20),
    ("dynet_config", "import dynet_config; dynet_config.set(api='2.1'); import dynet as dy" + REPORT,
     [], None, LEVEL_21),
    ("flag", "import dynet as dy" + REPORT, ["--dynet-api", "2.1"], None, LEVEL_21),
    ("flag 2.2", "import dynet as dy" + REPORT, ["--dynet-api=2.2"], None, LEVEL_21),
    ("environment", "import dynet as dy" + REPORT, [], {"DYNET_API": "2.1"}, LEVEL_21),
    ("flag over environment", "import dynet as dy" + REPORT, ["--dynet-api", "2.0"], {"DYNET_API": "2.1"},
     LEVEL_20),
    ("DynetParams", "import _dynet as dy\np = dy.DynetParams(); p.set_api('2.1'); p.init()" + REPORT,
     [], None, LEVEL_21),
])
def test_choosing_the_level(how, code, args, env, want):
    out = run(code, *args, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == want


@pytest.mark.parametrize("code,args,env,words", [
    ("import dynet", ["--dynet-api", "3.0"], None, ["--dynet-api", "'3.0'", "2.1"]),
    ("import dynet_config; dynet_config.set(api='2.5')", [], None, ["dynet_config.set", "'2.5'"]),
    ("import _dynet as dy; dy.DynetParams().set_api(21)", [], None, ["DynetParams.set_api", "21"]),
    ("import dynet", [], {"DYNET_API": "latest"}, ["$DYNET_API", "'latest'"]),
])
def test_unknown_level_is_a_clear_error(code, args, env, words):
    out = run(code, *args, env=env)
    assert out.returncode != 0 and "ValueError" in out.stderr
    for w in words:
        assert w in out.stderr, out.stderr


@pytest.fixture
def api_21():
    """The 2.1 level for one test (what initialising with api='2.1' sets)."""
    saved = config.state["api"]
    config.state["api"] = "2.1"
    yield
    config.state["api"] = saved


def test_21_only_arguments_build_the_21_builder():
    m = dy.ParameterCollection()
    assert type(dy.LSTMBuilder(1, 3, 4, m)) is dy.CoupledLSTMBuilder
    b = dy.LSTMBuilder(1, 3, 4, m, True)                 # ln_lstm as 5th argument
    assert type(b) is dy.VanillaLSTMBuilder and b.ln_lstm
    b = dy.LSTMBuilder(2, 3, 4, m, False, 0.5)           # forget_bias as 6th
    assert type(b) is dy.VanillaLSTMBuilder and b.forget_bias == 0.5
    b = dy.LSTMBuilder(1, 3, 4, m, forget_bias=0.0)
    assert type(b) is dy.VanillaLSTMBuilder and b.forget_bias == 0.0
    assert not isinstance(b, dy.LSTMBuilder)             # at 2.0, LSTMBuilder is the coupled one


def test_level_21_in_process(api_21):
    m = dy.ParameterCollection()
    b = dy.LSTMBuilder(1, 3, 4, m)
    assert type(b) is dy.VanillaLSTMBuilder and isinstance(b, dy.LSTMBuilder)
    assert dy.MomentumSGDTrainer(m).learning_rate == pytest.approx(0.01)
    assert dy.CyclicalSGDTrainer(m).gamma == 1.0
    assert dy.MomentumSGDTrainer(m, 0.2).learning_rate == pytest.approx(0.2)   # explicit wins
    bi = dy.BiRNNBuilder(1, 3, 4, m, dy.LSTMBuilder)
    assert all(type(f) is dy.VanillaLSTMBuilder for f in bi.builder_layers[0])


def test_parameter_of_a_lookup_table_at_each_level(request):
    m = dy.ParameterCollection()
    E = m.lookup_parameters_from_numpy(np.arange(12.0).reshape(3, 4))
    # 2.0: the table's {4, 3} expression, whose [1] is its second row (element 1 of each embedding)
    np.testing.assert_array_equal(dy.parameter(E)[1].npvalue(), [1, 5, 9])
    request.getfixturevalue("api_21")
    T = dy.parameter(E)
    assert T is E                                     # 2.1: the table itself, [1] a lookup
    np.testing.assert_array_equal(T[1].npvalue(), [4, 5, 6, 7])
    assert dy.transpose(T).dim() == ((3, 4), 1)       # and its expression in operations
    assert dy.const_parameter(E).dim() == ((4, 3), 1)


def test_trainer_status_in_each_levels_words(capsys, request):
    m = dy.ParameterCollection()
    m.add_parameters(2)
    t = dy.SimpleSGDTrainer(m, 0.25)
    t.status()
    assert capsys.readouterr().err == "[epoch=0 eta=0.25 clips=0 updates=0] "
    request.getfixturevalue("api_21")
    t.status()
    assert capsys.readouterr().err == "[lr=0.25 clips=0 updates=0] "     # DyNet 2.1's line


def test_subclassing_lstmbuilder_gives_the_20_builder():
    class Mine(dy.LSTMBuilder):
        pass
    b = Mine(1, 3, 4, dy.ParameterCollection())
    assert type(b) is Mine and isinstance(b, dy.CoupledLSTMBuilder)


@pytest.mark.parametrize("saved,loaded,words", [
    ("VanillaLSTMBuilder", "LSTMBuilder", ["VanillaLSTMBuilder", "api='2.1'", "--dynet-api 2.1"]),
    ("CoupledLSTMBuilder", "VanillaLSTMBuilder", ["CoupledLSTMBuilder", "2.0"]),
])
def test_populate_of_the_other_lstm_says_what_fits(tmp_path, saved, loaded, words):
    m = dy.ParameterCollection()
    getattr(dy, saved)(1, 3, 4, m)
    fname = str(tmp_path / "model")
    m.save(fname)
    m2 = dy.ParameterCollection()
    getattr(dy, loaded)(1, 3, 4, m2)
    with pytest.raises(dy.ModelFileError) as e:
        m2.populate(fname)
    for w in words:
        assert w in str(e.value), str(e.value)
