"""round, ceil and floor: the gradient_mode argument. The zero gradient is checked by finite
differences (tests/optable.py); the straight-through gradient is the identity's by design."""
import numpy as np
import pytest

import dynet as dy

X = np.array([[0.3, -1.6], [2.4, 0.9]])
VALUES = {"round": [[0, -2], [2, 1]], "ceil": [[1, -1], [3, 1]], "floor": [[0, -2], [2, 0]]}


@pytest.mark.parametrize("op", ["round", "ceil", "floor"])
@pytest.mark.parametrize("mode", ["straight_through_gradient", "zero_gradient"])
def test_gradient_modes(op, mode):
    w = np.array([[2.0, 3.0], [-1.0, 0.5]])
    x = dy.inputTensor(X)
    y = getattr(dy, op)(x, gradient_mode=mode)
    np.testing.assert_array_equal(y.npvalue(), VALUES[op])
    dy.sum_elems(dy.cmult(y, dy.inputTensor(w))).backward(full=True)
    np.testing.assert_array_equal(x.gradient(), w if mode == "straight_through_gradient" else 0 * w)


@pytest.mark.parametrize("op", ["round", "ceil", "floor"])
def test_unknown_mode_names_the_call(op):
    with pytest.raises(ValueError, match=f"{op}.*'bogus'"):
        getattr(dy, op)(dy.inputVector([1.0]), gradient_mode="bogus")
