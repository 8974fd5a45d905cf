"""The builders' steps made at C level, for RNNState.add_input and transduce (rnn.py): every layer's
nodes of every input are made by direct calls of the node constructors, where composing them in
Python (unpacking each layer's parameter expressions, the operators' dispatch, the state lists)
cost more than making the nodes: a two-layer LSTMBuilder step took 13 us against DyNet's 3-6.

Each function makes the same nodes, in the same order, as the builder's Python `_step` it stands
in for (which still runs with dropout, layer normalisation, weight masks and subclasses that change
the step), so values, the graph and autobatching's groups are the same either way. Each takes the
state in DyNet's s() layout (None: the start of a sequence without one), the inputs and the layers'
parameter expressions, and returns the state after the last input and the output of every input.
"""
from dynet.nodes.elementwise cimport unary, binary, U_TANH, U_LOGISTIC, B_MUL
from dynet.nodes.matmul cimport affine
from dynet.nodes.lstm cimport make_gates, make_c, make_h
cimport dynet.nodes.lstm_coupled as coupled


cdef inline tuple split_state(object state, Py_ssize_t L, Py_ssize_t parts):
    """The state as `parts` lists of L (LSTMs: cells, outputs), or lists of None without one."""
    if state is None:
        return tuple([[None] * L for _ in range(parts)])
    state = list(state)
    return tuple([state[k * L:(k + 1) * L] for k in range(parts)])


def vanilla_lstm_steps(state, xs, list layers, float forget_bias, float weightnoise_std):
    """VanillaLSTMBuilder: per layer (Wx, Wh, b), the fused gates, c and h nodes."""
    cdef Py_ssize_t L = len(layers), i
    cdef list cs, hs, outs = []
    cs, hs = split_state(state, L, 2)
    for x in xs:
        for i in range(L):
            Wx, Wh, b = layers[i]
            g = make_gates([x], hs[i], Wx, Wh, b, None, None, weightnoise_std, forget_bias, "lstm")
            cs[i] = make_c(cs[i], g)
            x = hs[i] = make_h(cs[i], g)
        outs.append(x)
    return (cs + hs if outs else state), outs


def coupled_lstm_steps(state, xs, list layers, bint peepholes):
    """CoupledLSTMBuilder (peepholes) and FastLSTMBuilder (none): per layer
    (x2i, h2i, c2i, bi, x2o, h2o, c2o, bo, x2c, h2c, bc), the pre-activations
        i: bi + x2i x [+ h2i h + c2i c],  w: bc + x2c x [+ h2c h],  o: bo + x2o x [+ h2o h] + c2o c'
    (the peepholes' terms c2i c and c2o c' only with peepholes; the bracketed ones not at the
    start), c' = coupled_lstm_c(i, w, c) and h' = coupled_lstm_h(o, c')."""
    cdef Py_ssize_t L = len(layers), i
    cdef list cs, hs, outs = []
    cs, hs = split_state(state, L, 2)
    for x in xs:
        for i in range(L):
            x2i, h2i, c2i, bi, x2o, h2o, c2o, bo, x2c, h2c, bc = layers[i]
            c_prev, h_prev = cs[i], hs[i]
            if h_prev is None:
                pre_i = affine([bi, x2i, x])
                pre_w = affine([bc, x2c, x])
                terms = [bo, x2o, x]
            else:
                pre_i = affine([bi, x2i, x, h2i, h_prev, c2i, c_prev] if peepholes else
                               [bi, x2i, x, h2i, h_prev])
                pre_w = affine([bc, x2c, x, h2c, h_prev])
                terms = [bo, x2o, x, h2o, h_prev]
            c = coupled.make_c(pre_i, pre_w, c_prev)
            if peepholes:
                terms += [c2o, c]
            cs[i] = c
            x = hs[i] = coupled.make_h(affine(terms), c)
        outs.append(x)
    return (cs + hs if outs else state), outs


def simple_rnn_steps(state, xs, list layers):
    """SimpleRNNBuilder: per layer (W, U, b), h' = tanh(b + W x [+ U h])."""
    cdef Py_ssize_t L = len(layers), i
    cdef list hs, outs = []
    hs, = split_state(state, L, 1)
    for x in xs:
        for i in range(L):
            W, U, b = layers[i]
            x = hs[i] = unary(affine([b, W, x] if hs[i] is None else [b, W, x, U, hs[i]]), U_TANH)
        outs.append(x)
    return (hs if outs else state), outs


def gru_steps(state, xs, list layers):
    """GRUBuilder without dropout: per layer (xz, hz, bz, xr, hr, br, xh, hh, bh),
        z = logistic(bz + xz x + hz h),  r = logistic(br + xr x + hr h),
        h' = (1 - z) * h + z * tanh(bh + xh x + hh (r * h));  z * tanh(bh + xh x) at the start,
    h' made by the coupled LSTM's c cell (the same update) from the pre-activations of z and of
    the candidate."""
    cdef Py_ssize_t L = len(layers), i
    cdef list hs, outs = []
    hs, = split_state(state, L, 1)
    for x in xs:
        for i in range(L):
            xz, hz, bz, xr, hr, br, xh, hh, bh = layers[i]
            h = hs[i]
            if h is None:
                pre_z = affine([bz, xz, x])
                x = coupled.make_c(pre_z, affine([bh, xh, x]), None)
            else:
                pre_z = affine([bz, xz, x, hz, h])
                r = unary(affine([br, xr, x, hr, h]), U_LOGISTIC)
                x = coupled.make_c(pre_z, affine([bh, xh, x, hh, binary(r, h, B_MUL)]), h)
            hs[i] = x
        outs.append(x)
    return (hs if outs else state), outs
