"""Finite-difference gradient checks for every operation in tests/optable.py."""
import numpy as np
import pytest

import dynet as dy
from tests.gradcheck import check_gradients
from tests.optable import CASES

PARAMS = [(c, m) for c in CASES if c.gradcheck for m in c.modes()]


@pytest.mark.parametrize("case,mode", PARAMS, ids=[f"{c.name}-{m}" for c, m in PARAMS])
def test_gradient(case, mode):
    rng = np.random.default_rng(7)
    args = case.make_inputs(rng, mode)
    check_gradients(lambda *xs: case.build(dy, *xs), args, eps=case.eps, rtol=case.rtol, atol=case.atol)
