"""The model of DyNet's own Tree-LSTM example (examples/treelstm): a binary Tree-LSTM with the
parameters added to the graph at every tree node (dy.parameter, as the example does), and a
training loss at every nonterminal: the output layer over dropout (0.3) of the node's state,
pickneglogsoftmax over 5 classes. Random binary trees of 10-40 leaves, hidden 64, 32 trees' losses
averaged in one graph before backward and one Adagrad update; without and with
--dynet-autobatch 1. Unlike treelstm, about a third of its nodes are the per-nonterminal dropout,
output product and loss."""
import numpy as np

UNIT = "trees/s"
TREES = 32
CONFIGS = [{"autobatch": 0}, {"autobatch": 1}]


def random_tree(rng, leaves):
    """A nested tuple (label, left, right) or (label, word) of a random split of `leaves` words."""
    label = int(rng.integers(0, 5))
    if leaves == 1:
        return (label, int(rng.integers(0, 1000)))
    left = int(rng.integers(1, leaves))
    return (label, random_tree(rng, left), random_tree(rng, leaves - left))


def make(dy, vocab=1000, dim=64, classes=5, dropout=0.3):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((vocab, dim))
    WS = [m.add_parameters((dim, dim)) for _ in "iou"]
    US = [m.add_parameters((dim, 2 * dim)) for _ in "iou"]
    UFS = [m.add_parameters((dim, 2 * dim)) for _ in "ff"]
    BS = [m.add_parameters(dim) for _ in "iouf"]
    W_out = m.add_parameters((classes, dim))
    trainer = dy.AdagradTrainer(m, 0.05)
    trees = [random_tree(rng, int(rng.integers(10, 41))) for _ in range(128)]
    it = [0]

    def encode(tree, losses):
        """(h, c) of the tree's root; a loss for every nonterminal appended to `losses`."""
        if len(tree) == 2:
            emb = E[tree[1]]
            Wi, Wo, Wu = [dy.parameter(w) for w in WS]
            bi, bo, bu, _ = [dy.parameter(b) for b in BS]
            i = dy.logistic(dy.affine_transform([bi, Wi, emb]))
            o = dy.logistic(dy.affine_transform([bo, Wo, emb]))
            u = dy.tanh(dy.affine_transform([bu, Wu, emb]))
            c = dy.cmult(i, u)
            h = dy.cmult(o, dy.tanh(c))
        else:
            h1, c1 = encode(tree[1], losses)
            h2, c2 = encode(tree[2], losses)
            Ui, Uo, Uu = [dy.parameter(u) for u in US]
            Uf1, Uf2 = [dy.parameter(u) for u in UFS]
            bi, bo, bu, bf = [dy.parameter(b) for b in BS]
            e = dy.concatenate([h1, h2])
            i = dy.logistic(dy.affine_transform([bi, Ui, e]))
            o = dy.logistic(dy.affine_transform([bo, Uo, e]))
            f1 = dy.logistic(dy.affine_transform([bf, Uf1, e]))
            f2 = dy.logistic(dy.affine_transform([bf, Uf2, e]))
            u = dy.tanh(dy.affine_transform([bu, Uu, e]))
            c = dy.cmult(i, u) + dy.cmult(f1, c1) + dy.cmult(f2, c2)
            h = dy.cmult(o, dy.tanh(c))
        W = dy.parameter(W_out)
        losses.append(dy.pickneglogsoftmax(W * dy.dropout(h, dropout), tree[0]))
        return h, c

    def step():
        dy.renew_cg()
        losses = []
        for _ in range(TREES):
            encode(trees[it[0] % len(trees)], losses)
            it[0] += 1
        loss = dy.esum(losses) / len(losses)
        loss.value()
        loss.backward()
        trainer.update()
        return TREES

    step.model = m
    return step
