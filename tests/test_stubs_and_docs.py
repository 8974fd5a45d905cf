"""Editor support and the API reference stay true to the module: the committed type stubs are what
tools/make_stubs.py generates from the live module, mypy's stubtest finds no difference between them
and the module, and the Sphinx reference builds with warnings as errors. After a merge that adds a
public name, these fail until the stubs are regenerated and the docstring is there."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import make_stubs  # noqa: E402


@pytest.mark.parametrize("modname", sorted(make_stubs.STUBS))
def test_committed_stubs_are_generated_from_the_module(modname):
    with open(make_stubs.STUBS[modname], encoding="utf-8") as f:
        committed = f.read()
    assert committed == make_stubs.generate(modname), \
        f"{make_stubs.STUBS[modname]} is out of date: run python tools/make_stubs.py"
    assert os.path.exists(os.path.join(ROOT, "dynet", "py.typed"))


def test_stubs_show_argument_names():
    text = make_stubs.generate()
    assert "def tanh(x) -> Expression: ..." in text
    assert "    def __init__(self, m, alpha = ..., beta_1 = ..., beta_2 = ..., eps = ..., edecay = ..., " \
           "learning_rate = ...) -> None: ..." in text
    assert "Model = ParameterCollection" in text


def run_tool(args, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_stubtest_finds_no_difference_between_stubs_and_module():
    pytest.importorskip("mypy", reason="needs mypy (the test extra)")
    out = run_tool(["-m", "mypy.stubtest", "dynet", "--mypy-config-file", "pyproject.toml",
                    "--allowlist", os.path.join("tools", "stubtest_allowlist.txt")])
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="needs sphinx (the test extra)")
    out = run_tool(["-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(tmp_path)])
    assert out.returncode == 0, out.stderr[-4000:]
    html = (tmp_path / "api.html").read_text(encoding="utf-8")
    for words in ("Natural exponent", 'id="dynet.AdamTrainer"', 'id="dynet.render_graph"', "Trainers"):
        assert words in html


def tool_path(name):
    """The tool next to this interpreter (a virtual environment's), else on PATH (None if absent)."""
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else shutil.which(name)


@pytest.mark.parametrize("cmd", [["ruff", "check", "--output-format", "concise", "."], ["cython-lint", "dynet"]],
                         ids=["ruff", "cython-lint"])
def test_lint_is_clean(cmd):
    exe = tool_path(cmd[0])
    if exe is None:
        pytest.skip(f"needs {cmd[0]} (the test extra)")
    out = subprocess.run([exe] + cmd[1:], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{cmd[0]}:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"
