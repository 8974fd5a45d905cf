"""A small CNN layer on MNIST-sized images: conv2d_bias (32 filters 3x3, VALID, stride 1) on a
batch of 32 single-channel 28x28 images, rectify, sum, backward and an SGD update per step."""
import numpy as np

UNIT = "images/s"
CONFIGS = [{"batch": 32, "filters": 32}]


def make(dy, batch=32, filters=32, size=28, seed=0):
    rng = np.random.default_rng(seed)
    m = dy.ParameterCollection()
    f = m.add_parameters((3, 3, 1, filters), init=dy.NormalInitializer(0, 0.1))
    b = m.add_parameters((filters,), init=dy.ConstInitializer(0.01))
    trainer = dy.SimpleSGDTrainer(m, 0.001)
    images = rng.uniform(0, 1, (size, size, 1, batch))

    def step(model=m):          # keeps the collection alive: the reference's trainer does not
        dy.renew_cg()
        x = dy.inputTensor(images, batched=True)
        y = dy.rectify(dy.conv2d_bias(x, f, b, [1, 1], is_valid=True))
        loss = dy.sum_batches(dy.sum_elems(y))
        loss.value()
        loss.backward()
        trainer.update()
        return batch

    return step
