"""Serving the BiLSTM tagger (bilstm_tagger's model) from 1 or 2 threads: forward only, one sentence
per request, each request its own graph (renew_cg, the BiLSTM, the tag scores of every word, their
argmax), as a web server's handlers would; sentences/s.

Each thread of ours has its own computation graph, and with more than one its forward pass runs
without the GIL (lowered: see "Threads" in docs/architecture.md) while the other thread builds.
The reference DyNet has one graph per process and crashes when two threads use it, so its figure
is always from one thread: the 2-thread row is our two threads against its one (our 1-thread row
is the single-thread baseline)."""
import os
import queue
import threading

import numpy as np

from bench.tagger_model import Tagger

UNIT = "sentences/s"
CONFIGS = [{"threads": 1}, {"threads": 2}]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUESTS_PER_STEP = 64


def is_ours(dy):
    return os.path.abspath(getattr(dy, "__file__", "")) == os.path.join(ROOT, "_dynet.py")


def make(dy, threads, **config):
    tagger = Tagger(dy, **config)
    m = tagger.model
    sents = [words for words, _ in tagger.sents]

    def tag(words):
        dy.renew_cg()
        scores = tagger.scores(words, tagger.mlp_expressions(train=False), train=False)
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
