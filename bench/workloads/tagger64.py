"""The BiLSTM tagger of bilstm_tagger written per sentence, 64 sentences' losses summed into one
graph before backward and one SGD update; without and with --dynet-autobatch 1."""
import numpy as np

UNIT = "sentences/s"
SENTENCES = 64
CONFIGS = [{"autobatch": 0}, {"autobatch": 1}]


def make(dy, vocab=10000, emb=64, hidden=64, mlp=32, tags=50):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((vocab, emb))
    fwd = dy.VanillaLSTMBuilder(1, emb, hidden, m)
    bwd = dy.VanillaLSTMBuilder(1, emb, hidden, m)
    W1 = m.add_parameters((mlp, 2 * hidden))
    b1 = m.add_parameters(mlp)
    W2 = m.add_parameters((tags, mlp))
    b2 = m.add_parameters(tags)
    trainer = dy.SimpleSGDTrainer(m, 0.1)
    sents = []
    for _ in range(256):
        n = int(rng.integers(10, 31))
        words = [int(w) for w in rng.integers(0, vocab, n)]
        sents.append((words, [w % tags for w in words]))
    it = [0]

    def step():
        dy.renew_cg()
        w1, c1, w2, c2 = dy.parameter(W1), dy.parameter(b1), dy.parameter(W2), dy.parameter(b2)
        losses = []
        for _ in range(SENTENCES):
            words, gold = sents[it[0] % len(sents)]
            it[0] += 1
            xs = [dy.lookup(E, w) for w in words]
            fs = fwd.initial_state().transduce(xs)
            bs = bwd.initial_state().transduce(xs[::-1])[::-1]
            for f, b, t in zip(fs, bs, gold):
                h = dy.tanh(w1 * dy.concatenate([f, b]) + c1)
                losses.append(dy.pickneglogsoftmax(w2 * h + c2, t))
        loss = dy.esum(losses)
        loss.value()
        loss.backward()
        trainer.update()
        return SENTENCES

    step.model = m   # the reference's trainer dangles if its collection is garbage-collected
    return step
