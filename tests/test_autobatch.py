"""Automatic operation batching (--dynet-autobatch 1, dynet/core/execution.pyx): every row of the
operation table and every builder gives the same values and gradients with autobatching on as off
(1e-5), groups really form, and incremental forward, recalculate, checkpoints and full backward keep
working."""
import numpy as np
import pytest

import dynet as dy
from dynet.core import execution
from tests.gradcheck import _inputs
from tests.optable import CASES

COPIES = 3      # copies of a case sharing their inputs (so products share their matrix) ...
                # ... plus one copy on inputs of its own


@pytest.fixture(autouse=True)
def executor_off_after():
    yield
    execution.configure(0, 0)


def run_case(case, mode, autobatch):
    execution.configure(autobatch, 0)
    dy.reset_random_seed(5)
    dy.renew_cg()
    rng = np.random.default_rng(3)
    args, own = case.make_inputs(rng, mode), case.make_inputs(rng, mode)
    xs, ys = _inputs(args), _inputs(own)
    outs = [case.build(dy, *xs) for _ in range(COPIES)] + [case.build(dy, *ys)]
    terms = []
    for out in outs:
        proj = rng.uniform(-1, 1, out.npvalue().shape)
        terms.append(dy.sum_batches(dy.sum_elems(dy.cmult(out, dy.inputTensor(proj, batched=out.dim()[1] > 1)))))
    loss = dy.esum(terms)
    loss.backward(full=True)
    return [o.npvalue() for o in outs], [x.gradient() for x in xs + ys]


def assert_autobatched_equals_plain(run, *args, rtol=1e-5, atol=1e-5, what=""):
    """run(autobatch, *args) -> (value or values, gradients, anything else): the value(s) and the
    gradients agree without and with autobatching; returns the rest of the autobatched run's
    result (e.g. its profile)."""
    plain, batched = run(0, *args), run(1, *args)
    assert batched[0] == pytest.approx(plain[0], rel=1e-5, abs=1e-6), what
    assert len(batched[1]) == len(plain[1])
    for got, want in zip(batched[1], plain[1]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    return batched[2:]


PARAMS = [(c, m) for c in CASES for m in c.modes()]


@pytest.mark.parametrize("case,mode", PARAMS, ids=[f"{c.name}-{m}" for c, m in PARAMS])
def test_operation_table_autobatched_equals_plain(case, mode):
    plain_values, plain_grads = run_case(case, mode, 0)
    values, grads = run_case(case, mode, 1)
    for got, want in zip(values + grads, plain_values + plain_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_products_sharing_a_matrix_run_as_one_batch():
    execution.configure(1, 1)
    execution.reset()
    rng = np.random.default_rng(0)
    W = dy.inputTensor(rng.normal(size=(5, 4)))
    b = dy.inputTensor(rng.normal(size=5))
    xs = [dy.inputTensor(rng.normal(size=4)) for _ in range(7)]
    outs = [W * x for x in xs] + [dy.affine_transform([b, W, x]) for x in xs]
    dy.esum([dy.sum_elems(o) for o in outs]).value()
    stats = dy.profiling_stats()
    assert stats["matmul"]["nodes"] == 7 and stats["matmul"]["batches"] == 1
    assert stats["affine_transform"]["nodes"] == 7 and stats["affine_transform"]["batches"] == 1
    assert stats["sum_elems"]["batches"] == 14          # no batched kernel: each runs alone
    for i, x in enumerate(xs):
        np.testing.assert_allclose(outs[i].npvalue(), W.npvalue() @ x.npvalue(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outs[7 + i].npvalue(), W.npvalue() @ x.npvalue() + b.npvalue(),
                                   rtol=1e-5, atol=1e-6)


BUILDERS = [
    ("VanillaLSTMBuilder", lambda m: dy.VanillaLSTMBuilder(2, 6, 5, m)),
    ("LSTMBuilder", lambda m: dy.LSTMBuilder(1, 6, 5, m)),
    ("CoupledLSTMBuilder", lambda m: dy.CoupledLSTMBuilder(1, 6, 5, m)),
    ("GRUBuilder", lambda m: dy.GRUBuilder(2, 6, 5, m)),
    ("SimpleRNNBuilder", lambda m: dy.SimpleRNNBuilder(1, 6, 5, m)),
    ("FastLSTMBuilder", lambda m: dy.FastLSTMBuilder(1, 6, 5, m)),
    ("CompactVanillaLSTMBuilder", lambda m: dy.CompactVanillaLSTMBuilder(1, 6, 5, m)),
    ("BiRNNBuilder", lambda m: dy.BiRNNBuilder(1, 6, 10, m, dy.VanillaLSTMBuilder)),
]


def run_builder(make, autobatch, batch=1):
    execution.configure(autobatch, 0)
    dy.reset_random_seed(3)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((20, 6))
    builder = make(m)
    out_dim = 10 if isinstance(builder, dy.BiRNNBuilder) else 5
    V = m.add_parameters((4, out_dim))
    dy.renew_cg()
    losses = []
    for s in range(5):
        words = [(s * 3 + i) % 20 for i in range(3 + s)]
        if batch == 1:
            xs = [dy.lookup(E, w) for w in words]
        else:
            xs = [dy.lookup_batch(E, [w, (w + 1) % 20]) for w in words]
        hs = builder.transduce(xs) if isinstance(builder, dy.BiRNNBuilder) else \
            builder.initial_state().transduce(xs)
        for i, h in enumerate(hs):
            losses.append(dy.sum_batches(dy.pickneglogsoftmax(V * h, i % 4)))
    loss = dy.esum(losses)
    value = loss.value()
    loss.backward()
    grads = [p.grad_as_array().copy() for p in m.parameters_list()] + [E.grad_as_array().copy()]
    return value, grads


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name,make", BUILDERS, ids=[b[0] for b in BUILDERS])
def test_builders_autobatched_equal_plain(name, make, batch):
    assert_autobatched_equals_plain(lambda autobatch: run_builder(make, autobatch, batch))


def test_lstm_gates_of_many_sequences_batch_by_step():
    execution.configure(1, 1)
    execution.reset()
    m = dy.ParameterCollection()
    lstm = dy.VanillaLSTMBuilder(1, 4, 3, m)
    dy.renew_cg()
    rng = np.random.default_rng(1)
    outs = []
    for length in (2, 4, 4):
        xs = [dy.inputTensor(rng.normal(size=4)) for _ in range(length)]
        outs.extend(lstm.initial_state().transduce(xs))
    dy.esum(outs).value()
    gates = dy.profiling_stats()["vanilla_lstm_gates"]
    assert gates["nodes"] == 10 and gates["batches"] == 4      # one batch per time step


def run_coupled(autobatch, lengths, start):
    """Two-layer LSTMBuilders (the coupled cell, with peepholes) over sequences of the given
    lengths fed step by step with add_input, the last one started from a given state if `start`."""
    execution.configure(autobatch, 1)
    execution.reset()
    rng = np.random.default_rng(4)
    m = dy.ParameterCollection()
    lstm = dy.CoupledLSTMBuilder(2, 4, 3, m)
    for layer in lstm.get_parameters():
        for p in layer:
            p.set_value(rng.uniform(-0.5, 0.5, p.shape()))
    dy.renew_cg()
    outs = []
    for k, length in enumerate(lengths):
        given = start and k == len(lengths) - 1
        s = lstm.initial_state([dy.inputTensor(rng.normal(size=3)) for _ in range(4)] if given else None)
        for _ in range(length):
            s = s.add_input(dy.inputTensor(rng.normal(size=4)))
            outs.append(dy.dot_product(s.output(), dy.inputTensor(rng.normal(size=3))))
    loss = dy.esum(outs)
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for layer in lstm.get_parameters() for p in layer], \
        dy.profiling_stats()


@pytest.mark.parametrize("lengths,start", [((3, 3, 3), False), ((3, 3, 2), True)])
def test_coupled_lstm_cells_run_as_groups_and_equal_plain(lengths, start):
    """The coupled cell's c and h nodes of the sequences' same step run as one group each, one
    loop over their columns, and the values and gradients equal the plain run's."""
    stats, = assert_autobatched_equals_plain(run_coupled, lengths, start)
    for op in ("coupled_lstm_c", "coupled_lstm_h"):
        assert stats[op]["nodes"] == 2 * sum(lengths), op
    if not start:
        # layer 2's step t runs with layer 1's step t + 1: four levels of h, one group each; c
        # likewise, but layer 2's first step (no c_tm1: one argument fewer) is a group of its own
        assert stats["coupled_lstm_h"]["batches"] == 4
        assert stats["coupled_lstm_c"]["batches"] == 5


def run_tagger(autobatch, lengths):
    """A BiLSTM tagger written per sentence (sentences of the given lengths in one graph): an MLP
    over each word's two states, then pickneglogsoftmax. The MLP's nodes lie at every depth (word
    t of a sentence of n: after max(t, n - t) recurrent steps) but all at one distance from the
    loss."""
    execution.configure(autobatch, 1)
    execution.reset()
    dy.reset_random_seed(9)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((15, 4))
    fwd, bwd = dy.VanillaLSTMBuilder(1, 4, 3, m), dy.VanillaLSTMBuilder(1, 4, 3, m)
    W1, b1, W2 = m.add_parameters((5, 6)), m.add_parameters(5), m.add_parameters((7, 5))
    dy.renew_cg()
    w1, c1, w2 = dy.parameter(W1), dy.parameter(b1), dy.parameter(W2)
    losses = []
    for s, n in enumerate(lengths):
        xs = [dy.lookup(E, (3 * s + t) % 15) for t in range(n)]
        fs = fwd.initial_state().transduce(xs)
        bs = bwd.initial_state().transduce(xs[::-1])[::-1]
        for t, (f, b) in enumerate(zip(fs, bs)):
            h = dy.tanh(dy.affine_transform([c1, w1, dy.concatenate([f, b])]))
            losses.append(dy.pickneglogsoftmax(w2 * h, (s + t) % 7))
    loss = dy.esum(losses)
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for p in m.parameters_list()] + \
        [E.grad_as_array().copy()], dy.profiling_stats()


def test_layers_over_recurrent_states_wait_and_run_as_one_group():
    lengths = (3, 6, 4, 5, 2)
    stats, = assert_autobatched_equals_plain(run_tagger, lengths)
    words = sum(lengths)
    for op in ("concatenate", "affine_transform", "tanh", "matmul", "pickneglogsoftmax"):
        assert stats[op]["nodes"] == words and stats[op]["batches"] == 1, op
    # while the recurrences and the lookups keep their own lining up: by step, and all at once
    assert stats["vanilla_lstm_gates"]["batches"] == 2 * max(lengths)
    assert stats["lookup"]["batches"] == 1


def run_recurrences(autobatch, lengths, second):
    """Two recurrences per sentence with the same pair of LSTM builders, the second's steps
    starting at a depth that depends on the sentence. second="stacked": a two-layer BiLSTM (the
    second layer reads a projection of both first-layer states of each word, so its first step
    waits for the whole first layer of its sentence). second="again": the same builders run again
    over the first run's outputs, so that a first step of the second run waits for the last step
    of the first run: a step of a recurrence that follows later steps of its own kind."""
    execution.configure(autobatch, 1)
    execution.reset()
    dy.reset_random_seed(11)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((15, 3))
    first = [dy.VanillaLSTMBuilder(1, 3, 3, m) for _ in range(2)]
    layers = [first, [dy.VanillaLSTMBuilder(1, 3, 3, m) for _ in range(2)] if second == "stacked" else first]
    P, O = m.add_parameters((3, 6)), m.add_parameters((7, 6))
    dy.renew_cg()
    p, o = dy.parameter(P), dy.parameter(O)
    losses = []
    for s, n in enumerate(lengths):
        xs = [dy.lookup(E, (3 * s + t) % 15) for t in range(n)]
        for fwd, bwd in layers:
            fs = fwd.initial_state().transduce(xs)
            bs = bwd.initial_state().transduce(xs[::-1])[::-1]
            xs = [p * dy.concatenate([f, b]) for f, b in zip(fs, bs)]
        losses.extend(dy.pickneglogsoftmax(o * dy.concatenate([f, b]), (s + t) % 7)
                      for t, (f, b) in enumerate(zip(fs, bs)))
    loss = dy.esum(losses)
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for p in m.parameters_list()] + \
        [E.grad_as_array().copy()], dy.profiling_stats()


def test_the_same_steps_of_a_second_layer_run_as_one_group():
    # by depth, the second layer's step t of a sentence of n words lay 3 n levels after its
    # start: one group per (n + t) instead of one per t
    lengths = (3, 6, 4, 5, 2)
    stats, = assert_autobatched_equals_plain(run_recurrences, lengths, "stacked")
    for op in ("vanilla_lstm_gates", "vanilla_lstm_c", "vanilla_lstm_h"):
        assert stats[op]["nodes"] == 4 * sum(lengths) and stats[op]["batches"] == 4 * max(lengths), op
    assert stats["pickneglogsoftmax"]["batches"] == 1


def test_a_recurrence_after_later_steps_of_its_own_kind_keeps_the_depths():
    # lining up the second run's first steps with the first run's would put them before the
    # first run's last steps, which they read: the schedule keeps the levels by depth
    lengths = (3, 6, 4, 5, 2)
    stats, = assert_autobatched_equals_plain(run_recurrences, lengths, "again")
    gates = stats["vanilla_lstm_gates"]
    assert gates["nodes"] == 4 * sum(lengths) and gates["batches"] < gates["nodes"]


def run_scaled(autobatch):
    """Products scaled by 2 or 3 by turns: one group key (a map's key has no room for its
    constants) that the exact test parts into two groups of one level."""
    execution.configure(autobatch, 1)
    execution.reset()
    rng = np.random.default_rng(4)
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 4))
    W.set_value(rng.normal(size=(3, 4)))
    dy.renew_cg()
    w = dy.parameter(W)
    ys = [dy.tanh((w * dy.inputTensor(rng.normal(size=4))) * (2.0 if i % 2 else 3.0)) for i in range(6)]
    loss = dy.esum([dy.sum_elems(dy.cmult(y, y)) for y in ys])
    value = loss.value()
    loss.backward()
    return value, [W.grad_as_array().copy()], dy.profiling_stats()


def test_nodes_of_one_key_that_the_exact_test_parts_run_as_two_groups():
    stats, = assert_autobatched_equals_plain(run_scaled)
    assert stats["affine"]["nodes"] == 6 and stats["affine"]["batches"] == 2
    assert stats["tanh"]["nodes"] == 6 and stats["tanh"]["batches"] == 1


def test_incremental_forward_recalculate_checkpoint_and_full_backward():
    execution.configure(1, 0)
    rng = np.random.default_rng(2)
    W = dy.inputTensor(rng.normal(size=(3, 3)))
    x = dy.inputVector([1.0, 2.0, 3.0])
    h1 = dy.tanh(W * x)
    assert np.allclose(h1.npvalue(), np.tanh(W.npvalue() @ [1, 2, 3]), atol=1e-6)
    h2 = dy.tanh(W * h1)           # incremental: only the new nodes run
    want2 = np.tanh(W.npvalue() @ h1.npvalue())
    assert np.allclose(h2.npvalue(), want2, atol=1e-6)
    x.set([0.5, -1.0, 2.0])        # a re-set input: recalculate
    assert np.allclose(h1.npvalue(recalculate=True), np.tanh(W.npvalue() @ [0.5, -1, 2]), atol=1e-6)
    dy.cg_checkpoint()
    extra = dy.sum_elems(W * h2)
    extra.value()
    dy.cg_revert()
    loss = dy.sum_elems(h2 + h1)
    loss.forward()
    loss.backward(full=True)
    # d/dx of sum(tanh(W tanh(W x)) + tanh(W x)), by hand
    a1 = W.npvalue() @ x.npvalue()
    t1 = np.tanh(a1)
    t2 = np.tanh(W.npvalue() @ t1)
    g_t1 = W.npvalue().T @ (1 - t2 ** 2) + 1
    g_x = W.npvalue().T @ (g_t1 * (1 - t1 ** 2))
    np.testing.assert_allclose(x.gradient(), g_x, rtol=1e-5, atol=1e-5)


def test_errors_inside_a_batch_name_the_operation():
    execution.configure(1, 0)
    W = dy.inputTensor(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"matmul: cannot multiply \{3,4\} by \{3\}"):
        W * dy.inputVector([1.0, 2.0, 3.0])
    dy.renew_cg(immediate_compute=True, check_validity=True)
    W = dy.inputTensor(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match=r"NaN or Inf detected: log \(node v\d+, \{2\}\)"):
        dy.log(W * dy.inputVector([1.0, -2.0]))


def tree_lstm_loss(m, params, trees):
    """A small binary Tree-LSTM (as bench/workloads/treelstm.py) over nested tuples of word ids."""
    E, W, b, U, c, V = params
    def encode(t):
        if not isinstance(t, tuple):
            x = dy.lookup(E, t)
            i, o, u = [dy.affine_transform([b[k], W[k], x]) for k in range(3)]
            cell = dy.cmult(dy.logistic(i), dy.tanh(u))
            return dy.cmult(dy.logistic(o), dy.tanh(cell)), cell
        (hl, cl), (hr, cr) = encode(t[0]), encode(t[1])
        hc = dy.concatenate([hl, hr])
        i, fl, fr, o, u = [dy.affine_transform([c[k], U[k], hc]) for k in range(5)]
        cell = dy.cmult(dy.logistic(i), dy.tanh(u)) + dy.cmult(dy.logistic(fl), cl) + \
            dy.cmult(dy.logistic(fr), cr)
        return dy.cmult(dy.logistic(o), dy.tanh(cell)), cell
    return dy.esum([dy.pickneglogsoftmax(V * encode(t)[0], k % 3) for k, t in enumerate(trees)])


def make_tree_params(m):
    return (m.add_lookup_parameters((10, 4)), [m.add_parameters((5, 4)) for _ in range(3)],
            [m.add_parameters(5) for _ in range(3)], [m.add_parameters((5, 10)) for _ in range(5)],
            [m.add_parameters(5) for _ in range(5)], m.add_parameters((3, 5)))


TREES = [((1, 2), 3), (4, (5, (6, 7))), ((8, 9), (0, 1)), 2, ((3, 4), (5, 6))]


def run_trees(autobatch, revert=False):
    execution.configure(autobatch, 0)
    dy.reset_random_seed(4)
    m = dy.ParameterCollection()
    params = make_tree_params(m)
    dy.renew_cg()
    if revert:                       # a different graph computed, then reverted away
        dy.cg_checkpoint()
        tree_lstm_loss(m, params, TREES[::-1] + TREES).value()
        dy.cg_revert()
    loss = tree_lstm_loss(m, params, TREES)
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for p in m.parameters_list()] + \
        [params[0].grad_as_array().copy()]


@pytest.mark.parametrize("revert", [False, True])
def test_tree_lstm_autobatched_equals_plain(revert):
    assert_autobatched_equals_plain(run_trees, revert)


def train_trees(autobatch, steps=3):
    """A few SGD steps of the small Tree-LSTM: each backward pass must see the matrices' new values
    (the batched input gradients keep a transposed copy of each matrix for one pass only)."""
    execution.configure(autobatch, 0)
    dy.reset_random_seed(4)
    m = dy.ParameterCollection()
    params = make_tree_params(m)
    trainer = dy.SimpleSGDTrainer(m, 0.5)
    losses = []
    for step in range(steps):
        dy.renew_cg()
        loss = tree_lstm_loss(m, params, TREES[step:] + TREES[:step])
        losses.append(loss.value())
        loss.backward()
        trainer.update()
    return losses, [p.as_array().copy() for p in m.parameters_list()]


def test_tree_lstm_training_autobatched_equals_plain():
    l0, p0 = train_trees(0)
    l1, p1 = train_trees(1)
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    assert l0[0] != l0[-1]                      # the updates changed what the later steps compute
    for a, b in zip(p1, p0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_maps_group_by_their_producers():
    """logistic(W_i x) of many examples is one batch and logistic(W_o x) another (each reads its
    product group's values side by side), not one batch interleaving both."""
    execution.configure(1, 1)
    execution.reset()
    rng = np.random.default_rng(0)
    Wi, Wo = dy.inputTensor(rng.normal(size=(4, 3))), dy.inputTensor(rng.normal(size=(4, 3)))
    xs = [dy.inputTensor(rng.normal(size=3)) for _ in range(6)]
    hs = [dy.cmult(dy.logistic(Wi * x), dy.logistic(Wo * x)) for x in xs]
    loss = dy.sum_elems(dy.esum(hs))
    loss.value()
    loss.backward(full=True)
    stats = dy.profiling_stats()
    assert stats["logistic"]["nodes"] == 12 and stats["logistic"]["batches"] == 2
    assert stats["cmult"]["nodes"] == 6 and stats["cmult"]["batches"] == 1

    def s(v):
        return 1 / (1 + np.exp(-v))
    for x, h in zip(xs, hs):
        want = s(Wi.npvalue() @ x.npvalue()) * s(Wo.npvalue() @ x.npvalue())
        np.testing.assert_allclose(h.npvalue(), want, rtol=1e-5, atol=1e-6)
        si, so = s(Wi.npvalue() @ x.npvalue()), s(Wo.npvalue() @ x.npvalue())
        want_dx = Wi.npvalue().T @ (so * si * (1 - si)) + Wo.npvalue().T @ (si * so * (1 - so))
        np.testing.assert_allclose(x.gradient(), want_dx, rtol=1e-5, atol=1e-6)


def test_recalculation_keeps_the_values_in_place():
    """Groups' values are placed side by side once: recalculating a graph again and again takes no
    more forward memory."""
    execution.configure(1, 0)
    rng = np.random.default_rng(1)
    W = dy.inputTensor(rng.normal(size=(8, 8)))
    xs = [dy.inputTensor(rng.normal(size=8)) for _ in range(16)]
    loss = dy.sum_elems(dy.esum([dy.tanh(W * x) + x for x in xs]))
    first = loss.value()
    used = dy.cg().memory["forward"]
    for _ in range(5):
        assert loss.value(recalculate=True) == pytest.approx(first, rel=1e-6)
    assert dy.cg().memory["forward"] == used


def test_threads_each_keep_their_own_plan():
    """Each thread's graph has its own plan: autobatched graphs built and run in several threads at
    once give the values the plain executor gives."""
    import threading
    m = dy.ParameterCollection()
    params = make_tree_params(m)
    execution.configure(0, 0)
    want = []
    for k in range(4):
        dy.renew_cg()
        want.append(tree_lstm_loss(m, params, TREES[k:] + TREES[:k]).value())
    execution.configure(1, 0)
    got, errors = {}, []

    def work(k):
        try:
            for _ in range(5):
                dy.renew_cg()
                got[k] = tree_lstm_loss(m, params, TREES[k:] + TREES[:k]).value()
        except BaseException as e:       # reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        assert got[k] == pytest.approx(want[k], rel=1e-5)


def run_products(autobatch):
    """Products sharing a matrix in one level whose inputs partly need gradients (parameters, the
    matrix itself) and partly not (inputs), and affine transforms sharing bias and matrix."""
    execution.configure(autobatch, 0)
    m = dy.ParameterCollection()
    rng = np.random.default_rng(7)
    W = m.add_parameters((4, 4), init=dy.NumpyInitializer(rng.normal(size=(4, 4))))
    b = m.add_parameters(4, init=dy.NumpyInitializer(rng.normal(size=4)))
    ps = [m.add_parameters(4, init=dy.NumpyInitializer(rng.normal(size=4))) for _ in range(3)]
    dy.renew_cg()
    xs = [dy.inputVector(list(rng.normal(size=4))) for _ in range(3)]
    outs = [W * x for x in xs] + [W * dy.tanh(x) for x in xs] + [W * dy.tanh(p) for p in ps] + \
        [dy.sum_cols(W * W)] + \
        [dy.affine_transform([b, W, dy.tanh(p)]) for p in ps]
    loss = dy.sum_elems(dy.esum([dy.cmult(o, o) for o in outs]))
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for p in m.parameters_list()]


def test_product_groups_backward_equals_plain():
    assert_autobatched_equals_plain(run_products)


def run_language_model(autobatch, steps=2):
    """A per-sentence LSTM language model (DyNet's lstmlm-auto) whose output layer (300 x 256) and
    recurrent matrix (1024 x 256) are large enough that their groups' weight gradients are
    deferred to the end of the pass (above matmul's DEFER_GROUP_WEIGHT; the input matrix, 1024 x
    8, is not), sentences of different lengths (narrower groups at the end: the previous h no
    longer side by side, gathered into graph memory), and a second large product over inputs from
    two producer groups (gathered too). Two training steps: the second runs on the first's update."""
    execution.configure(autobatch, 0)
    dy.reset_random_seed(8)
    rng = np.random.default_rng(8)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((300, 8), init=dy.NumpyInitializer(rng.normal(size=(300, 8))))
    lstm = dy.VanillaLSTMBuilder(1, 8, 256, m)
    out_W = m.add_parameters((300, 256), init=dy.NumpyInitializer(rng.normal(size=(300, 256)) * 0.1))
    out_b = m.add_parameters(300)
    side_W = m.add_parameters((260, 256), init=dy.NumpyInitializer(rng.normal(size=(260, 256)) * 0.1))
    trainer = dy.SimpleSGDTrainer(m, 0.1)
    sentences = [[int(w) for w in rng.integers(0, 300, n)] for n in (5, 3, 7, 4)]
    values = []
    for _ in range(steps):
        dy.renew_cg()
        W, b, S = dy.parameter(out_W), dy.parameter(out_b), dy.parameter(side_W)
        losses = []
        for k, sent in enumerate(sentences):
            state, prev = lstm.initial_state(), 0
            for t, w in enumerate(sent):
                state = state.add_input(E[prev])
                h = state.output()
                losses.append(dy.pickneglogsoftmax(dy.affine_transform([b, W, h]), w))
                g = dy.tanh(h) if (k + t) % 2 else dy.logistic(h)
                losses.append(dy.sum_elems(dy.square(S * g)) * 0.01)
                prev = w
        loss = dy.esum(losses)
        values.append(loss.value())
        loss.backward()
        grads = [p.grad_as_array().copy() for p in m.parameters_list()] + [E.grad_as_array().copy()]
        trainer.update()
    return values, grads


def test_large_output_layer_groups_defer_their_weight_gradient():
    assert_autobatched_equals_plain(run_language_model, rtol=1e-4)


def run_cells(autobatch, lengths, batch):
    """VanillaLSTMBuilder over sequences of the given lengths (a shorter one in the middle: its
    cells' previous c no longer lie side by side), inputs of `batch` elements."""
    execution.configure(autobatch, 1)
    execution.reset()
    dy.reset_random_seed(6)
    m = dy.ParameterCollection()
    lstm = dy.VanillaLSTMBuilder(1, 4, 3, m)
    E = m.add_lookup_parameters((12, 4))
    dy.renew_cg()
    outs = []
    for s, length in enumerate(lengths):
        xs = [dy.lookup_batch(E, [(s + t + k) % 12 for k in range(batch)]) for t in range(length)]
        outs.extend(lstm.initial_state().transduce(xs))
    loss = dy.sum_batches(dy.sum_elems(dy.esum([dy.cmult(h, h) for h in outs])))
    value = loss.value()
    loss.backward()
    stats = dy.profiling_stats()
    return value, [p.grad_as_array().copy() for p in m.parameters_list()] + \
        [E.grad_as_array().copy()], stats


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("lengths", [(3, 3, 3), (4, 2, 4, 3)])
def test_lstm_cells_run_as_groups_and_equal_plain(lengths, batch):
    stats, = assert_autobatched_equals_plain(run_cells, lengths, batch, atol=1e-6)
    steps = max(lengths)
    for op in ("vanilla_lstm_c", "vanilla_lstm_h"):     # one call per time step
        assert stats[op]["nodes"] == sum(lengths) and stats[op]["batches"] == steps


def run_losses(autobatch, batch):
    """Per-example losses over scores that an affine group places side by side: pickneglogsoftmax
    and the four dot products / distances against the outputs of a second group; `batch` columns
    per example."""
    execution.configure(autobatch, 1)
    execution.reset()
    rng = np.random.default_rng(11)
    m = dy.ParameterCollection()
    W, b, V = m.add_parameters((7, 5)), m.add_parameters(7), m.add_parameters((7, 5))
    for p in (W, b, V):
        p.set_value(rng.normal(size=p.shape()))
    dy.renew_cg()
    losses = []
    for i in range(6):
        x = dy.inputTensor(rng.normal(size=(5, batch)) if batch > 1 else rng.normal(size=5), batched=batch > 1)
        s = dy.affine_transform([dy.parameter(b), dy.parameter(W), x])
        t = dy.tanh(dy.parameter(V) * x)
        labels = [(i + k) % 7 for k in range(batch)]
        losses += [dy.pickneglogsoftmax_batch(s, labels) if batch > 1 else dy.pickneglogsoftmax(s, labels[0]),
                   dy.dot_product(s, t), dy.squared_distance(s, t), dy.l1_distance(s, t),
                   dy.huber_distance(s, t, 0.5), dy.huber_distance(s, t, 2.0)]
    loss = dy.sum_batches(dy.esum(losses))
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for p in (W, b, V)], dy.profiling_stats()


@pytest.mark.parametrize("batch", [1, 3])
def test_losses_run_as_groups_and_equal_plain(batch):
    stats, = assert_autobatched_equals_plain(run_losses, batch)
    assert stats["pickneglogsoftmax"]["nodes"] == 6 and stats["pickneglogsoftmax"]["batches"] == 1
    for op in ("dot_product", "squared_distance", "l1_distance"):
        assert stats[op]["nodes"] == 6 and stats[op]["batches"] == 1
    # the two Huber thresholds are two groups
    assert stats["huber_distance"]["nodes"] == 12 and stats["huber_distance"]["batches"] == 2



def run_other_losses(autobatch, batch):
    """binary_log_loss (one argument gathered from per-example inputs, then both grouped),
    pairwise_rank_loss, poisson_loss and hinge over per-example scores; `batch` columns each."""
    execution.configure(autobatch, 1)
    execution.reset()
    rng = np.random.default_rng(12)
    m = dy.ParameterCollection()
    W, b, V, P = (m.add_parameters((7, 5)), m.add_parameters(7), m.add_parameters((7, 5)),
                  m.add_parameters((1, 5)))
    for p in (W, b, V, P):
        p.set_value(rng.normal(size=p.shape()))
    dy.renew_cg()
    losses = []

    def column(rows):
        shape = (rows, batch) if batch > 1 else (rows,)
        return dy.inputTensor(rng.uniform(size=shape), batched=batch > 1)
    for i in range(6):
        x = dy.inputTensor(rng.normal(size=(5, batch)) if batch > 1 else rng.normal(size=5), batched=batch > 1)
        s = dy.affine_transform([dy.parameter(b), dy.parameter(W), x])
        t = dy.tanh(dy.parameter(V) * x)
        labels = [(i + k) % 7 for k in range(batch)]
        counts = [(2 * i + k) % 5 for k in range(batch)]
        losses += [dy.binary_log_loss(dy.logistic(s), column(7)),
                   dy.binary_log_loss(dy.logistic(s), dy.logistic(t)),
                   dy.sum_elems(dy.pairwise_rank_loss(s, t, 0.5)),
                   dy.poisson_loss(dy.parameter(P) * x, counts if batch > 1 else counts[0]),
                   dy.hinge_batch(s, labels, 0.5) if batch > 1 else dy.hinge(s, labels[0], 0.5),
                   dy.hinge_batch(t, labels, 2.0) if batch > 1 else dy.hinge(t, labels[0], 2.0)]
    loss = dy.sum_batches(dy.esum(losses))
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for p in (W, b, V, P)], dy.profiling_stats()


@pytest.mark.parametrize("batch", [1, 3])
def test_other_losses_run_as_groups_and_equal_plain(batch):
    stats, = assert_autobatched_equals_plain(run_other_losses, batch)
    # binary_log_loss against the inputs lies a level shallower than the one against logistic(t),
    # but at the same distance from the loss: their key runs late, and both run as one group
    assert stats["binary_log_loss"]["nodes"] == 12 and stats["binary_log_loss"]["batches"] == 1
    assert stats["pairwise_rank_loss"]["nodes"] == 6 and stats["pairwise_rank_loss"]["batches"] == 1
    assert stats["poisson_loss"]["nodes"] == 6 and stats["poisson_loss"]["batches"] == 1
    hinge = "hinge_batch" if batch > 1 else "hinge"      # two margins (the exact test): two groups
    assert stats[hinge]["nodes"] == 12 and stats[hinge]["batches"] == 2

NOISE_KINDS = {"dropout": lambda h: dy.dropout(h, 0.3), "noise": lambda h: dy.noise(h, 0.5),
               "block_dropout": lambda h: dy.block_dropout(h, 0.5),
               "dropout_dim": lambda h: dy.dropout_dim(h, 1, 0.4)}


def run_noise(autobatch, backend="typed"):
    """Dropout of each kind, and noise, over per-example hidden layers (5 examples, 6 x 2 values
    each), the nodes of each kind made one kind after the other: batched in group order they draw
    what they draw one by one, so the values equal the plain run's."""
    from dynet.core import device
    device.set_backend(backend)
    try:
        execution.configure(autobatch, 1)
        execution.reset()
        dy.reset_random_seed(13)
        rng = np.random.default_rng(13)
        m = dy.ParameterCollection()
        W, b = m.add_parameters((6, 4)), m.add_parameters((6, 2))
        for p in (W, b):
            p.set_value(rng.normal(size=p.shape()))
        dy.renew_cg()
        hs = [dy.tanh(dy.parameter(W) * dy.inputTensor(rng.normal(size=(4, 2))) + dy.parameter(b))
              for _ in range(5)]
        outs = [kind(h) for kind in NOISE_KINDS.values() for h in hs]
        loss = dy.esum([dy.sum_elems(dy.cmult(o, dy.inputTensor(rng.uniform(-1, 1, (6, 2))))) for o in outs])
        value = loss.value()
        loss.backward()
        return value, [p.grad_as_array().copy() for p in (W, b)], dy.profiling_stats()
    finally:
        device.set_backend("typed")


def test_dropout_and_noise_run_as_groups_and_equal_plain():
    stats, = assert_autobatched_equals_plain(run_noise)
    for name in NOISE_KINDS:
        assert stats[name]["nodes"] == 5 and stats[name]["batches"] == 1, name


def test_dropout_groups_of_two_probabilities_keep_each_mask_for_backward():
    """Dropout nodes of two probabilities at one level: two groups (the exact test); every value is
    0 or its argument / (1 - p), and the gradient that reaches the argument is the same mask times
    the gradient that reaches the node (checked as grad(h) * h == grad(d) * d elementwise)."""
    execution.configure(1, 1)
    execution.reset()
    dy.reset_random_seed(2)
    rng = np.random.default_rng(2)
    dy.renew_cg()
    hs = [dy.tanh(dy.inputVector(rng.normal(size=50))) for _ in range(6)]
    ps = [0.3 if i % 2 else 0.6 for i in range(6)]
    ds = [dy.dropout(h, p) for h, p in zip(hs, ps)]
    projs = [rng.uniform(0.5, 1.5, 50) for _ in ds]
    loss = dy.esum([dy.dot_product(d, dy.inputVector(q)) for d, q in zip(ds, projs)])
    loss.backward(full=True)
    assert dy.profiling_stats()["dropout"]["batches"] == 2
    for h, d, p, q in zip(hs, ds, ps, projs):
        hv, dv = h.npvalue(), d.npvalue()
        kept = dv != 0
        assert 0 < kept.sum() < 50
        np.testing.assert_allclose(dv[kept], hv[kept] / (1 - p), rtol=1e-5)
        np.testing.assert_allclose(d.gradient(), q, rtol=1e-6)
        np.testing.assert_allclose(h.gradient() * hv, q * dv, rtol=1e-5, atol=1e-6)


def test_dropout_group_on_the_generic_backend_draws_one_mask(monkeypatch):
    """The GPU's path: a group of dropout nodes (a mask entry per value) draws one mask for the
    group and runs as one call forward and backward; the values and gradients equal the typed
    plain run's (the same draws). The other kinds run node by node there."""
    calls = count_generic_calls(monkeypatch, ("dropout_mask", "gaussian_noise"))
    v1, g1, _ = run_noise(1, "generic")
    assert calls == {"dropout_mask": 1 + 5 + 5, "gaussian_noise": 5}   # dropout; block, dim: per node
    v0, g0, _ = run_noise(0, "typed")
    assert v1 == pytest.approx(v0, rel=1e-5)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def run_generic_groups(autobatch, backend):
    """Affine transforms sharing W and b over looked-up columns, then tanh and a loss, on the
    given backend."""
    from dynet.core import device
    device.set_backend(backend)
    try:
        execution.configure(autobatch, 0)
        rng = np.random.default_rng(21)
        m = dy.ParameterCollection()
        E, W, b = m.add_lookup_parameters((9, 4)), m.add_parameters((5, 4)), m.add_parameters(5)
        E.init_from_array(rng.normal(size=(9, 4)))
        for p in (W, b):
            p.set_value(rng.normal(size=p.shape()))
        dy.renew_cg()
        hs = [dy.tanh(dy.affine_transform([b, W, dy.lookup(E, i)])) for i in range(7)]
        loss = dy.esum([dy.pickneglogsoftmax(h, i % 5) for i, h in enumerate(hs)])
        value = loss.value()
        loss.backward()
        return value, [p.grad_as_array().copy() for p in (E, W, b)]
    finally:
        device.set_backend("typed")


def count_generic_calls(monkeypatch, names):
    """A dict counting the calls of these functions of the generic implementation (the GPU's code
    path), filled as they run."""
    from dynet.kernels import generic
    calls = {}

    def counted(name):
        original = getattr(generic, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)
        monkeypatch.setattr(generic, name, wrapper)
    for name in names:
        counted(name)
    return calls

def test_groups_on_the_generic_backend_run_as_one_call(monkeypatch):
    """The GPU's path (the generic implementation, here on NumPy): the affine transforms' group is
    one product call and the tanh group one map call, forward and backward, and the values and
    gradients equal the typed plain run's."""
    calls = count_generic_calls(monkeypatch, ("matmul_forward", "matmul_backward", "unary_forward",
                                              "unary_backward"))
    v1, g1 = run_generic_groups(1, "generic")
    assert calls == {"matmul_forward": 1, "unary_forward": 1, "unary_backward": 1,
                     "matmul_backward": 2}            # dW, and dX into the lookups' block
    calls.clear()
    v0, g0 = run_generic_groups(0, "generic")
    assert calls["matmul_forward"] == 7 and calls["unary_forward"] == 7
    vt, gt = run_generic_groups(0, "typed")
    for v, g in ((v1, g1), (v0, g0)):
        assert v == pytest.approx(vt, rel=1e-5)
        for a, b in zip(g, gt):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("lengths", [(3, 3, 3), (4, 2, 4, 3)])
def test_lstm_groups_on_the_generic_backend(lengths, batch, monkeypatch):
    """The GPU's path for LSTMs: each step's gates of all the sequences are one generic call
    (two GEMMs), its c and h cells one call each, forward, and one call per argument backward
    (the gates' backward reads its inputs again: the state a group's forward computed is not one
    node's). Inputs that do not lie side by side (the lookups are placed sentence by sentence; a
    shorter sequence leaves a gap in the cells) are gathered, their gradients added back. Values
    and gradients equal the typed plain run's."""
    from dynet.core import device
    calls = count_generic_calls(monkeypatch, ("lstm_gates_forward", "lstm_c_forward", "lstm_h_forward",
                                              "lstm_gates_backward", "lstm_c_backward", "lstm_h_backward"))
    device.set_backend("generic")
    try:
        v1, g1, _ = run_cells(1, lengths, batch)
    finally:
        device.set_backend("typed")
    steps = max(lengths)
    # backward: gates x, Wx, Wh, b (and h after the first step); c: gates (and c_tm1); h: c, gates
    assert calls == {"lstm_gates_forward": steps, "lstm_c_forward": steps, "lstm_h_forward": steps,
                     "lstm_gates_backward": 5 * steps - 1, "lstm_c_backward": 2 * steps - 1,
                     "lstm_h_backward": 2 * steps}
    v0, g0, _ = run_cells(0, lengths, batch)
    assert v1 == pytest.approx(v0, rel=1e-5)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_loss_groups_on_the_generic_backend(batch, monkeypatch):
    """The GPU's path for pickneglogsoftmax (the indices of all the group's columns) and the dot
    products / distances: one generic call per group forward, one per argument backward; values
    and gradients equal the typed plain run's."""
    from dynet.core import device
    calls = count_generic_calls(monkeypatch, ("pick_neg_log_softmax_forward", "pick_neg_log_softmax_backward",
                                              "pair_forward"))
    device.set_backend("generic")
    try:
        v1, g1, _ = run_losses(1, batch)
    finally:
        device.set_backend("typed")
    # one pickneglogsoftmax group; dot, squared, l1 and two Huber groups
    assert calls == {"pick_neg_log_softmax_forward": 1, "pick_neg_log_softmax_backward": 1,
                     "pair_forward": 5}
    v0, g0, _ = run_losses(0, batch)
    assert v1 == pytest.approx(v0, rel=1e-5)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_group_members_without_a_gradient_do_not_stand_in_for_the_others():
    """tanh(x1 + x2) of inputs alone and tanh(p + x1) of a parameter form one group (same level,
    same signature); backward reaches both but only the second has a gradient. Its backward must
    run (a group of one), not be replaced by the member visited after it."""
    def run(autobatch):
        execution.configure(autobatch, 0)
        m = dy.ParameterCollection()
        P = m.add_parameters(3)
        P.set_value(np.array([0.5, -0.25, 1.0]))
        dy.renew_cg()
        x1, x2 = dy.inputVector([1.0, 2.0, 3.0]), dy.inputVector([0.5, -1.0, 2.0])
        loss = dy.sum_elems(dy.tanh(x1 + x2) + dy.tanh(dy.parameter(P) + x1))
        value = loss.value()
        loss.backward()
        return value, P.grad_as_array().copy()
    v0, g0 = run(0)
    v1, g1 = run(1)
    assert v1 == pytest.approx(v0, rel=1e-6)
    np.testing.assert_allclose(g1, g0, rtol=1e-6)
    assert np.abs(g0).min() > 1e-4


def run_random_graph(autobatch, seed):
    """A random graph of maps, products, affine transforms, concatenations, picks and dot products
    over inputs (some batched), lookups and parameters: branches with and without gradients meet
    in groups."""
    execution.configure(autobatch, 0)
    rng = np.random.default_rng(seed)
    m = dy.ParameterCollection()
    W, b = [m.add_parameters((4, 4)) for _ in range(2)], [m.add_parameters(4) for _ in range(2)]
    V, E = m.add_parameters((4, 4)), m.add_lookup_parameters((10, 4))
    for p in W + b + [V]:
        p.set_value(rng.normal(size=p.shape()) * 0.5)
    E.init_from_array(rng.normal(size=(10, 4)))
    dy.renew_cg()
    pool = []
    for _ in range(int(rng.integers(3, 8))):
        kind = int(rng.integers(0, 4))
        if kind == 0:
            pool.append(dy.inputVector(list(rng.normal(size=4))))
        elif kind == 1:
            pool.append(dy.inputTensor(rng.normal(size=(4, 2)), batched=True))
        elif kind == 2:
            pool.append(dy.lookup(E, int(rng.integers(0, 10))))
        else:
            pool.append(dy.parameter(b[int(rng.integers(0, 2))]))
    for _ in range(int(rng.integers(10, 60))):
        op = int(rng.integers(0, 10))
        x, y = pool[int(rng.integers(0, len(pool)))], pool[int(rng.integers(0, len(pool)))]
        i = int(rng.integers(0, 2))
        pool.append([lambda: dy.tanh(x), lambda: dy.logistic(x), lambda: dy.rectify(x),
                     lambda: x + y, lambda: x - y, lambda: dy.cmult(x, y),
                     lambda: dy.affine_transform([dy.parameter(b[i]), dy.parameter(W[i]), x]),
                     lambda: dy.parameter(V) * x,
                     lambda: dy.concatenate([dy.dot_product(x, y)] * 4),
                     lambda: dy.concatenate([dy.pick(dy.concatenate([x, y]), int(rng.integers(0, 8)))] * 4),
                     ][op]())
    picked = [pool[int(k)] for k in rng.integers(0, len(pool), size=int(rng.integers(1, 6)))]
    loss = dy.sum_batches(dy.sum_elems(dy.esum([dy.tanh(e) for e in picked])))
    value = loss.value()
    loss.backward()
    return value, [p.grad_as_array().copy() for p in W + b + [V]] + [E.grad_as_array().copy()]


@pytest.mark.parametrize("first", range(0, 400, 50))
def test_random_graphs_equal_plain(first):
    for seed in range(first, first + 50):
        assert_autobatched_equals_plain(run_random_graph, seed, rtol=1e-4, what=f"seed {seed}")


def run_random_sequences(autobatch, seed, full):
    """Random sequences (lookups and inputs) through one of two LSTMs, some of them the outputs
    of an earlier sequence run again (in either order, through either LSTM: recurrences that
    start at different depths, lined up or not), each output scored by a shared affine transform
    and one of the losses at random; backward(full) when `full`, whose intermediate gradients are
    compared too."""
    execution.configure(autobatch, 0)
    dy.reset_random_seed(seed + 1)
    rng = np.random.default_rng(seed)
    m = dy.ParameterCollection()
    W, b, E = m.add_parameters((4, 4)), m.add_parameters(4), m.add_lookup_parameters((10, 4))
    lstms = [dy.VanillaLSTMBuilder(1, 4, 4, m) for _ in range(2)]
    dy.renew_cg()
    losses, scores, outputs = [], [], []
    for _ in range(int(rng.integers(1, 6))):
        if outputs and rng.random() < 0.4:
            xs = outputs[int(rng.integers(0, len(outputs)))]
            xs = xs[::-1] if rng.random() < 0.5 else xs
        else:
            xs = [dy.lookup(E, int(rng.integers(0, 10))) if rng.random() < 0.5
                  else dy.inputVector(list(rng.normal(size=4))) for _ in range(int(rng.integers(1, 5)))]
        outputs.append(lstms[int(rng.integers(0, 2))].initial_state().transduce(xs))
        for h in outputs[-1]:
            s = dy.affine_transform([dy.parameter(b), dy.parameter(W), h])
            scores.append(s)
            k, target = int(rng.integers(0, 6)), int(rng.integers(0, 4))
            losses.append([lambda: dy.pickneglogsoftmax(s, target),
                           lambda: dy.hinge(s, target, 0.5),
                           lambda: dy.binary_log_loss(dy.logistic(s), dy.inputVector(list(rng.uniform(size=4)))),
                           lambda: dy.poisson_loss(dy.pick(s, 0), target),
                           lambda: dy.squared_distance(s, dy.tanh(h)),
                           lambda: dy.sum_elems(dy.pairwise_rank_loss(s, h, 0.3))][k]())
    loss = dy.esum(losses)
    value = loss.value()
    loss.backward(full=full)
    grads = [p.grad_as_array().copy() for p in m.parameters_list()] + [E.grad_as_array().copy()]
    return value, grads + ([s.gradient().copy() for s in scores] if full else [])


@pytest.mark.parametrize("full", [False, True])
def test_random_sequences_with_losses_equal_plain(full):
    for seed in range(60):
        assert_autobatched_equals_plain(run_random_sequences, seed, full, rtol=1e-4, what=f"seed {seed}")
