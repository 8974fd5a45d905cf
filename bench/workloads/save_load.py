"""Saving and loading a model of 50 million floats in DyNet's text format (an 800 MB file).

The model: a few matrices (about 4M floats) and a 46M-float lookup table (460,000 rows of 100).
`save` times ParameterCollection.save, `load` ParameterCollection.populate of the saved file; the
unit is a million floats saved or loaded. Files go to $BENCH_TMPDIR (default: the system temp dir).
"""
import atexit
import os
import tempfile

import numpy as np

UNIT = "Mfloats/s"
CONFIGS = [{"op": "save", "floats": 50_000_000}, {"op": "load", "floats": 50_000_000}]


def _model(dy, floats):
    pc = dy.ParameterCollection()
    mats = [(1024, 1024), (1024, 1024), (1024, 1024), (1024, 512), (1024,)]
    used = 0
    for shape in mats:
        p = pc.add_parameters(shape, init=dy.ConstInitializer(0))
        n = int(np.prod(shape))
        p.set_value(np.random.default_rng(n).standard_normal(shape).astype(np.float32) * 0.1)
        used += n
    rows = (floats - used) // 100
    table = np.random.default_rng(7).standard_normal((rows, 100)).astype(np.float32) * 0.1
    E = pc.add_lookup_parameters((rows, 100), init=dy.ConstInitializer(0))
    E.init_from_array(table)
    return pc, used + rows * 100


def make(dy, op="save", floats=50_000_000):
    pc, total = _model(dy, floats)
    folder = os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir()
    fname = os.path.join(folder, f"bench_save_load_{os.getpid()}_{id(dy)}.data")
    atexit.register(lambda: os.path.exists(fname) and os.remove(fname))
    pc.save(fname)               # the file `load` reads, and a warm-up for `save`
    million = total / 1e6

    def step():
        if op == "save":
            pc.save(fname)
        else:
            pc.populate(fname)
        return million
    return step
