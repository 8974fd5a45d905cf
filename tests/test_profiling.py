"""--dynet-profiling 1/2 (dynet/core/execution.pyx): a table per operation type (nodes, batches,
forward and backward time, value memory), per-node detail at level 2, printed at exit and given to
code by dy.profiling_stats()."""
import numpy as np
import pytest

import dynet as dy
from dynet.core import execution
from tests.test_init_flags import run


@pytest.fixture(autouse=True)
def executor_off_after():
    yield
    execution.configure(0, 0)


def small_graph():
    W = dy.inputTensor(np.full((4, 3), 0.5))
    xs = [dy.inputVector([1.0, 2.0, 3.0]) for _ in range(5)]
    hs = [dy.tanh(W * x) for x in xs]
    loss = dy.esum([dy.squared_norm(h) for h in hs])
    loss.value()
    loss.backward(full=True)
    return loss


@pytest.mark.parametrize("autobatch", [0, 1])
def test_stats_count_nodes_batches_and_memory(autobatch):
    execution.configure(autobatch, 1)
    dy.reset_profiling()
    small_graph()
    s = dy.profiling_stats()
    assert {op: r["nodes"] for op, r in s.items() if r["nodes"]} == \
        {"inputTensor": 1, "inputVector": 5, "matmul": 5, "tanh": 5, "squared_norm": 5, "esum": 1}
    assert s["matmul"]["batches"] == (1 if autobatch else 5)
    assert s["tanh"]["batches"] == (1 if autobatch else 5)   # elementwise maps batch too
    assert s["matmul"]["memory_bytes"] == 5 * 4 * 4          # five {4} values in float32
    assert s["esum"]["memory_bytes"] == 4
    for op in ("matmul", "tanh", "squared_norm"):
        assert s[op]["forward_s"] > 0 and s[op]["backward_s"] > 0
    small_graph()                                             # counts accumulate until reset
    assert dy.profiling_stats()["tanh"]["nodes"] == 10
    dy.reset_profiling()
    assert dy.profiling_stats() == {}


def test_level_2_keeps_each_node_of_the_last_graph():
    execution.configure(0, 2)
    dy.reset_profiling()
    small_graph()
    dy.renew_cg()
    small_graph()
    nodes = dy.profiling_node_stats()
    assert len(nodes) == dy.cg().size() == 22
    assert [r["op"] for r in nodes.values()].count("tanh") == 5
    assert all(r["dim"] == "{4}" for r in nodes.values() if r["op"] == "tanh")


def test_off_records_nothing():
    execution.configure(0, 0)
    dy.reset_profiling()
    small_graph()
    assert dy.profiling_stats() == {}


def test_flag_prints_the_table_at_exit():
    code = """
        import dynet as dy
        W = dy.inputTensor([[1.0, 2.0], [3.0, 4.0]])
        loss = dy.esum([dy.squared_norm(W * dy.inputVector([1.0, float(i)])) for i in range(3)])
        loss.value()
        print("stats", *[dy.profiling_stats().get("matmul", {}).get(k) for k in ("nodes", "batches")])
        """
    out = run(code, "--dynet-profiling", "1", "--dynet-autobatch", "1")
    assert out.returncode == 0, out.stderr
    assert "stats 3 1" in out.stdout
    lines = {l.split()[0]: l.split() for l in out.stderr.splitlines() if l.strip()}
    assert lines["matmul"][1:3] == ["3", "1"] and lines["squared_norm"][1:3] == ["3", "3"]
    assert "per node" not in out.stderr
    out = run(code, "--dynet-profiling", "2")
    assert out.returncode == 0, out.stderr
    assert "stats 3 3" in out.stdout and "per node" in out.stderr
    out = run(code.replace("print(", "print(len(dy.profiling_stats()), "))
    assert out.returncode == 0 and out.stderr == "" and out.stdout.split()[0] == "0"
