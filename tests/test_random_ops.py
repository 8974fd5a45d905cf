"""Dropout variants: statistics of the masks, reproducibility under a seed, and gradients that
use the same mask as the forward pass."""
import numpy as np
import pytest

import dynet as dy
from dynet.core import config


def _z(n, k):
    """|observed fraction - p| allowed for n Bernoulli draws: k standard deviations."""
    return k * np.sqrt(0.25 / n)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_statistics(p):
    config.reseed(11)
    y = dy.dropout(dy.ones((100, 100)), p).npvalue()
    zeros = np.mean(y == 0)
    assert abs(zeros - p) < _z(y.size, 5)
    np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - p), rtol=1e-6)   # inverted dropout
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / y.size)      # unbiased
    assert abs(y.var() - p / (1 - p)) < 0.1 * p / (1 - p)


@pytest.mark.parametrize("d", [0, 1, 2])
def test_dropout_dim_shares_the_mask_along_d(d):
    config.reseed(12)
    shape = (40, 30, 20)
    y = dy.dropout_dim(dy.ones(shape, batch_size=2), d, 0.4).npvalue()
    assert y.shape == shape + (2,)
    # constant along axis d, so every slice along d is a copy of the first
    first = np.take(y, [0], axis=d)
    np.testing.assert_array_equal(y, np.broadcast_to(first, y.shape))
    mask = first.ravel()
    assert set(np.unique(mask)) <= {0.0, np.float64(np.float32(1 / 0.6))}
    assert abs(np.mean(mask == 0) - 0.4) < _z(mask.size, 5)
    # each batch element draws its own mask
    assert not np.array_equal(np.take(first, 0, axis=-1), np.take(first, 1, axis=-1))


def test_dropout_dim_rows_of_a_matrix():
    config.reseed(13)
    y = dy.dropout_dim(dy.ones((500, 4)), 1, 0.5).npvalue()
    rows_zero = np.all(y == 0, axis=1)
    rows_kept = np.all(y == 2.0, axis=1)
    assert np.all(rows_zero | rows_kept)
    assert abs(rows_zero.mean() - 0.5) < _z(500, 5)


def test_dropout_batch_drops_whole_elements():
    config.reseed(14)
    y = dy.dropout_batch(dy.ones((3, 2), batch_size=2000), 0.3).npvalue()
    per_elem = y.reshape(6, 2000)
    dropped = np.all(per_elem == 0, axis=0)
    kept = np.all(np.isclose(per_elem, 1 / 0.7), axis=0)
    assert np.all(dropped | kept)
    assert abs(dropped.mean() - 0.3) < _z(2000, 5)


def test_block_dropout_is_all_or_nothing():
    config.reseed(15)
    dropped = 0
    trials = 600
    for _ in range(trials):
        dy.renew_cg()
        y = dy.block_dropout(dy.ones((4, 3), batch_size=2), 0.25).npvalue()
        assert np.all(y == 0) or np.allclose(y, 1 / 0.75)
        dropped += bool(np.all(y == 0))
    assert abs(dropped / trials - 0.25) < _z(trials, 5)


@pytest.mark.parametrize("build", [
    lambda x: dy.dropout(x, 0.5),
    lambda x: dy.dropout_dim(x, 0, 0.5),
    lambda x: dy.dropout_dim(x, 1, 0.5),
    lambda x: dy.dropout_batch(x, 0.5),
    lambda x: dy.block_dropout(x, 0.5),
], ids=["dropout", "dropout_dim0", "dropout_dim1", "dropout_batch", "block_dropout"])
def test_gradient_uses_the_forward_mask(build):
    config.reseed(16)
    for _ in range(5):               # block_dropout: see both outcomes with high probability
        dy.renew_cg()
        a = np.random.default_rng(0).uniform(1, 2, (6, 5, 4))
        x = dy.inputTensor(a, batched=True)
        y = build(x)
        loss = dy.sum_batches(dy.sum_elems(y))
        loss.backward(full=True)
        np.testing.assert_allclose(x.gradient(), y.npvalue() / a, rtol=1e-5)


@pytest.mark.parametrize("build", [
    lambda: dy.dropout(dy.ones((50,)), 0.5),
    lambda: dy.dropout_dim(dy.ones((10, 10)), 1, 0.5),
    lambda: dy.dropout_batch(dy.ones((2,), batch_size=50), 0.5),
    lambda: dy.concatenate([dy.block_dropout(dy.ones((1,)), 0.5) for _ in range(40)]),
], ids=["dropout", "dropout_dim", "dropout_batch", "block_dropout"])
def test_same_seed_same_result(build):
    def run(seed):
        dy.reset_random_seed(seed)
        dy.renew_cg()
        return build().npvalue()
    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    config.reseed(5)                 # the config-level call reseeds the same generator
    dy.renew_cg()
    np.testing.assert_array_equal(build().npvalue(), a)


def test_mask_is_drawn_once_per_forward():
    config.reseed(17)
    y = dy.dropout(dy.ones((100,)), 0.5)
    z = y * 1.0
    first = y.npvalue()
    np.testing.assert_array_equal(z.npvalue(), first)   # incremental forward: not redrawn
    np.testing.assert_array_equal(y.npvalue(), first)


@pytest.mark.parametrize("op", ["dropout", "dropout_batch", "block_dropout"])
def test_probability_one_and_zero(op):
    f = getattr(dy, op)
    np.testing.assert_array_equal(f(dy.ones((3, 4)), 1.0).npvalue(), 0)
    np.testing.assert_array_equal(f(dy.ones((3, 4)), 0.0).npvalue(), 1)
