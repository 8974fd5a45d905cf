"""Nodes stay out of the cyclic garbage collector (a big graph would otherwise set off collections
that walk every object), while a model dropped with its parameter nodes in the graph (Parameters
and their node refer to each other) is still collected."""
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
    assert gc.is_tracked(dy.parameter(W))           # its Parameters caches it: a cycle the GC must see
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
