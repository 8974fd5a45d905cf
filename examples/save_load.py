"""Train a model, save it, and load it in a fresh Python process.

    python examples/save_load.py [directory]

trains a small classifier (two Gaussian blobs in 2 dimensions, an MLP), saves its parameters with
dy.save (DyNet's own text format: DIR/classifier.data and .meta), then starts a new interpreter that
rebuilds the model with dy.load, classifies the same held-out points and prints its accuracy. The
two accuracies are equal, since the loaded parameters are the trained ones.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

import dynet as dy


def data(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    points = rng.normal(0, 1, (n, 2)) + np.where(labels[:, None] == 1, 1.5, -1.5)
    return points, labels


def predict(params, points):
    W1, b1, W2, b2 = params
    dy.renew_cg()
    x = dy.inputTensor(points.T, batched=True)
    scores = dy.affine_transform([b2, W2, dy.tanh(dy.affine_transform([b1, W1, x]))])
    return scores.npvalue().argmax(axis=0)


def train_and_save(basename):
    model = dy.ParameterCollection()
    params = [model.add_parameters((16, 2)), model.add_parameters(16),
              model.add_parameters((2, 16)), model.add_parameters(2)]
    W1, b1, W2, b2 = params
    trainer = dy.AdamTrainer(model)
    points, labels = data(1000, seed=0)
    for start in [s for _ in range(10) for s in range(0, len(labels), 50)]:     # 10 epochs
        dy.renew_cg()
        x = dy.inputTensor(points[start:start + 50].T, batched=True)
        scores = dy.affine_transform([b2, W2, dy.tanh(dy.affine_transform([b1, W1, x]))])
        loss = dy.sum_batches(dy.pickneglogsoftmax_batch(scores, list(labels[start:start + 50])))
        loss.backward()
        trainer.update()
    dy.save(basename, params)
    return params


def load_and_evaluate(basename):
    params = dy.load(basename, dy.ParameterCollection())     # a fresh collection, as in a new program
    points, labels = data(500, seed=1)
    return float(np.mean(predict(params, points) == labels))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--load":
        print(f"{load_and_evaluate(sys.argv[2]):.4f}")
        sys.exit(0)
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    basename = os.path.join(directory, "classifier")
    params = train_and_save(basename)
    points, labels = data(500, seed=1)
    trained = float(np.mean(predict(params, points) == labels))
    print(f"trained here: held-out accuracy {trained:.4f}; saved to {basename}.data/.meta")
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--load", basename],
                           capture_output=True, text=True, check=True)
    loaded = float(child.stdout.split()[-1])
    print(f"loaded in a fresh process: held-out accuracy {loaded:.4f}")
    print("same accuracy after loading:", loaded == trained)
