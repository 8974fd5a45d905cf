"""Nodes stay out of the cyclic garbage collector (a big graph would otherwise set off collections
that walk every object; nodes form no cycles), while a model dropped with its parameter nodes in the
graph (a node refers to its Parameters, which cache the node by borrowed pointer) is still
collected."""
import gc

import numpy as np

import dynet as dy
from dynet.core.params import Parameters


def test_nodes_and_argument_tuples_are_not_tracked():
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 3))
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0, 3.0])
    h = dy.tanh(dy.parameter(W) * x)
    assert not gc.is_tracked(x) and not gc.is_tracked(h)
    assert not gc.is_tracked(dy.parameter(W))       # no node type is a GC type
    args = [a for node, node_args in dy.cg().nodes_list() for a in [node_args]]
    assert args and not any(gc.is_tracked(t) for t in args)
    assert h.npvalue().shape == (3,)


def test_dropped_model_with_nodes_in_the_graph_is_collected():
    def live_parameters():
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is Parameters)

    before = live_parameters()
    for _ in range(5):
        m = dy.ParameterCollection()
        W = m.add_parameters((50, 50))
        dy.renew_cg()
        loss = dy.sum_elems(dy.tanh(W * dy.inputVector([1.0] * 50)))
        loss.backward()
        del m, W, loss
    dy.renew_cg()
    assert live_parameters() <= before + 1


def test_node_memory_is_reused_without_growth_and_nodes_start_zeroed():
    """Node blocks are kept per size and handed out again (graph.use_node_free_lists): many graphs of
    many nodes neither grow the process nor hand out a block with an old node's state."""
    import resource

    def rss_kb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def one_graph(n):
        dy.renew_cg()
        x = dy.inputVector([0.5, -0.25, 1.0])
        for _ in range(n):
            x = dy.tanh(x) * 0.5 + x
        return x

    for _ in range(3):
        one_graph(3000).npvalue()
    before = rss_kb()
    for _ in range(30):
        v = one_graph(3000).npvalue()
    assert rss_kb() - before < 20_000            # KB: the first graphs' blocks serve the later ones
    dy.renew_cg()
    fresh = dy.tanh(dy.inputVector([0.0, 1.0]))
    assert fresh.dim() == ((2,), 1) and fresh.vindex == 1
    assert np.allclose(fresh.npvalue(), np.tanh([0.0, 1.0]), atol=1e-6)
    assert np.all(np.isfinite(v))



def test_last_graph_is_released_while_the_next_is_built():
    """renew_cg keeps the last graph's nodes and each node added to the next graph releases one
    (their memory is then reused while in cache): a node of the last graph that the user does not
    hold is gone once as many nodes were added, what a smaller graph leaves goes at the next
    renew_cg, and a node the user holds stays a stale expression that raises."""
    import sys

    m = dy.ParameterCollection()
    W = m.add_parameters((4, 4))
    base = sys.getrefcount(W)
    x0 = np.array([0.1, 0.2, 0.3, 0.4])

    def graph(n, param=True):
        x = dy.inputVector(list(x0))
        if param:
            x = W * x
        for _ in range(n):
            x = dy.tanh(x)
        return x

    dy.renew_cg()
    held = dy.tanh(dy.inputVector([0.5]))          # a node the user keeps (it does not lead to W)
    held_value = held.npvalue()
    graph(50).npvalue()
    assert sys.getrefcount(W) > base               # its parameter node holds it
    dy.renew_cg()
    assert sys.getrefcount(W) > base               # kept until the next graph is built
    y = graph(60, param=False)                     # more nodes: all of the last graph's released
    assert sys.getrefcount(W) == base
    expect = x0
    for _ in range(60):
        expect = np.tanh(expect)
    assert np.allclose(y.npvalue(), expect, atol=1e-6)
    try:
        held.npvalue()
        raise AssertionError("a stale expression gave a value")
    except RuntimeError as e:
        assert "stale expression" in str(e)

    dy.renew_cg()
    graph(200)                                     # a large graph, then a small one
    dy.renew_cg()
    graph(3, param=False)
    assert sys.getrefcount(W) > base               # the small graph released 4 of its ~203 nodes
    dy.renew_cg()                                  # what it left goes now
    assert sys.getrefcount(W) == base
    assert np.all(np.isfinite(held_value))
