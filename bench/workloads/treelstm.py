"""A binary Tree-LSTM (Tai et al. 2015) over random binary trees of 10-40 leaves, hidden 64, written
per tree with affine transforms and elementwise operations; 32 trees' root losses (5 classes)
summed into one graph before backward and one SGD update; without and with --dynet-autobatch 1."""
import numpy as np

UNIT = "trees/s"
TREES = 32
CONFIGS = [{"autobatch": 0}, {"autobatch": 1}]


def random_tree(rng, leaves):
    """A nested tuple of word ids: a random split of `leaves` words."""
    if leaves == 1:
        return int(rng.integers(0, 1000))
    left = int(rng.integers(1, leaves))
    return (random_tree(rng, left), random_tree(rng, leaves - left))


def make(dy, vocab=1000, emb=64, hidden=64, classes=5):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((vocab, emb))
    leaf_W = [m.add_parameters((hidden, emb)) for _ in range(3)]          # i, o, u
    leaf_b = [m.add_parameters(hidden) for _ in range(3)]
    node_U = [m.add_parameters((hidden, 2 * hidden)) for _ in range(5)]   # i, f_left, f_right, o, u
    node_b = [m.add_parameters(hidden) for _ in range(5)]
    Ws = m.add_parameters((classes, hidden))
    bs = m.add_parameters(classes)
    trainer = dy.SimpleSGDTrainer(m, 0.05)
    trees = [(random_tree(rng, int(rng.integers(10, 41))), int(rng.integers(0, classes))) for _ in range(128)]
    it = [0]

    def step():
        dy.renew_cg()
        lW = [dy.parameter(p) for p in leaf_W]
        lb = [dy.parameter(p) for p in leaf_b]
        nU = [dy.parameter(p) for p in node_U]
        nb = [dy.parameter(p) for p in node_b]

        def encode(t):
            if not isinstance(t, tuple):
                x = dy.lookup(E, t)
                i, o, u = [dy.affine_transform([lb[k], lW[k], x]) for k in range(3)]
                c = dy.cmult(dy.logistic(i), dy.tanh(u))
                return dy.cmult(dy.logistic(o), dy.tanh(c)), c
            (hl, cl), (hr, cr) = encode(t[0]), encode(t[1])
            hc = dy.concatenate([hl, hr])
            i, fl, fr, o, u = [dy.affine_transform([nb[k], nU[k], hc]) for k in range(5)]
            c = dy.cmult(dy.logistic(i), dy.tanh(u)) + dy.cmult(dy.logistic(fl), cl) + \
                dy.cmult(dy.logistic(fr), cr)
            return dy.cmult(dy.logistic(o), dy.tanh(c)), c

        ws, b = dy.parameter(Ws), dy.parameter(bs)
        losses = []
        for _ in range(TREES):
            tree, label = trees[it[0] % len(trees)]
            it[0] += 1
            h, _ = encode(tree)
            losses.append(dy.pickneglogsoftmax(dy.affine_transform([b, ws, h]), label))
        loss = dy.esum(losses)
        loss.value()
        loss.backward()
        trainer.update()
        return TREES

    step.model = m
    return step
