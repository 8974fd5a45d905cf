"""Linear algebra, norms, losses and reductions: wrong dimensions and bad arguments raise errors
naming the operation and the dimensions; value tests for the non-differentiable and gradient-flow
operations."""
import numpy as np
import pytest

import dynet as dy


def inp(*shape, batch=None):
    shape = shape + ((batch,) if batch else ())
    return dy.inputTensor(np.arange(1, np.prod(shape) + 1, dtype=float).reshape(shape) / 10,
                          batched=batch is not None)


BAD = [
    ("inverse", lambda: dy.inverse(inp(2, 3)), ["{2,3}"]),
    ("logdet", lambda: dy.logdet(inp(3)), ["{3}"]),
    ("trace_of_product", lambda: dy.trace_of_product(inp(2, 3), inp(3, 2)), ["{2,3}", "{3,2}"]),
    ("dot_product", lambda: dy.dot_product(inp(3), inp(4)), ["{3}", "{4}"]),
    ("dot_product", lambda: dy.dot_product(inp(3, batch=2), inp(3, batch=3)), ["{3}X2", "{3}X3"]),
    ("circ_conv", lambda: dy.circ_conv(inp(3), inp(4)), ["{3}", "{4}"]),
    ("circ_corr", lambda: dy.circ_corr(inp(3, 2), inp(3, 2)), ["{3,2}"]),
    ("contract3d_1d", lambda: dy.contract3d_1d(inp(2, 3, 4), inp(3)), ["{2,3,4}", "{3}"]),
    ("contract3d_1d_bias", lambda: dy.contract3d_1d_bias(inp(2, 3, 4), inp(4), inp(3, 2)), ["{3,2}"]),
    ("contract3d_1d_1d", lambda: dy.contract3d_1d_1d(inp(2, 3, 4), inp(4), inp(2)), ["{2}"]),
    ("contract3d_1d_1d_bias", lambda: dy.contract3d_1d_1d_bias(inp(2, 3, 4), inp(4), inp(3), inp(3)), ["{3}"]),
    ("l1_distance", lambda: dy.l1_distance(inp(3), inp(2)), ["{3}", "{2}"]),
    ("huber_distance", lambda: dy.huber_distance(inp(3), inp(3, 2)), ["{3}", "{3,2}"]),
    ("huber_distance", lambda: dy.huber_distance(inp(3), inp(3), c=0), ["c"]),
    ("layer_norm", lambda: dy.layer_norm(inp(4), inp(4), inp(3)), ["{4}", "{3}"]),
    ("weight_norm", lambda: dy.weight_norm(inp(3, 2), inp(2)), ["{2}"]),
    ("sparsemax", lambda: dy.sparsemax(inp(3, 2)), ["{3,2}"]),
    ("constrained_softmax", lambda: dy.constrained_softmax(inp(3), inp(4)), ["{3}", "{4}"]),
    ("pairwise_rank_loss", lambda: dy.pairwise_rank_loss(inp(1, 3), inp(1, 2)), ["{1,3}", "{1,2}"]),
    ("poisson_loss", lambda: dy.poisson_loss(inp(3), 2), ["{3}"]),
    ("poisson_loss", lambda: dy.poisson_loss(inp(1, batch=2), [1, 2, 3]), ["3 targets", "batch of 2"]),
    ("hinge", lambda: dy.hinge(inp(4), 4), ["4"]),
    ("hinge", lambda: dy.hinge(inp(4, 2), 1), ["{4,2}"]),
    ("hinge_batch", lambda: dy.hinge_batch(inp(4, batch=3), [0, 1]), ["2 targets", "batch of 3"]),
    ("hinge_dim", lambda: dy.hinge_dim(inp(3, 4), [0, 1, 2]), ["{3,4}", "4 targets"]),
    ("hinge_dim", lambda: dy.hinge_dim(inp(3, 4), [0, 1, 2], d=2), ["d=2"]),
    ("kmh_ngram", lambda: dy.kmh_ngram(inp(3, 2), 3), ["{3,2}", "n=3"]),
    ("fold_rows", lambda: dy.fold_rows(inp(5, 2), 2), ["{5,2}", "nrows=2"]),
    ("sum_dim", lambda: dy.sum_dim(inp(3, 2), [7]), ["7", "{3,2}"]),
    ("sum_dim", lambda: dy.sum_dim(inp(3, 2), [0, 0]), ["0"]),
    ("mean_dim", lambda: dy.mean_dim(inp(3, 2), [0], False, -1), ["n"]),
    ("moment_elems", lambda: dy.moment_elems(inp(3), 0), ["r"]),
    ("cumsum", lambda: dy.cumsum(inp(3, 2), 2), ["2", "{3,2}"]),
    ("logsumexp_dim", lambda: dy.logsumexp_dim(inp(3, 2), 2), ["2", "{3,2}"]),
    ("max_dim", lambda: dy.max_dim(inp(3, 2), 3), ["3", "{3,2}"]),
    ("min_dim", lambda: dy.min_dim(inp(3, 2), -1), ["-1", "{3,2}"]),
    ("average", lambda: dy.average([inp(3), inp(2)]), ["{3}", "{2}"]),
    ("emax", lambda: dy.emax([inp(3, batch=2), inp(3, batch=3)]), ["{3}X2", "{3}X3"]),
    ("logsumexp", lambda: dy.logsumexp([]), ["empty"]),
    ("argmax", lambda: dy.argmax(inp(3, 2)), ["{3,2}"]),
    ("argmax", lambda: dy.argmax(inp(3), "sideways"), ["sideways"]),
]


@pytest.mark.parametrize("op,call,words", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_raises_with_names(op, call, words):
    dy.renew_cg()
    with pytest.raises((ValueError, IndexError, TypeError)) as err:
        call().npvalue()
    msg = str(err.value)
    assert op in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_wrong_types_raise():
    dy.renew_cg()
    with pytest.raises(TypeError, match="sum_dim"):
        dy.sum_dim(inp(3), "rows")
    with pytest.raises(TypeError, match="hinge"):
        dy.hinge(inp(3), 1.5)
    with pytest.raises(TypeError, match="dot_product"):
        dy.dot_product(inp(3), [1, 2, 3])


def test_singular_matrices_raise():
    dy.renew_cg()
    with pytest.raises(ValueError, match="inverse: the matrix is singular"):
        dy.inverse(dy.inputTensor(np.ones((2, 2)))).npvalue()
    dy.renew_cg()
    with pytest.raises(ValueError, match="logdet: the matrix is singular"):
        dy.logdet(dy.inputTensor(np.ones((2, 2)))).npvalue()


def test_argmax_values():
    dy.renew_cg()
    x = dy.inputTensor(np.array([[0.1, 0.9], [0.7, 0.2], [0.3, 0.5]]), batched=True)   # {3}X2
    np.testing.assert_array_equal(dy.argmax(x).npvalue(), [[0, 1], [1, 0], [0, 0]])
    x = dy.inputTensor([0.5, 2.0, 2.0, -1.0])
    np.testing.assert_array_equal(dy.argmax(x).npvalue(), [0, 1, 0, 0])       # first of a tie


def test_gradient_flow():
    for op, expect in [(dy.nobackprop, 0.0), (dy.flip_gradient, -1.0),
                       (lambda e: dy.scale_gradient(e, lambd=0.25), 0.25),
                       (lambda e: dy.argmax(e), 0.0),
                       (lambda e: dy.argmax(e, gradient_mode="straight_through_gradient"), 1.0)]:
        m = dy.ParameterCollection()
        p = m.add_parameters((3,), init=dy.ConstInitializer(2.0))
        dy.renew_cg()
        x = dy.parameter(p)
        y = op(x)
        loss = dy.sum_elems(dy.cmult(y, dy.inputTensor([1.0, 2.0, 3.0])))
        loss.backward()
        np.testing.assert_allclose(p.grad_as_array(), expect * np.array([1.0, 2.0, 3.0]))


def test_reduction_values():
    x = np.arange(24, dtype=float).reshape(2, 3, 4) / 7
    dy.renew_cg()
    e = dy.inputTensor(x)
    np.testing.assert_allclose(dy.sum_dim(e, [0, 2]).npvalue(), x.sum(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(dy.mean_dim(e, [1]).npvalue(), x.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(dy.std_dim(e, [2]).npvalue(), x.std(axis=2), rtol=1e-5)
    np.testing.assert_allclose(dy.moment_dim(e, [0, 1], 3).npvalue(), (x ** 3).mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(dy.max_dim(e, 2).npvalue(), x.max(axis=2))
    np.testing.assert_allclose(dy.min_dim(e, 1).npvalue(), x.min(axis=1))
    np.testing.assert_allclose(dy.logsumexp_dim(e, 1).npvalue(), np.log(np.exp(x).sum(axis=1)), rtol=1e-5)
    np.testing.assert_allclose(dy.cumsum(e, 2).npvalue(), np.cumsum(x, axis=2), rtol=1e-6)
    assert dy.mean_elems(e).dim() == ((1,), 1)
    # masked mean and std: n counts only the real entries, the padding zeros drop out
    pad = dy.inputTensor(np.array([1.0, 2.0, 4.0, 0.0, 0.0]))
    assert abs(dy.mean_dim(pad, [0], n=3).value() - 7 / 3) < 1e-6
    assert abs(dy.std_dim(pad, [0], n=3).value() - np.std([1, 2, 4])) < 1e-5
    # batches: over the batch only, or the batch together with dimensions
    xb = dy.inputTensor(np.arange(12, dtype=float).reshape(3, 4), batched=True)   # {3}X4
    np.testing.assert_allclose(dy.mean_batches(xb).npvalue(), np.arange(12).reshape(3, 4).mean(1))
    assert dy.sum_dim(xb, [0], b=True).value() == 66
    assert dy.sum_dim(xb, [0]).dim() == ((1,), 4)


REDUCTIONS = {   # name: (ours(x, dims, b), NumPy over the axes (axes=(): none))
    "sum": (lambda x, d, b: dy.sum_dim(x, d, b), lambda a, ax: a.sum(axis=ax)),
    "mean": (lambda x, d, b: dy.mean_dim(x, d, b), lambda a, ax: a.mean(axis=ax)),
    "moment3": (lambda x, d, b: dy.moment_dim(x, d, 3, b), lambda a, ax: (a ** 3).mean(axis=ax)),
    "moment17": (lambda x, d, b: dy.moment_dim(x, d, 17, b), lambda a, ax: (a ** 17).mean(axis=ax)),
    "std": (lambda x, d, b: dy.std_dim(x, d, b), lambda a, ax: a.std(axis=ax)),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("shape", [(3, 1, 4, 2), (300, 2), (2, 300)])
def test_reductions_over_every_set_of_dimensions(name, shape):
    """Every subset of the dimensions, with and without the batch: a size-1 dimension, reduced runs
    and kept runs in any order, blocks longer than the kernel's chunk (300 values); values and the
    gradients of sum(out * R) against NumPy (R projects the output so every value counts)."""
    ours, ref = REDUCTIONS[name]
    rng = np.random.default_rng(4)
    bd = 3
    x = rng.uniform(-1, 1, shape + (bd,))
    nd = len(shape)
    for mask in range(1 << nd):
        dims = [k for k in range(nd) if mask >> k & 1]
        for b in (False, True):
            axes = tuple(dims) + ((nd,) if b else ())
            want = ref(x, axes)
            dy.renew_cg()
            e = dy.inputTensor(x, batched=True)
            out = ours(e, dims, b)
            got = out.npvalue().reshape(want.shape, order="F")
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{name} {dims} b={b}")
            proj = rng.uniform(-1, 1, want.shape)
            pe = dy.inputTensor(proj.reshape(out.npvalue().shape, order="F"), batched=not b)
            dy.sum_batches(dy.sum_elems(dy.cmult(out, pe))).backward(full=True)
            # d/dx of sum(out * R): central differences of the NumPy reduction in float64
            g = e.gradient().reshape(x.shape, order="F")
            for flat in rng.choice(x.size, 4, replace=False):
                i = np.unravel_index(flat, x.shape)
                up, down = x.copy(), x.copy()
                up[i] += 1e-4
                down[i] -= 1e-4
                fd = (np.sum(proj * ref(up, axes)) - np.sum(proj * ref(down, axes))) / 2e-4
                assert abs(g[i] - fd) <= 1e-3 + 1e-2 * abs(fd), (name, dims, b, i, g[i], fd)


@pytest.mark.parametrize("op,ref", [("max_dim", np.max), ("min_dim", np.min),
                                    ("logsumexp_dim", lambda a, axis: np.log(np.exp(a).sum(axis=axis)))])
@pytest.mark.parametrize("shape", [(3, 1, 4), (300, 2), (2, 300)])
def test_single_dimension_reductions_over_each_dimension(op, ref, shape):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, shape + (2,))
    for d in range(len(shape)):
        dy.renew_cg()
        e = dy.inputTensor(x, batched=True)
        out = getattr(dy, op)(e, d)
        want = ref(x, axis=d)
        np.testing.assert_allclose(out.npvalue().reshape(want.shape, order="F"), want, rtol=1e-5,
                                   atol=1e-6, err_msg=f"{op} d={d}")
        dy.sum_batches(dy.sum_elems(out)).backward(full=True)
        g = e.gradient().reshape(x.shape, order="F")
        if op == "logsumexp_dim":
            expect = np.exp(x - np.expand_dims(np.log(np.exp(x).sum(axis=d)), d))
        else:   # one value of each reduced line gets the gradient: the extreme one
            expect = (x == np.expand_dims(want, d)).astype(float)
        np.testing.assert_allclose(g, expect, rtol=1e-5, atol=1e-6, err_msg=f"{op} d={d}")


def test_binary_log_loss_logs_are_accurate_over_the_whole_interval():
    """binary_log_loss's vectorised ln x and ln(1 - x) (kernels/cpu.pxd fast_log, fast_log1p)
    against float64 at the clipped float32 x: near 0, near 1 (where 1 - x rounds), and between;
    the gradient with respect to the targets is ln(1 - x) - ln x."""
    rng = np.random.default_rng(6)
    x = np.float32(np.concatenate([np.geomspace(1e-9, 0.5, 3000), 1 - np.geomspace(1e-8, 0.5, 3000),
                                   rng.uniform(0, 1, 3000)]))
    xc = np.clip(x, np.float32(1e-7), np.float32(1 - 1e-7)).astype(np.float64)
    for target, want in ((1.0, -np.log(xc)), (0.0, -np.log1p(-xc))):
        dy.renew_cg()
        y = dy.inputTensor(np.full((1, x.size), target), batched=True)
        loss = dy.binary_log_loss(dy.inputTensor(x.reshape(1, -1).astype(np.float64), batched=True), y)
        np.testing.assert_allclose(loss.npvalue().ravel(), want, rtol=5e-7)
        dy.sum_batches(loss).backward(full=True)
        np.testing.assert_allclose(y.gradient().ravel(), np.log1p(-xc) - np.log(xc), rtol=5e-7, atol=2e-7)


@pytest.mark.parametrize("n", [1, 7, 16, 83, 256])
def test_circular_convolution_and_correlation_against_numpy(n):
    """Every length path of the sliding-window kernel (blocks of 64 and 16 outputs, single outputs
    after them): values and both gradients of sum(out * R) against the definitions in float64."""
    rng = np.random.default_rng(n)
    u, v, proj = rng.uniform(-1, 1, (3, n))
    k = np.arange(n)
    idx = (k[None, :] - k[:, None]) % n          # [i, k] -> (k - i) mod n
    conv = (u[:, None] * v[idx]).sum(0)
    corr = (u[:, None] * v[(k[None, :] + k[:, None]) % n]).sum(0)
    # d/du_i of sum_k R_k out_k and d/dv_j, from the same sums
    grads = {"circ_conv": ((proj[None, :] * v[idx]).sum(1),
                           np.array([(proj * u[(k - j) % n]).sum() for j in range(n)])),
             "circ_corr": ((proj[None, :] * v[(k[None, :] + k[:, None]) % n]).sum(1),
                           np.array([(proj * u[(j - k) % n]).sum() for j in range(n)]))}
    for name, want in (("circ_conv", conv), ("circ_corr", corr)):
        dy.renew_cg()
        eu, ev = dy.inputTensor(u), dy.inputTensor(v)
        out = getattr(dy, name)(eu, ev)
        np.testing.assert_allclose(out.npvalue().reshape(-1), want, rtol=1e-5, atol=1e-5 * n, err_msg=name)
        dy.sum_elems(dy.cmult(out, dy.inputTensor(proj))).backward(full=True)
        np.testing.assert_allclose(eu.gradient().reshape(-1), grads[name][0], rtol=1e-5, atol=1e-5 * n)
        np.testing.assert_allclose(ev.gradient().reshape(-1), grads[name][1], rtol=1e-5, atol=1e-5 * n)


def test_loss_values():
    dy.renew_cg()
    x = dy.inputTensor([0.5, 1.0, -0.2, 0.9])
    assert abs(dy.hinge(x, 1).value() - (0.5 + 0.0 + 0.9)) < 1e-6
    assert abs(dy.poisson_loss(dy.inputTensor([0.3]), 2).value() - (np.exp(0.3) - 0.6 + np.log(2))) < 1e-5
    p = dy.sparsemax(dy.inputTensor([2.0, 1.5, -1.0])).npvalue()
    np.testing.assert_allclose(p, [0.75, 0.25, 0.0], rtol=1e-6)
    c = dy.constrained_softmax(dy.inputTensor([3.0, 0.0, 0.0]), dy.inputTensor([0.5, 1.0, 1.0])).npvalue()
    np.testing.assert_allclose(c, [0.5, 0.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(dy.pairwise_rank_loss(dy.inputTensor([[2.0, 0.0]]), dy.inputTensor([[0.5, 0.5]])).npvalue(),
                               [[0.0, 1.5]])
