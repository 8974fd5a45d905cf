"""The BLAS's threads: one thread unless asked (as DyNet's Eigen), and no idle OpenBLAS workers
spinning on the CPU (the libraries are loaded without workers; set_blas_threads starts them)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")


def run(code, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_NUM_THREADS", "DYNET_BLAS_THREADS", "OMP_NUM_THREADS",
                            "GOTO_NUM_THREADS")}
    environ.update(env)
    environ["PYTHONPATH"] = ROOT + os.pathsep + environ.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


PROBE = ("import os\nimport dynet as dy\n"
         "print(len(os.listdir('/proc/self/task')), os.environ.get('OPENBLAS_NUM_THREADS', '-'))\n")


def test_importing_dynet_starts_no_blas_workers_and_leaves_the_environment_as_it_was():
    threads, variable = run(PROBE)
    assert threads == "1" and variable == "-"


def test_set_blas_threads_still_starts_workers():
    threads, = run("import os\nimport numpy as np\nimport dynet as dy\ndy.set_blas_threads(2)\n"
                   "a = np.ones((600, 600), dtype=np.float32)\n"
                   "dy.inputTensor(a).npvalue()\n"
                   "import scipy.linalg.blas as b\nb.sgemm(1.0, a, a)\n"
                   "print(len(os.listdir('/proc/self/task')))\n")
    assert int(threads) > 1


def test_a_users_thread_setting_is_left_alone():
    threads, variable = run(PROBE, OPENBLAS_NUM_THREADS="2")
    assert variable == "2" and int(threads) > 1


def test_bad_thread_counts_name_the_call():
    # in this process: the checks come before any BLAS is touched
    import dynet as dy
    for bad in (0, -1, 10**30):
        with pytest.raises(ValueError, match=f"set_blas_threads: the number of threads must be from 1 to 4096, got {bad}"):
            dy.set_blas_threads(bad)
    for bad in ("x", None, float("nan")):
        with pytest.raises(TypeError, match="set_blas_threads: the number of threads must be a whole number"):
            dy.set_blas_threads(bad)
