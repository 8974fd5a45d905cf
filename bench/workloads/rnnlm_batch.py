"""Minibatched LSTM language model training: vocabulary 10,000, embeddings 64, a VanillaLSTMBuilder
of 128, minibatches of 16 sentences of 20 words (lookup_batch, pickneglogsoftmax_batch); forward,
backward, SGD. Counts predicted words."""
import numpy as np

UNIT = "words/s"
# the second config shrinks the output layer so that the recurrence dominates
CONFIGS = [{"vocab": 10000, "emb": 64, "hidden": 128, "batch": 16, "length": 20},
           {"vocab": 1000, "emb": 64, "hidden": 128, "batch": 16, "length": 20}]


def make(dy, vocab, emb, hidden, batch, length, wrap_trainer=None):
    """wrap_trainer: e.g. dynet.distributed.DistributedTrainer (bench/distributed.py)."""
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((vocab, emb))
    lstm = dy.VanillaLSTMBuilder(1, emb, hidden, m)
    W = m.add_parameters((vocab, hidden))
    b = m.add_parameters(vocab)
    trainer = dy.SimpleSGDTrainer(m, 0.1)
    if wrap_trainer is not None:
        trainer = wrap_trainer(trainer)
    batches = [rng.integers(0, vocab, (length + 1, batch)) for _ in range(20)]
    it = [0]

    def step():
        data = batches[it[0] % len(batches)]
        it[0] += 1
        dy.renew_cg()
        w, c = dy.parameter(W), dy.parameter(b)
        xs = [dy.lookup_batch(E, [int(v) for v in data[t]]) for t in range(length)]
        outs = lstm.initial_state().transduce(xs)
        losses = [dy.pickneglogsoftmax_batch(w * h + c, [int(v) for v in data[t + 1]])
                  for t, h in enumerate(outs)]
        loss = dy.sum_batches(dy.esum(losses))
        loss.value()
        loss.backward()
        trainer.update()
        return batch * length

    step.model = m
    return step
