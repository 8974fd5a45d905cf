"""The computation graph: values, lazy forward, backward, renewal, checkpoints, inputs, errors."""
import itertools

import numpy as np
import pytest

import dynet as dy


def test_value_kinds_follow_dynet():
    s = dy.squared_norm(dy.inputVector([1, 2, 3]))
    assert s.value() == 14.0 and isinstance(s.value(), float)
    assert s.dim() == ((1,), 1)
    v = dy.inputVector([1, 2, 3])
    assert v.value() == [1.0, 2.0, 3.0]
    m = dy.inputTensor(np.arange(6.).reshape(2, 3))
    assert m.dim() == ((2, 3), 1)
    np.testing.assert_array_equal(m.value(), np.arange(6.).reshape(2, 3))
    b = dy.inputTensor(np.arange(6.).reshape(2, 3), batched=True)
    assert b.dim() == ((2,), 3) and b.npvalue().shape == (2, 3)
    assert dy.sum_elems(b).value() == [3.0, 5.0, 7.0]
    assert dy.inputMatrix([1, 2, 3, 4, 5, 6], (2, 3)).npvalue().tolist() == [[1, 3, 5], [2, 4, 6]]
    assert v.tensor_value().as_numpy().tolist() == [1, 2, 3]


def test_inputs_of_every_kind():
    assert dy.scalarInput(3).value() == 3.0
    assert dy.vecInput(4).value() == [0.0] * 4
    assert dy.matInput(2, 2).npvalue().tolist() == [[0, 0], [0, 0]]
    assert dy.zeroes((2,), batch_size=3).dim() == ((2,), 3)
    assert dy.zeros(3).value() == [0, 0, 0] and dy.ones(2).value() == [1, 1]
    assert dy.constant((2,), 1.5).value() == [1.5, 1.5]
    lst = dy.inputTensor([np.ones(2), np.zeros(2)])
    assert lst.dim() == ((2,), 2)
    assert dy.inputTensor([[1, 2], [3, 4]]).npvalue().tolist() == [[1, 2], [3, 4]]
    r = dy.random_normal((1000,)).npvalue()
    assert abs(r.mean()) < 0.15 and 0.8 < r.std() < 1.2
    u = dy.random_uniform((1000,), -2, 2).npvalue()
    assert u.min() >= -2 and u.max() <= 2
    bern = dy.random_bernoulli((1000,), 0.3, 2.0).npvalue()
    assert set(np.unique(bern)) <= {0.0, 2.0} and 0.2 < np.mean(bern > 0) < 0.4


def test_set_and_recalculate_static_graph():
    x = dy.vecInput(2)
    y = dy.squared_norm(x)
    x.set([1, 2])
    assert y.scalar_value() == 5.0
    x.set([3, 4])
    assert y.scalar_value(recalculate=True) == 25.0
    s = dy.scalarInput(1)
    z = s * 2
    s.set(5)
    assert z.scalar_value() == 10.0


def test_lazy_forward_and_backward_full():
    x = dy.inputVector([1.0, -2.0])
    y = dy.squared_norm(x)
    y.backward(full=True)
    assert x.gradient().tolist() == [2.0, -4.0]
    y.backward()                       # not full: constants get no gradient
    assert x.gradient().tolist() == [0.0, 0.0]


def test_parameter_gradients_and_update_flags():
    m = dy.ParameterCollection()
    W = m.add_parameters((1, 2), init=dy.NumpyInitializer(np.array([[1.0, 2.0]])))
    x = dy.inputVector([3.0, 4.0])
    loss = W * x
    loss.backward()
    np.testing.assert_allclose(W.grad_as_array(), [[3.0, 4.0]])
    dy.renew_cg()
    W.scale_gradient(0)
    (dy.parameter(W, update=False) * dy.inputVector([3.0, 4.0])).backward()
    np.testing.assert_allclose(W.grad_as_array(), [[0.0, 0.0]])
    dy.renew_cg()
    (dy.const_parameter(W) * dy.inputVector([3.0, 4.0])).backward()
    np.testing.assert_allclose(W.grad_as_array(), [[0.0, 0.0]])
    dy.renew_cg()
    (W.expr() * dy.inputVector([3.0, 4.0])).backward()       # the text's default: update=True
    np.testing.assert_allclose(W.grad_as_array(), [[3.0, 4.0]])


def test_lookup_and_batched_lookup():
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((4, 2), init=dy.NumpyInitializer(np.arange(8.).reshape(4, 2)))
    assert dy.lookup(E, 2).value() == [4.0, 5.0]
    assert E[1].value() == [2.0, 3.0]
    b = dy.lookup_batch(E, [3, 0])
    assert b.dim() == ((2,), 2) and b.npvalue().tolist() == [[6, 0], [7, 1]]
    assert E.batch([1]).dim() == ((2,), 1)
    dy.sum_batches(dy.sum_elems(b)).backward()
    assert E.grad_as_array().tolist() == [[1, 1], [0, 0], [0, 0], [1, 1]]
    # every row looked up before the loss counts as updated, on its path or not (as in DyNet);
    # E.batch([1]) is after it
    assert sorted(E.touched_rows().tolist()) == [0, 1, 2, 3]
    E.clear_touched()
    dy.renew_cg()
    loss = dy.sum_elems(E[3])
    E[1]
    loss.backward()
    assert E.touched_rows().tolist() == [3]
    with pytest.raises(IndexError, match="lookup: index 9 is out of range .* 4 rows"):
        dy.lookup(E, 9)
    with pytest.raises(IndexError, match="lookup_batch"):
        dy.lookup_batch(E, [0, -1])


@pytest.mark.parametrize("op", [dy.lookup, dy.lookup_batch, dy.const_lookup])
@pytest.mark.parametrize("table", [None, "E", 3])
def test_lookup_of_something_not_a_table_is_a_type_error(op, table):
    # None used to reach a method call on None: the interpreter crashed
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((4, 2))
    with pytest.raises(TypeError, match=f"{op.__name__}: expected LookupParameters, got {type(table).__name__}"):
        op(table, dy.lookup(E, 1) if table is None else [0])


def test_a_graph_of_its_own_does_not_forward_another_graphs_expression():
    # ComputationGraph() is a graph with no nodes: it ran the current graph's node index on its
    # own empty list and crashed the interpreter
    x = dy.inputVector([1, 2])
    y = dy.tanh(x)
    other = dy.ComputationGraph()
    with pytest.raises(RuntimeError, match=r"forward: the expression \(node v1\) belongs to another computation graph"):
        other.forward(y)
    other.forward()
    assert y.value() == pytest.approx(np.tanh([1, 2]).tolist())


@pytest.mark.parametrize("use", [
    lambda e: dy.block_dropout(e, 0.5), lambda e: dy.dropout_dim(e, 0, 0.5), lambda e: dy.tanh(e),
    lambda e: dy.concatenate([e, e]), lambda e: e + 1, lambda e: e.value(), lambda e: e.backward()])
def test_an_expression_made_directly_belongs_to_no_graph(use):
    # Expression() has no dimensions: block_dropout divided by its size (0) and killed the process
    with pytest.raises(RuntimeError, match="the expression belongs to no computation graph"):
        use(dy.Expression())


@pytest.mark.parametrize("cls,made_by", [(dy.Parameters, "add_parameters"),
                                         (dy.LookupParameters, "add_lookup_parameters")])
def test_parameters_are_made_only_by_a_collection(cls, made_by):
    # one made by __new__ had no memory: its methods crashed the interpreter
    for make in (cls, lambda: cls.__new__(cls), lambda: cls(None)):
        with pytest.raises(TypeError, match=f"{cls.__name__} are created by ParameterCollection.{made_by}"):
            make()


@pytest.mark.parametrize("scalar", [np.float64(2.0), np.float32(2.0), np.int64(2)])
def test_numpy_scalars_on_the_left_of_an_expression(scalar):
    # NumPy took the expression for a sequence and failed ("setting an array element with a
    # sequence"); now its operators leave the expression to its own reflected operators
    e = dy.inputVector([1.0, 2.0, 4.0])
    np.testing.assert_allclose((scalar * e).npvalue(), [2, 4, 8])
    np.testing.assert_allclose((scalar + e).npvalue(), [3, 4, 6])
    np.testing.assert_allclose((scalar - e).npvalue(), [1, 0, -2])
    np.testing.assert_allclose((scalar / e).npvalue(), [2, 1, 0.5])
    with pytest.raises(TypeError, match=r"\+: expected an Expression, got ndarray"):
        np.ones(3) + e


def test_numpy_holds_expressions_as_objects_as_with_dynet():
    # bilstm-aux keeps a sentence's embeddings in np.array([...]) and concatenates its items
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((5, 3))
    a = np.array([E[0], E[1]])
    assert a.dtype == object and a.shape == (2,)
    assert dy.concatenate([a[0], a[1]]).dim() == ((6,), 1)
    with pytest.raises(TypeError):
        len(E[0])


class _AsksDuringForward:
    """A pyop whose forward asks the graph for something: a pass from inside a pass."""
    name = "asks"

    def __init__(self, ask):
        self.ask = ask

    def dim(self, dims):
        return dims[0]

    def forward(self, xs, out):
        self.ask()
        out[...] = 2 * xs[0]

    def backward(self, xs, out, dout, i, dxi):
        dxi += 2 * dout


@pytest.mark.parametrize("ask,message", [
    ("later value", "forward: the graph is already computing"),
    ("backward", "backward: the graph is already computing"),
    ("recalculate", "the graph is computing: an input cannot change, nor a value be recalculated"),
    ("set input", "the graph is computing: an input cannot change"),
])
def test_a_pass_asked_for_inside_a_pass_is_an_error(ask, message):
    # it ran the asking node again, and so on until the C stack overflowed
    x = dy.inputVector([1.0, 2.0])
    later = []
    asks = {"later value": lambda: later[0].value(), "backward": lambda: later[0].backward(),
            "recalculate": lambda: x.value(recalculate=True), "set input": lambda: x.set([3.0, 4.0])}
    y = dy.pyop(_AsksDuringForward(asks[ask]), [x])
    later.append(dy.sum_elems(y))
    with pytest.raises(RuntimeError, match=message):
        later[0].value()
    dy.renew_cg()                       # the graph works on
    assert dy.sum_elems(dy.inputVector([1.0, 2.0]) * 2).value() == 6.0


def test_an_earlier_value_inside_a_pass_is_there_to_read():
    x = dy.inputVector([1.0, 2.0])
    s = dy.sum_elems(x)
    s.value()
    seen = []
    y = dy.pyop(_AsksDuringForward(lambda: seen.append(s.value())), [x])
    assert dy.sum_elems(y).value() == 6.0 and seen == [3.0]


def test_stale_expressions_are_errors_not_crashes():
    x = dy.inputVector([1, 2])
    dy.renew_cg()
    for f in (lambda: x.value(), lambda: x.npvalue(), lambda: dy.tanh(x), lambda: x + x,
              lambda: x.backward(), lambda: x.gradient(), lambda: x * 2, lambda: dy.esum([x])):
        with pytest.raises(RuntimeError, match="stale expression from computation graph version"):
            f()


def test_checkpoint_and_revert():
    a = dy.inputVector([1, 2])
    dy.cg_checkpoint()
    b = a * 3
    assert b.value() == [3, 6]
    dy.cg_revert()
    with pytest.raises(RuntimeError, match="removed by cg_revert"):
        b.value()
    c = a + a
    assert c.value() == [2, 4]
    with pytest.raises(RuntimeError, match="no checkpoint"):
        dy.cg_revert()


def test_cg_api_and_graphviz(capsys):
    v = dy.cg_version()
    dy.renew_cg()
    assert dy.cg_version() == v + 1 == dy.cg().version()
    x = dy.inputVector([1, 2])
    dy.tanh(x)
    dy.print_text_graphviz()
    out = capsys.readouterr().out
    assert "digraph G" in out and "tanh(v0)" in out and "N0 -> N1" in out



def test_check_validity_only_in_immediate_mode():
    """As DyNet: check_validity checks each new node's value when immediate_compute computes it; a
    lazy graph is not checked (its NaN is an ordinary value)."""
    dy.renew_cg(immediate_compute=True, check_validity=True)
    with pytest.raises(RuntimeError, match=r"NaN or Inf detected: log \(node v1"):
        dy.log(dy.inputVector([-1.0]))
    dy.renew_cg(check_validity=True)
    assert np.isnan(dy.log(dy.inputVector([-1.0])).value())
    dy.renew_cg(immediate_compute=True)
    assert np.isnan(dy.log(dy.inputVector([-1.0])).value())


def test_pools_grow_instead_of_failing():
    dy.renew_cg()
    big = dy.inputTensor(np.ones((2000, 2000)))        # 16 MB, larger than a small pool
    xs = [big * 2.0 for _ in range(3)]
    assert dy.esum(xs).npvalue()[0, 0] == 6.0
    dy.renew_cg()
    assert dy.inputVector([1]).value() == 1.0


@pytest.mark.parametrize("make,message", [
    (lambda: dy.cmult(dy.inputVector([1, 2, 3]), dy.inputVector([1, 2, 3, 4])), r"cmult: .*\{3\} and \{4\}"),
    (lambda: dy.inputTensor(np.ones((2, 3))) * dy.inputVector([1, 2]), r"matmul: cannot multiply \{2,3\} by \{2\}"),
    (lambda: dy.pick(dy.inputVector([1, 2, 3, 4, 5]), 7), r"pick: index 7 is out of range .* size 5"),
    (lambda: dy.inputVector([1, 2]).scalar_value(), r"scalar_value: expression \{2\} is not a scalar"),
    (lambda: dy.inputVector([1, 2]).backward(), r"backward: .*scalar.*\{2\}"),
    (lambda: dy.concatenate([]), r"concatenate: the list of expressions is empty"),
    (lambda: dy.esum([dy.inputVector([1]), dy.inputVector([1, 2])]), r"esum: .*\{1\}, \{2\}"),
    (lambda: dy.tanh("x"), r"tanh: expected an Expression, got str"),
    (lambda: dy.concatenate([dy.inputVector([1]), 3]), r"concatenate: expected an Expression, got int"),
    (lambda: dy.affine_transform((dy.inputVector([1]), "W", dy.inputVector([1]))),
     r"affine_transform: expected an Expression, got str"),
    (lambda: dy.esum(()), r"esum: the list of expressions is empty"),
    (lambda: dy.esum(dy.inputVector([1])), r"esum: expected a list of Expressions, got a single Expression"),
    (lambda: dy.affine_transform([dy.inputVector([1])]*2), r"affine_transform: needs an odd number"),
    (lambda: dy.reshape(dy.inputVector([1, 2, 3]), (2, 2)), r"reshape: cannot reshape \{3\} to \{2,2\}"),
    (lambda: dy.pickneglogsoftmax(dy.inputVector([1, 2]), 2), r"pickneglogsoftmax: index 2 is out of range"),
    (lambda: dy.pickneglogsoftmax_batch(dy.inputTensor(np.ones((2, 3)), True), [0, 1]), r"2 indices for a batch of 3"),
    (lambda: dy.inputVector([[1, 2]]), r"inputVector: expected a flat list"),
    (lambda: dy.inputTensor("abc"), r"inputTensor"),
    (lambda: dy.dropout(dy.inputVector([1]), 1.5), r"dropout: p must be in \[0, 1\], got 1.5"),
    (lambda: dy.ParameterCollection().add_parameters((2, -1)), r"dimension sizes must be positive"),
    # a shape read from an iterable stops after 8 entries: an endless one, or an expression of a
    # billion values taken for a shape, filled the memory until the process was killed
    (lambda: dy.zeros(itertools.count(1)), r"at most 7 dimensions, got 8 or more: \(1, 2, 3, 4, 5, 6, 7, 8\)"),
    (lambda: dy.random_normal(dy.ones(10**9)), r"at most 7 dimensions, got 8 or more: \(expression"),
    (lambda: dy.SimpleSGDTrainer("model"), r"must be a ParameterCollection"),
    (lambda: dy.SimpleSGDTrainer(dy.ParameterCollection(), -1), r"learning rate must be a finite number >= 0"),
])
def test_bad_input_raises_named_errors(make, message):
    with pytest.raises((ValueError, TypeError, IndexError, RuntimeError), match=message):
        make()


def test_sgd_trainer_and_clipping():
    m = dy.ParameterCollection()
    W = m.add_parameters((1,), init=dy.ConstInitializer(1.0))
    t = dy.SimpleSGDTrainer(m, e0=0.1)
    (W * 100.0).backward()                # gradient 100: clipped to norm 5
    t.update()
    np.testing.assert_allclose(W.as_array(), [1.0 - 0.1 * 5], rtol=1e-6)
    assert t.clips == 1
    t.set_clip_threshold(0)               # <= 0 turns clipping off
    dy.renew_cg()
    (W * 100.0).backward()
    t.update()
    np.testing.assert_allclose(W.as_array(), [0.5 - 10.0], rtol=1e-6)
    t2 = dy.SimpleSGDTrainer(m, learning_rate=0.5, edecay=1.0)
    t2.update_epoch()
    assert t2.learning_rate == pytest.approx(0.25)


def test_parameters_api():
    m = dy.Model()
    W = m.add_parameters((2, 3), name="w")
    assert W.name() == "/w" and W.shape() == (2, 3)
    W.set_value(np.arange(6).reshape(2, 3))
    assert W.as_array().tolist() == [[0, 1, 2], [3, 4, 5]]
    W.scale(2)
    W.clip_inplace(0, 6)
    assert W.as_array().tolist() == [[0, 2, 4], [6, 6, 6]]
    W.zero()
    assert not W.as_array().any()
    E = m.add_lookup_parameters((3, 2))
    E.init_row(1, [7, 8])
    assert E.row_as_array(1).tolist() == [7, 8] and E.rows_as_array([1]).tolist() == [[7, 8]]
    E.init_from_array(np.ones((3, 2)))
    assert E.as_array().sum() == 6
    sub = m.add_subcollection("enc")
    P = sub.add_parameters(4)
    assert P.name() == "/enc/_0"
    assert [p.name() for p in m.parameters_list()] == ["/w", "/enc/_0"]
    assert sub.parameters_list() == [P] and m.lookup_parameters_list() == [E]
    P2 = m.parameters_from_numpy(np.eye(2))
    assert P2.as_array().tolist() == [[1, 0], [0, 1]]
    I = m.add_parameters((3, 3), init=dy.IdentityInitializer())
    assert np.allclose(I.as_array(), np.eye(3))
    S = m.add_parameters((4, 4), init=dy.SaxeInitializer())
    assert np.allclose(S.as_array() @ S.as_array().T, np.eye(4), atol=1e-5)
    G = m.add_parameters((100, 100), init=dy.GlorotInitializer(gain=2.0))
    assert np.abs(G.as_array()).max() <= 2.0 * np.sqrt(6 / 200) + 1e-6
    N = m.add_parameters((1000,), init=dy.NormalInitializer(1.0, 4.0))
    assert abs(N.as_array().mean() - 1.0) < 0.2 and abs(N.as_array().std() - 2.0) < 0.2
    U = m.add_parameters((1000,), init=dy.UniformInitializer(0.5))
    assert np.abs(U.as_array()).max() <= 0.5
    assert W * dy.inputVector([1, 1, 1]) is not None    # Parameters used directly (DyNet 2.1)


def test_static_graph_trains_every_update():
    """A graph built once and re-run with set() (DyNet's XOR tutorial style): every backward pass
    must count as a gradient for the trainer, so each update moves the parameters and clears the
    gradients (a regression: only the first update used to apply)."""
    m = dy.ParameterCollection()
    V = m.add_parameters((1, 3), init=dy.ConstInitializer(0.1))
    E = m.add_lookup_parameters((2, 3), init=dy.ConstInitializer(0.1))
    t = dy.SimpleSGDTrainer(m, 0.01)
    x = dy.vecInput(3)
    loss = dy.squared_norm(V * x) + dy.squared_norm(dy.parameter(E) * 1.0)
    for step in range(3):
        x.set([1, 2, 3])
        loss.scalar_value(recalculate=True)
        loss.backward()
        g, gE = V.grad_as_array().copy(), E.grad_as_array().copy()
        before, beforeE = V.as_array().copy(), E.as_array().copy()
        t.update()
        np.testing.assert_allclose(V.as_array(), before - 0.01 * g, rtol=1e-5)
        np.testing.assert_allclose(E.as_array(), beforeE - 0.01 * gE, rtol=1e-5)
        assert not V.grad_as_array().any() and not E.grad_as_array().any()


# ---- DyNet 2.1/2.2 graph API: gradient availability, renew_cg's result ---------------------------

def test_gradient_before_any_backward_is_a_runtime_error():
    x = dy.inputVector([1.0, 2.0])
    with pytest.raises(RuntimeError, match="gradient.*v0.*no backward pass"):
        x.gradient()


def test_gradient_of_a_node_after_the_loss_is_a_runtime_error():
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2))
    x = dy.inputVector([1.0, 2.0])
    unused = dy.inputVector([3.0, 4.0])
    loss = dy.sum_elems(W * x)
    loss.backward()
    np.testing.assert_array_equal(x.gradient(), [0, 0])      # not needed: zero, as in DyNet
    np.testing.assert_array_equal(unused.gradient(), [0, 0])
    later = dy.sum_elems(x * 2)
    with pytest.raises(RuntimeError, match=f"v{later.vindex}.*computed from node v{loss.vindex}"):
        later.gradient()
    dy.renew_cg()
    y = dy.inputVector([1.0])
    with pytest.raises(RuntimeError, match="no backward pass"):
        y.gradient()


def test_renew_cg_returns_the_graph():
    g = dy.renew_cg()
    assert g is dy.cg()
    x = dy.inputVector([1.0])
    assert g.size() == 1 and x.cg_version == g.version()


def test_no_gradient_for_nodes_made_after_a_revert():
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2))
    x = dy.inputVector([1.0, 2.0])
    dy.cg_checkpoint()
    loss = dy.sum_elems(W * x)
    loss.backward()
    dy.cg_revert()
    again = dy.sum_elems(x * 3)           # takes the reverted loss's place in the graph
    with pytest.raises(RuntimeError, match="gradient"):
        again.gradient()
    np.testing.assert_array_equal(x.gradient(), [0, 0])


def test_expression_lists_of_every_kind_give_the_same_node():
    """A list literal, a tuple and any other iterable of arguments (and Parameters among them, as in
    DyNet 2.1) make the same node."""
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 4), init=dy.NumpyInitializer(np.arange(12.0).reshape(3, 4) / 10))
    b = m.add_parameters(3, init=dy.ConstInitializer(0.5))
    dy.renew_cg()
    x = dy.inputVector([1.0, -2.0, 3.0, 0.5])
    expect = np.arange(12.0).reshape(3, 4) / 10 @ np.array([1.0, -2.0, 3.0, 0.5]) + 0.5
    for args in ([b, W, x], (b, W, x), iter([b, W, x]), [dy.parameter(b), dy.parameter(W), x]):
        y = dy.affine_transform(args)
        assert y.dim() == ((3,), 1)
        np.testing.assert_allclose(y.npvalue(), expect, rtol=1e-6)
    np.testing.assert_allclose(dy.concatenate((x, x)).npvalue(), np.tile([1.0, -2.0, 3.0, 0.5], 2))


def test_passes_flush_subnormal_numbers_and_restore_the_float_mode():
    """Forward and backward over a graph of 32 nodes or more run with flush-to-zero on x86 (as
    DyNet, built with -ffast-math): a product below the smallest normal float is 0, and so is its
    gradient; the thread's own floating-point mode is as it was afterwards."""
    import platform
    before = np.float32(1e-39) * np.float32(1.0)
    dy.renew_cg()
    x = dy.inputVector([1e-20, 1.0])
    a = x
    for _ in range(40):
        a = a * 1.0
    square = dy.cmult(a, a)
    y = dy.sum_elems(square)
    y.backward(full=True)
    if platform.machine() in ("x86_64", "AMD64", "i686"):
        assert square.npvalue()[0] == 0.0                   # 1e-40 would be subnormal
        assert y.value() == pytest.approx(1.0)
    assert np.float32(1e-39) * np.float32(1.0) == before
