"""A minibatched MLP classifier on synthetic data (three Gaussian blobs in 10 dimensions).
Prints the training loss and the held-out accuracy per epoch, so you can watch it learn."""
import numpy as np

import dynet as dy

rng = np.random.default_rng(0)
CLASSES, DIM, HIDDEN, BATCH = 3, 10, 32, 32
centers = rng.normal(0, 2, (CLASSES, DIM))


def sample(n):
    labels = rng.integers(0, CLASSES, n)
    return centers[labels] + rng.normal(0, 1.5, (n, DIM)), labels


train_x, train_y = sample(3000)
test_x, test_y = sample(600)

m = dy.ParameterCollection()
W1 = m.add_parameters((HIDDEN, DIM))
b1 = m.add_parameters(HIDDEN)
W2 = m.add_parameters((CLASSES, HIDDEN))
b2 = m.add_parameters(CLASSES)
trainer = dy.AdamTrainer(m) if hasattr(dy, "AdamTrainer") else dy.SimpleSGDTrainer(m, 0.1)


def scores(xs):
    """xs: (n, DIM) -> a batch of n score vectors."""
    x = dy.inputTensor(xs.T, batched=True)
    h = dy.rectify(dy.affine_transform([b1, W1, x]))
    return dy.affine_transform([b2, W2, h])


for epoch in range(10):
    order = rng.permutation(len(train_y))
    total = 0.0
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        dy.renew_cg()
        loss = dy.sum_batches(dy.pickneglogsoftmax_batch(scores(train_x[idx]), list(train_y[idx])))
        total += loss.scalar_value()
        loss.backward()
        trainer.update()
    dy.renew_cg()
    predicted = scores(test_x).npvalue().argmax(axis=0)
    print(f"epoch {epoch}  loss {total / len(order):.4f}  test accuracy {np.mean(predicted == test_y):.3f}")
