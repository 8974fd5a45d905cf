"""The vectorised exp kernel (kernels/cpu.pxd fast_exp) and what is built on it agree with float32
expf to a few ulps over float32's whole range: overflow to inf above ~88.72, gradual underflow
through the denormals to 0 below ~-103.97, not a clamp at +-88."""
import numpy as np
import pytest

import dynet as dy

MAX_ULPS = 3


def ulps(got, want):
    """Distance in float32 steps (denormals included; inf is one step above the largest float)."""
    got = np.asarray(got, dtype=np.float32)
    want = np.asarray(want, dtype=np.float32)
    assert not np.any(np.isnan(got) != np.isnan(want)), "NaN where the reference has none (or vice versa)"
    g = got.view(np.int32).astype(np.int64)
    w = want.view(np.int32).astype(np.int64)
    # map the sign-magnitude bit patterns to a monotone integer line
    g = np.where(g < 0, -(g & 0x7FFFFFFF), g)
    w = np.where(w < 0, -(w & 0x7FFFFFFF), w)
    d = np.abs(g - w)
    return np.where(np.isnan(want), 0, d)


def exp_ref(x32):
    """e^x correctly rounded to float32 (float64 is exact enough for that)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(x32.astype(np.float64)).astype(np.float32)


def run_unary(fn, x32):
    # one big batched node: the exp loop is the vectorised one
    e = fn(dy.inputTensor(x32.astype(np.float64).reshape(1, -1)))
    return e.npvalue().astype(np.float32).ravel()


EDGES = np.array([
    0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 10.0, -10.0, 80.0, 88.0, 88.5, 88.72, 88.7228, 88.72283,
    88.722839, 88.72284, 88.8, 89.0, 90.0, 100.0, 1000.0, 3.4e38, np.inf,
    -80.0, -87.0, -87.33654, -87.33655, -87.5, -88.0, -90.0, -100.0, -103.0, -103.27893, -103.97,
    -103.972, -103.9721, -103.97208, -104.0, -110.0, -1000.0, -3.4e38, -np.inf, np.nan,
], dtype=np.float32)


def full_range_inputs():
    dense = np.linspace(-110.0, 95.0, 400001).astype(np.float32)
    # every float32 in [88.5, 88.75] and in [-104, -103.5]: the edges of overflow and underflow
    top = np.arange(np.float32(88.5).view(np.int32), np.float32(88.75).view(np.int32) + 1,
                    dtype=np.int32).view(np.float32)
    bottom = np.arange(np.float32(103.5).view(np.int32), np.float32(104.0).view(np.int32) + 1,
                       dtype=np.int32).view(np.float32) * np.float32(-1)
    return np.concatenate([EDGES, dense, top, bottom])


def test_exp_matches_expf_over_the_whole_range():
    x = full_range_inputs()
    got, want = run_unary(dy.exp, x), exp_ref(x)
    d = ulps(got, want)
    worst = int(np.argmax(d))
    assert d.max() <= MAX_ULPS, f"exp({x[worst]!r}) = {got[worst]!r}, expf gives {want[worst]!r}"


@pytest.mark.parametrize("x,want", [
    (88.5, 2.7230877e38), (88.72, 3.3931764e38), (100.0, np.inf), (np.inf, np.inf), (89.0, np.inf),
    (-100.0, 3.7200759760208363e-44), (-103.0, 1.401298464324817e-45), (-104.0, 0.0),
    (-np.inf, 0.0),
])
def test_exp_edges(x, want):
    got = run_unary(dy.exp, np.array([x], dtype=np.float32))[0]
    ref = exp_ref(np.array([x], dtype=np.float32))[0]
    assert ulps(got, ref) <= MAX_ULPS
    if np.isinf(want) or want == 0:
        assert got == want, f"exp({x}) = {got}, expected {want}"
    else:
        assert abs(got - want) <= 1e-4 * want + 1.5e-45, f"exp({x}) = {got}, expected {want}"


def test_exp_of_nan_is_nan():
    assert np.isnan(run_unary(dy.exp, np.array([np.nan], dtype=np.float32))[0])


def test_logistic_matches_the_expf_formula():
    x = full_range_inputs()
    x = x[~np.isnan(x)]
    with np.errstate(over="ignore", under="ignore"):
        want = (np.float32(1) / (np.float32(1) + np.exp(-x.astype(np.float64)).astype(np.float32))).astype(np.float32)
    got = run_unary(dy.logistic, x)
    d = ulps(got, want)
    worst = int(np.argmax(d))
    assert d.max() <= MAX_ULPS + 1, f"logistic({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}"


@pytest.mark.parametrize("v", [
    [0.0, -100.0, -103.0, -50.0],        # exp(x - max) in the denormals
    [88.5, 0.0, -20.0],
    [1000.0, 999.0, 900.0],
    [-1000.0, -1001.0, -1100.0],
    [3.0, 1.0, -88.0, -87.5, -95.0],
])
def test_softmax_family_with_extreme_logits(v):
    x = np.array(v, dtype=np.float32)
    x64 = x.astype(np.float64)
    lse = np.max(x64) + np.log(np.sum(np.exp(x64 - np.max(x64))))
    with np.errstate(under="ignore"):
        want_sm = np.exp(x64 - lse).astype(np.float32)
    e = dy.inputTensor(x64)
    got_sm = dy.softmax(e).npvalue().astype(np.float32)
    assert ulps(got_sm, want_sm).max() <= MAX_ULPS + 2, (got_sm, want_sm)
    got_lsm = dy.log_softmax(e).npvalue()
    tol = 4 * float(np.spacing(np.float32(np.max(np.abs(x64)))))   # x - lse: x's own float32 step
    np.testing.assert_allclose(got_lsm, x64 - lse, rtol=1e-6, atol=tol)
    np.testing.assert_allclose(dy.logsumexp([dy.scalarInput(float(t)) for t in v]).value(), lse, rtol=1e-6)
    np.testing.assert_allclose(dy.pickneglogsoftmax(e, 0).value(), lse - x64[0], rtol=1e-5, atol=tol)


def test_lstm_gates_sigmoid_and_tanh_over_the_range():
    """The fused LSTM gates: sigmoid rows agree with 1/(1+expf(-x)) (relative precision kept far
    into the negative range), the tanh rows with tanh."""
    H = 64
    rng = np.random.default_rng(3)
    pre = np.concatenate([np.linspace(-105, 95, 4 * H - 8), [-100, -60, -30, -17, 0, 17, 30, 100]])
    pre = rng.permutation(pre).astype(np.float32)
    pc = dy.ParameterCollection()
    Wx = pc.parameters_from_numpy(np.eye(4 * H))
    Wh = pc.parameters_from_numpy(np.zeros((4 * H, H)))
    b = pc.parameters_from_numpy(np.zeros(4 * H))
    g = dy.vanilla_lstm_gates(dy.inputTensor(pre.astype(np.float64)), dy.inputTensor(np.zeros(H)), Wx, Wh, b)
    got = g.npvalue().astype(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        sig = (np.float32(1) / (np.float32(1) + np.exp(-pre.astype(np.float64)).astype(np.float32))).astype(np.float32)
    for rows in (slice(0, H), slice(2 * H, 3 * H)):      # input and output gates (no forget bias)
        d = ulps(got[rows], sig[rows])
        assert d.max() <= MAX_ULPS + 1, (pre[rows][np.argmax(d)], got[rows][np.argmax(d)], sig[rows][np.argmax(d)])
    np.testing.assert_allclose(got[3 * H:], np.tanh(pre[3 * H:].astype(np.float64)), atol=2e-6)


def test_erf_matches_erf_to_a_few_ulps():
    """erf has its own vectorised kernel (fast_erf: two polynomials and fast_exp)."""
    import math
    dense = np.linspace(-6.0, 6.0, 240001).astype(np.float32)
    edges = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-38, 0.874999, 0.875, 0.875001, 3.9499, 3.95,
                      3.9501, 10.0, 3.4e38, np.inf, -np.inf, np.nan], dtype=np.float32)
    x = np.concatenate([edges, dense, -dense])
    got = run_unary(dy.erf, x)
    want = np.array([math.erf(v) for v in x.astype(np.float64)], dtype=np.float32)
    d = ulps(got, want)
    worst = int(np.argmax(d))
    assert d[worst] <= MAX_ULPS + 1, f"erf({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}"
    assert got[0] == 0.0 and np.signbit(got[1]) and np.isnan(got[edges.size - 1])
    assert got[13] == 1.0 and got[14] == -1.0


def test_erf_gradient_is_its_derivative():
    x = np.linspace(-5.0, 5.0, 1001).astype(np.float32)
    dy.renew_cg()
    v = dy.inputTensor(x.astype(np.float64).reshape(1, -1), batched=False)
    e = dy.sum_elems(dy.erf(v))
    e.backward(full=True)
    want = 2 / np.sqrt(np.pi) * np.exp(-x.astype(np.float64) ** 2)
    assert np.allclose(v.gradient().ravel(), want, rtol=1e-5, atol=1e-12)
