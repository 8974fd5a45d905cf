"""Every trainer against the reference DyNet: the same model (dense parameters and a lookup table),
the same initial values and data, several updates; losses and parameter values must agree.

Variants: sparse and dense lookup updates; clipping not triggered, triggered, and turned off; with
and without weight decay (lambda large enough that DyNet's rescaling of the stored values happens
during the run). One parameter is left out of the loss every other step, so the rules that keep
moments must still move it (DyNet updates every parameter at every update).
"""
import numpy as np
import pytest

import dynet as dy

# name -> constructor keywords (DyNet 2.1 names, understood by both)
TRAINERS = {
    "SimpleSGDTrainer": dict(learning_rate=0.1),
    "CyclicalSGDTrainer": dict(learning_rate_min=0.01, learning_rate_max=0.2, step_size=2, gamma=0.9),
    "MomentumSGDTrainer": dict(learning_rate=0.05, mom=0.8),
    "AdagradTrainer": dict(learning_rate=0.1),
    "AdadeltaTrainer": dict(),
    "RMSPropTrainer": dict(learning_rate=0.01),
    "AdamTrainer": dict(alpha=0.01),
    "AmsgradTrainer": dict(alpha=0.01),
}
# loss multiplier and clip threshold: the gradient norm is ~0.3-3 at scale 1
CLIPS = {"noclip": (0.2, None), "clip": (4.0, 0.5), "off": (4.0, 0.0)}
STEPS = 6
ROWS = [[1, 5, 5, 7], [0, 5], [11, 3, 3], [7], [2, 9, 1], [5, 5, 6]]


def init_values():
    rng = np.random.default_rng(5)
    return {"W": rng.uniform(-0.8, 0.8, (4, 3)), "b": rng.uniform(-0.5, 0.5, (4,)),
            "V": rng.uniform(-0.8, 0.8, (2, 4)), "E": rng.uniform(-1, 1, (12, 3)),
            "y": rng.uniform(-0.5, 0.5, (4,))}


def run(module, trainer, sparse, clip, decay):
    vals = init_values()
    m = module.ParameterCollection()
    if decay:
        m.set_weight_decay_lambda(decay)
    W = m.add_parameters((4, 3))
    b = m.add_parameters((4,))
    V = m.add_parameters((2, 4))
    E = m.add_lookup_parameters((12, 3))
    for p, k in ((W, "W"), (b, "b"), (V, "V")):
        p.set_value(vals[k])
    E.init_from_array(vals["E"])
    t = getattr(module, trainer)(m, **TRAINERS[trainer])
    t.set_sparse_updates(sparse)
    scale, thr = CLIPS[clip]
    if thr is not None:
        t.set_clip_threshold(thr)
    losses, snapshots = [], []
    for step in range(STEPS):
        module.renew_cg()
        y = module.inputTensor(vals["y"])
        terms = []
        for r in ROWS[step]:
            h = module.tanh(W * E[r] + b)
            terms.append(module.squared_norm(h - y))
            if step % 2 == 0:
                terms.append(module.squared_norm(V * h) * 0.5)
        loss = module.esum(terms) * scale
        losses.append(loss.value())
        loss.backward()
        t.update()
        snapshots.append([W.as_array(), b.as_array(), V.as_array(), E.as_array()])
    module.renew_cg()
    final = [module.parameter(W).npvalue() if module is dy else W.expr().npvalue()]
    return losses, snapshots, t, final


CASES = [(tr, sp, cl, wd) for tr in TRAINERS for sp in (True, False) for cl in CLIPS
         for wd in (0.0, 0.3) if not (cl == "off" and wd)]


@pytest.mark.parametrize("trainer,sparse,clip,decay", CASES,
                         ids=[f"{t}-{'sparse' if s else 'dense'}-{c}-wd{w}" for t, s, c, w in CASES])
def test_trainer_matches_reference(ref, trainer, sparse, clip, decay):
    ours = run(dy, trainer, sparse, clip, decay)
    theirs = run(ref, trainer, sparse, clip, decay)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-5, err_msg="losses")
    for step, (a, b) in enumerate(zip(ours[1], theirs[1])):
        for name, x, y in zip("WbVE", a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name} after update {step + 1}")
    # the value seen by the graph includes the pending weight-decay factor
    np.testing.assert_allclose(ours[3][0], theirs[3][0], rtol=1e-5, atol=1e-5, err_msg="W's value")
    t = ours[2]
    assert t.updates == STEPS
    if clip == "clip":
        assert t.clips == STEPS
    else:
        assert t.clips == 0
    assert abs(t.learning_rate - theirs[2].learning_rate) <= 1e-6 * max(1, t.learning_rate)


def run_table(module, trainer):
    """The whole lookup table used as one expression: every row is updated even when sparse."""
    m = module.ParameterCollection()
    E = m.add_lookup_parameters((4, 3))
    E.init_from_array(init_values()["E"][:4])
    t = getattr(module, trainer)(m, **TRAINERS[trainer])
    out = []
    for step in range(3):
        module.renew_cg()
        T = module.parameter(E)
        w = module.inputTensor(np.arange(12.0).reshape(3, 4) / 10 - 0.5)
        loss = module.sum_elems(module.cmult(module.tanh(T), w))
        loss.value()
        loss.backward()
        t.update()
        out.append(E.as_array())
    return out


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_whole_table_matches_reference(ref, trainer):
    for step, (a, b) in enumerate(zip(run_table(dy, trainer), run_table(ref, trainer))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"after update {step + 1}")


def run_off_path_lookups(module, trainer, sparse, configure=None):
    """Lookups the loss does not depend on: built before it (their rows count as updated, so
    momentum moves them), after it (not), with update=False (not), a batch of rows; and a loss
    that depends on no parameter at all."""
    m = module.ParameterCollection()
    E = m.add_lookup_parameters((8, 3))
    E.init_from_array(init_values()["E"][:8])
    W = m.add_parameters((3, 3))
    W.set_value(init_values()["W"][:3])
    t = getattr(module, trainer)(m, **TRAINERS[trainer])
    t.set_sparse_updates(sparse)
    out = []
    for step in range(4):
        if configure is not None:
            configure(step % 2)                 # our executors: plain and autobatched in turn
        module.renew_cg()
        rows = [E[r] for r in range(8)]
        loss = module.squared_norm(module.tanh(W * rows[step] + rows[7 - step]))
        if step == 1:
            E[5]                                            # before the loss, off its path
            module.lookup_batch(E, [2, 3])
            module.lookup(E, 4, update=False)
            loss = loss + module.squared_norm(E[6])
        elif step == 3:
            rows[2]
            loss = module.scalarInput(0.5) * module.scalarInput(2.0)   # no parameter at all
        loss.value()
        loss.backward()
        E[1]                                                # after the loss: not updated
        t.update()
        out.append(E.as_array())
    return out


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("trainer", ["MomentumSGDTrainer", "AdamTrainer", "RMSPropTrainer", "SimpleSGDTrainer"])
def test_lookups_off_the_loss_path_match_reference(ref, trainer, sparse):
    from dynet.core import execution
    try:
        ours = run_off_path_lookups(dy, trainer, sparse, lambda ab: execution.configure(ab, 0))
    finally:
        execution.configure(0, 0)
    theirs = run_off_path_lookups(ref, trainer, sparse)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"E after update {step + 1}")
