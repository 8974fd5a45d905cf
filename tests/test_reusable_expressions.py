"""Reusable expressions (DyNet 2.1): inputTensor(..., reusable_expr=True).set(...),
lookup(...).set(index), pick(...).set_index(i), then value/forward with recalculate=True, as the
reference computes them; and their bad input."""
import numpy as np
import pytest

import dynet as dy


def test_input_set_recomputes():
    x = dy.inputTensor(np.array([1.0, 2, 3]), reusable_expr=True)
    y = dy.tanh(x * 2)
    np.testing.assert_allclose(y.npvalue(), np.tanh([2, 4, 6]), rtol=1e-6)
    x.set(np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(y.npvalue(recalculate=True), np.tanh([0.2, 0.4, 0.6]), rtol=1e-6)
    x.set([0.5, 0.5, 0.5])
    np.testing.assert_allclose(y.value(recalculate=True), np.tanh([1.0] * 3), rtol=1e-6)
    x.set([0.0, 1.0, 0.0])
    dy.forward([y], recalculate=True)
    np.testing.assert_allclose(y.npvalue(), np.tanh([0, 2, 0]), atol=1e-7)


def test_lookup_set_changes_the_row_and_its_gradient():
    m = dy.ParameterCollection()
    lp = m.add_lookup_parameters((5, 2))
    table = lp.as_array()
    e = dy.lookup(lp, 1)
    loss = dy.sum_elems(e * 3)
    np.testing.assert_allclose(e.npvalue(), table[1], rtol=1e-6)
    e.set(4)
    np.testing.assert_allclose(loss.value(recalculate=True), 3 * table[4].sum(), rtol=1e-5)
    loss.backward()
    np.testing.assert_allclose(lp.grad_as_array()[4], [3, 3])
    np.testing.assert_allclose(lp.grad_as_array()[1], [0, 0])
    b = dy.lookup_batch(lp, [0, 1])
    b.set(np.array([3, 2]))
    np.testing.assert_allclose(b.npvalue(recalculate=True), table[[3, 2]].T, rtol=1e-6)


def test_pick_set_index():
    x = dy.inputVector([1.0, 5.0, 9.0])
    p = dy.pick(x, 0)
    assert p.value() == 1.0
    p.set_index(2)
    assert p.value(recalculate=True) == 9.0
    p.set_index(np.int64(1))
    assert p.value(recalculate=True) == 5.0
    xb = dy.inputTensor(np.arange(6.0).reshape(3, 2), batched=True)
    pb = dy.pick_batch(xb, [0, 1])
    pb.set_index([2, 0])
    np.testing.assert_array_equal(pb.npvalue(recalculate=True).ravel(), [4, 1])   # columns are the batch


@pytest.mark.parametrize("call,error,words", [
    (lambda lp, x: dy.lookup(lp, 0).set(5), IndexError, ["set", "5", "5 rows"]),
    (lambda lp, x: dy.lookup(lp, 0).set(1.0), TypeError, ["set", "float"]),
    (lambda lp, x: dy.lookup_batch(lp, [0, 1]).set([1]), ValueError, ["set", "1 indices", "2 rows"]),
    (lambda lp, x: dy.pick(x, 0).set_index(3), IndexError, ["set_index", "3", "size 3"]),
    (lambda lp, x: dy.pick(x, 0).set_index(np.array([1, 2])), ValueError, ["set_index", "2 indices"]),
    (lambda lp, x: dy.pick(x, 0).set_index(np.array([1.0])), TypeError, ["set_index", "float64"]),
    (lambda lp, x: dy.pick(x, 0).set_index(1.5), TypeError, ["set_index", "1.5"]),
])
def test_bad_input(call, error, words):
    lp = dy.ParameterCollection().add_lookup_parameters((5, 2))
    x = dy.inputVector([1.0, 2.0, 3.0])
    with pytest.raises(error) as e:
        call(lp, x)
    for w in words:
        assert w in str(e.value), str(e.value)
