"""The examples run as a user runs them (a fresh interpreter each) and do what they say."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_tagger_accuracy_climbs_over_several_epochs():
    out = run_example("tagger.py")
    acc = [float(a) for a in re.findall(r"epoch \d+: .*held-out accuracy ([0-9.]+)", out)]
    assert len(acc) == 10
    # a task that is learnt gradually: far from done after one epoch, better at the end, never perfect
    assert acc[0] < 0.75
    assert acc[-1] > acc[0] + 0.1 and acc[-1] > acc[len(acc) // 2]
    assert acc[-1] < 0.99


def test_model_saved_and_loaded_in_a_fresh_process(tmp_path):
    out = run_example("save_load.py", str(tmp_path))
    trained = float(re.search(r"trained here: held-out accuracy ([0-9.]+)", out).group(1))
    loaded = float(re.search(r"fresh process: held-out accuracy ([0-9.]+)", out).group(1))
    assert trained > 0.9
    assert loaded == trained
    assert (tmp_path / "classifier.data").stat().st_size > 0
    assert (tmp_path / "classifier.meta").stat().st_size > 0
