"""The Tensor of Expression.tensor_value(): as_numpy, argmax, topk, categorical_sample_log_prob
(DyNet 2.2's Tensor API), with its bad input."""
import numpy as np
import pytest

import dynet as dy

M = np.array([[0.1, 3, 0.2, 4], [1, 2, 0.5, -1], [7, 0, 0.3, 0.6]])


def test_as_numpy_is_the_value():
    t = dy.inputTensor(M).tensor_value()
    np.testing.assert_allclose(t.as_numpy(), M, rtol=1e-7)   # (float32 storage)
    b = dy.inputTensor(np.arange(24.0).reshape(3, 2, 4), batched=True).tensor_value()
    assert b.as_numpy().shape == (3, 2, 4)


def test_argmax_and_topk_along_each_dimension():
    t = dy.inputTensor(M).tensor_value()
    np.testing.assert_array_equal(t.argmax().as_numpy(), [[2, 0, 1, 0]])
    np.testing.assert_array_equal(t.argmax(1).as_numpy(), [[3], [1], [0]])
    assert t.argmax().as_numpy().dtype == np.int64
    values, idx = t.topk(1, 2)
    np.testing.assert_allclose(values.as_numpy(), [[4, 3], [2, 1], [7, 0.6]], rtol=1e-7)
    np.testing.assert_array_equal(idx.as_numpy(), [[3, 1], [1, 0], [0, 3]])
    values, idx = t.topk(num=2)
    np.testing.assert_array_equal(idx.as_numpy(), [[2, 0, 1, 0], [1, 1, 2, 2]])
    v = dy.inputVector([1, 5, 2]).tensor_value()
    np.testing.assert_array_equal(v.argmax().as_numpy(), [1])


def test_batched_tensors_keep_the_batch_axis():
    a = np.random.default_rng(0).permutation(24).reshape(3, 2, 4).astype(float)
    t = dy.inputTensor(a, batched=True).tensor_value()
    np.testing.assert_array_equal(t.argmax().as_numpy(), a.argmax(axis=0)[None])
    np.testing.assert_array_equal(t.argmax(1).as_numpy(), a.argmax(axis=1)[:, None])


def test_categorical_sample_follows_the_distribution():
    probs = np.array([[0.7, 0.1], [0.2, 0.3], [0.1, 0.6]])
    t = dy.log_softmax(dy.inputTensor(np.log(probs))).tensor_value()
    draws = np.concatenate([t.categorical_sample_log_prob().as_numpy() for _ in range(3000)])
    assert draws.shape == (3000, 2)
    for col in range(2):
        freq = np.bincount(draws[:, col], minlength=3) / 3000
        np.testing.assert_allclose(freq, probs[:, col], atol=0.045)     # 5 standard errors
    many = t.categorical_sample_log_prob(0, 5).as_numpy()
    assert many.shape == (5, 2) and many.min() >= 0 and many.max() <= 2


def test_categorical_sample_is_seeded():
    t = dy.inputTensor(np.zeros((50, 3))).tensor_value()
    dy.reset_random_seed(5)
    a = t.categorical_sample_log_prob().as_numpy()
    dy.reset_random_seed(5)
    np.testing.assert_array_equal(t.categorical_sample_log_prob().as_numpy(), a)


@pytest.mark.parametrize("call,error,words", [
    (lambda t: t.argmax(2), ValueError, ["argmax", "dim 2"]),
    (lambda t: t.topk(0, 4), ValueError, ["topk", "num", "4"]),
    (lambda t: t.topk(0, 0), ValueError, ["topk", "num", "0"]),
    (lambda t: t.argmax(0.5), TypeError, ["argmax", "dim", "0.5"]),
    (lambda t: t.categorical_sample_log_prob(-1), ValueError, ["categorical_sample_log_prob", "-1"]),
])
def test_bad_arguments(call, error, words):
    t = dy.inputTensor(M).tensor_value()
    with pytest.raises(error) as e:
        call(t)
    for w in words:
        assert w in str(e.value)
