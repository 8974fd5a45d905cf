"""Recurrent builders (DyNet's RNNBuilder family) and RNNState.

A builder owns its parameters (one list per layer, in the order the reference documents) and knows
one step: `_step(s, x) -> (s', output)`, where `s` is the state in DyNet's s() layout (for LSTMs
[c_1..c_L, h_1..h_L], otherwise [h_1..h_L]) or None at the start of a sequence with no initial
state (DyNet then drops the recurrent terms, which is the same as zeros). RNNState is an immutable
node in the tree of states a user walks with add_input/prev.

The LSTM cells are built from fused nodes: VanillaLSTM's from vanilla_lstm_gates/_c/_h
(dynet/nodes/lstm.pyx), three nodes per layer and step; the coupled LSTM's (the 2.0 LSTMBuilder)
from three affine transforms and coupled_lstm_c/_h (dynet/nodes/lstm_coupled.pyx). add_input and
transduce make the steps at C level (cells.pyx) where no dropout or layer normalisation applies.

Each thread has its own computation graph, so what a builder keeps of the current graph (its
parameters' expressions, dropout masks) is kept per thread (`_PerThread`): threads can run one
builder on their own graphs side by side.
"""
import math
import threading
from numbers import Real

from dynet.core import config, graph as _graph
from dynet.core.initializers import ConstInitializer
from dynet.nodes.elementwise import tanh, logistic, cmult, cdiv, sqrt
from dynet.nodes.matmul import affine_transform
from dynet.nodes.select import pick_range, concatenate
from dynet.nodes.reduce import sum_elems
from dynet.nodes.noise import dropout
from dynet.nodes.inputs import inputTensor, random_bernoulli, zeros
from dynet.nodes.lstm import _gates, vanilla_lstm_c, vanilla_lstm_h
from dynet.nodes.lstm_coupled import coupled_lstm_c, coupled_lstm_h
from dynet.builders.cells import vanilla_lstm_steps, coupled_lstm_steps, simple_rnn_steps, gru_steps

_cg = _graph.cg


def _input_list(xs, op):
    """The inputs of add_inputs / transduce as a list or tuple, or a TypeError naming the call."""
    if isinstance(xs, (list, tuple)):
        return xs
    try:
        return list(xs)
    except TypeError:
        raise TypeError(f"{op}: expected a list of expressions, got {type(xs).__name__}") from None


def _states_after(state, xs):
    """[state + x1, state + x1 + x2, ...]: add_inputs of RNNState and StackedRNNState."""
    states = []
    for x in _input_list(xs, "add_inputs"):
        state = state.add_input(x)
        states.append(state)
    return states


class RNNState:
    """A state of an RNN: request one with builder.initial_state(), then add inputs."""
    __slots__ = ("builder", "_s", "_prev", "_out")

    def __init__(self, builder, s, prev=None, out=None):
        self.builder = builder
        self._s = s
        self._prev = prev
        self._out = out

    def add_input(self, x):
        """h_t = RNN(x_t): the new state."""
        builder = self.builder
        stepped = builder._steps(self._s, (x,))
        if stepped is not None:
            return RNNState(builder, stepped[0], self, stepped[1][0])
        s, out = builder._step(self._s, x)
        return RNNState(builder, s, self, out)

    def add_inputs(self, xs):
        """The list of states obtained by adding the inputs one by one."""
        return _states_after(self, xs)

    def transduce(self, xs):
        """The list of outputs obtained by adding the inputs one by one (no states kept)."""
        xs = _input_list(xs, "transduce")
        stepped = self.builder._steps(self._s, xs)
        if stepped is not None:
            return stepped[1]
        step = self.builder._step
        s = self._s
        outs = []
        for x in xs:
            s, out = step(s, x)
            outs.append(out)
        return outs

    def output(self):
        """The output of the network at this step (h of the last layer)

        Returns:
            dynet.Expression: the output, or None for the initial state
        """
        return self._out

    def h(self):
        """The output of each layer at this step (the network's output is h()[-1])."""
        return tuple(self.builder._h_of(self._s)) if self._s is not None else ()

    def s(self):
        """The full state: for LSTMs the cells of every layer, then the outputs."""
        return tuple(self._s) if self._s is not None else ()

    def prev(self):
        """The state this one was made from

        Returns:
            RNNState: the previous state (None for the initial state)
        """
        return self._prev

    def b(self):
        """The builder of this state

        Returns:
            _RNNBuilder: the builder
        """
        return self.builder

    def set_h(self, es=None):
        """A new state (child of this one) whose outputs h are `es`, one per layer."""
        s = self.builder._set_h(self._s, list(es) if es is not None else None)
        return RNNState(self.builder, s, self, s[-1])

    def set_s(self, es=None):
        """A new state from the full state `es` (LSTMs: [c_1..c_L, h_1..h_L] or just the cells)."""
        s = self.builder._set_s(self._s, list(es) if es is not None else None)
        return RNNState(self.builder, s, self, s[-1])


class StackedRNNState:
    """States of several single-layer builders stacked on each other."""

    def __init__(self, states, prev=None):
        self.states = states
        self._prev = prev

    def add_input(self, x):
        """Feed x to the first builder, each output to the next

        Args:
            x (dynet.Expression): the input at this step

        Returns:
            StackedRNNState: the new state
        """
        next_states = []
        for s in self.states:
            next_states.append(s.add_input(x))
            x = next_states[-1].output()
        return StackedRNNState(next_states, self)

    def add_inputs(self, xs):
        """The list of states obtained by adding the inputs one by one."""
        return _states_after(self, xs)

    def output(self):
        """The output of the last builder at this step

        Returns:
            dynet.Expression: the output
        """
        return self.states[-1].output()

    def prev(self):
        """The state this one was made from

        Returns:
            StackedRNNState: the previous state (None for the first)
        """
        return self._prev

    def h(self):
        """The outputs of every layer of every stacked builder

        Returns:
            list: h() of each builder's state
        """
        return [s.h() for s in self.states]

    def s(self):
        """The full states of every stacked builder

        Returns:
            list: s() of each builder's state
        """
        return [s.s() for s in self.states]


def _spec_args(cls, spec, needed):
    """The arguments a from_spec call passes to the constructor, checked (a spec comes from a file)."""
    if not isinstance(spec, (tuple, list)) or len(spec) < needed:
        raise ValueError(f"{cls.__name__}.from_spec: expected a tuple of at least {needed} "
                         f"constructor arguments, got {spec!r}")
    return tuple(spec)


class _PerThread:
    """A builder attribute that holds expressions of the current graph: each thread sees its own
    value (None until it sets one), as each thread has its own graph."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        local = obj.__dict__.get("_per_thread")
        return None if local is None else getattr(local, self.name, None)

    def __set__(self, obj, value):
        local = obj.__dict__.get("_per_thread")
        if local is None:
            local = obj.__dict__.setdefault("_per_thread", threading.local())
        setattr(local, self.name, value)


def _size(builder, what, v, smallest=1):
    """A size of at least `smallest`; a float is truncated, as DyNet does (hidden_dim=64.0 in
    Python 2-era code)."""
    if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and int(v) >= smallest:
        return int(v)
    raise ValueError(f"{builder}: {what} must be a{' positive' if smallest else ' non-negative'} "
                     f"integer, got {v!r}")


class _RNNBuilder:
    """The common part of the builders: parameters per layer, loading them into the graph,
    initial states and standard dropout.

    Saving (dy.save/dy.load, DyNet 2.1's protocol): `spec` holds the constructor's arguments other
    than the model, from_spec(spec, model) rebuilds the builder, and every parameter lives in the
    builder's own subcollection (param_collection()), named and ordered as DyNet's, so that files
    move between this package and DyNet in both directions."""
    _collection_name = "rnn-builder"
    _state_factor = 1         # expressions per layer in s(): 2 for LSTMs (c and h)
    # of the current graph, per thread: the parameters' expressions (and the graph version and
    # update flag they were made for), layer-norm and masked expressions, dropout masks
    _vars = _PerThread()
    _vars_version = _PerThread()
    _vars_update = _PerThread()
    _ln_vars = _PerThread()
    _masked = _PerThread()
    _masks = _PerThread()

    def __init__(self, layers, input_dim, hidden_dim, model):
        name = type(self).__name__
        # input_dim may be 0, as in DyNet: taggers build the character LSTM that an option turns
        # off (bilstm-aux's --c_in_dim 0); its empty parameters are refused only if it is used
        layers, input_dim, hidden_dim = [_size(name, what, v, smallest) for what, v, smallest in (
            ("layers", layers, 1), ("input_dim", input_dim, 0), ("hidden_dim", hidden_dim, 1))]
        self.layers = layers
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.spec = (layers, input_dim, hidden_dim) + tuple(getattr(self, "spec", ())[3:])
        self.model = subcollection(model, self._collection_name)
        self.dropout_rate = 0.0
        self._masks = None        # per-sequence dropout masks (those builders that use them)
        self._params = []
        for i in range(layers):
            self._params.append(self._make_layer(input_dim if i == 0 else hidden_dim))

    # ---- parameters ----
    def _make_layer(self, in_dim):
        raise TypeError("_RNNBuilder is abstract: use one of the builders (e.g. VanillaLSTMBuilder)")

    def param_collection(self):
        """The builder's subcollection: every parameter dy.save writes for it."""
        return self.model

    @classmethod
    def from_spec(cls, spec, model):
        """The builder described by `spec` (as saved by dy.save), with new parameters in `model`."""
        args = _spec_args(cls, spec, 3)
        return cls(*args[:3], model, *args[3:])

    def get_parameters(self):
        """The parameters, one list per layer (see the class for the order)."""
        return [list(layer) for layer in self._params]

    def get_parameter_expressions(self):
        """The parameters' expressions in the current graph, one list per layer; initial_state()
        must have been called in this graph."""
        if self._vars is None or self._vars_version != _cg().version():
            raise ValueError(f"{type(self).__name__}: attempt to use a stale expression: renew the "
                             f"computation graph and/or call initial_state() before accessing the "
                             f"builder's parameter expressions")
        return [list(layer) for layer in self._vars]

    def _load(self, update):
        v = _cg().version()
        if self._vars is None or v != self._vars_version or update != self._vars_update:
            self._vars = [[p.expr(update) for p in layer] for layer in self._params]
            self._vars_version = v
            self._vars_update = update
            self._new_graph()

    def _new_graph(self):
        pass

    def _new_sequence(self):
        self._masks = None        # variational dropout: new masks for each sequence

    def _steps(self, s, xs):
        """(state after xs, their outputs) from state s in one call of the typed steps (cells.pyx),
        or None where _step must run per input (dropout, layer normalisation, a subclass's own
        step)."""
        return None

    # ---- states ----
    def initial_state(self, vecs=None, update=True):
        """An RNNState at the start of a sequence; vecs: the initial state in s() layout."""
        self._load(bool(update))
        self._new_sequence()
        s = None
        if vecs is not None:
            s = list(vecs)
            n = self.layers * self._state_factor
            if len(s) != n:
                raise ValueError(f"{type(self).__name__}.initial_state: expected {n} expressions "
                                 f"({self._state_factor} per layer, {self.layers} layers), got {len(s)}")
            for e in s:
                self._check_state_expr(e, "initial_state")
        return RNNState(self, s, None, s[-1] if s else None)

    def initial_state_from_raw_vectors(self, vecs=None, update=True):
        """initial_state with the initial state given as numpy arrays."""
        if vecs is None:
            return self.initial_state(None, update)
        return self.initial_state([inputTensor(v) for v in vecs], update)

    def _check_state_expr(self, e, op):
        d = e.dim()[0]
        if tuple(d) not in ((self.hidden_dim,), (self.hidden_dim, 1)):
            raise ValueError(f"{type(self).__name__}.{op}: state vectors must have dimension "
                             f"{{{self.hidden_dim}}}, got {e.dim()}")

    def _h_of(self, s):
        return s[(self._state_factor - 1) * self.layers:]

    def _set_h(self, s, es):
        if es is None or len(es) != self.layers:
            raise ValueError(f"{type(self).__name__}.set_h: expected {self.layers} expressions (one per "
                             f"layer), got {0 if es is None else len(es)}")
        for e in es:
            self._check_state_expr(e, "set_h")
        return es

    def _set_s(self, s, es):
        return self._set_h(s, es)

    # ---- dropout ----
    def set_dropout(self, p):
        """Apply dropout with rate p to the inputs of every layer when states are made

        Args:
            p (float): the dropout rate, in [0, 1)

        Raises:
            ValueError: if p is not in [0, 1)
        """
        _check_rates(self, "set_dropout", p)
        self.dropout_rate = float(p)

    def disable_dropout(self):
        """Turn dropout off (the rate becomes 0)"""
        self.dropout_rate = 0.0

    def whoami(self):
        """The builder's class name

        Returns:
            str: e.g. "VanillaLSTMBuilder"
        """
        return type(self).__name__


class _VariationalDropout:
    """Variational dropout (Gal & Ghahramani, 2016), as DyNet's SimpleRNN, LSTM builders do: one
    mask per layer for each of the parts in `_dropout_rates()` (the input x, the recurrent h, for
    CoupledLSTM also the cell c), Bernoulli(1 - rate) scaled by 1/(1 - rate), drawn once per
    sequence (at its first input, or by set_dropout_masks) and applied at every step; a part whose
    rate is 0 is left alone."""

    def _dropout_rates(self):
        raise TypeError(f"{type(self).__name__} does not define its dropout rates")

    def set_dropout_masks(self, batch_size=1):
        """Draw the dropout masks of this sequence (call after initial_state); without it they are
        drawn at the first input, for that input's batch size."""
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"{type(self).__name__}.set_dropout_masks: batch_size must be a positive "
                             f"integer, got {batch_size!r}")
        rates = self._dropout_rates()
        self._masks = []
        for i in range(self.layers):
            layer = []
            for k, rate in enumerate(rates):
                dim = self.input_dim if (k == 0 and i == 0) else self.hidden_dim
                keep = 1.0 - rate
                layer.append(random_bernoulli((dim,), keep, 1.0 / keep, batch_size) if rate else None)
            self._masks.append(tuple(layer))

    def _layer_masks(self, x):
        """Per layer, a tuple of masks (None where that rate is 0); None without dropout."""
        if not any(self._dropout_rates()):
            return None
        if self._masks is None:
            self.set_dropout_masks(x.dim()[1])
        return self._masks


def _check_rates(builder, what, *rates):
    for v in rates:
        if not 0 <= v < 1:
            raise ValueError(f"{type(builder).__name__}.{what}: rates must be in [0, 1), got {v}")


def _masked(e, mask):
    return e if mask is None else cmult(e, mask)



def subcollection(model, base):
    """A subcollection named as DyNet names them: base, then base_1, base_2, ... when taken."""
    k = 0
    while True:
        name = base if k == 0 else f"{base}_{k}"
        try:
            return model.add_subcollection(name)
        except ValueError:
            if k > 100000:
                raise
            k += 1


def _zero_bias():
    return ConstInitializer(0.0)


class SimpleRNNBuilder(_VariationalDropout, _RNNBuilder):
    """h_t = tanh(W_hx x_t + W_hh h_{t-1} + b_h); parameters per layer: W_hx, W_hh, b_h.
    Dropout is variational, as DyNet's: set_dropouts(d, d_h) masks x (rate d) and h_{t-1} (rate
    d_h) with masks drawn once per sequence; set_dropout(d) sets both rates."""
    _collection_name = "simple-rnn-builder"

    def __init__(self, layers, input_dim, hidden_dim, model):
        self.dropout_rate_h = 0.0
        _RNNBuilder.__init__(self, layers, input_dim, hidden_dim, model)

    def _dropout_rates(self):
        return (self.dropout_rate, self.dropout_rate_h)

    def set_dropout(self, d):
        """Variational dropout with rate d on both the input and the recurrent state."""
        self.set_dropouts(d, d)

    def set_dropouts(self, d, d_h):
        """Variational dropout with separate rates for the input and the recurrent state

        Args:
            d (float): dropout rate on the input x_t, in [0, 1)
            d_h (float): dropout rate on the recurrent h_{t-1}, in [0, 1)

        Raises:
            ValueError: if a rate is not in [0, 1)
        """
        _check_rates(self, "set_dropouts", d, d_h)
        self.dropout_rate, self.dropout_rate_h = float(d), float(d_h)

    def disable_dropout(self):
        self.dropout_rate = self.dropout_rate_h = 0.0

    def _make_layer(self, in_dim):
        m, H = self.model, self.hidden_dim
        return [m.add_parameters((H, in_dim)), m.add_parameters((H, H)),
                m.add_parameters((H,), init=_zero_bias())]

    def _steps(self, s, xs):
        if type(self)._step is not SimpleRNNBuilder._step or self.dropout_rate or self.dropout_rate_h:
            return None
        return simple_rnn_steps(s, xs, self._vars)

    def _step(self, s, x):
        out = []
        masks = self._layer_masks(x)
        for i, (W, U, b) in enumerate(self._vars):
            mx, mh = masks[i] if masks is not None else (None, None)
            x = _masked(x, mx)
            if s is None:
                x = tanh(affine_transform([b, W, x]))
            else:
                x = tanh(affine_transform([b, W, x, U, _masked(s[i], mh)]))
            out.append(x)
        return out, x


class GRUBuilder(_RNNBuilder):
    """Gated recurrent unit; parameters per layer: W_zx, W_zh, b_z, W_rx, W_rh, b_r, W_hx, W_hh, b_h.
        z = sigmoid(W_zx x + W_zh h + b_z), r = sigmoid(W_rx x + W_rh h + b_r),
        h' = (1 - z) * h + z * tanh(W_hx x + W_hh (r * h) + b_h)."""
    _collection_name = "gru-builder"

    def _make_layer(self, in_dim):
        m, H = self.model, self.hidden_dim
        ps = []
        for _ in range(3):
            ps += [m.add_parameters((H, in_dim)), m.add_parameters((H, H)),
                   m.add_parameters((H,), init=_zero_bias())]
        return ps

    def _steps(self, s, xs):
        if type(self)._step is not GRUBuilder._step or self.dropout_rate:
            return None
        return gru_steps(s, xs, self._vars)

    def _step(self, s, x):
        out = []
        p = self.dropout_rate
        for i, (xz, hz, bz, xr, hr, br, xh, hh, bh) in enumerate(self._vars):
            if p:
                x = dropout(x, p)
            # h' = (1 - z) h + z tanh(pre_c), z = logistic(pre_z): the coupled LSTM's c update
            if s is None:
                pre_z = affine_transform([bz, xz, x])
                x = coupled_lstm_c(pre_z, affine_transform([bh, xh, x]))
            else:
                h = s[i]
                pre_z = affine_transform([bz, xz, x, hz, h])
                r = logistic(affine_transform([br, xr, x, hr, h]))
                x = coupled_lstm_c(pre_z, affine_transform([bh, xh, x, hh, cmult(r, h)]), h)
            out.append(x)
        return out, (dropout(x, p) if p else x)


class _LSTMState(_RNNBuilder):
    """State handling common to the LSTMs: s() is [c_1..c_L, h_1..h_L]."""
    _state_factor = 2

    def _set_h(self, s, es):
        L = self.layers
        if es is None or len(es) != L:
            raise ValueError(f"{type(self).__name__}.set_h: expected {L} expressions (one per layer), "
                             f"got {0 if es is None else len(es)}")
        for e in es:
            self._check_state_expr(e, "set_h")
        cs = s[:L] if s is not None else [zeros((self.hidden_dim,)) for _ in range(L)]
        return list(cs) + es

    def _set_s(self, s, es):
        L = self.layers
        if es is None or len(es) not in (L, 2 * L):
            raise ValueError(f"{type(self).__name__}.set_s: expected {L} cells or {2 * L} expressions "
                             f"(cells then outputs), got {0 if es is None else len(es)}")
        for e in es:
            self._check_state_expr(e, "set_s")
        if len(es) == L:
            hs = s[L:] if s is not None else [zeros((self.hidden_dim,)) for _ in range(L)]
            return es + list(hs)
        return es


class CoupledLSTMBuilder(_VariationalDropout, _LSTMState):
    """The LSTM with peephole connections and coupled input/forget gates (the 2.0 text's
    LSTMBuilder); parameters per layer: W_ix, W_ih, W_ic, b_i, W_ox, W_oh, W_oc, b_o, W_cx, W_ch, b_c.

        i = sigmoid(W_ix x + W_ih h + W_ic c + b_i),  f = 1 - i
        c' = f * c + i * tanh(W_cx x + W_ch h + b_c)
        o = sigmoid(W_ox x + W_oh h + W_oc c' + b_o),  h' = o * tanh(c')

    Dropout is variational, as DyNet's: set_dropout(d) masks x, h_{t-1} and c_{t-1} of every
    layer with masks drawn once per sequence (the output itself is not dropped)."""
    _collection_name = "lstm-builder"

    def _dropout_rates(self):
        d = self.dropout_rate
        return (d, d, d)

    def _make_layer(self, in_dim):
        m, H = self.model, self.hidden_dim
        ps = []
        for gate in range(3):
            ps += [m.add_parameters((H, in_dim)), m.add_parameters((H, H))]
            if gate < 2:
                ps.append(self._peephole(m, H))
            ps.append(m.add_parameters((H,), init=_zero_bias()))
        return ps

    def _peephole(self, m, H):
        return m.add_parameters((H, H))

    _peepholes = True         # whether W_ic c and W_oc c' enter the gates (FastLSTMBuilder: no)

    def _steps(self, s, xs):
        if type(self)._step is not CoupledLSTMBuilder._step or any(self._dropout_rates()):
            return None
        return coupled_lstm_steps(s, xs, self._vars, self._peepholes)

    def _step(self, s, x):
        # (the nodes of cells.coupled_lstm_steps, with the dropout masks applied)
        L = self.layers
        cs, hs = [], []
        masks = self._layer_masks(x)
        for i, (x2i, h2i, c2i, bi, x2o, h2o, c2o, bo, x2c, h2c, bc) in enumerate(self._vars):
            mx, mh, mc = masks[i] if masks is not None else (None, None, None)
            x = _masked(x, mx)
            if s is None:
                pre_i = affine_transform([bi, x2i, x])
                pre_w = affine_transform([bc, x2c, x])
                c = coupled_lstm_c(pre_i, pre_w)
                terms = [bo, x2o, x]
            else:
                c_prev, h_prev = _masked(s[i], mc), _masked(s[L + i], mh)
                peep = [c2i, c_prev] if self._peepholes else []
                pre_i = affine_transform([bi, x2i, x, h2i, h_prev] + peep)
                pre_w = affine_transform([bc, x2c, x, h2c, h_prev])
                c = coupled_lstm_c(pre_i, pre_w, c_prev)
                terms = [bo, x2o, x, h2o, h_prev]
            if self._peepholes:
                terms += [c2o, c]
            x = coupled_lstm_h(affine_transform(terms), c)
            cs.append(c)
            hs.append(x)
        return cs + hs, x


class _StandsFor(type):
    """isinstance(b, LSTMBuilder) holds for the builder that LSTMBuilder stands for."""

    def __instancecheck__(cls, obj):
        if cls is LSTMBuilder:
            return isinstance(obj, VanillaLSTMBuilder if config.api_2_1() else CoupledLSTMBuilder)
        return type.__instancecheck__(cls, obj)


class LSTMBuilder(CoupledLSTMBuilder, metaclass=_StandsFor):
    """DyNet's LSTMBuilder. In the 2.0 API (our spec, the default) it is the LSTM with peepholes,
    CoupledLSTMBuilder; in DyNet 2.1/2.2 it is VanillaLSTMBuilder. It builds the 2.1 one under the
    2.1 API level (dynet_config.set(api="2.1"), --dynet-api 2.1), or when called with arguments
    only 2.1 has (ln_lstm, forget_bias: 2.0 code cannot pass them). The builder it returns is a
    CoupledLSTMBuilder or a VanillaLSTMBuilder, so files are saved under those names."""

    def __new__(cls, *args, **kwargs):
        if cls is not LSTMBuilder:
            return super().__new__(cls)          # a user's subclass: the 2.0 builder
        if config.api_2_1() or len(args) > 4 or "ln_lstm" in kwargs or "forget_bias" in kwargs:
            return VanillaLSTMBuilder(*args, **kwargs)
        return CoupledLSTMBuilder(*args, **kwargs)


class FastLSTMBuilder(CoupledLSTMBuilder):
    """DyNet's FastLSTMBuilder: the coupled LSTM's parameters, with W_ic and W_oc as {H,1} vectors
    (diagonal peepholes). DyNet's fast-lstm.cc creates these vectors but leaves them out of its
    equations, so the cell computes as CoupledLSTM without peepholes; we compute as DyNet does, so
    that a model trained there gives the same outputs here. The vectors are kept (and saved), so
    model files move both ways."""
    _collection_name = "fast-lstm-builder"

    def _dropout_rates(self):
        return (0.0, 0.0, 0.0)

    def set_dropout(self, p):
        """DyNet's FastLSTMBuilder has no dropout: the rate is checked and kept, but nothing is
        dropped (a warning says so, instead of silently training without it)."""
        _RNNBuilder.set_dropout(self, p)
        if p:
            import warnings
            warnings.warn("FastLSTMBuilder has no dropout (as in DyNet): set_dropout changes nothing",
                          stacklevel=2)

    def _peephole(self, m, H):
        return m.add_parameters((H, 1))

    _peepholes = False


class VanillaLSTMBuilder(_VariationalDropout, _LSTMState):
    """The standard LSTM (separate input and forget gates, no peepholes); parameters per layer:
    W_x, W_h, b, the four gates (i, f, o, g) stacked. forget_bias is added to the forget gate's
    pre-activation; ln_lstm adds layer normalisation of W_x x, W_h h and c.
    Dropout is variational (Gal, 2016): masks on x and h drawn once per sequence."""
    _collection_name = "vanilla-lstm-builder"

    def __init__(self, layers, input_dim, hidden_dim, model, ln_lstm=False, forget_bias=1.0):
        self.ln_lstm = bool(ln_lstm)
        self.forget_bias = float(forget_bias)
        self.spec = (layers, input_dim, hidden_dim, self.ln_lstm, self.forget_bias)
        self._parent = model
        self.dropout_rate_h = 0.0
        self.weightnoise_std = 0.0
        self._ln = []
        _RNNBuilder.__init__(self, layers, input_dim, hidden_dim, model)

    def _make_layer(self, in_dim):
        m, H = self.model, self.hidden_dim
        ps = [m.add_parameters((4 * H, in_dim)), m.add_parameters((4 * H, H)),
              m.add_parameters((4 * H,), init=_zero_bias())]
        self._make_ln()
        return ps

    def _make_ln(self):
        """The layer-normalisation gains (1) and biases (0) for W_h h, W_x x and c of one layer.
        DyNet creates them in the collection given to the constructor, not in the builder's own
        (so dy.save of the builder leaves them out, and loading recreates them at 1 and 0); we do
        the same so that builder files and whole-model files match DyNet's."""
        if not self.ln_lstm:
            return
        m, H = self._parent, self.hidden_dim
        one, zero = ConstInitializer(1.0), ConstInitializer(0.0)
        self._ln.append([m.add_parameters((4 * H,), init=one), m.add_parameters((4 * H,), init=zero),
                         m.add_parameters((4 * H,), init=one), m.add_parameters((4 * H,), init=zero),
                         m.add_parameters((H,), init=one), m.add_parameters((H,), init=zero)])

    def _new_graph(self):
        self._ln_vars = [[p.expr(self._vars_update) for p in layer] for layer in self._ln]

    def _dropout_rates(self):
        return (self.dropout_rate, self.dropout_rate_h)

    def set_dropout(self, d):
        """Variational dropout with rate d on both the input and the recurrent state."""
        self.set_dropouts(d, d)

    def set_dropouts(self, d, d_r):
        """Variational dropout with separate rates for the input and the recurrent state

        Args:
            d (float): dropout rate on the input x_t, in [0, 1)
            d_r (float): dropout rate on the recurrent h_{t-1}, in [0, 1)

        Raises:
            ValueError: if a rate is not in [0, 1)
        """
        _check_rates(self, "set_dropouts", d, d_r)
        self.dropout_rate = float(d)
        self.dropout_rate_h = float(d_r)

    def disable_dropout(self):
        """Turn both dropout rates off"""
        self.dropout_rate = 0.0
        self.dropout_rate_h = 0.0

    def _steps(self, s, xs):
        if self.ln_lstm or type(self)._step is not VanillaLSTMBuilder._step or \
                self.dropout_rate or self.dropout_rate_h:
            return None
        return vanilla_lstm_steps(s, xs, self._vars, self.forget_bias, self.weightnoise_std)

    def _step(self, s, x):
        if self.ln_lstm:
            return self._step_ln(s, x)
        L = self.layers
        masks = self._layer_masks(x)
        cs, hs = [], []
        fb, wn = self.forget_bias, self.weightnoise_std
        for i, (Wx, Wh, b) in enumerate(self._vars):
            mx, mh = masks[i] if masks is not None else (None, None)
            if s is None:
                g = _gates([x], None, Wx, Wh, b, mx, mh, fb, wn)
                c = vanilla_lstm_c(None, g)
            else:
                g = _gates([x], s[L + i], Wx, Wh, b, mx, mh, fb, wn)
                c = vanilla_lstm_c(s[i], g)
            x = vanilla_lstm_h(c, g)
            cs.append(c)
            hs.append(x)
        return cs + hs, x

    def _step_ln(self, s, x):
        L, H = self.layers, self.hidden_dim
        masks = self._layer_masks(x)
        cs, hs = [], []
        for i, (Wx, Wh, b) in enumerate(self._vars):
            gh, bh, gx, bx, gc, bcn = self._ln_vars[i]
            mx, mh = masks[i] if masks is not None else (None, None)
            x = _masked(x, mx)
            a = b + _layer_norm(Wx * x, gx, bx)
            if s is not None:
                h_prev = _masked(s[L + i], mh)
                a = a + _layer_norm(Wh * h_prev, gh, bh)
            it = logistic(pick_range(a, 0, H))
            ft = logistic(pick_range(a, H, 2 * H) + self.forget_bias)
            ot = logistic(pick_range(a, 2 * H, 3 * H))
            gt = tanh(pick_range(a, 3 * H, 4 * H))
            c = cmult(it, gt) if s is None else cmult(ft, s[i]) + cmult(it, gt)
            x = cmult(ot, tanh(_layer_norm(c, gc, bcn)))
            cs.append(c)
            hs.append(x)
        return cs + hs, x


def _layer_norm(x, g, b):
    """DyNet's layer_norm: g * (x - mean) / (std + 1e-8) + b, over the elements of x."""
    n = x.dim()[0][0]
    xc = x - sum_elems(x) * (1.0 / n)
    std = sqrt(sum_elems(cmult(xc, xc)) * (1.0 / n))
    return cmult(g, cdiv(xc, std + 1e-8)) + b


class CompactVanillaLSTMBuilder(VanillaLSTMBuilder):
    """VanillaLSTMBuilder without layer normalisation, with optional Gaussian weight noise."""
    _collection_name = "compact-vanilla-lstm-builder"

    def __init__(self, layers, input_dim, hidden_dim, model):
        VanillaLSTMBuilder.__init__(self, layers, input_dim, hidden_dim, model)
        self.spec = (layers, input_dim, hidden_dim)

    def set_weightnoise(self, std):
        """Add Gaussian noise to the weights at every step (training only)

        Args:
            std (float): standard deviation of the noise, >= 0

        Raises:
            ValueError: if std < 0
        """
        if std < 0:
            raise ValueError(f"CompactVanillaLSTMBuilder.set_weightnoise: std must be >= 0, got {std}")
        self.weightnoise_std = float(std)


class SparseLSTMBuilder(VanillaLSTMBuilder):
    """VanillaLSTM whose W_x and W_h are multiplied by 0/1 masks (parameters 4 and 5 of each
    layer, never trained); set_sparsity(p) masks the fraction p of the weights with the smallest
    magnitude (Narang et al., 2017).
    As in DyNet, its subcollection is named "vanilla-lstm-builder" and each layer's parameters are
    created in the order W_x, W_h, mask_x, mask_h, b (get_parameters() lists W_x, W_h, b, the masks)."""
    _collection_name = "vanilla-lstm-builder"

    def _make_layer(self, in_dim):
        m, H = self.model, self.hidden_dim
        Wx, Wh = m.add_parameters((4 * H, in_dim)), m.add_parameters((4 * H, H))
        one = ConstInitializer(1.0)
        masks = [m.add_parameters(W.shape(), init=one) for W in (Wx, Wh)]
        for mask in masks:
            mask.set_updated(False)
        b = m.add_parameters((4 * H,), init=_zero_bias())
        self._make_ln()
        return [Wx, Wh, b] + masks

    def set_sparsity(self, percent):
        """Mask the fraction `percent` of the weights with the smallest magnitude

        Args:
            percent (float): fraction of W_x and W_h weights set to zero, in [0, 1]

        Raises:
            ValueError: if percent is not in [0, 1]
        """
        if not 0 <= percent <= 1:
            raise ValueError(f"SparseLSTMBuilder.set_sparsity: expected a fraction in [0, 1], got {percent}")
        import numpy as np
        for layer in self._params:
            for W, M in ((layer[0], layer[3]), (layer[1], layer[4])):
                w = np.abs(W.as_array()).ravel(order="F")
                k = int(percent * w.size)
                m = np.ones(w.size, dtype=np.float32)
                if k > 0:
                    m[np.argsort(w, kind="stable")[:k]] = 0
                M.set_value(m.reshape(W.shape(), order="F"))

    def _new_graph(self):
        VanillaLSTMBuilder._new_graph(self)
        self._masked = [[cmult(l[0], l[3]), cmult(l[1], l[4]), l[2]] for l in self._vars]

    def _step(self, s, x):
        full = self._vars
        self._vars = self._masked
        try:
            return VanillaLSTMBuilder._step(self, s, x)
        finally:
            self._vars = full


class BiRNNBuilder:
    """A bidirectional RNN: forward and backward builders per layer, their outputs concatenated.

        builder = BiRNNBuilder(1, 128, 100, model, LSTMBuilder)
        [o1, o2, o3] = builder.transduce([i1, i2, i3])

    As in DyNet, the builders live in a subcollection "birnn" (param_collection()), created in the
    order layer 1 forward, layer 1 backward, layer 2 forward, ...; its spec is the constructor's
    arguments (num_layers, input_dim, hidden_dim, rnn_builder_factory, builder_layers). A BiRNN
    built from given builder_layers cannot be saved (its spec holds builders; save those instead).
    """

    def __init__(self, num_layers, input_dim, hidden_dim, model, rnn_builder_factory, builder_layers=None):
        if rnn_builder_factory is LSTMBuilder:     # the builder it stands for (at this API level)
            rnn_builder_factory = VanillaLSTMBuilder if config.api_2_1() else CoupledLSTMBuilder
        self.spec = (num_layers, input_dim, hidden_dim, rnn_builder_factory, builder_layers)
        self.model = subcollection(model, "birnn")
        if builder_layers is None:
            num_layers = _size("BiRNNBuilder", "num_layers", num_layers)
            hidden_dim = _size("BiRNNBuilder", "hidden_dim", hidden_dim)
            input_dim = _size("BiRNNBuilder", "input_dim", input_dim, 0)
            self.spec = (num_layers, input_dim, hidden_dim) + self.spec[3:]
            if hidden_dim % 2 != 0:
                raise ValueError(f"BiRNNBuilder: hidden_dim must be even (half each way), got {hidden_dim}")
            half = hidden_dim // 2
            self.builder_layers = []
            for i in range(num_layers):
                d = input_dim if i == 0 else hidden_dim
                self.builder_layers.append((rnn_builder_factory(1, d, half, self.model),
                                            rnn_builder_factory(1, d, half, self.model)))
        else:
            self.builder_layers = list(builder_layers)

    @staticmethod
    def from_spec(spec, model):
        """The BiRNN described by `spec` (as saved by dy.save), with new parameters in `model`."""
        args = _spec_args(BiRNNBuilder, spec, 4)
        factory = args[3]
        # the factory comes from a file: only a builder class (one that follows the save protocol)
        # is called, never an arbitrary class that happens to be importable
        if not (isinstance(factory, type) and callable(getattr(factory, "from_spec", None))):
            raise ValueError(f"BiRNNBuilder.from_spec: the builder factory must be a builder class "
                             f"(with from_spec), got {factory!r}")
        if len(args) > 4 and args[4] is not None:
            raise ValueError("BiRNNBuilder.from_spec: a BiRNN built from builder_layers cannot be loaded")
        return BiRNNBuilder(*args[:3], model, factory)

    def whoami(self):
        """The builder's class name

        Returns:
            str: "BiRNNBuilder"
        """
        return "BiRNNBuilder"

    def param_collection(self):
        """The builder's subcollection, holding the parameters of every layer

        Returns:
            ParameterCollection: what dy.save writes for this builder
        """
        return self.model

    def set_dropout(self, p):
        """Apply dropout with rate p in every forward and backward builder

        Args:
            p (float): the dropout rate, in [0, 1)

        Raises:
            ValueError: if p is not in [0, 1)
        """
        for fb, bb in self.builder_layers:
            fb.set_dropout(p)
            bb.set_dropout(p)

    def disable_dropout(self):
        """Turn dropout off in every forward and backward builder"""
        for fb, bb in self.builder_layers:
            fb.disable_dropout()
            bb.disable_dropout()

    def _lower(self, es):
        for fb, bb in self.builder_layers[:-1]:
            fs = fb.initial_state().transduce(es)
            bs = bb.initial_state().transduce(es[::-1])
            es = [concatenate([f, b]) for f, b in zip(fs, bs[::-1])]
        return es

    def add_inputs(self, es):
        """The list of (forward state, backward state) pairs for the inputs."""
        es = self._lower(list(es))
        fb, bb = self.builder_layers[-1]
        fs = fb.initial_state().add_inputs(es)
        bs = bb.initial_state().add_inputs(es[::-1])
        return list(zip(fs, bs[::-1]))

    def transduce(self, es):
        """The outputs: forward and backward outputs concatenated, for each input."""
        es = self._lower(list(es))
        fb, bb = self.builder_layers[-1]
        fs = fb.initial_state().transduce(es)
        bs = bb.initial_state().transduce(es[::-1])
        return [concatenate([f, b]) for f, b in zip(fs, bs[::-1])]
