"""Softmax builders: the standard softmax over a vocabulary and the class-factored softmax
p(w | x) = p(c(w) | x) p(w | c(w), x) with clusters read from a file in DyNet's format (one
"cluster<whitespace>word" per line)."""
import os

import numpy as np

from dynet.core import config
from dynet.core.initializers import ConstInitializer
from dynet.nodes.matmul import affine_transform
from dynet.nodes.softmax import softmax, log_softmax, pickneglogsoftmax, pickneglogsoftmax_batch
from dynet.nodes.select import pick, concatenate
from dynet.nodes.elementwise import cmult
from dynet.nodes.inputs import inputTensor
from dynet.builders.rnn import subcollection, _spec_args
from dynet.core.errors import IndexOutOfRange


def _draw(dist):
    """An index drawn from the distribution `dist` (as DyNet: the last one if rounding leaves some
    mass over)."""
    p = config.rng().random()
    for i, q in enumerate(dist):
        p -= q
        if p < 0:
            return i
    return len(dist) - 1


class SoftmaxBuilder:
    """Base of the softmax builders. For dy.save/dy.load they have DyNet 2.1's protocol: `spec` (the
    constructor's arguments other than the model), from_spec(spec, model) and param_collection(),
    a subcollection named and ordered as DyNet's (whose wheel has no spec for them, so only the
    parameter files, not dy.save's records, move between the two)."""
    _model_at = 2             # where the model goes among the constructor's arguments

    def param_collection(self):
        """The subcollection holding the parameters (the weight matrix first, then the bias)."""
        return self.pc

    @classmethod
    def from_spec(cls, spec, model):
        """The builder described by `spec` (as saved by dy.save), with new parameters in `model`."""
        args = _spec_args(cls, spec, cls._model_at)
        return cls(*args[:cls._model_at], model, *args[cls._model_at:])


class _Layer:
    """Scores W x (+ b) of one softmax layer, with its parameters loaded per graph."""
    __slots__ = ("W", "b")

    def __init__(self, pc, rows, rep_dim, bias):
        self.W = pc.add_parameters((rows, rep_dim))
        self.b = pc.add_parameters((rows,), init=ConstInitializer(0.0)) if bias else None

    def scores(self, x, update):
        if self.b is None:
            return self.W.expr(update) * x
        return affine_transform([self.b.expr(update), self.W.expr(update), x])


def _check_rep(x, rep_dim, op):
    d = x.dim()[0]
    if tuple(d) not in ((rep_dim,), (rep_dim, 1)):
        raise ValueError(f"{op}: expected a representation of dimension {{{rep_dim}}}, got {x.dim()}")


class StandardSoftmaxBuilder(SoftmaxBuilder):
    """p(c | x) = softmax(W x + b)."""

    def __init__(self, rep_dim, num_labels, model, bias=True):
        if rep_dim <= 0 or num_labels <= 0:
            raise ValueError(f"StandardSoftmaxBuilder: dimensions must be positive, got rep_dim "
                             f"{rep_dim}, num_labels {num_labels}")
        self.rep_dim = rep_dim
        self.num_labels = num_labels
        self.spec = (rep_dim, num_labels, bool(bias))
        self.pc = subcollection(model, "standard-softmax-builder")
        self.layer = _Layer(self.pc, num_labels, rep_dim, bias)

    def _check_class(self, c, op):
        if not 0 <= c < self.num_labels:
            raise IndexOutOfRange(f"{op}: class {c} out of range [0, {self.num_labels})")

    def full_logits(self, x, update=True):
        """The scores of every class: W x + b

        Args:
            x (dynet.Expression): the representation, of dimension {rep_dim}
            update (bool): whether the softmax parameters are updated by training (default True)

        Returns:
            dynet.Expression: the scores, of dimension {num_labels}

        Raises:
            ValueError: if x does not have dimension rep_dim
        """
        _check_rep(x, self.rep_dim, "StandardSoftmaxBuilder.full_logits")
        return self.layer.scores(x, update)

    def full_log_distribution(self, x, update=True):
        """The log-probabilities of every class: log_softmax(W x + b)

        Args:
            x (dynet.Expression): the representation, of dimension {rep_dim}
            update (bool): whether the softmax parameters are updated by training (default True)

        Returns:
            dynet.Expression: log p(c | x) for every class c

        Raises:
            ValueError: if x does not have dimension rep_dim
        """
        return log_softmax(self.full_logits(x, update))

    def neg_log_softmax(self, x, c, update=True):
        """-log p(c | x)."""
        self._check_class(c, "StandardSoftmaxBuilder.neg_log_softmax")
        return pickneglogsoftmax(self.full_logits(x, update), c)

    def neg_log_softmax_batch(self, x, c, update=True):
        """-log p(c_b | x_b) for each batch element b."""
        for ci in c:
            self._check_class(ci, "StandardSoftmaxBuilder.neg_log_softmax_batch")
        return pickneglogsoftmax_batch(self.full_logits(x, update), list(c))

    def sample(self, x):
        """A class drawn from p(. | x)."""
        return _draw(softmax(self.full_logits(x, False)).npvalue().ravel())


class ClassFactoredSoftmaxBuilder(SoftmaxBuilder):
    """Class-factored softmax: p(w | x) = p(c | x) p(w | c, x), c the cluster of w.

    cluster_file: lines "cluster_name word" (whitespace separated), in DyNet's format.
    word_dict: dict word -> id; words of the file that are not in it get the next free ids (the
    dict is updated, as DyNet's Dict is).
    Its spec names the cluster file, which must still be there when the builder is loaded."""
    _model_at = 3

    def __init__(self, rep_dim, cluster_file, word_dict, model, bias=True):
        # a name, not a descriptor: open(1) would read stdout and close it
        if not isinstance(cluster_file, (str, bytes, os.PathLike)):
            raise TypeError(f"ClassFactoredSoftmaxBuilder: cluster_file must be a file name, got "
                            f"{type(cluster_file).__name__}")
        self.rep_dim = rep_dim
        self.word_dict = word_dict
        cdict = {}
        self.cidx2words = []
        self.widx2cidx = {}
        self.widx2cwidx = {}
        with open(cluster_file) as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise ValueError(f"ClassFactoredSoftmaxBuilder: {cluster_file}:{lineno}: expected "
                                     f"'cluster word', got {line.strip()!r}")
                cname, word = parts[0], parts[1]
                c = cdict.setdefault(cname, len(cdict))
                if word not in word_dict:
                    word_dict[word] = len(word_dict)
                w = word_dict[word]
                if c == len(self.cidx2words):
                    self.cidx2words.append([])
                self.widx2cidx[w] = c
                self.widx2cwidx[w] = len(self.cidx2words[c])
                self.cidx2words[c].append(w)
        if not cdict:
            raise ValueError(f"ClassFactoredSoftmaxBuilder: no clusters in {cluster_file}")
        self.cdict = cdict
        # the dict as updated: loading gives every word the id it has now
        self.spec = (rep_dim, os.fspath(cluster_file), dict(word_dict), bool(bias))
        self.pc = subcollection(model, "class-factored-softmax-builder")
        self.cluster_layer = _Layer(self.pc, len(cdict), rep_dim, bias)
        # singleton clusters need no word layer
        self.word_layers = [_Layer(self.pc, len(ws), rep_dim, bias) if len(ws) > 1 else None
                            for ws in self.cidx2words]
        self.vocab_size = max(self.widx2cidx) + 1

    def _cluster_of(self, w, op):
        c = self.widx2cidx.get(w)
        if c is None:
            raise IndexOutOfRange(f"{op}: word {w} is in no cluster")
        return c

    def class_logits(self, x, update=True):
        """The scores of every class (cluster)

        Args:
            x (dynet.Expression): the representation, of dimension {rep_dim}
            update (bool): whether the softmax parameters are updated by training (default True)

        Returns:
            dynet.Expression: one score per class

        Raises:
            ValueError: if x does not have dimension rep_dim
        """
        _check_rep(x, self.rep_dim, "ClassFactoredSoftmaxBuilder.class_logits")
        return self.cluster_layer.scores(x, update)

    def class_log_distribution(self, x, update=True):
        """The log-probabilities of every class (cluster)

        Args:
            x (dynet.Expression): the representation, of dimension {rep_dim}
            update (bool): whether the softmax parameters are updated by training (default True)

        Returns:
            dynet.Expression: log p(c | x) for every class c
        """
        return log_softmax(self.class_logits(x, update))

    def subclass_logits(self, x, classidx, update=True):
        """The scores of the words of one class

        Args:
            x (dynet.Expression): the representation, of dimension {rep_dim}
            classidx (int): the class
            update (bool): whether the softmax parameters are updated by training (default True)

        Returns:
            dynet.Expression: one score per word of the class

        Raises:
            IndexError: if classidx is not a class
        """
        if not 0 <= classidx < len(self.cidx2words):
            raise IndexOutOfRange(f"ClassFactoredSoftmaxBuilder.subclass_logits: class {classidx} out of "
                             f"range [0, {len(self.cidx2words)})")
        layer = self.word_layers[classidx]
        if layer is None:      # a singleton cluster: its only word has probability 1
            return inputTensor(np.zeros(1))
        return layer.scores(x, update)

    def subclass_log_distribution(self, x, classidx, update=True):
        """The log-probabilities of the words of one class

        Args:
            x (dynet.Expression): the representation, of dimension {rep_dim}
            classidx (int): the class
            update (bool): whether the softmax parameters are updated by training (default True)

        Returns:
            dynet.Expression: log p(w | c, x) for every word w of class c

        Raises:
            IndexError: if classidx is not a class
        """
        return log_softmax(self.subclass_logits(x, classidx, update))

    def neg_log_softmax(self, x, w, update=True):
        """-log p(w | x) = -log p(c | x) - log p(w | c, x)."""
        c = self._cluster_of(w, "ClassFactoredSoftmaxBuilder.neg_log_softmax")
        loss = pickneglogsoftmax(self.class_logits(x, update), c)
        layer = self.word_layers[c]
        if layer is None:
            return loss
        return loss + pickneglogsoftmax(layer.scores(x, update), self.widx2cwidx[w])

    def neg_log_softmax_batch(self, x, ws, update=True):
        """Batched neg_log_softmax: one word per batch element of x. The word part is computed once
        per cluster present in the batch, masked to the elements of that cluster."""
        ws = list(ws)
        cs = [self._cluster_of(w, "ClassFactoredSoftmaxBuilder.neg_log_softmax_batch") for w in ws]
        loss = pickneglogsoftmax_batch(self.class_logits(x, update), cs)
        for c in sorted(set(cs)):
            layer = self.word_layers[c]
            if layer is None:
                continue
            rows = [self.widx2cwidx[w] if cw == c else 0 for w, cw in zip(ws, cs)]
            part = pickneglogsoftmax_batch(layer.scores(x, update), rows)
            if len(set(cs)) > 1:
                mask = inputTensor(np.array([[1.0 if cw == c else 0.0 for cw in cs]]), batched=True)
                part = cmult(part, mask)
            loss = loss + part
        return loss

    def full_logits(self, x, update=True):
        """Scores whose softmax is the full distribution: log p(c | x) + log p(w | c, x) for each
        word id (words in no cluster get -10000, as in DyNet)."""
        clp = self.class_log_distribution(x, update)
        parts = [None] * self.vocab_size
        for c, words in enumerate(self.cidx2words):
            cl = pick(clp, c)
            if self.word_layers[c] is None:
                parts[words[0]] = cl
            else:
                wlp = log_softmax(self.word_layers[c].scores(x, update))
                for i, w in enumerate(words):
                    parts[w] = pick(wlp, i) + cl
        for w in range(self.vocab_size):
            if parts[w] is None:
                parts[w] = inputTensor(np.array([-10000.0]))
        return concatenate(parts)

    def full_log_distribution(self, x, update=True):
        """log p(w | x) for every word id (may be slow)."""
        return log_softmax(self.full_logits(x, update))

    def sample(self, x):
        """A word drawn from p(. | x): a cluster, then a word of it."""
        c = _draw(softmax(self.class_logits(x, False)).npvalue().ravel())
        layer = self.word_layers[c]
        if layer is None:
            return self.cidx2words[c][0]
        return self.cidx2words[c][_draw(softmax(layer.scores(x, False)).npvalue().ravel())]
