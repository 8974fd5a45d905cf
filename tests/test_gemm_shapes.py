"""Products large enough to take the typed GEMM paths (kernels/cpu.pxd gemm_nogil: the register-
blocked kernel for W X, the weight gradient dY X^T and the input gradient W^T dY, dot products for
W^T dY over a long inner dimension, OpenBLAS otherwise), checked against NumPy in float64 for
values and both gradients, at shapes whose edges are not multiples of the blocks: 32-row panels
(rows below m zero-padded), 8-column register blocks, 256-deep chunks of the inner dimension, A
read in place (at most 16 columns of C), 4 x 4 blocks of dot products and their tails."""
import os
import subprocess
import sys

import numpy as np
import pytest

import dynet as dy

SHAPES = [(130, 600, 70), (512, 784, 64), (97, 700, 5), (64, 1100, 33), (300, 256, 130), (70, 40, 400),
          (32, 32, 32), (70, 40, 20), (64, 64, 64), (32, 100, 2), (50, 32, 20),
          # W^T dY: 97 x 37 over 300 (a chunk of 256 and 44, 1 row below the last panel, 5 columns
          # after the last block); 40 x 9 over 600; W X in place (n <= 16) with 24 or 1 rows left
          (300, 97, 37), (600, 40, 9), (33, 64, 16), (600, 257, 16),
          # W^T dY as dot products (inner dimension over 512, few columns): 2050 deep (two chunks
          # of 2048 and a tail of 2, under 16), 67 x 13 (4 x 4 blocks with 3 and 1 left); 700 deep
          # with 16 columns; 3000 x 40 with 64
          (2050, 67, 13), (700, 200, 16), (3000, 40, 64),
          # W X with 5 columns: OpenBLAS below ~0.8 M multiply-adds (97 x 700 above), the register
          # kernel's partial 8-column block above
          (1100, 160, 5),
          # dY X^T over more than 512 columns (the register kernel while dW is small): 96 x 72 over
          # 700 (three chunks), 300 x 200 over 600
          (96, 72, 700), (300, 200, 600)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("batched", [False, True])
def test_product_value_and_gradients(m, k, n, batched):
    rng = np.random.default_rng(m * 7 + n)
    pc = dy.ParameterCollection()
    W = pc.add_parameters((m, k))
    W.set_value(rng.normal(size=(m, k)))
    x = rng.normal(size=(k, n)).astype(np.float32)
    G = rng.normal(size=(m, n)).astype(np.float32)
    dy.renew_cg()
    if batched:      # n columns as a batch of n vectors: the product folds the batch into columns
        X = dy.inputTensor(x, batched=True)
        g = dy.inputTensor(G, batched=True)
        loss = dy.sum_batches(dy.dot_product(dy.parameter(W) * X, g))
    else:
        X = dy.inputTensor(x)
        loss = dy.sum_elems(dy.cmult(dy.parameter(W) * X, dy.inputTensor(G)))
    loss.backward(full=True)
    w64, x64, g64 = W.as_array().astype(np.float64), x.astype(np.float64), G.astype(np.float64)
    want = (g64 * (w64 @ x64)).sum()
    assert abs(loss.value() - want) <= 1e-4 * np.abs(g64 * (w64 @ x64)).sum()
    dw, dx = g64 @ x64.T, w64.T @ g64
    got_dx = X.gradient().reshape(k, n)
    assert np.abs(W.grad_as_array() - dw).max() <= 1e-5 * np.abs(dw).max() * np.sqrt(n)
    assert np.abs(got_dx - dx).max() <= 1e-5 * np.abs(dx).max() * np.sqrt(m)


def test_product_accumulates_into_an_existing_gradient():
    """beta = 1: a weight used twice gets both gradients added (the second product adds into the
    first's result)."""
    rng = np.random.default_rng(3)
    pc = dy.ParameterCollection()
    W = pc.add_parameters((200, 400))
    x1, x2 = rng.normal(size=(400, 40)).astype(np.float32), rng.normal(size=(400, 40)).astype(np.float32)
    dy.renew_cg()
    w = dy.parameter(W)
    loss = dy.sum_elems(w * dy.inputTensor(x1)) + 2 * dy.sum_elems(w * dy.inputTensor(x2))
    loss.backward()
    ones = np.ones((200, 40))
    want = ones @ x1.T.astype(np.float64) + 2 * ones @ x2.T.astype(np.float64)
    assert np.abs(W.grad_as_array() - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("m", [1, 3, 7, 8, 9, 16, 31, 32, 33, 64])
@pytest.mark.parametrize("k", [1, 5, 8, 9, 16, 17, 40])
def test_matrix_vector_input_gradient(m, k):
    """dx = W^T dy of a small matrix-vector product (the eight-columns-at-a-time kernel with its
    transpose-add, the columns past the last eight, rows past the last eight), twice into one
    gradient (it accumulates)."""
    rng = np.random.default_rng(m * 41 + k)
    pc = dy.ParameterCollection()
    p = pc.add_parameters(m)
    p.set_value(rng.normal(size=m))
    W = rng.normal(size=(k, m)).astype(np.float32)
    c = rng.normal(size=k).astype(np.float32)
    dy.renew_cg()
    x = dy.parameter(p)
    y = dy.inputTensor(W) * x
    loss = dy.dot_product(y, dy.inputTensor(c)) + 3 * dy.dot_product(y, dy.inputTensor(c))
    loss.backward()
    want = 4 * W.astype(np.float64).T @ c.astype(np.float64)
    assert np.abs(p.grad_as_array() - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("m", [1, 7, 8, 9, 16, 31, 32, 33, 40, 64, 70])
@pytest.mark.parametrize("k", [1, 2, 3, 8, 33])
def test_small_matrix_vector_product(m, k):
    """y = W x below the BLAS threshold (rows 32 at a time, then 8, then one by one; an odd number
    of columns), its value and dW = dy x^T."""
    rng = np.random.default_rng(m * 43 + k)
    pc = dy.ParameterCollection()
    W = pc.add_parameters((m, k))
    W.set_value(rng.normal(size=(m, k)))
    x = rng.normal(size=k).astype(np.float32)
    c = rng.normal(size=m).astype(np.float32)
    dy.renew_cg()
    y = dy.parameter(W) * dy.inputTensor(x)
    loss = dy.dot_product(y, dy.inputTensor(c))
    loss.backward()
    w64 = W.as_array().astype(np.float64)
    want = w64 @ x.astype(np.float64)
    assert np.abs(y.npvalue().reshape(m) - want).max() <= 1e-5 * np.abs(want).max()
    dw = np.outer(c.astype(np.float64), x.astype(np.float64))
    assert np.abs(W.grad_as_array() - dw).max() <= 1e-5 * np.abs(dw).max()


def test_register_blocked_paths_where_openblas_is_narrower():
    """The shapes above with OPENBLAS_CORETYPE=Haswell, which (on a CPU with AVX-512, where the
    kernel is compiled in) sends every product from 32 x 32 on through the register-blocked kernel,
    A^T B included; elsewhere they run as above through OpenBLAS."""
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    if " avx512f" not in flags:
        pytest.skip("the register-blocked kernel is compiled for AVX-512 CPUs only")
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          os.path.abspath(__file__), "-k", "product_value or accumulates"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
