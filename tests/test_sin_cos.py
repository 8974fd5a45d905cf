"""The vectorised sin and cos kernel (kernels/cpu.pxd fast_sin_shifted: a three-part reduction by
pi/2 and two polynomials, for |x| <= 6000; libm beyond, for the whole map) against float64, values
and derivatives, over the fast range, at its edge and past it."""
import numpy as np
import pytest

import dynet as dy


def values_and_grads(x):
    pc = dy.ParameterCollection()
    w = pc.add_parameters(len(x))
    w.set_value(x)
    dy.renew_cg()
    e = dy.parameter(w)
    s, c = dy.sin(e), dy.cos(e)
    (dy.sum_elems(s) + 3 * dy.sum_elems(c)).backward()
    return s.npvalue(), c.npvalue(), w.grad_as_array()


@pytest.mark.parametrize("span", [1.0, 10.0, 1000.0, 5999.0])
def test_fast_range(span):
    x = np.linspace(-span, span, 200_001).astype(np.float32)
    s, c, g = values_and_grads(x)
    x64 = x.astype(np.float64)
    for got, want in ((s, np.sin(x64)), (c, np.cos(x64))):
        err = np.abs(got - want)
        assert err.max() <= 1.2e-7
        big = np.abs(want) > 1e-3       # away from the zeros: a relative error of about an ulp
        assert (err[big] / np.spacing(np.abs(want[big]).astype(np.float32))).max() <= 2.0
    np.testing.assert_allclose(g, np.cos(x64) - 3 * np.sin(x64), rtol=0, atol=6e-7)


@pytest.mark.parametrize("edge", [5999.99, 6000.0, 6000.5, 1e5, 3e7])
def test_past_the_fast_range_uses_libm(edge):
    """A map with one value past the fast range goes to libm whole: still accurate there."""
    x = np.array([0.5, -2.0, edge, -edge], dtype=np.float32)
    s, c, _ = values_and_grads(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(s, np.sin(x64), rtol=0, atol=2e-7)
    np.testing.assert_allclose(c, np.cos(x64), rtol=0, atol=2e-7)


def test_special_values():
    x = np.array([0.0, 1e-30, -1e-30, np.pi / 2, -np.pi, np.nan], dtype=np.float32)
    dy.renew_cg()
    e = dy.inputTensor(x)
    s, c = dy.sin(e).npvalue(), dy.cos(e).npvalue()
    assert s[0] == 0 and c[0] == 1
    assert s[1] == np.float32(1e-30) and s[2] == np.float32(-1e-30)
    assert abs(s[3] - 1) <= 6e-8 and abs(c[4] + 1) <= 6e-8
    assert np.isnan(s[5]) and np.isnan(c[5])
    with np.errstate(invalid="ignore"):
        inf = dy.sin(dy.inputTensor(np.array([np.inf, 1.0], dtype=np.float32))).npvalue()
    assert np.isnan(inf[0]) and abs(inf[1] - np.sin(1.0)) <= 6e-8
