"""The fused CuPy kernels of dynet/kernels/gpu.py against the generic array code they replace.
They need CuPy and a GPU: elsewhere these tests skip (the generic code they fall back to is tested on
every CPU). On NumPy every kernel declines (returns False), which is checked here everywhere."""
import numpy as np
import pytest

from dynet.core import device
from dynet.kernels import gpu
from dynet.training import trainers as T

OK, WHY = device.gpu_available()
needs_gpu = pytest.mark.skipif(not OK, reason=f"needs CuPy and a GPU: {WHY}")


def test_kernels_decline_numpy():
    x = np.ones((3, 2), np.float32, order="F")
    assert not gpu.rule("adam", np, x, x.copy(), x.copy(), x.copy(), gs=1, b1=.9, b2=.99, eps=1e-8, lr_t=.1)
    assert not gpu.unary("tanh", np, x, x.copy())
    assert not gpu.unary_backward("tanh", np, x, x, x, x.copy())
    assert not gpu.softmax_columns(np, x, x.copy())
    assert not gpu.lstm_activate(np, np.ones((12, 2), np.float32), 3)
    assert not gpu.lstm_c(np, x, x, x, x, x.copy()) and not gpu.lstm_h(np, x, x, x.copy())
    assert gpu.logsumexp_columns(np, x) is None


CONSTS = {"sgd": dict(step=0.1), "momentum": dict(step=0.1, mom=0.9, inv_c=1.25),
          "adagrad": dict(gs=0.5, step=-0.1, eps=1e-8), "adadelta": dict(gs=0.5, eps=1e-6, rho=0.95, inv_c=1.0),
          "rmsprop": dict(gs=0.5, lr=0.01, eps=1e-8, rho=0.9, inv_c=1.0),
          "adam": dict(gs=0.5, b1=0.9, b2=0.999, eps=1e-8, lr_t=0.01),
          "amsgrad": dict(gs=0.5, b1=0.9, b2=0.999, eps=1e-8, lr_t=0.01)}


@needs_gpu
@pytest.mark.parametrize("name", gpu.RULES)
def test_fused_rules_match_numpy(name):
    import cupy as cp
    rng = np.random.default_rng(0)
    nm = gpu._RULES[name][1]
    w, g = rng.normal(size=1000).astype(np.float32), rng.normal(size=1000).astype(np.float32)
    st = [np.abs(rng.normal(size=1000)).astype(np.float32) for _ in range(nm)]
    dw, dst = cp.asarray(w), [cp.asarray(s) for s in st]
    assert gpu.rule(name, cp, cp.asarray(g), dw, *dst, **CONSTS[name])
    # the reference: the rule's own C code run on scalars through the NumPy formula of the trainer
    ref_w, ref_st = w.copy(), [s.copy() for s in st]
    numpy_rule(name, ref_w, g, ref_st, CONSTS[name])
    np.testing.assert_allclose(cp.asnumpy(dw), ref_w, rtol=1e-5, atol=1e-6)
    for a, b in zip(dst, ref_st):
        np.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-5, atol=1e-6)


def numpy_rule(name, w, g, st, c):
    f = np.float32
    if name == "sgd":
        w -= g * f(c["step"])
    elif name == "momentum":
        st[0] *= f(c["mom"])
        st[0] -= g * f(c["step"])
        w += st[0] * f(c["inv_c"])
    elif name == "adagrad":
        gg = g * f(c["gs"])
        st[0] += gg * gg
        w += gg / np.sqrt(st[0] + f(c["eps"])) * f(c["step"])
    elif name == "adadelta":
        gg, rho = g * f(c["gs"]), f(c["rho"])
        st[0] *= rho
        st[0] += gg * gg * (1 - rho)
        d = -gg * np.sqrt(st[1] + f(c["eps"])) / np.sqrt(st[0] + f(c["eps"]))
        st[1] *= rho
        st[1] += d * d * (1 - rho)
        w += d * f(c["inv_c"])
    elif name == "rmsprop":
        gg, rho = g * f(c["gs"]), f(c["rho"])
        st[0] *= rho
        st[0] += gg * gg * (1 - rho)
        w += f(c["lr"]) * (-gg / np.sqrt(st[0] + f(c["eps"]))) * f(c["inv_c"])
    else:
        T.adam_moments(np, g, st, c["gs"], c["b1"], c["b2"])
        v = st[1] if name == "adam" else np.maximum(st[2], st[1], out=st[2])
        w -= st[0] / (np.sqrt(v) + f(c["eps"])) * f(c["lr_t"])


@needs_gpu
@pytest.mark.parametrize("name", sorted(gpu.UNARY))
def test_fused_unary_maps_match_numpy(name):
    import cupy as cp
    x = np.linspace(0.1 if name in ("log", "sqrt") else -3, 3, 64).astype(np.float32).reshape(8, 8, order="F")
    fwd = {"tanh": np.tanh, "logistic": lambda v: 1 / (1 + np.exp(-v)), "rectify": lambda v: np.maximum(v, 0),
           "exp": np.exp, "log": np.log, "square": np.square, "sqrt": np.sqrt,
           "softsign": lambda v: v / (1 + np.abs(v)), "log_sigmoid": lambda v: -np.logaddexp(0, -v)}[name]
    y = cp.empty_like(cp.asarray(x))
    assert gpu.unary(name, cp, cp.asarray(x), y)
    np.testing.assert_allclose(cp.asnumpy(y), fwd(x), rtol=1e-5, atol=1e-6)
    dx = cp.zeros_like(y)
    assert gpu.unary_backward(name, cp, cp.asarray(x), y, cp.ones_like(y), dx)
    h = 1e-3
    numeric = (fwd(x.astype(np.float64) + h) - fwd(x.astype(np.float64) - h)) / (2 * h)
    if name == "rectify":
        numeric = (x > 0).astype(np.float64)
    np.testing.assert_allclose(cp.asnumpy(dx), numeric, rtol=2e-3, atol=2e-3)


@needs_gpu
@pytest.mark.parametrize("rows,cols", [(5, 3), (1000, 7), (1, 2)])
def test_fused_softmaxes(rows, cols):
    import cupy as cp
    x = np.random.default_rng(1).normal(0, 3, (rows, cols)).astype(np.float32, order="F")
    z = x - x.max(axis=0)
    ref = np.exp(z) / np.exp(z).sum(axis=0)
    y = cp.empty((rows, cols), cp.float32, order="F")
    assert gpu.softmax_columns(cp, cp.asarray(x, order="F"), y)
    np.testing.assert_allclose(cp.asnumpy(y), ref, rtol=1e-5, atol=1e-6)
    assert gpu.softmax_columns(cp, cp.asarray(x, order="F"), y, log=True)
    np.testing.assert_allclose(cp.asnumpy(y), np.log(ref), rtol=1e-4, atol=1e-5)
    lz = gpu.logsumexp_columns(cp, cp.asarray(x, order="F"))
    np.testing.assert_allclose(cp.asnumpy(lz)[0], np.log(np.exp(z).sum(axis=0)) + x.max(axis=0),
                               rtol=1e-5, atol=1e-5)


@needs_gpu
def test_fused_lstm_cell():
    import cupy as cp
    rng = np.random.default_rng(2)
    H, B = 5, 3
    pre = rng.normal(size=(4 * H, B)).astype(np.float32)          # C order, as a matmul leaves it
    def s(v):
        return 1 / (1 + np.exp(-v))
    gates = np.concatenate([s(pre[:3 * H]), np.tanh(pre[3 * H:])])
    d = cp.asarray(pre)
    assert gpu.lstm_activate(cp, d, H)
    np.testing.assert_allclose(cp.asnumpy(d), gates, rtol=1e-5, atol=1e-6)
    c_prev = rng.normal(size=(H, B)).astype(np.float32)
    c_ref = gates[:H] * gates[3 * H:] + c_prev * gates[H:2 * H]
    c = cp.empty((H, B), cp.float32, order="F")
    assert gpu.lstm_c(cp, d[:H], d[3 * H:], cp.asarray(c_prev), d[H:2 * H], c)
    np.testing.assert_allclose(cp.asnumpy(c), c_ref, rtol=1e-5, atol=1e-6)
    assert gpu.lstm_c(cp, d[:H], d[3 * H:], None, None, c)
    np.testing.assert_allclose(cp.asnumpy(c), gates[:H] * gates[3 * H:], rtol=1e-5, atol=1e-6)
    h = cp.empty((H, B), cp.float32, order="F")
    assert gpu.lstm_h(cp, d[2 * H:3 * H], cp.asarray(c_ref), h)
    np.testing.assert_allclose(cp.asnumpy(h), gates[2 * H:3 * H] * np.tanh(c_ref), rtol=1e-5, atol=1e-6)
