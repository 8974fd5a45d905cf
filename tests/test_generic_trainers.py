"""Every trainer rule has a generic implementation (on arrays of the device's array module) that
agrees with its typed loop to 1e-5: dense parameters, sparse lookup rows, clipping, weight decay.
The gradients are set directly (load_state), so this needs no node's generic implementation."""
import numpy as np
import pytest

import dynet as dy
from dynet.core import device
from dynet.training import trainers as T

RULES = [("SimpleSGDTrainer", {}), ("CyclicalSGDTrainer", {"gamma": 1.0, "step_size": 2}),
         ("MomentumSGDTrainer", {}), ("AdagradTrainer", {}), ("AdadeltaTrainer", {}),
         ("RMSPropTrainer", {}), ("AdamTrainer", {}), ("AmsgradTrainer", {})]


def all_trainer_classes():
    out, todo = [], [T.Trainer]
    while todo:
        c = todo.pop()
        for s in c.__subclasses__():
            out.append(s)
            todo.append(s)
    return out


def test_every_rule_has_a_generic_version():
    missing = [c.__name__ for c in all_trainer_classes() if c.generic_rule is T.Trainer.generic_rule]
    assert not missing, f"trainers without generic_rule: {missing}"
    assert {c.__name__ for c in all_trainer_classes()} >= {n for n, _ in RULES}


def run_updates(name, kw, backend, sparse=True, wd=0.0, clip=True, steps=4, dev="CPU"):
    device.set_backend(backend)
    dy.renew_cg()
    try:
        rng = np.random.default_rng(3)
        m = dy.ParameterCollection()
        m.set_weight_decay_lambda(wd)
        W = m.add_parameters((4, 3), init=dy.NumpyInitializer(rng.uniform(-1, 1, (4, 3))), device=dev)
        E = m.add_lookup_parameters((6, 2), init=dy.NumpyInitializer(rng.uniform(-1, 1, (6, 2))),
                                    device=dev)
        t = getattr(dy, name)(m, **kw)
        t.set_sparse_updates(sparse)
        if not clip:
            t.set_clip_threshold(0)
        for step in range(steps):
            gw = rng.normal(0, 2, 12).astype(np.float32)
            ge = np.zeros((6, 2), np.float32)
            ge[[1, 4][: 1 + step % 2]] = rng.normal(0, 3, (1 + step % 2, 2))
            W.load_state(W.host_values().copy(), gw)
            E.load_state(E.host_values().copy(), ge.ravel())
            t.update()
        return W.as_array(), E.as_array(), W.grad_as_array(), E.grad_as_array()
    finally:
        device.set_backend("typed")
        dy.renew_cg()


GPU = device.gpu_available()[0] and "GPU:0" in dy.available_devices()


@pytest.mark.parametrize("name,kw", RULES)
@pytest.mark.parametrize("sparse,wd,clip", [(True, 0.0, True), (False, 0.3, False)])
def test_generic_rule_matches_typed(name, kw, sparse, wd, clip):
    typed = run_updates(name, kw, "typed", sparse, wd, clip)
    generic = run_updates(name, kw, "generic", sparse, wd, clip)
    for a, b in zip(typed, generic):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert not typed[2].any() and not typed[3].any()
    if GPU:       # the fused CuPy kernels, where a GPU is initialised (DYNET_BACKEND=gpu)
        for a, b in zip(typed, run_updates(name, kw, "typed", sparse, wd, clip, dev="GPU:0")):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
