"""Every operation of tests/optable.py against the reference DyNet: same inputs, same values and
the same gradients for every input."""
import numpy as np
import pytest

import dynet as dy
from tests.optable import CASES

PARAMS = [(c, m) for c in CASES if c.oracle for m in c.modes() if m in c.oracle_modes]


def run(module, build, args, proj_seed=3):
    module.renew_cg()
    xs = [module.inputTensor(a, batched=b) for a, b in args]
    out = build(module, *xs)
    value = out.npvalue()
    proj = np.random.default_rng(proj_seed).uniform(-1, 1, value.shape)
    loss = module.sum_batches(module.sum_elems(module.cmult(out, module.inputTensor(proj, batched=out.dim()[1] > 1))))
    loss.value()
    loss.backward(full=True)
    return out.dim(), value, [x.gradient() for x in xs]


@pytest.mark.parametrize("case,mode", PARAMS, ids=[f"{c.name}-{m}" for c, m in PARAMS])
def test_against_reference(ref, case, mode):
    args = case.make_inputs(np.random.default_rng(11), mode)
    ours = run(dy, case.build, args)
    theirs = run(ref, case.oracle_build or case.build, args)
    assert ours[0] == theirs[0], f"dimension: ours {ours[0]}, reference {theirs[0]}"
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-5, err_msg="value")
    for i, (g, h) in enumerate(zip(ours[2], theirs[2])):
        if case.oracle_grads is not None and i not in case.oracle_grads:
            continue
        np.testing.assert_allclose(np.asarray(g).reshape(np.shape(h)), h, rtol=1e-3, atol=1e-5,
                                   err_msg=f"gradient of argument {i}")


AFFINE_SHAPES = [((3,), (3, 4), (4, 1)), ((3, 1), (3, 4), (4, 1)), ((3,), (3, 4), (4,)), ((3, 1), (3, 4), (4, 2)),
                 ((3, 2), (3, 4), (4, 2)), ((3,), (3, 4), (4, 1), (3, 2), (2, 1))]


@pytest.mark.parametrize("shapes", AFFINE_SHAPES, ids=str)
def test_affine_transform_dimension_matches_reference(ref, shapes):
    # a result of one column is a vector in DyNet ({3}, not {3,1}); xnmt's attender tests for it
    def run(m):
        m.renew_cg()
        rng = np.random.default_rng(1)
        out = m.affine_transform([m.inputTensor(rng.uniform(-1, 1, s)) for s in shapes])
        return out.dim(), out.npvalue()
    (d, v), (rd, rv) = run(dy), run(ref)
    assert d == rd
    np.testing.assert_allclose(v, rv, rtol=1e-5)


TRAILING_ONES = [("pow", [(1, 1), (1, 1)]), ("pow", [(2, 1), (1,)]), ("logsumexp", [(2, 2, 1), (2, 2, 1)]),
                 ("logsumexp", [(3, 1), (3,)]), ("transpose", [(4, 1, 1)]), ("transpose", [(2, 1, 1)]),
                 ("transpose", [(1, 3, 1)])]


@pytest.mark.parametrize("op,shapes", TRAILING_ONES, ids=[f"{o}-{s}" for o, s in TRAILING_ONES])
def test_trailing_ones_give_the_references_dimension(ref, op, shapes):
    # DyNet drops trailing 1s in these results ({1,1} ** {1,1} is {1}) and transposes {4,1,1}
    def run(m):
        m.renew_cg()
        rng = np.random.default_rng(2)
        xs = [m.inputTensor(rng.uniform(0.5, 1.5, s)) for s in shapes]
        out = {"pow": lambda: m.pow(*xs), "logsumexp": lambda: m.logsumexp(xs),
               "transpose": lambda: m.transpose(xs[0])}[op]()
        proj = m.inputTensor(rng.uniform(-1, 1, out.npvalue().shape))
        m.sum_elems(m.cmult(out, proj)).backward(full=True)
        return out.dim(), out.npvalue(), [x.gradient() for x in xs]
    (d, v, g), (rd, rv, rg) = run(dy), run(ref)
    assert d == rd
    np.testing.assert_allclose(v, rv, rtol=1e-5)
    for a, b in zip(g, rg):
        np.testing.assert_allclose(np.reshape(a, np.shape(b)), b, rtol=1e-4, atol=1e-6)
