"""The typed CPU nodes whose generic (array) implementation is an op class (losses_cpu, linalg_cpu,
weight_norm, cumsum/fold_rows/kmh_ngram) against that implementation, run on NumPy copies of the same inputs (pyop.generic_run): values and
gradients must agree for every row of the operation table that uses them, in every batch mode."""
import numpy as np
import pytest

import dynet as dy
from dynet.nodes.pyop import generic_run
from tests.optable import CASES

GENERIC_BACKED = {"binary_log_loss", "inverse", "logdet", "circ_conv", "circ_corr", "contract3d_1d",
                  "contract3d_1d_bias", "contract3d_1d_1d", "contract3d_1d_1d_bias", "sparsemax",
                  "constrained_softmax", "pairwise_rank_loss", "pairwise_rank_loss_m", "poisson_loss",
                  "hinge", "hinge_m", "hinge_batch", "hinge_dim", "hinge_dim_d1", "weight_norm",
                  "cumsum", "cumsum_d1", "fold_rows", "fold_rows_3", "kmh_ngram"}
ROWS = [(c, m) for c in CASES if c.name in GENERIC_BACKED for m in c.modes()]


def test_every_generic_backed_op_has_rows():
    assert {c.name for c, _ in ROWS} == GENERIC_BACKED


@pytest.mark.parametrize("case,mode", ROWS, ids=[f"{c.name}-{m}" for c, m in ROWS])
def test_typed_matches_generic(case, mode):
    rng = np.random.default_rng(3)
    args = case.make_inputs(rng, mode)
    dy.renew_cg()
    xs = [dy.inputTensor(np.asarray(a, dtype=np.float64), batched=b) for a, b in args]
    out = case.build(dy, *xs)
    value = out.npvalue()
    proj = rng.uniform(-1, 1, value.shape)
    loss = dy.sum_batches(dy.sum_elems(dy.cmult(out, dy.inputTensor(proj, batched=out.dim()[1] > 1))))
    loss.backward(full=True)
    generic_value, generic_grads, typed_grads = generic_run(out, proj)
    np.testing.assert_allclose(generic_value.reshape(value.shape, order="F"), value, rtol=1e-4, atol=1e-5)
    for generic, typed in zip(generic_grads, typed_grads):
        np.testing.assert_allclose(generic, typed, rtol=1e-4, atol=1e-5)
