"""Serving the BiLSTM tagger (bilstm_tagger's model) from 1 or 2 threads: forward only, one sentence
per request, each request its own graph (renew_cg, the BiLSTM, the tag scores of every word, their
argmax), as a web server's handlers would; sentences/s.

Each thread of ours has its own computation graph. The reference DyNet has one graph per process
and crashes when two threads use it, so its figure is always from one thread: the 2-thread row is
our two threads against its one (our 1-thread row is the single-thread baseline)."""
import os
import queue
import threading

import numpy as np

UNIT = "sentences/s"
CONFIGS = [{"threads": 1}, {"threads": 2}]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUESTS_PER_STEP = 16


def is_ours(dy):
    return os.path.abspath(getattr(dy, "__file__", "")) == os.path.join(ROOT, "_dynet.py")


def make(dy, threads, vocab=10000, emb=64, hidden=64, mlp=32, tags=50):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((vocab, emb))
    fwd = dy.VanillaLSTMBuilder(1, emb, hidden, m)
    bwd = dy.VanillaLSTMBuilder(1, emb, hidden, m)
    W1 = m.add_parameters((mlp, 2 * hidden))
    b1 = m.add_parameters(mlp)
    W2 = m.add_parameters((tags, mlp))
    b2 = m.add_parameters(tags)
    sents = [[int(w) for w in rng.integers(0, vocab, int(rng.integers(10, 31)))] for _ in range(200)]

    def tag(words):
        dy.renew_cg()
        xs = [dy.lookup(E, w, update=False) for w in words]
        fs = fwd.initial_state(update=False).transduce(xs)
        bs = bwd.initial_state(update=False).transduce(xs[::-1])[::-1]
        w1, c1 = dy.const_parameter(W1), dy.const_parameter(b1)
        w2, c2 = dy.const_parameter(W2), dy.const_parameter(b2)
        scores = [w2 * dy.tanh(w1 * dy.concatenate([f, b]) + c1) + c2 for f, b in zip(fs, bs)]
        return np.argmax(dy.concatenate_cols(scores).npvalue(), axis=0)

    if threads == 1 or not is_ours(dy):
        it = [0]

        def step():
            for _ in range(REQUESTS_PER_STEP):
                tag(sents[it[0] % len(sents)])
                it[0] += 1
            return REQUESTS_PER_STEP
        step.model = m
        return step

    # a pool of worker threads, each serving its share of every step's requests
    jobs = [queue.Queue() for _ in range(threads)]
    done = queue.Queue()

    def worker(q):
        while True:
            batch = q.get()
            if batch is None:
                return
            for words in batch:
                tag(words)
            done.put(len(batch))

    for q in jobs:
        threading.Thread(target=worker, args=(q,), daemon=True).start()
    it = [0]

    def step():
        batch = [sents[(it[0] + i) % len(sents)] for i in range(REQUESTS_PER_STEP)]
        it[0] += REQUESTS_PER_STEP
        for k, q in enumerate(jobs):
            q.put(batch[k::threads])
        return sum(done.get() for _ in jobs)
    step.model = m
    return step
