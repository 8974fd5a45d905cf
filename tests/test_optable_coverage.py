"""Every exported operation has a row in tests/optable.py (finite differences and the oracle run
it) or a written reason here why it is tested elsewhere."""
import os
import re

import dynet as dy

TESTED_ELSEWHERE = {
    "parameter": "parameters in the graph: test_graph.py, test_trainers.py, the builders' oracle tests",
    "lookup": "lookup tables: test_graph.py, test_reusable_expressions.py, the builders' oracle tests",
    "lookup_batch": "as lookup",
    "const_parameter": "not built from inputs: test_random_inputs_and_noise.py",
    "const_lookup": "not built from inputs: test_random_inputs_and_noise.py",
    "noise": "random: test_random_inputs_and_noise.py checks its distribution and gradient",
    "random_normal": "random: test_random_inputs_and_noise.py",
    "random_uniform": "random: test_random_inputs_and_noise.py",
    "random_bernoulli": "random: test_random_inputs_and_noise.py",
    "random_gumbel": "random: test_random_inputs_and_noise.py",
    "pyop": "the generic NumPy node itself: every pyop-based row (inverse, logdet, hinge, ...) runs it",
}


def exported_operations():
    """Functions of the public API that build expressions (from dynet/nodes and the parameter
    functions of dynet/core/params)."""
    out = []
    for name in dir(dy):
        obj = getattr(dy, name)
        module = getattr(obj, "__module__", "") or ""
        if name.startswith("_") or isinstance(obj, type) or not callable(obj):
            continue
        if module.startswith("dynet.nodes") or module == "dynet.core.params":
            out.append(name)
    return out


def test_every_operation_has_a_row_or_a_reason():
    with open(os.path.join(os.path.dirname(__file__), "optable.py")) as f:
        rows = set(re.findall(r"\bdy\.(\w+)\(", f.read()))
    ops = exported_operations()
    assert len(ops) > 100                     # the scan finds the API (not an empty list)
    missing = [op for op in ops if op not in rows and op not in TESTED_ELSEWHERE]
    assert not missing, f"operations with neither a row in tests/optable.py nor a reason: {missing}"
    stale = [op for op in TESTED_ELSEWHERE if op not in ops]
    assert not stale, f"reasons for names that are not exported operations: {stale}"
