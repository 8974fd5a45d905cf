"""Finite-difference gradient checks, shared by every operation's tests.

`check_gradients(build, args)` builds `out = build(*inputs)` from numpy arrays, takes the scalar
loss sum(out * R) for a fixed random R (so every output value matters), and compares the gradient
that backward(full=True) gives for each input with central differences of the same loss computed in
float64 from forward values.
"""
import numpy as np

import dynet as dy


def _inputs(args):
    xs = []
    for a in args:
        arr, batched = (a if isinstance(a, tuple) else (a, False))
        xs.append(dy.inputTensor(np.asarray(arr, dtype=np.float64), batched=batched))
    return xs


def _loss_value(build, args, proj):
    dy.renew_cg()
    out = build(*_inputs(args))
    return float(np.sum(out.npvalue().astype(np.float64) * proj))


def check_gradients(build, args, eps=1e-3, rtol=2e-2, atol=2e-3, seed=0, max_checks=60):
    """args: numpy arrays, or (array, True) for a batched input (batch = last axis)."""
    rng = np.random.default_rng(seed)
    args = [(np.array(a[0] if isinstance(a, tuple) else a, dtype=np.float64),
             bool(a[1]) if isinstance(a, tuple) else False) for a in args]
    dy.renew_cg()
    xs = _inputs(args)
    out = build(*xs)
    value = out.npvalue()
    proj = rng.uniform(-1, 1, value.shape)
    loss = dy.sum_batches(dy.sum_elems(dy.cmult(out, dy.inputTensor(proj, batched=out.dim()[1] > 1))))
    loss.backward(full=True)
    analytic = [x.gradient() for x in xs]
    for i, (arr, batched) in enumerate(args):
        grad = np.asarray(analytic[i]).reshape(arr.shape)
        flat = arr.reshape(-1)
        picks = range(flat.size) if flat.size <= max_checks else rng.choice(flat.size, max_checks, replace=False)
        for j in picks:
            orig = flat[j]
            flat[j] = orig + eps
            up = _loss_value(build, args, proj)
            flat[j] = orig - eps
            down = _loss_value(build, args, proj)
            flat[j] = orig
            numeric = (up - down) / (2 * eps)
            got = grad.reshape(-1)[j]
            assert abs(got - numeric) <= atol + rtol * abs(numeric), (
                f"gradient of argument {i} at flat index {j}: backward gives {got}, "
                f"finite differences give {numeric}")
    return value
