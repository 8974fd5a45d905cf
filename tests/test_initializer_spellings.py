"""DyNet 2.1's init= spellings of add_parameters / add_lookup_parameters: numbers, strings with
scale=/mean=/std=, NumPy arrays, initializers; and their bad input. (The draws are compared with the
reference statistically in tests/oracle/test_initializers_oracle.py.)"""
import warnings

import numpy as np
import pytest

import dynet as dy


@pytest.fixture
def m():
    return dy.ParameterCollection()


@pytest.mark.parametrize("add", ["add_parameters", "add_lookup_parameters"])
def test_number_and_array(m, add):
    p = getattr(m, add)((4, 3), init=2.5)
    np.testing.assert_array_equal(p.as_array(), np.full((4, 3), 2.5))
    p = getattr(m, add)((4, 3), init=np.float32(-1))
    np.testing.assert_array_equal(p.as_array(), np.full((4, 3), -1.0))
    arr = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(getattr(m, add)((4, 3), init=arr).as_array(), arr)


@pytest.mark.parametrize("add", ["add_parameters", "add_lookup_parameters"])
def test_uniform_normal_he(m, add):
    a = getattr(m, add)((300, 200), init="uniform", scale=0.5).as_array()
    assert -0.5 <= a.min() < -0.49 and 0.49 < a.max() <= 0.5
    a = getattr(m, add)((300, 200), init="uniform").as_array()      # scale 1 by default
    assert -1 <= a.min() < -0.99 and 0.99 < a.max() <= 1
    a = getattr(m, add)((300, 200), init="normal", mean=1.0, std=0.5).as_array()
    assert abs(a.mean() - 1.0) < 0.01 and abs(a.std() - 0.5) < 0.01
    a = getattr(m, add)((300, 200), init="normal").as_array()      # (bounds: 5+ standard errors)
    assert abs(a.mean()) < 0.025 and abs(a.std() - 1.0) < 0.02
    a = getattr(m, add)((300, 50), init="he").as_array()            # N(0, 1/(2 * 50))
    assert abs(a.mean()) < 0.005 and abs(a.std() - 0.1) < 0.004


@pytest.mark.parametrize("add", ["add_parameters", "add_lookup_parameters"])
def test_identity_glorot_saxe(m, add):
    np.testing.assert_array_equal(getattr(m, add)((5, 5), init="identity").as_array(), np.eye(5))
    a = getattr(m, add)((40, 60), init="glorot").as_array()
    assert np.abs(a).max() < 0.5 and a.std() > 0.01
    q = getattr(m, add)((6, 6), init="saxe", scale=2.0).as_array()
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(6), atol=1e-5)


def test_glorot_takes_scale_but_not_as_a_gain(m):
    """As in DyNet (and the default init): scale= is accepted and leaves Glorot's range alone."""
    a = m.add_parameters((30, 30), init="glorot").as_array()
    b = m.add_parameters((30, 30), init="glorot", scale=3.0).as_array()
    bound = np.sqrt(6 / 60)
    assert 0.95 * bound < np.abs(a).max() <= bound and 0.95 * bound < np.abs(b).max() <= bound


@pytest.mark.parametrize("add", ["add_parameters", "add_lookup_parameters"])
@pytest.mark.parametrize("kwargs,error,words", [
    (dict(init="gaussian"), ValueError, ["init='gaussian'", "'uniform'", "'he'"]),
    (dict(init="normal", std=-1.0), ValueError, ["std", "-1.0"]),
    (dict(init=[1, 2]), TypeError, ["init", "list"]),
    (dict(init="identity"), ValueError, ["Identity", "square"]),
])
def test_bad_spellings_name_the_call_and_value(m, add, kwargs, error, words):
    with pytest.raises(error) as e:
        getattr(m, add)((4, 3), **kwargs)
    for w in words:
        assert w in str(e.value), str(e.value)
    if "init" in kwargs and isinstance(kwargs["init"], str) and kwargs["init"] != "identity":
        assert add in str(e.value)


@pytest.mark.parametrize("add", ["add_parameters", "add_lookup_parameters"])
def test_arguments_that_do_not_apply_are_ignored_as_in_dynet(m, add):
    # DyNet's defaults (scale=1, mean=0, std=1), passed along by code that wraps add_parameters
    # (dynn, dynet-att's layers), silently; other values with a warning naming them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = getattr(m, add)((4, 3), init=dy.ConstInitializer(3), scale=1.0, mean=0.0, std=1.0)
        getattr(m, add)((4, 3), init=None, scale=1.0, mean=0.0, std=1.0)
        getattr(m, add)((4, 3), init="uniform", std=1.0)
    assert np.all(p.as_array() == 3)
    for kwargs, words in [(dict(init="normal", scale=2.0), ["scale=2.0", "init='normal'", "mean=", "std="]),
                          (dict(init="he", mean=1.0), ["mean=1.0", "init='he'"]),
                          (dict(init=0.5, scale=2.0), ["scale=2.0", "float"]),
                          (dict(init=dy.ConstInitializer(1), mean=1.0), ["mean=1.0", "ConstInitializer"])]:
        with pytest.warns(UserWarning) as record:
            p = getattr(m, add)((4, 3), **kwargs)
        message = str(record[0].message)
        assert add in message and "ignored" in message and all(w in message for w in words), message
    assert np.all(p.as_array() == 1)


def test_len_of_lookup_parameters(m):
    assert len(m.add_lookup_parameters((7, 3))) == 7
    assert len(m.add_lookup_parameters((1, 2, 2))) == 1
