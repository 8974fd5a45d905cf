"""Threads: each thread has its own computation graph (renew_cg/cg are per thread), parameters are
shared. Inference from several threads gives the numbers of a single-threaded run; backward passes
from several threads add up into the shared gradients (they take turns); an Expression of another
thread's graph is refused with a clear error."""
import gc
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import dynet as dy
from tests import threadrun

N_THREADS = 4


@pytest.fixture(autouse=True)
def fast_switching():
    """Switch threads as often as the interpreter can, so that they interleave inside operations."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def make_model(seed=0):
    rng = np.random.default_rng(seed)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((100, 16))
    lstm = dy.VanillaLSTMBuilder(1, 16, 32, m)
    W1 = m.parameters_from_numpy(rng.standard_normal((48, 32)) * 0.3)   # big enough to release the GIL
    b1 = m.add_parameters(48)
    W2 = m.parameters_from_numpy(rng.standard_normal((10, 48)) * 0.3)
    sents = [[int(w) for w in rng.integers(0, 100, int(rng.integers(3, 12)))] for _ in range(40)]
    return m, (E, lstm, W1, b1, W2), sents


def sentence_loss(model, words):
    E, lstm, W1, b1, W2 = model
    outs = lstm.initial_state().transduce([E[w] for w in words])
    losses = [dy.pickneglogsoftmax(W2 * dy.tanh(W1 * h + b1), w % 10) for h, w in zip(outs, words)]
    return dy.esum(losses), dy.softmax(W2 * dy.tanh(W1 * outs[-1] + b1))


def infer(model, words):
    dy.renew_cg()
    loss, probs = sentence_loss(model, words)
    return loss.value(), probs.npvalue()


def run_threads(target, n=N_THREADS):
    threadrun.run_threads(target, n)


def test_inference_from_threads_matches_one_thread():
    m, model, sents = make_model()
    want = [infer(model, s) for s in sents]
    got = {}

    def work(k):
        for rep in range(3):
            for i in range(k, len(sents), N_THREADS):
                got[(i, rep)] = infer(model, sents[i])

    run_threads(work)
    for (i, rep), (loss, probs) in got.items():
        assert loss == want[i][0], f"sentence {i}, pass {rep}: loss {loss} != {want[i][0]}"
        np.testing.assert_array_equal(probs, want[i][1])
    assert len(got) == 3 * len(sents)


def test_convolution_inference_from_threads_matches_one_thread():
    """conv2d big enough to run im2col and the GEMM without the GIL, from several threads."""
    rng = np.random.default_rng(5)
    m = dy.ParameterCollection()
    F = m.parameters_from_numpy(rng.standard_normal((3, 3, 2, 8)))
    images = [rng.standard_normal((28, 28, 2)) for _ in range(12)]

    def run(img):
        dy.renew_cg()
        y = dy.maxpooling2d(dy.conv2d(dy.inputTensor(img), F, [1, 1]), [2, 2], [2, 2])
        return dy.logsumexp([dy.sum_elems(y), dy.sum_elems(dy.tanh(y))]).value(), y.npvalue()

    want = [run(img) for img in images]
    got = {}

    def work(k):
        for rep in range(2):
            for i in range(k, len(images), N_THREADS):
                got[(i, rep)] = run(images[i])

    run_threads(work)
    assert len(got) == 2 * len(images)
    for (i, rep), (v, y) in got.items():
        assert v == want[i][0]
        np.testing.assert_array_equal(y, want[i][1])


def test_each_thread_has_its_own_graph():
    main_graph = dy.cg()
    x = dy.inputVector([1.0, 2.0])
    seen = {}

    def work(k):
        g = dy.cg()
        dy.renew_cg()
        y = dy.inputVector([float(k)] * 3)
        seen[k] = (g is not main_graph, dy.cg().size(), y.npvalue().tolist())

    run_threads(work)
    for k in range(N_THREADS):
        assert seen[k] == (True, 1, [float(k)] * 3)
    # this thread's graph was left alone
    assert dy.cg() is main_graph and x.npvalue().tolist() == [1.0, 2.0]


def test_expression_of_another_threads_graph_is_refused():
    x = dy.inputVector([1.0, 2.0])
    caught = []

    def work(k):
        dy.renew_cg()
        try:
            dy.tanh(x).value()
        except RuntimeError as e:
            caught.append(str(e))

    run_threads(work, 1)
    assert caught and "tanh" in caught[0] and "another thread" in caught[0]


def test_concurrent_backward_passes_accumulate_like_one_thread():
    m, model, sents = make_model(1)
    E, lstm, W1, b1, W2 = model
    params = m.parameters_list()

    def grads():
        return [p.grad_as_array().copy() for p in params], E.grad_as_array().copy()

    def zero():
        for p in params:
            p.scale_gradient(0.0)
        E.scale_gradient(0.0)

    for words in sents:
        dy.renew_cg()
        sentence_loss(model, words)[0].backward()
    want_p, want_e = grads()
    want_rows = set(E.touched_rows().tolist())
    zero()
    E.clear_touched()

    def work(k):
        for i in range(k, len(sents), N_THREADS):
            dy.renew_cg()
            sentence_loss(model, sents[i])[0].backward()

    run_threads(work)
    got_p, got_e = grads()
    for p, g, w in zip(params, got_p, want_p):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=p.name())
    np.testing.assert_allclose(got_e, want_e, rtol=1e-4, atol=1e-5)
    assert set(E.touched_rows().tolist()) == want_rows


def test_training_from_threads_keeps_values_finite_and_learns():
    """Backward and update from several threads at once (they take turns on the gradients): the
    loss over the data falls, as it does when one thread trains."""
    m, model, sents = make_model(2)
    trainer = dy.SimpleSGDTrainer(m, 0.1)

    def total():
        return sum(infer(model, s)[0] for s in sents)

    before = total()

    def work(k):
        for _ in range(3):
            for i in range(k, len(sents), N_THREADS):
                dy.renew_cg()
                sentence_loss(model, sents[i])[0].backward()
                trainer.update()

    run_threads(work)
    after = total()
    assert np.isfinite(after) and after < 0.8 * before, (before, after)


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_finished_threads_graph_is_freed():
    """A thread's graph (and its memory) goes when the thread ends."""
    before = rss_mb()
    during = []

    def work(k):
        dy.renew_cg()
        dy.zeros((40_000_000,)).forward()       # 160 MB of node values in this thread's graph
        during.append(rss_mb())

    run_threads(work, 1)
    gc.collect()
    assert during[0] - before > 120
    assert rss_mb() - before < 40, (before, during, rss_mb())


def test_nodes_outliving_their_threads_graph_are_freed_safely():
    """Node memory is kept per thread (its graph's free lists): expressions made in threads that
    have ended, whose graphs are gone, are freed later from the main thread; threads that come and
    go while the main thread builds graphs leave every graph computing the right values."""
    x = np.arange(1, 9, dtype=np.float32)
    kept = []

    def work(k):
        for _ in range(20):
            dy.renew_cg()
            e = dy.tanh(dy.inputTensor(x) * (k + 1))
            kept.append(e)                   # outlives the thread and its graph
            assert np.allclose(e.npvalue(), np.tanh(x * (k + 1)), atol=1e-6)

    for _ in range(3):
        run_threads(work, 4)
        dy.renew_cg()
        e = dy.cmult(dy.inputTensor(x), dy.inputTensor(x)) + 1
        assert np.allclose(e.npvalue(), x * x + 1)
    gc.collect()
    for e in kept[:3]:
        with pytest.raises(RuntimeError):
            e.npvalue()                      # its graph is gone: refused, not read
    del kept[:]
    gc.collect()
    dy.renew_cg()
    assert np.allclose(dy.logistic(dy.inputTensor(x)).npvalue(), 1 / (1 + np.exp(-x)), atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_during_another_threads_backward_pass_leaves_the_child_usable():
    """A process forked (e.g. for Hogwild workers) while another thread holds the gradient lock
    starts with the lock free; the fork waits for that pass to end."""
    from dynet.core.graph import gradient_lock
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 3))
    held = threading.Event()

    def long_pass(k):
        with gradient_lock:               # what a backward pass holds
            held.set()
            time.sleep(0.3)

    t = threading.Thread(target=long_pass, args=(0,))
    t.start()
    held.wait()
    pid = os.fork()
    if pid == 0:                          # the child: one training step, then leave at once
        signal.alarm(20)
        try:
            dy.renew_cg()
            dy.sum_elems(W * dy.inputVector([1.0, 2.0, 3.0])).backward()
            dy.SimpleSGDTrainer(m).update()
            os._exit(0)
        except BaseException:
            os._exit(1)
    t.join()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_reentrant_lock_excludes_other_threads_and_is_reentrant():
    """The gradient lock's own implementation (a GIL-protected state and a semaphore to sleep on):
    a read-modify-write that gives up the GIL in the middle stays whole under it, from 4 threads,
    with nested holds."""
    from dynet.core.graph import ReentrantLock
    lock = ReentrantLock()
    box = {"n": 0}
    errors = []

    def work():
        try:
            for _ in range(300):
                with lock:
                    with lock:                    # reentrant
                        n = box["n"]
                        time.sleep(0)             # lets the other threads run
                        box["n"] = n + 1
        except BaseException as e:                # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert box["n"] == 1200
    with pytest.raises(RuntimeError, match="not held by this thread"):
        lock.release()
