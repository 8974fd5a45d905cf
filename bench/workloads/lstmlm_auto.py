"""DyNet's autobatching example (examples/rnnlm/lstmlm-auto.py) on random data: an LSTM language
model written per sentence (embeddings 64, a VanillaLSTMBuilder of 128, an output layer over a
10,000-word vocabulary as affine_transform and pickneglogsoftmax per word), 16 sentences of 5-30
words summed into one graph, Adam; without and with --dynet-autobatch 1. Counts predicted words."""
import numpy as np

UNIT = "words/s"
SENTENCES = 16
CONFIGS = [{"autobatch": 0}, {"autobatch": 1}]


def make(dy, vocab=10000, emb=64, hidden=128):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((vocab, emb))
    rnn = dy.VanillaLSTMBuilder(1, emb, hidden, m)
    p_h2l = m.add_parameters((vocab, hidden))
    p_lb = m.add_parameters(vocab)
    trainer = dy.AdamTrainer(m)
    sents = [[int(w) for w in rng.integers(1, vocab, int(rng.integers(5, 31)))] for _ in range(256)]
    it = [0]

    def sentence_loss(sent):
        h2l, lb = dy.parameter(p_h2l), dy.parameter(p_lb)
        state, prev, losses = rnn.initial_state(), 0, []
        for word in sent:
            state = state.add_input(E[prev])
            losses.append(dy.pickneglogsoftmax(dy.affine_transform([lb, h2l, state.output()]), word))
            prev = word
        return dy.esum(losses)

    def step():
        dy.renew_cg()
        batch = [sents[(it[0] + k) % len(sents)] for k in range(SENTENCES)]
        it[0] += SENTENCES
        loss = dy.esum([sentence_loss(s) for s in batch]) / SENTENCES
        loss.forward()
        loss.backward()
        trainer.update()
        return sum(len(s) for s in batch)

    step.model = m
    return step
