"""Size-dependent kernel paths (small typed loops, the tall-skinny GEMM, BLAS) give the same products
as NumPy, in forward and backward, batched and not."""
import numpy as np
import pytest

import dynet as dy


@pytest.mark.parametrize("m,k,n,batched", [
    (300, 256, 5, False),     # tall-skinny kernel, with m % 32 rows left over
    (1000, 128, 16, True),    # tall-skinny over the batch columns
    (517, 130, 13, True),     # column count not a multiple of 8
    (64, 1024, 2, False),
    (32, 32, 1, False),       # small matrix-vector loop
    (40, 50, 70, False),      # BLAS
])
def test_matmul_paths_match_numpy(m, k, n, batched):
    rng = np.random.default_rng(m + k + n)
    A = rng.standard_normal((m, k))
    X = rng.standard_normal((k, n, 3) if batched else (k, n))
    B = rng.standard_normal(m)
    pc = dy.ParameterCollection()
    W = pc.parameters_from_numpy(A)
    b = pc.parameters_from_numpy(B)
    x = dy.inputTensor(X, batched=batched)
    y = W * x
    z = dy.affine_transform([b, W, x])
    want = np.einsum("mk,kn...->mn...", A, X)
    np.testing.assert_allclose(y.npvalue().reshape(want.shape), want, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(z.npvalue().reshape(want.shape),
                               want + B.reshape((m,) + (1,) * (want.ndim - 1)), rtol=1e-4, atol=1e-3)
    # backward: d sum(R * y) / dW = R X^T summed over the batch; / dx = W^T R
    R = rng.standard_normal(want.shape)
    loss = dy.sum_batches(dy.sum_elems(dy.cmult(y, dy.inputTensor(R, batched=batched))))
    loss.backward(full=True)
    Rc, Xc = R.reshape(m, -1, order="F"), X.reshape(k, -1, order="F")   # batch as more columns
    np.testing.assert_allclose(W.grad_as_array(), Rc @ Xc.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(x.gradient()).reshape(X.shape), np.einsum("mk,mn...->kn...", A, R),
                               rtol=1e-4, atol=1e-3)


def test_parameter_used_in_many_products_gets_one_summed_gradient():
    """The deferred parameter gradient (one GEMM per parameter at the end of backward) equals the
    sum of the per-product gradients."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((70, 40))
    hs = [rng.standard_normal((40, 4)) for _ in range(6)]
    pc = dy.ParameterCollection()
    W = pc.parameters_from_numpy(A)
    loss = dy.esum([dy.sum_batches(dy.sum_elems(dy.tanh(W * dy.inputTensor(h, batched=True)))) for h in hs])
    loss.backward()
    want = sum((1 - np.tanh(np.einsum("mk,kb->mb", A, h)) ** 2) @ h.T for h in hs)
    np.testing.assert_allclose(W.grad_as_array(), want, rtol=1e-4, atol=1e-4)


def test_deferred_input_gradients_through_a_recurrence():
    """x_{t+1} = tanh(W x_t + b): each product's input gradient is completed (for all pending
    products at once) before the node below uses it; W's gradient is summed over the steps."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((6, 6)) * 0.5
    x0 = rng.standard_normal(6)
    B = rng.standard_normal(6) * 0.1
    pc = dy.ParameterCollection()
    W, b, X = pc.parameters_from_numpy(A), pc.parameters_from_numpy(B), pc.parameters_from_numpy(x0)
    x = X * 1.0
    for _ in range(5):
        x = dy.tanh(W * x + b)
    dy.squared_norm(x).backward()
    # the same by hand
    xs = [x0]
    for _ in range(5):
        xs.append(np.tanh(A @ xs[-1] + B))
    g = 2 * xs[-1]
    gW, gb = np.zeros_like(A), np.zeros_like(B)
    for t in range(5, 0, -1):
        pre = g * (1 - xs[t] ** 2)
        gW += np.outer(pre, xs[t - 1])
        gb += pre
        g = A.T @ pre
    np.testing.assert_allclose(W.grad_as_array(), gW, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.grad_as_array(), gb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(X.grad_as_array(), g, rtol=1e-4, atol=1e-5)
