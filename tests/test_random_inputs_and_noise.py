"""Random inputs (random_normal/uniform/bernoulli/gumbel) and noise: their distributions and
seeding; const_parameter/const_lookup: values without gradients. (These cannot be rows of
tests/optable.py: their values are random, or they are not built from inputs.)"""
import numpy as np
import pytest

import dynet as dy

N = 20000


@pytest.mark.parametrize("make,mean,std", [
    (lambda: dy.random_normal((N,), mean=1.0, stddev=2.0), 1.0, 2.0),
    (lambda: dy.random_uniform((N,), -2.0, 4.0), 1.0, 6 / np.sqrt(12)),
    (lambda: dy.random_bernoulli((N,), 0.3, scale=2.0), 0.6, 2 * np.sqrt(0.21)),
    (lambda: dy.random_gumbel((N,), mu=0.5, beta=2.0), 0.5 + 2.0 * 0.5772, 2.0 * np.pi / np.sqrt(6)),
    (lambda: dy.noise(dy.inputTensor(np.full(N, 3.0)), 0.5), 3.0, 0.5),
])
def test_distributions(make, mean, std):
    v = make().npvalue()
    assert v.shape == (N,)
    assert abs(v.mean() - mean) < 5 * std / np.sqrt(N)
    assert abs(v.std() / std - 1) < 0.05


@pytest.mark.parametrize("make,message", [
    (lambda t: dy.random_normal((3,), t), "random_normal: mean must be a number, got LookupParameters"),
    (lambda t: dy.random_normal((3,), 0.0, "x"), "random_normal: stddev must be a number, got str"),
    (lambda t: dy.random_uniform((3,), t, 1.0), "random_uniform: left must be a number"),
    (lambda t: dy.random_bernoulli((3,), 0.5, scale=[1]), "random_bernoulli: scale must be a number"),
    (lambda t: dy.random_gumbel((3,), mu=dy.inputVector([1.0])), "random_gumbel: mu must be a number"),
    (lambda t: dy.random_normal((3,), float("nan")), "random_normal: mean must be finite"),
])
def test_random_parameters_are_numbers_read_when_the_node_is_made(make, message):
    # a lookup table as the mean was read by numpy inside the forward pass: each of its rows an
    # expression whose value ran the pass again, until the C stack overflowed
    table = dy.ParameterCollection().add_lookup_parameters((10, 4))
    with pytest.raises((TypeError, ValueError), match=message):
        make(table)


def test_noise_gradient_is_the_identity_and_draws_are_seeded():
    x = dy.inputVector([1.0, 2.0, 3.0])
    y = dy.noise(x, 0.1)
    dy.sum_elems(dy.cmult(y, dy.inputVector([2.0, -1.0, 0.5]))).backward(full=True)
    np.testing.assert_allclose(x.gradient(), [2.0, -1.0, 0.5])
    draws = []
    for _ in range(2):
        dy.renew_cg()
        dy.reset_random_seed(9)
        draws.append(dy.random_gumbel((5,)).npvalue())
    np.testing.assert_array_equal(draws[0], draws[1])


def test_const_parameter_and_const_lookup_get_no_gradient():
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2), init=1.0)
    lp = m.add_lookup_parameters((3, 2), init=2.0)
    loss = dy.sum_elems(dy.const_parameter(W) * dy.const_lookup(lp, 1) + W * dy.lookup(lp, 2))
    assert loss.value() == pytest.approx(16.0)
    loss.backward()
    np.testing.assert_array_equal(W.grad_as_array(), np.full((2, 2), 2.0))   # only the updated use
    np.testing.assert_array_equal(lp.grad_as_array()[1], [0, 0])
    np.testing.assert_array_equal(lp.grad_as_array()[2], [2, 2])


@pytest.mark.parametrize("n", [1, 2, 7, 513, 100001])
def test_noise_is_gaussian_and_the_generic_path_draws_the_same(n):
    """noise's Box-Muller draws (kernels/rand.pyx): Gaussian by a Kolmogorov-Smirnov test (a fixed
    seed, so the test is deterministic), and kernels/generic.py's array version gives the same
    values from the same seed, odd counts included."""
    from scipy import stats
    from dynet.core import config
    from dynet.kernels import generic
    dy.renew_cg()
    config.reseed(21)
    typed = dy.noise(dy.inputTensor(np.zeros(n)), 2.0).npvalue().reshape(-1)
    config.reseed(21)
    arrays = generic.gaussian_noise(np, n, 2.0)
    np.testing.assert_allclose(typed, arrays, rtol=1e-5, atol=4e-6)
    if n > 1000:
        assert stats.kstest(typed / 2.0, "norm").pvalue > 1e-3
        assert abs(typed.std() / 2.0 - 1) < 0.01
