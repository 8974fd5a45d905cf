"""A BiLSTM part-of-speech-style tagger on a small generated corpus.

The corpus comes from a toy grammar with a vocabulary of 240 words of very different frequencies
(as in real text, most words are rare), determiners and adverbs that may or may not be there, and
words that belong to two classes (their neighbours say which). Tags in the data are noisy (5% are
replaced by a random tag), so no tagger reaches 1.0: this one climbs over several epochs as it
learns the rarer words. Prints the training loss and the held-out accuracy per epoch.
"""
import random
import time

import dynet as dy

random.seed(1)
TAGS = ["DET", "ADJ", "NOUN", "VERB", "ADV", "PREP"]
CONTENT = [f"w{i}" for i in range(240)]            # open-class words; some are in two classes
LEXICON = {
    "DET": ["the", "a", "every", "some"],
    "ADJ": CONTENT[0:60],
    "NOUN": CONTENT[50:160],
    "VERB": CONTENT[150:220],
    "ADV": CONTENT[215:240],
    "PREP": ["with", "near", "under"],
}
NOISE = 0.05


def word(tag):
    words = LEXICON[tag]
    return tag, words[min(int(random.paretovariate(1.0)) - 1, len(words) - 1) if random.random() < 0.5
                      else random.randrange(len(words))]


def noun_phrase():
    words = [word("DET")] if random.random() < 0.6 else []
    while random.random() < 0.4:
        words.append(word("ADJ"))
    return words + [word("NOUN")]


def sentence():
    s = noun_phrase()
    if random.random() < 0.3:
        s.append(word("ADV"))
    s += [word("VERB")] + noun_phrase()
    while random.random() < 0.4:
        s += [word("PREP")] + noun_phrase()
    if random.random() < 0.3:
        s.append(word("ADV"))
    tags = [t if random.random() > NOISE else random.choice(TAGS) for t, _ in s]
    return [w for _, w in s], tags


train = [sentence() for _ in range(200)]
test = [sentence() for _ in range(100)]
vocab = sorted({w for ws, _ in train + test for w in ws})
w2i = {w: i for i, w in enumerate(vocab)}
t2i = {t: i for i, t in enumerate(TAGS)}

model = dy.ParameterCollection()
E = model.add_lookup_parameters((len(vocab), 32))
bilstm = dy.BiRNNBuilder(1, 32, 64, model, dy.VanillaLSTMBuilder)
W1 = model.add_parameters((32, 64))
b1 = model.add_parameters(32)
W2 = model.add_parameters((len(TAGS), 32))
b2 = model.add_parameters(len(TAGS))
trainer = dy.SimpleSGDTrainer(model, 0.01)


def scores(words):
    dy.renew_cg()
    outs = bilstm.transduce([E[w2i[w]] for w in words])
    return [dy.affine_transform([b2, W2, dy.tanh(dy.affine_transform([b1, W1, o]))]) for o in outs]


def accuracy(data):
    good = total = 0
    for words, tags in data:
        for s, t in zip(scores(words), tags):
            good += int(s.npvalue().argmax() == t2i[t])
            total += 1
    return good / total


start = time.time()
print(f"before training: held-out accuracy {accuracy(test):.3f}")
for epoch in range(10):
    random.shuffle(train)
    total = 0.0
    for words, tags in train:
        loss = dy.esum([dy.pickneglogsoftmax(s, t2i[t]) for s, t in zip(scores(words), tags)])
        total += loss.value()
        loss.backward()
        trainer.update()
    print(f"epoch {epoch + 1}: loss {total / len(train):.4f}  held-out accuracy {accuracy(test):.3f}  "
          f"({time.time() - start:.1f}s)", flush=True)
