"""Resources that must not outlive their use: temporary files of killed saves, and the memory of
deleted collections (freed by `del`, without the cycle collector)."""
import gc
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import dynet as dy
from dynet.io import textformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def temporaries(folder, name):
    return sorted(n for n in os.listdir(folder) if n.startswith("." + name + ".") and n.endswith(".tmp"))


def killed_save(target):
    """Start a save of `target` in another process and kill it while it writes."""
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from dynet.io import textformat\n"
            "def write(f):\n"
            "    f.write(b'#Parameter# /x {2} 33 ZERO_GRAD\\n'); f.flush()\n"
            "    print('writing', flush=True); time.sleep(60)\n"
            "textformat.atomic_write(%r, write)\n") % (ROOT, str(target))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()


def test_killed_saves_leave_no_temporaries_behind(tmp_path):
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 4), name="W")
    target = tmp_path / "model"
    m.save(str(target))
    for _ in range(3):
        killed_save(target)
    # each save removes what the killed one before it left: only the last one's file is there
    assert len(temporaries(tmp_path, "model")) == 1
    m.save(str(target))                                    # the next save of the same file cleans up
    assert temporaries(tmp_path, "model") == []
    m2 = dy.ParameterCollection()
    W2 = m2.add_parameters((3, 4), name="W")
    m2.populate(str(target))
    np.testing.assert_array_equal(W2.as_array(), W.as_array())


def test_only_stale_temporaries_are_removed(tmp_path):
    target = tmp_path / "model"
    target.write_bytes(b"")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = os.getppid()                                     # a process that is running
    names = {
        f".model.{dead.pid}.0123abcd.tmp": False,           # its process is gone: removed
        f".model.{live}.0123abcd.tmp": True,                # a save in progress elsewhere: kept
        ".model.k3j_x9q2.tmp": True,                        # an older version's name, fresh: kept
        ".model.zz99yy88.tmp": False,                       # ... and untouched for long: removed
        ".other.4242.0123abcd.tmp": True,                   # another file's
    }
    for n in names:
        (tmp_path / n).write_bytes(b"partial")
    old = time.time() - 2 * textformat._LEGACY_STALE_S
    os.utime(tmp_path / ".model.zz99yy88.tmp", (old, old))
    textformat.remove_stale_temporaries(str(target))
    left = set(os.listdir(tmp_path))
    for n, kept in names.items():
        assert (n in left) == kept, n


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_deleted_collections_are_freed_without_the_cycle_collector():
    """A collection with a 1000x1000 parameter (8 MB with its gradient), a subcollection, a lookup
    table and a builder, used in a graph, then deleted: 100 of them (800 MB) must not add up (big
    arrays have memory of their own, given back at `del`; small ones share pool blocks)."""
    def one():
        m = dy.ParameterCollection()
        W = m.add_parameters((1000, 1000))
        sub = m.add_subcollection("sub")
        E = sub.add_lookup_parameters((10, 8))
        lstm = dy.VanillaLSTMBuilder(1, 8, 8, m)
        dy.renew_cg()
        y = dy.sum_elems(W * dy.inputVector([1.0] * 1000)) + dy.sum_elems(lstm.initial_state().add_input(E[3]).output())
        y.backward()
        assert W.collection() is m

    gc.collect()
    gc.disable()
    try:
        one()
        dy.renew_cg()
        before = rss_mb()
        for _ in range(100):
            one()
        dy.renew_cg()
        grown = rss_mb() - before
    finally:
        gc.enable()
    assert grown < 40, f"RSS grew by {grown:.0f} MB over 100 deleted collections of 8 MB"


def test_parameters_outliving_their_collection():
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2))
    del m
    assert W.collection() is None
    assert W.expr().npvalue().shape == (2, 2)
