"""The model of DyNet's attention example (examples/python/attention.py): a character-level
encoder-decoder with attention, two-layer LSTM encoders each way and a two-layer LSTM decoder,
states and attention of 32, the decoder's LSTM stepped with add_input; 16 random sentences of 5-14
characters a graph, their losses summed before backward and one SGD update; without and with
--dynet-autobatch 1. Both cells: the 2.0 LSTMBuilder (coupled, with peepholes: the example as
written for DyNet 2.0) and VanillaLSTMBuilder (what LSTMBuilder is in DyNet 2.1 and the reference
wheel). Counts sentences. Its graph is many small operations per character (the attention's
scores, a softmax, a weighted sum), where building the graph is most of the step."""
import numpy as np

UNIT = "sentences/s"
SENTENCES = 16
CONFIGS = [{"autobatch": ab, "cell": cell} for cell in ("coupled", "vanilla") for ab in (0, 1)]
CHARS = list("abcdefghijklmnopqrstuvwxyz ")
EOS = len(CHARS)


def make(dy, cell="coupled", layers=2, dim=32):
    rng = np.random.default_rng(0)
    lstm = dy.CoupledLSTMBuilder if cell == "coupled" else dy.VanillaLSTMBuilder
    vocab = len(CHARS) + 1
    m = dy.ParameterCollection()
    enc_fwd, enc_bwd = lstm(layers, dim, dim, m), lstm(layers, dim, dim, m)
    dec = lstm(layers, 2 * dim + dim, dim, m)
    input_lookup = m.add_lookup_parameters((vocab, dim))
    output_lookup = m.add_lookup_parameters((vocab, dim))
    p_w1 = m.add_parameters((dim, 2 * dim))
    p_w2 = m.add_parameters((dim, 2 * dim * layers))
    p_v = m.add_parameters((1, dim))
    p_out, p_bias = m.add_parameters((vocab, dim)), m.add_parameters(vocab)
    trainer = dy.SimpleSGDTrainer(m)
    sents = [[EOS] + [int(c) for c in rng.integers(0, len(CHARS), int(rng.integers(5, 15)))] + [EOS]
             for _ in range(64)]
    it = [0]

    def run(state, xs):
        outs = []
        for x in xs:
            state = state.add_input(x)
            outs.append(state.output())
        return outs

    def attend(vectors, state):
        w1, w2, v = dy.parameter(p_w1), dy.parameter(p_w2), dy.parameter(p_v)
        w2dt = w2 * dy.concatenate(list(state.s()))
        weights = dy.softmax(dy.concatenate([v * dy.tanh(w1 * x + w2dt) for x in vectors]))
        return dy.esum([x * w for x, w in zip(vectors, weights)])

    def sentence_loss(chars):
        embedded = [input_lookup[c] for c in chars]
        fwd = run(enc_fwd.initial_state(), embedded)
        bwd = run(enc_bwd.initial_state(), embedded[::-1])[::-1]
        vectors = [dy.concatenate([f, b]) for f, b in zip(fwd, bwd)]
        w, b = dy.parameter(p_out), dy.parameter(p_bias)
        last = output_lookup[EOS]
        s = dec.initial_state().add_input(dy.concatenate([dy.vecInput(2 * dim), last]))
        losses = []
        for c in chars:
            s = s.add_input(dy.concatenate([attend(vectors, s), last]))
            probs = dy.softmax(w * s.output() + b)
            last = output_lookup[c]
            losses.append(-dy.log(dy.pick(probs, c)))
        return dy.esum(losses)

    def step():
        dy.renew_cg()
        losses = []
        for _ in range(SENTENCES):
            losses.append(sentence_loss(sents[it[0] % len(sents)]))
            it[0] += 1
        loss = dy.esum(losses)
        loss.value()
        loss.backward()
        trainer.update()
        return SENTENCES

    step.model = m
    return step
