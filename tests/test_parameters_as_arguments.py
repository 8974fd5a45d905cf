"""Operations accept Parameters where they take an Expression (DyNet 2.1): the typed nodes of
losses_cpu/linalg_cpu and the ops run by pyop (weight_norm was a TypeError)."""
import numpy as np
import pytest

import dynet as dy

OPS = [
    ("weight_norm", lambda w, s, v: dy.weight_norm(w, s)),
    ("binary_log_loss", lambda w, s, v: dy.binary_log_loss(dy.logistic(v), v)),
    ("hinge", lambda w, s, v: dy.hinge(v, 1)),
    ("sparsemax", lambda w, s, v: dy.sparsemax(v)),
    ("pairwise_rank_loss", lambda w, s, v: dy.pairwise_rank_loss(v, dy.inputVector([0.1, 0.2, 0.3]))),
    ("poisson_loss", lambda w, s, v: dy.poisson_loss(s, 2)),
    ("inverse", lambda w, s, v: dy.inverse(w)),
    ("logdet", lambda w, s, v: dy.logdet(w)),
    ("circ_conv", lambda w, s, v: dy.circ_conv(v, v)),
]


@pytest.mark.parametrize("name,build", OPS, ids=[n for n, _ in OPS])
def test_parameters_stand_for_their_expression(name, build):
    m = dy.ParameterCollection()
    w, s, v = m.add_parameters((3, 3)), m.add_parameters(1), m.add_parameters(3)
    w.set_value(np.array([[2.0, 0.5, 0.1], [0.3, 1.5, 0.2], [0.0, 0.4, 1.0]]))
    s.set_value(np.array([0.7]))
    v.set_value(np.array([0.2, -0.4, 0.9]))
    dy.renew_cg()
    direct = build(w, s, v)
    through = build(dy.parameter(w), dy.parameter(s), dy.parameter(v))
    np.testing.assert_allclose(direct.npvalue(), through.npvalue(), rtol=1e-6)
    dy.squared_norm(direct).backward()
    assert np.any(w.grad_as_array() != 0) or np.any(s.grad_as_array() != 0) or np.any(v.grad_as_array() != 0)
