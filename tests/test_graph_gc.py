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
