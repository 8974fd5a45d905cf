"""Nodes stay out of the cyclic garbage collector (a big graph would otherwise set off collections
that walk every object; nodes form no cycles), while a model dropped with its parameter nodes in the
graph (a node refers to its Parameters, which cache the node by borrowed pointer) is still
collected."""
import gc

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
