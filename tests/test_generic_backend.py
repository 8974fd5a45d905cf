"""The backend axis: the operation table, the builders, the trainers and saving/loading run again
with DYNET_BACKEND=generic (every node, trainer rule and kernel through its generic implementation
on NumPy, the code the GPU runs on CuPy), in a subprocess since the backend is chosen per process.
The same tests hold there, so the generic path agrees with the typed one to their tolerances."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ["tests/test_ops_gradients.py", "tests/test_multi_expression_inputs_indexing_conv.py",
           "tests/test_builders.py", "tests/test_builder_dropout.py", "tests/test_trainers.py",
           "tests/test_io.py", "tests/test_builder_io.py", "tests/test_random_ops.py",
           "tests/test_reusable_expressions.py", "tests/test_devices.py", "tests/test_autobatch.py"]


@pytest.mark.skipif(os.environ.get("DYNET_BACKEND") == "generic",
                    reason="this run is already on the generic backend")
def test_suite_passes_on_the_generic_backend():
    env = dict(os.environ, DYNET_BACKEND="generic", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *MODULES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
