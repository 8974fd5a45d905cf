"""Notebook support: the tutorial runs in a real Jupyter kernel, graphs render, late configuration warns."""
import os
import subprocess
import sys
import textwrap

import pytest

import dynet as dy
import dynet_config
from dynet.display import GraphDrawing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_graph():
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 2))
    dy.renew_cg()
    return dy.squared_norm(dy.tanh(W * dy.inputVector([1, 2])))


def test_render_graph_text_lists_the_nodes():
    small_graph()
    drawing = dy.render_graph()
    assert drawing.source == dy.cg().print_graphviz()
    assert drawing.nodes() == ["v0 = inputVector() {2}", "v1 = parameter(/_0, {3,2}) {3,2}",
                               "v2 = v1 * v0 {3}", "v3 = tanh(v2) {3}", "v4 = squared_norm(v3) {1}"]
    assert str(drawing).splitlines()[0] == "computation graph, 5 nodes:"
    assert "  v3 = tanh(v2) {3}" in str(drawing).splitlines()


def test_render_graph_falls_back_to_text_without_graphviz(monkeypatch):
    small_graph()
    monkeypatch.setitem(sys.modules, "graphviz", None)      # `import graphviz` raises ImportError
    drawing = dy.render_graph()
    assert drawing._repr_svg_() is None
    text = repr(drawing)
    assert "v4 = squared_norm(v3) {1}" in text
    assert "no picture: the graphviz package is not installed" in text


def test_render_graph_svg_with_graphviz():
    graphviz = pytest.importorskip("graphviz", reason="needs the optional graphviz package")
    try:
        graphviz.version()
    except graphviz.ExecutableNotFound:
        pytest.skip("needs Graphviz's `dot` program")
    small_graph()
    svg = dy.render_graph()._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "squared_norm(v3)" in svg


def test_graph_drawing_of_empty_graph():
    dy.renew_cg()
    assert str(dy.render_graph()) == "computation graph, 0 nodes:"
    assert GraphDrawing("digraph G {\n}").nodes() == []


def test_dynet_config_set_after_import_warns():
    with pytest.warns(RuntimeWarning, match=r"dynet_config.set\(\) after `import dynet` has no effect"):
        dynet_config.set(mem=128)
    with pytest.warns(RuntimeWarning, match=r"dynet_config.set_gpu\(\) after `import dynet`"):
        dynet_config.set_gpu(False)


def test_dynet_config_set_before_import_is_silent():
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("error")
        import dynet_config
        dynet_config.set(mem=64, random_seed=3)
        import dynet as dy
        from dynet.core import config
        print(config.state["seed"])
        """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3"]


def test_tutorial_notebook_runs_in_a_jupyter_kernel(monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="needs nbformat (the test extra)")
    nbclient = pytest.importorskip("nbclient", reason="needs nbclient (the test extra)")
    pytest.importorskip("ipykernel", reason="needs ipykernel (the test extra)")
    monkeypatch.setenv("PYTHONPATH", ROOT)                   # the kernel imports this checkout
    nb = nbformat.read(os.path.join(ROOT, "examples", "tutorial.ipynb"), as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": os.path.join(ROOT, "examples")}})
    client.execute()                                         # raises CellExecutionError on any error
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "dynet-py " + dy.__package_version__ in text
    final_loss = float(text.split("final average loss ")[1].split()[0])
    assert final_loss < 0.05
    assert "same values after loading: True" in text
    drawing = nb.cells[-1].outputs[0]["data"]
    assert "v0 = inputVector() {2}" in drawing["text/plain"]


def test_render_graph_options_as_print_graphviz():
    loss = small_graph()
    named = dy.render_graph(expression_names={loss: "loss"}).nodes()
    assert named[-1] == "loss: v4 = squared_norm(v3) {1}"
    compact = dy.render_graph(compact=True, show_dims=False).nodes()
    assert len(compact) == 5 and compact[3] == "tanh" and compact[4] == "squared_norm"
    assert not any(" = " in label for label in compact)
