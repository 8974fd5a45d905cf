"""Bad input to the input, selection, dropout and convolution operations raises a Python exception
naming the operation and the dimensions or values involved (never a crash, never a silent wrong
value)."""
import numpy as np
import pytest

import dynet as dy


def x(*shape, batch=1):
    if batch > 1:
        return dy.inputTensor(np.ones(shape + (batch,)), batched=True)
    return dy.inputTensor(np.ones(shape))


BAD = [
    # (label, call, exception, words that the message must contain)
    ("conv2d filter larger than VALID input", lambda: dy.conv2d(x(3, 3, 1), x(4, 2, 1, 2), [1, 1]),
     ValueError, ["conv2d", "VALID", "{3,3,1}", "{4,2,1,2}"]),
    ("conv2d channel mismatch", lambda: dy.conv2d(x(5, 5, 2), x(3, 3, 3, 2), [1, 1]),
     ValueError, ["conv2d", "channels", "{5,5,2}", "{3,3,3,2}"]),
    ("conv2d batched filters", lambda: dy.conv2d(x(5, 5, 1), x(3, 3, 1, 2, batch=2), [1, 1]),
     ValueError, ["conv2d", "batched", "{3,3,1,2}X2"]),
    ("conv2d 4-d input", lambda: dy.conv2d(x(5, 5, 1, 2), x(3, 3, 1, 2), [1, 1]),
     ValueError, ["conv2d", "{5,5,1,2}"]),
    ("conv2d zero stride", lambda: dy.conv2d(x(5, 5, 1), x(3, 3, 1, 2), [0, 1]),
     ValueError, ["conv2d", "stride", "[0, 1]"]),
    ("conv2d one stride value", lambda: dy.conv2d(x(5, 5, 1), x(3, 3, 1, 2), [1]),
     ValueError, ["conv2d", "stride"]),
    ("conv2d_bias wrong bias size", lambda: dy.conv2d_bias(x(5, 5, 1), x(3, 3, 1, 2), x(3), [1, 1]),
     ValueError, ["conv2d_bias", "bias", "{3}", "2"]),
    ("maxpooling2d window larger than VALID input", lambda: dy.maxpooling2d(x(2, 5), [3, 1], [1, 1]),
     ValueError, ["maxpooling2d", "VALID", "{2,5}"]),
    ("maxpooling2d 4-d", lambda: dy.maxpooling2d(x(4, 4, 2, 2), [2, 2], [1, 1]),
     ValueError, ["maxpooling2d", "{4,4,2,2}"]),
    ("maxpooling2d bad ksize", lambda: dy.maxpooling2d(x(4, 4), [2, 0], [1, 1]),
     ValueError, ["maxpooling2d", "ksize"]),
    ("filter1d_narrow rows differ", lambda: dy.filter1d_narrow(x(3, 6), x(2, 2)),
     ValueError, ["filter1d_narrow", "{3,6}", "{2,2}"]),
    ("filter1d_narrow filter too wide", lambda: dy.filter1d_narrow(x(3, 2), x(3, 4)),
     ValueError, ["filter1d_narrow", "{3,2}", "{3,4}"]),
    ("kmax_pooling k too large", lambda: dy.kmax_pooling(x(3, 4), 5),
     ValueError, ["kmax_pooling", "{3,4}", "5"]),
    ("kmax_pooling k zero", lambda: dy.kmax_pooling(x(3, 4), 0), ValueError, ["kmax_pooling", "0"]),
    ("select_rows out of range", lambda: dy.select_rows(x(4, 2), [1, 4]),
     IndexError, ["select_rows", "4", "{4,2}"]),
    ("select_rows negative", lambda: dy.select_rows(x(4, 2), [-1]), IndexError, ["select_rows", "-1"]),
    ("select_rows empty", lambda: dy.select_rows(x(4, 2), []), ValueError, ["select_rows", "empty"]),
    ("select_rows not ints", lambda: dy.select_rows(x(4, 2), [0.5]), TypeError, ["select_rows"]),
    ("select_cols out of range", lambda: dy.select_cols(x(4, 2), [2]), IndexError, ["select_cols", "2", "{4,2}"]),
    ("select_cols 3-d", lambda: dy.select_cols(x(4, 2, 2), [0]), ValueError, ["select_cols", "{4,2,2}"]),
    ("pick_batch_elem out of range", lambda: dy.pick_batch_elem(x(2, batch=3), 3),
     IndexError, ["pick_batch_elem", "3", "{2}X3"]),
    ("pick_batch_elems empty", lambda: dy.pick_batch_elems(x(2, batch=3), []), ValueError, ["pick_batch_elems"]),
    ("pick_batch_elems not a list", lambda: dy.pick_batch_elems(x(2, batch=3), 1), TypeError, ["pick_batch_elems"]),
    ("strided_select zero stride", lambda: dy.strided_select(x(4, 4), [0, 1]), ValueError,
     ["strided_select", "stride", "{4,4}"]),
    ("strided_select empty range", lambda: dy.strided_select(x(4, 4), [1], [3], [2]), IndexError,
     ["strided_select", "[3, 2)", "{4,4}"]),
    ("strided_select past the end", lambda: dy.strided_select(x(4, 4), [1, 1], [0, 0], [4, 5]), IndexError,
     ["strided_select", "dimension 1", "{4,4}"]),
    ("strided_select too many entries", lambda: dy.strided_select(x(4), [1, 1, 1]), ValueError,
     ["strided_select", "{4}"]),
    ("concatenate empty", lambda: dy.concatenate([]), ValueError, ["concatenate", "empty"]),
    ("concatenate mismatched", lambda: dy.concatenate([x(2, 3), x(2, 4)], d=2), ValueError,
     ["concatenate", "{2,3}", "{2,4}"]),
    ("concatenate_to_batch empty", lambda: dy.concatenate_to_batch([]), ValueError, ["concatenate_to_batch", "empty"]),
    ("concatenate_to_batch mismatched", lambda: dy.concatenate_to_batch([x(3), x(4, batch=2)]), ValueError,
     ["concatenate_to_batch", "{3}", "{4}X2"]),
    ("one_hot index out of range", lambda: dy.one_hot(4, 4), IndexError, ["one_hot", "4"]),
    ("one_hot bad batch index", lambda: dy.one_hot(4, [0, 7]), IndexError, ["one_hot", "7"]),
    ("one_hot zero dimension", lambda: dy.one_hot(0, 0), ValueError, ["one_hot", "0"]),
    ("sparse_inputTensor index out of range", lambda: dy.sparse_inputTensor(([0, 3], [0, 0]), [1, 2], (3, 2)),
     IndexError, ["sparse_inputTensor", "3", "(3, 2)"]),
    ("sparse_inputTensor wrong number of index arrays", lambda: dy.sparse_inputTensor(([0],), [1], (3, 2)),
     ValueError, ["sparse_inputTensor", "1 index arrays", "(3, 2)"]),
    ("sparse_inputTensor 2-d values", lambda: dy.sparse_inputTensor(([0], [0]), [[1]], (3, 2)),
     ValueError, ["sparse_inputTensor", "1-d"]),
    ("sparse_inputTensor index/value counts", lambda: dy.sparse_inputTensor(([0, 1], [0]), [1, 2], (3, 2)),
     ValueError, ["sparse_inputTensor", "axis 1"]),
    ("inputTensor 8 dimensions", lambda: dy.inputTensor(np.ones((1,) * 8)), ValueError, ["7", "8"]),
    ("dropout_dim dimension out of range", lambda: dy.dropout_dim(x(3, 4), 2, 0.5), ValueError,
     ["dropout_dim", "2", "{3,4}"]),
    ("dropout_batch p > 1", lambda: dy.dropout_batch(x(3), 1.5), ValueError, ["dropout_batch", "1.5"]),
    ("block_dropout p < 0", lambda: dy.block_dropout(x(3), -0.1), ValueError, ["block_dropout", "-0.1"]),
    ("dropout p not a number", lambda: dy.dropout(x(3), "half"), TypeError, ["dropout"]),
    ("index out of range", lambda: x(5)[5], IndexError, ["5", "dimension 0"]),
    ("negative index out of range", lambda: x(5)[-6], IndexError, ["-6"]),
    ("empty slice", lambda: x(5)[3:1], IndexError, ["3:1", "5"]),
    ("negative step", lambda: x(5)[::-1], ValueError, ["step", "-1"]),
    ("string index", lambda: x(5)["a"], TypeError, ["str"]),
    ("tuple index too long", lambda: x(5)[0, 0, 0], IndexError, ["3 entries"]),
    ("reshape wrong size", lambda: dy.reshape(x(6), (4,)), ValueError, ["reshape", "{6}", "{4}"]),
    ("reshape wrong batch size", lambda: dy.reshape(x(6, batch=2), (3,), batch_size=3), ValueError,
     ["reshape", "{6}X2", "{3}X3"]),
    ("transpose not a permutation", lambda: dy.transpose(x(2, 3, 4), [0, 0, 1]), ValueError, ["transpose", "[0, 0, 1]"]),
    ("transpose too few dims", lambda: dy.transpose(x(2, 3, 4), [1, 0]), ValueError, ["transpose", "{2,3,4}"]),
    ("transpose more dims than an expression has", lambda: dy.transpose(x(2, 3), list(range(12))),
     ValueError, ["transpose", "12 entries", "at most 7"]),
]


@pytest.mark.parametrize("label,call,exc,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(label, call, exc, words):
    with pytest.raises(exc) as info:
        call().npvalue()
    msg = str(info.value)
    for w in words:
        assert w in msg, f"message {msg!r} should mention {w!r}"


def test_stale_arguments_are_refused():
    a = x(5, 5, 1)
    f = x(3, 3, 1, 2)
    dy.renew_cg()
    with pytest.raises(RuntimeError, match="stale"):
        dy.conv2d(a, f, [1, 1])
    with pytest.raises(RuntimeError, match="stale"):
        dy.concatenate_to_batch([a, x(5, 5, 1)])


def test_out_of_range_indices_are_both_index_and_value_errors():
    # DyNet raises ValueError for most (a pick, a lookup, a hinge target) and IndexError for e[i]:
    # code catches whichever it met, so ours are both
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((4, 2))
    v = dy.inputVector([1.0, 2.0])
    calls = [lambda: E[9], lambda: v[5], lambda: dy.pick(v, 5), lambda: dy.pickneglogsoftmax(v, 5),
             lambda: dy.pickrange(v, 1, 5), lambda: dy.hinge(v, 5),
             lambda: dy.select_rows(dy.inputTensor([[1.0, 2.0], [3.0, 4.0]]), [3])]
    for call in calls:
        for kind in (IndexError, ValueError):
            with pytest.raises(kind, match="out of range|not inside"):
                call()
