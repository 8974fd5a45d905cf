"""Index arguments take NumPy integer scalars and integer arrays wherever DyNet takes an int or a
list of ints; sizes given as floats are truncated as DyNet truncates them (hidden_dim=64.0,
reshape(x, (160, 310.0)), add_parameters((48.0, 32))); an index array of floats is an error naming
the call and the value."""
import numpy as np
import pytest

import dynet as dy

B = lambda: dy.inputTensor(np.arange(6.0).reshape(3, 2), batched=True)   # noqa: E731


@pytest.mark.parametrize("name,call,want", [
    ("pickneglogsoftmax_batch", lambda lp: dy.pickneglogsoftmax_batch(B(), np.array([0, 2])),
     lambda lp: dy.pickneglogsoftmax_batch(B(), [0, 2])),
    ("pick_batch", lambda lp: dy.pick_batch(B(), np.array([2, 1])), lambda lp: dy.pick_batch(B(), [2, 1])),
    ("pick", lambda lp: dy.pick(dy.inputVector([1, 2, 3]), np.int64(2)),
     lambda lp: dy.pick(dy.inputVector([1, 2, 3]), 2)),
    ("lookup", lambda lp: dy.lookup(lp, np.int32(3)), lambda lp: dy.lookup(lp, 3)),
    ("lookup_batch", lambda lp: dy.lookup_batch(lp, np.array([4, 0])), lambda lp: dy.lookup_batch(lp, [4, 0])),
    ("select_rows", lambda lp: dy.select_rows(dy.inputTensor(np.eye(3)), np.array([2, 0])),
     lambda lp: dy.select_rows(dy.inputTensor(np.eye(3)), [2, 0])),
    ("hinge_batch", lambda lp: dy.hinge_batch(B(), np.array([1, 0])), lambda lp: dy.hinge_batch(B(), [1, 0])),
    ("sum_dim", lambda lp: dy.sum_dim(dy.inputTensor(np.eye(3)), np.array([1])),
     lambda lp: dy.sum_dim(dy.inputTensor(np.eye(3)), [1])),
    ("one_hot", lambda lp: dy.one_hot(np.int64(4), np.array([1, 3])), lambda lp: dy.one_hot(4, [1, 3])),
    ("pick_batch_elems", lambda lp: dy.pick_batch_elems(B(), np.array([1])), lambda lp: dy.pick_batch_elems(B(), [1])),
])
def test_numpy_indices(name, call, want):
    lp = dy.ParameterCollection().add_lookup_parameters((5, 2))
    np.testing.assert_array_equal(call(lp).npvalue(), want(lp).npvalue())


@pytest.mark.parametrize("call,words", [
    (lambda lp: dy.pickneglogsoftmax_batch(B(), np.array([0.0, 2.0])), ["pickneglogsoftmax_batch", "0.0"]),
    (lambda lp: dy.pick_batch(B(), np.array([1.0, 0.0])), ["pick_batch", "1.0"]),
    (lambda lp: dy.lookup_batch(lp, np.array([1.0, 2.0])), ["lookup_batch", "float64"]),
    (lambda lp: dy.select_rows(dy.inputTensor(np.eye(3)), np.array([0.5])), ["select_rows", "0.5"]),
    (lambda lp: dy.pick(dy.inputVector([1, 2]), 1.0), ["pick", "1.0"]),
])
def test_float_indices_are_type_errors(call, words):
    lp = dy.ParameterCollection().add_lookup_parameters((5, 2))
    with pytest.raises(TypeError) as e:
        call(lp)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_float_sizes_are_truncated():
    m = dy.ParameterCollection()
    assert m.add_parameters((48.0, 32)).shape() == (48, 32)
    assert m.add_parameters((4.7, np.float32(3))).shape() == (4, 3)
    assert m.add_lookup_parameters((10.0, 3.0)).shape() == (10, 3)
    x = dy.inputTensor(np.arange(12.0))
    assert dy.reshape(x, (3, 4.0)).dim() == ((3, 4), 1)
    assert dy.reshape(x, np.array([6, 2])).dim() == ((6, 2), 1)
    assert dy.vecInput(4.0).dim() == ((4,), 1)
    assert dy.zeros((2.0, 3)).dim() == ((2, 3), 1)
    b = dy.VanillaLSTMBuilder(2.0, 10, 64.0, m)
    assert b.spec[:3] == (2, 10, 64) and b.get_parameters()[0][1].shape() == (256, 64)
    assert dy.SimpleRNNBuilder(1, np.int64(5), 6.9, m).get_parameters()[0][0].shape() == (6, 5)
    bi = dy.BiRNNBuilder(1.0, 5, 8.0, m, dy.GRUBuilder)
    assert bi.spec[:3] == (1, 5, 8) and bi.builder_layers[0][0].hidden_dim == 4


@pytest.mark.parametrize("call,error,words", [
    (lambda m: m.add_parameters((float("nan"), 3)), ValueError, ["finite", "nan"]),
    (lambda m: m.add_parameters(("4", 3)), TypeError, ["integers", "'4'"]),
    (lambda m: dy.GRUBuilder(1, 3, 0.5, m), ValueError, ["GRUBuilder", "hidden_dim", "0.5"]),
    (lambda m: dy.GRUBuilder(1, "3", 4, m), ValueError, ["GRUBuilder", "input_dim", "'3'"]),
])
def test_bad_sizes(call, error, words):
    with pytest.raises(error) as e:
        call(dy.ParameterCollection())
    for w in words:
        assert w in str(e.value), str(e.value)
