"""The BiLSTM tagger the tagger workloads share (bilstm_tagger: one sentence a graph, tagger64: 64
sentences a graph, serve_tagger: forward only, from threads): embeddings, a VanillaLSTMBuilder each
way (or the 2.0 LSTMBuilder's coupled cell), an MLP over both states, one score per tag; random
sentences of 10-30 words, tag = word mod tags."""
import numpy as np


class Tagger:
    def __init__(self, dy, vocab=10000, emb=64, hidden=64, mlp=32, tags=50, sentences=200, cell="vanilla"):
        rng = np.random.default_rng(0)
        self.dy = dy
        self.model = m = dy.ParameterCollection()
        self.E = m.add_lookup_parameters((vocab, emb))
        # "coupled": the 2.0 LSTMBuilder (peepholes, coupled input and forget gates), what
        # DyNet 2.0 code's dy.LSTMBuilder builds; the reference wheel calls it CoupledLSTMBuilder
        lstm = dy.CoupledLSTMBuilder if cell == "coupled" else dy.VanillaLSTMBuilder
        self.fwd = lstm(1, emb, hidden, m)
        self.bwd = lstm(1, emb, hidden, m)
        self.W1 = m.add_parameters((mlp, 2 * hidden))
        self.b1 = m.add_parameters(mlp)
        self.W2 = m.add_parameters((tags, mlp))
        self.b2 = m.add_parameters(tags)
        self.sents = []
        for _ in range(sentences):
            n = int(rng.integers(10, 31))
            words = [int(w) for w in rng.integers(0, vocab, n)]
            self.sents.append((words, [w % tags for w in words]))

    def mlp_expressions(self, train=True):
        """The MLP's parameters in the current graph (constants when not training)."""
        par = self.dy.parameter if train else self.dy.const_parameter
        return par(self.W1), par(self.b1), par(self.W2), par(self.b2)

    def scores(self, words, mlp, train=True):
        """The tag-score expression of every word, given mlp_expressions() of this graph."""
        dy = self.dy
        w1, c1, w2, c2 = mlp
        xs = [dy.lookup(self.E, w, update=train) for w in words]
        fs = self.fwd.initial_state(update=train).transduce(xs)
        bs = self.bwd.initial_state(update=train).transduce(xs[::-1])[::-1]
        return [w2 * dy.tanh(w1 * dy.concatenate([f, b]) + c1) + c2 for f, b in zip(fs, bs)]

    def losses(self, words, gold, mlp):
        return [self.dy.pickneglogsoftmax(s, t) for s, t in zip(self.scores(words, mlp), gold)]
