"""Lowered forward passes (dynet/core/lowering.pyx; "Threads" in docs/architecture.md): a run of
nodes turned into C steps and run without the GIL. Every row of the operation table gives the same
values and gradients lowered as plain (bit for bit: the same kernels run), the node types of the
BiLSTM tagger all lower, several threads serving the tagger get one thread's numbers, and errors
(at build time, and from a node that runs with the GIL in the middle of a lowered run) are the same."""
import threading

import numpy as np
import pytest

import dynet as dy
from dynet.core import graph
from tests.gradcheck import _inputs
from tests.optable import CASES
from tests.threadrun import run_threads


@pytest.fixture(autouse=True)
def lowering_default_after():
    yield
    graph.set_lowering(0)


def run_case(case, mode, lowering):
    graph.set_lowering(lowering)
    dy.reset_random_seed(5)
    dy.renew_cg()
    rng = np.random.default_rng(3)
    xs = _inputs(case.make_inputs(rng, mode))
    out = case.build(dy, *xs)
    value = out.npvalue()
    proj = rng.uniform(-1, 1, value.shape)
    loss = dy.sum_batches(dy.sum_elems(dy.cmult(out, dy.inputTensor(proj, batched=out.dim()[1] > 1))))
    loss.backward(full=True)
    return [value, loss.npvalue()] + [x.gradient() for x in xs]


PARAMS = [(c, m) for c in CASES for m in c.modes()]


@pytest.mark.parametrize("case,mode", PARAMS, ids=[f"{c.name}-{m}" for c, m in PARAMS])
def test_operation_table_lowered_equals_plain(case, mode):
    plain = run_case(case, mode, -1)
    graph.lowering_stats(reset=True)
    lowered = run_case(case, mode, 1)
    assert graph.lowering_stats()[0] > 0          # (the inputs at least ran as steps)
    for got, want in zip(lowered, plain):
        np.testing.assert_array_equal(got, want)


def make_tagger(cell="vanilla"):
    from bench.tagger_model import Tagger
    return Tagger(dy, vocab=200, emb=16, hidden=24, mlp=12, tags=7, sentences=24, cell=cell)


def tag(tagger, words):
    dy.renew_cg()
    scores = tagger.scores(words, tagger.mlp_expressions(train=False), train=False)
    return dy.concatenate_cols(scores).npvalue()


@pytest.mark.parametrize("cell", ["vanilla", "coupled"])
def test_the_taggers_nodes_all_lower(cell):
    tagger = make_tagger(cell)
    graph.set_lowering(1)
    graph.lowering_stats(reset=True)
    tag(tagger, tagger.sents[0][0])
    lowered, unlowered = graph.lowering_stats()
    assert unlowered == 0 and lowered == dy.cg().size()


def test_threads_serving_the_tagger_match_one_thread():
    tagger = make_tagger()
    graph.set_lowering(-1)
    want = [tag(tagger, words) for words, _ in tagger.sents]
    graph.set_lowering(0)              # the default: lowered once several threads have graphs
    graph.lowering_stats(reset=True)
    got = {}
    n_threads, reps = 4, 5

    def serve(k):
        for rep in range(reps):
            for i in range(k, len(tagger.sents), n_threads):
                got[(i, rep)] = tag(tagger, tagger.sents[i][0])

    run_threads(serve, n_threads)
    assert len(got) == reps * len(tagger.sents)
    for (i, rep), value in got.items():
        np.testing.assert_array_equal(value, want[i], err_msg=f"sentence {i}, pass {rep}")
    assert graph.lowering_stats()[0] > 0


def test_one_thread_keeps_the_plain_loop():
    graph.set_lowering(0)
    graph.lowering_stats(reset=True)
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0])
    assert dy.tanh(x * 2 + 1).vec_value() == pytest.approx(np.tanh([3.0, 5.0]).tolist())
    assert graph.lowering_stats() == (0, 0)


def test_build_errors_are_the_same_lowered():
    graph.set_lowering(1)
    dy.renew_cg()
    W = dy.inputTensor(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"matmul: cannot multiply \{3,4\} by \{3\}"):
        W * dy.inputVector([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="concatenate: all dimensions except 0 must agree"):
        dy.concatenate([W, dy.inputTensor(np.ones((2, 3)))])
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((5, 2))
    with pytest.raises((ValueError, IndexError), match="5"):
        dy.lookup(E, 5)


class Failing:
    """A pyop whose forward raises (a node that runs with the GIL, between lowered steps)."""
    name = "failing"

    def dim(self, dims):
        return dims[0]

    def forward(self, xs, out):
        raise ValueError("failing: this op always fails")

    def backward(self, xs, out, dout, i, dxi):
        pass


def test_an_error_between_lowered_steps_leaves_the_graph_usable():
    graph.set_lowering(1)
    dy.renew_cg()
    x = dy.inputVector([0.5, -1.0, 2.0])
    before = dy.tanh(x) * 3                       # lowered, before the failing node
    bad = dy.pyop(Failing(), [before])
    after = dy.exp(before)                        # lowered, after it
    total = dy.esum([dy.sum_elems(bad), dy.sum_elems(after)])
    with pytest.raises(ValueError, match="failing: this op always fails"):
        total.value()
    # the steps before it ran (and are not run again); the failing node runs again when asked
    np.testing.assert_allclose(before.npvalue(), 3 * np.tanh([0.5, -1.0, 2.0]), rtol=1e-6)
    with pytest.raises(ValueError, match="failing: this op always fails"):
        after.npvalue()
    dy.renew_cg()
    y = dy.exp(dy.tanh(dy.inputVector([0.5, -1.0, 2.0])) * 3)
    np.testing.assert_allclose(y.npvalue(), np.exp(3 * np.tanh([0.5, -1.0, 2.0])), rtol=1e-5)


def test_another_threads_graph_object_runs_the_plain_loop():
    """A graph object handed to another thread is computed there with the GIL held throughout (its
    lowering buffer belongs to its own thread's passes)."""
    graph.set_lowering(1)
    dy.renew_cg()
    g = dy.cg()
    y = dy.tanh(dy.inputVector([0.25, -0.5]) * 2)
    graph.lowering_stats(reset=True)
    th = threading.Thread(target=g.forward)
    th.start()
    th.join()
    assert graph.lowering_stats() == (0, 0)
    np.testing.assert_allclose(y.npvalue(), np.tanh([0.5, -1.0]), rtol=1e-6)
