"""The parameter pool: where parameter values, gradients and trainer moments are allocated.

DyNet carves parameters from a pool sized by the third number of --dynet-mem; here the pool is a
list of blocks of that size, each array a zeroed, 64-byte aligned slice of a block. A block is freed
when the last array cut from it is. Arrays of 1 MB or more (or larger than a block) get memory of
their own instead, so that deleting a model gives its big matrices back at once (a slice would pin
its whole block until the block is used up).

With shared_parameters (DynetParams.set_shared_parameters, --dynet-shared-parameters), the blocks
for parameter values and trainer moments are anonymous shared memory (mmap MAP_SHARED): a process
forked after the model was made (multiprocessing with the 'fork' start method) writes into the same
memory as its parent, so workers train one model Hogwild-style, as with DyNet's shared parameters.
Gradients always stay private to a process (each worker computes its own).
"""
import mmap
import threading

import numpy as np

_ALIGN = 16                     # floats (64 bytes)
_MB = 1 << 20
_OWN_MEMORY_FLOATS = _MB // 4   # arrays at least this big are not carved from a block


class _Pool:
    """Bump allocation of float32 arrays out of blocks of `block_bytes`."""

    def __init__(self, block_bytes, shared):
        self.block_floats = max(_ALIGN, block_bytes // 4)
        self.shared = shared
        self.block = None
        self.used = 0
        self.reserved_bytes = 0     # sum of the pool blocks taken so far
        self.lock = threading.Lock()   # threads may make parameters at the same time

    def _new_block(self, nfloats, pooled=True):
        if self.shared:
            buf = mmap.mmap(-1, nfloats * 4)          # MAP_SHARED | MAP_ANONYMOUS, zero-filled
            block = np.frombuffer(buf, dtype=np.float32)
        else:
            block = np.zeros(nfloats, dtype=np.float32)   # calloc: pages cost nothing until used
        if pooled:
            self.reserved_bytes += nfloats * 4
        return block

    def zeros(self, n):
        """A new zeroed float32 array of n values."""
        n = max(int(n), 1)
        size = (n + _ALIGN - 1) // _ALIGN * _ALIGN
        with self.lock:
            if size > self.block_floats or size >= _OWN_MEMORY_FLOATS:
                return self._new_block(size, pooled=False)[:n]
            if self.block is None or self.used + size > self.block.shape[0]:
                self.block = self._new_block(self.block_floats)
                self.used = 0
            out = self.block[self.used:self.used + n]
            self.used += size
            return out


_private = _Pool(128 * _MB, False)
_values = _private              # where parameter values and trainer moments go


def configure(param_mb, shared):
    """Called by init: pools of `param_mb` MB blocks; values shared between processes if `shared`."""
    global _private, _values
    _private = _Pool(int(param_mb) * _MB, False)
    _values = _Pool(int(param_mb) * _MB, True) if shared else _private


def is_shared():
    """Whether parameter values and trainer moments live in memory shared with forked processes."""
    return _values.shared


def value_zeros(n):
    """Zeroed float32 storage for parameter values or trainer moments (shared under shared_parameters)."""
    return _values.zeros(n)


def private_zeros(n):
    """Zeroed float32 storage private to this process (gradients)."""
    return _private.zeros(n)


def reserved_bytes():
    """Bytes reserved by the parameter pools (for tests and memory reports)."""
    return _private.reserved_bytes + (_values.reserved_bytes if _values is not _private else 0)
