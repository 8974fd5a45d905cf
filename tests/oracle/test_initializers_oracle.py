"""init= spellings against the reference: the same kind of draw (checked by its mean, spread and
range) for several shapes, for parameters and lookup parameters; exact values for constants,
arrays and the identity. The reference does not know 'saxe' ("not supported yet" in its docs),
so that one is checked in tests/test_initializer_spellings.py only."""
import numpy as np
import pytest

import dynet as dy

SHAPES = [(200, 300), (300, 50), (60, 8, 50)]     # large enough for 5% on the spread to be 5 SEs
DRAWS = [("uniform", dict(scale=0.3)), ("uniform", {}), ("normal", dict(mean=0.5, std=2.0)),
         ("normal", {}), ("he", {}), ("glorot", {}), ("glorot", dict(scale=3.0)), (None, {})]


def _summary(a):
    a = np.asarray(a, dtype=np.float64)
    return np.array([a.mean(), a.std(), a.min(), a.max()])


@pytest.mark.parametrize("add", ["add_parameters", "add_lookup_parameters"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("init,kw", DRAWS, ids=[f"{i}-{'-'.join(k)}" for i, k in DRAWS])
def test_draws_match_the_reference(ref, add, shape, init, kw):
    ours = _summary(getattr(dy.ParameterCollection(), add)(shape, init=init, **kw).as_array())
    theirs = _summary(getattr(ref.ParameterCollection(), add)(shape, init=init, **kw).as_array())
    spread = theirs[1]
    n = np.prod(shape)
    # means within 5 standard errors, spreads within 5%, ranges within 10% of the spread
    assert abs(ours[0] - theirs[0]) < 5 * spread * np.sqrt(2.0 / n), (ours, theirs)
    assert abs(ours[1] / theirs[1] - 1) < 0.05, (ours, theirs)
    if init in ("uniform", "glorot", None):
        np.testing.assert_allclose(ours[2:], theirs[2:], atol=0.1 * spread)


@pytest.mark.parametrize("add", ["add_parameters", "add_lookup_parameters"])
def test_exact_spellings_match_the_reference(ref, add):
    arr = np.arange(20.0).reshape(5, 4) / 7
    for init in (3, -0.25, arr):
        ours = getattr(dy.ParameterCollection(), add)((5, 4), init=init).as_array()
        theirs = getattr(ref.ParameterCollection(), add)((5, 4), init=init).as_array()
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    ours = getattr(dy.ParameterCollection(), add)((4, 4), init="identity").as_array()
    theirs = getattr(ref.ParameterCollection(), add)((4, 4), init="identity").as_array()
    np.testing.assert_array_equal(ours, theirs)


def test_len_of_lookup_parameters_matches(ref):
    assert len(dy.ParameterCollection().add_lookup_parameters((9, 2))) == \
        len(ref.ParameterCollection().add_lookup_parameters((9, 2))) == 9


@pytest.mark.parametrize("add,dim,shape", [("add_parameters", (4, 3), (2, 3)), ("add_parameters", 5, (3,)),
                                           ("add_parameters", (2, 3), (3, 2, 2)),
                                           ("add_lookup_parameters", (4, 3), (2, 3)),
                                           ("add_lookup_parameters", (10, 3, 2), (6, 4))])
def test_an_array_init_gives_its_own_shape(ref, add, dim, shape):
    # DyNet's Tree-LSTM example: a table sized by the vocabulary, initialised from fewer GloVe rows
    values = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7
    ours = getattr(dy.ParameterCollection(), add)(dim, init=values)
    theirs = getattr(ref.ParameterCollection(), add)(dim, init=values)
    assert tuple(ours.shape()) == tuple(theirs.shape()) == shape
    np.testing.assert_allclose(ours.as_array(), theirs.as_array(), rtol=1e-6)
    np.testing.assert_allclose(ours.as_array(), values, rtol=1e-6)
