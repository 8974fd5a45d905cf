"""The shape of DyNet's own BiLSTM autobatching benchmark (the autobatching paper's tagger): a
two-layer BiLSTM tagger written per sentence on random data: embeddings 200, VanillaLSTMBuilders of
200 each way in both layers, a 200 x 400 projection of each word's two states between the layers,
a 300 x 400 output layer and pickneglogsoftmax per word; 50 sentences of 10-40 words summed into
one graph before backward and one SGD update; without and with --dynet-autobatch 1. Counts
sentences. Its matrices are larger than tagger64's (the gates' are 800 x 200), so a product's
columns cost more and batching them pays more."""
import numpy as np

UNIT = "sentences/s"
SENTENCES = 50
CONFIGS = [{"autobatch": 0}, {"autobatch": 1}]


def make(dy, vocab=1000, emb=200, hidden=200, classes=300):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((vocab, emb))
    first = [dy.VanillaLSTMBuilder(1, emb, hidden, m) for _ in range(2)]       # forward, backward
    second = [dy.VanillaLSTMBuilder(1, hidden, hidden, m) for _ in range(2)]
    p_proj = m.add_parameters((hidden, 2 * hidden))
    p_out = m.add_parameters((classes, 2 * hidden))
    trainer = dy.SimpleSGDTrainer(m)
    sents = []
    for _ in range(200):
        n = int(rng.integers(10, 41))
        sents.append(([int(w) for w in rng.integers(0, vocab, n)],
                      [int(t) for t in rng.integers(0, classes, n)]))
    it = [0]

    def bidirectional(builders, xs):
        fs = builders[0].initial_state().transduce(xs)
        bs = builders[1].initial_state().transduce(xs[::-1])[::-1]
        return [dy.concatenate([f, b]) for f, b in zip(fs, bs)]

    def sentence_loss(words, tags):
        proj, out = dy.parameter(p_proj), dy.parameter(p_out)
        states = bidirectional(first, [E[w] for w in words])
        states = bidirectional(second, [proj * s for s in states])
        return dy.esum([dy.pickneglogsoftmax(out * s, t) for s, t in zip(states, tags)])

    def step():
        dy.renew_cg()
        losses = []
        for _ in range(SENTENCES):
            words, tags = sents[it[0] % len(sents)]
            it[0] += 1
            losses.append(sentence_loss(words, tags))
        loss = dy.esum(losses)
        loss.value()
        loss.backward()
        trainer.update()
        return SENTENCES

    step.model = m
    return step
