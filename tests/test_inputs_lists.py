"""Inputs made from flat Python lists (copied without NumPy) agree with the NumPy path, and bad
lists still raise errors naming the operation."""
import numpy as np
import pytest

import dynet as dy


@pytest.mark.parametrize("values", [[1.5, -2.0, 3.25], (1, 2, 3), [0.1], [True, 2.0], [2**60, 1.0],
                                    np.array([1.0, 2.0])])
def test_input_vector_matches_numpy(values):
    dy.renew_cg()
    expected = np.asarray(values, dtype=np.float32).astype(np.float64)
    np.testing.assert_array_equal(dy.inputVector(values).npvalue(), expected)
    np.testing.assert_array_equal(dy.inputTensor(values).npvalue(), expected)


def test_scalar_input_and_set_from_lists():
    dy.renew_cg()
    s = dy.scalarInput(3)
    assert s.value() == 3.0
    x = dy.vecInput(3)
    y = dy.sum_elems(x * 2.0)
    assert y.value() == 0.0
    x.set([1, 2.5, 4])
    assert y.value() == 15.0
    x.set(np.array([1.0, 1.0, 1.0]))
    assert y.value() == 6.0
    with pytest.raises(ValueError, match=r"set: 2 values for an input of dimension \{3\}"):
        x.set([1.0, 2.0])


@pytest.mark.parametrize("bad,error,words", [
    (["a", 1.0], TypeError, "inputVector"),
    ([[1.0, 2.0], [3.0, 4.0]], ValueError, "inputVector"),
    ([], ValueError, "dimension"),
])
def test_bad_lists_raise(bad, error, words):
    dy.renew_cg()
    with pytest.raises(error, match=words):
        dy.inputVector(bad)


def test_scalar_input_rejects_non_numbers():
    with pytest.raises(TypeError, match="scalarInput"):
        dy.scalarInput("x")
