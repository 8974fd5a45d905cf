"""API details that a table row cannot express: multi-expression helpers (forward, npvalues,
values), n-d inputs, sparse and one-hot inputs' values, Expression indexing, conv2d and kmax
pooling against direct computations."""
import numpy as np
import pytest

import dynet as dy


def test_forward_npvalues_values():
    a = dy.inputTensor(np.arange(6.0).reshape(2, 3))
    b = dy.sum_elems(a)
    c = a * 2.0
    dy.forward([a, b, c])
    vals = dy.npvalues([c, b])
    np.testing.assert_allclose(vals[0], np.arange(6.0).reshape(2, 3) * 2)
    np.testing.assert_allclose(vals[1], 15.0)
    v = dy.values([b, dy.inputVector([1.0, 2.0])])
    assert v[0] == 15.0 and v[1] == [1.0, 2.0]
    dy.forward([])                               # nothing to do


def test_values_recalculate_after_set():
    a = dy.inputVector([1.0, 2.0])
    b = dy.sum_elems(a)
    assert dy.values([b]) == [3.0]
    a.set([5.0, 5.0])
    assert dy.values([b], recalculate=True) == [10.0]


def test_inputTensor_nd_roundtrip():
    for shape in [(2, 3, 4), (2, 3, 2, 2), (2, 1, 3, 1, 2), (1, 2, 1, 2, 1, 2, 2)]:
        arr = np.random.default_rng(0).uniform(-1, 1, shape)
        e = dy.inputTensor(arr)
        assert e.dim() == (shape, 1)
        np.testing.assert_allclose(e.npvalue(), arr, rtol=1e-6)
        eb = dy.inputTensor(arr, batched=True)
        assert eb.dim() == (shape[:-1], shape[-1])
        np.testing.assert_allclose(eb.npvalue(), arr, rtol=1e-6)
        # the layout is column-major: element (0, 1, ...) is the second column's first value
        assert e.vec_value()[0] == np.float32(arr.flat[0])


def test_one_hot_and_sparse_values():
    np.testing.assert_array_equal(dy.one_hot(4, 2).npvalue(), [0, 0, 1, 0])
    e = dy.one_hot(3, [2, 0])
    assert e.dim() == ((3,), 2)
    np.testing.assert_array_equal(e.npvalue(), [[0, 1], [0, 0], [1, 0]])
    s = dy.sparse_inputTensor(([0, 1], [2, 0]), [5.0, 6.0], (2, 3), defval=-1)
    np.testing.assert_array_equal(s.npvalue(), [[-1, -1, 5], [6, -1, -1]])
    sb = dy.sparse_inputTensor(([0, 1], [1, 0]), [5.0, 6.0], (2, 2), batched=True)
    assert sb.dim() == ((2,), 2)
    np.testing.assert_array_equal(sb.npvalue(), [[0, 5], [6, 0]])


def test_indexing_matches_numpy():
    arr = np.arange(12.0).reshape(3, 4)
    e = dy.inputTensor(arr)
    np.testing.assert_array_equal(e[1].npvalue(), arr[1])
    np.testing.assert_array_equal(e[-1].npvalue(), arr[-1])
    np.testing.assert_array_equal(e[0:2].npvalue(), arr[0:2])
    np.testing.assert_array_equal(e[::2].npvalue(), arr[::2])
    np.testing.assert_array_equal(e[1:, 1:4:2].npvalue(), arr[1:, 1:4:2])
    np.testing.assert_array_equal(e[2, 1:].npvalue(), arr[2, 1:])
    np.testing.assert_array_equal(e[0:2, 3].npvalue(), arr[0:2, 3])
    assert e[1, 2].value() == arr[1, 2]
    b = dy.inputTensor(np.arange(24.0).reshape(3, 4, 2), batched=True)
    np.testing.assert_array_equal(b[:, :, 1].npvalue(), np.arange(24.0).reshape(3, 4, 2)[:, :, 1])
    assert b[:, :, 1].dim() == ((3, 4), 1)


@pytest.mark.parametrize("key", [np.array([0, 2]), (0, np.array([1, 2])), "a", 1.5, None])
def test_indexing_with_what_is_not_an_index_names_the_indexing(key):
    e = dy.inputTensor(np.arange(12.0).reshape(3, 4))
    with pytest.raises(TypeError, match="expression index (must be an int|entries must be ints)"):
        e[key]


def test_conv2d_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (6, 7, 2, 2))
    f = rng.uniform(-1, 1, (3, 2, 2, 4))
    bias = rng.uniform(-1, 1, 4)
    y = dy.conv2d_bias(dy.inputTensor(x, batched=True), dy.inputTensor(f), dy.inputTensor(bias), [2, 1],
                       is_valid=False).npvalue()
    # SAME: out 3 x 7, padding rows (2*2+3-6=1 -> top 0), columns (6+2-7=1 -> left 0)
    assert y.shape == (3, 7, 4, 2)
    xp = np.zeros((7, 8, 2, 2))
    xp[:6, :7] = x
    want = np.zeros_like(y)
    for oh in range(3):
        for ow in range(7):
            patch = xp[2 * oh:2 * oh + 3, ow:ow + 2]             # (3, 2, C, B)
            want[oh, ow] = np.einsum("ijcb,ijco->ob", patch, f) + bias[:, None]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_kmax_pooling_keeps_order_and_first_ties():
    e = dy.inputTensor(np.array([[1.0, 5.0, 3.0, 5.0, 4.0]]))
    np.testing.assert_array_equal(dy.kmax_pooling(e, 3).npvalue(), [[5.0, 5.0, 4.0]])
    np.testing.assert_array_equal(dy.kmax_pooling(e, 1).npvalue(), [[5.0]])


def test_conv2d_backward_without_kept_columns():
    """Large convolutions recompute im2col in backward instead of keeping it: same gradients."""
    from dynet.nodes import conv
    rng = np.random.default_rng(4)
    x, f, b = rng.uniform(-1, 1, (6, 5, 2, 3)), rng.uniform(-1, 1, (3, 2, 2, 4)), rng.uniform(-1, 1, 4)

    def grads():
        dy.renew_cg()
        xs = [dy.inputTensor(x, batched=True), dy.inputTensor(f), dy.inputTensor(b)]
        y = dy.conv2d_bias(*xs, [2, 1], is_valid=False)
        loss = dy.sum_batches(dy.sum_elems(dy.square(y)))
        loss.backward(full=True)
        return [y.npvalue()] + [e.gradient() for e in xs]

    kept = grads()
    old = conv._set_keep_col_limit(0)
    try:
        recomputed = grads()
    finally:
        conv._set_keep_col_limit(old)
    for a, c in zip(kept, recomputed):
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-6)
