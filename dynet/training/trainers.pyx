"""Trainers. `Trainer.update` computes the global gradient norm (for clipping), applies the rule to
each parameter with one fused loop, and clears the gradients. Lookup parameters are updated only on
the rows that received gradients (sparse updates, DyNet's default) unless set_sparse_updates(False).

A new rule subclasses Trainer and overrides `_update_block(values, grads, n, scale, state_key)`, which
updates n contiguous floats (a whole parameter, or one row of a lookup table).
"""
cimport cython
from libc.math cimport sqrt, isfinite
from libc.string cimport memset
cimport numpy as cnp
import numpy as np

from dynet.core.params cimport Parameters, LookupParameters
from dynet.core.params import ParameterCollection

cnp.import_array()


cdef double sum_squares(const float* g, Py_ssize_t n) noexcept nogil:
    cdef double s = 0
    cdef Py_ssize_t i
    for i in range(n):
        s += <double>g[i] * g[i]
    return s


cdef class Trainer:
    """Base of all trainers: clipping, sparse updates, learning-rate schedule and status."""
    cdef public object model
    cdef public double learning_rate
    cdef public double eta0
    cdef public double eta_decay
    cdef public double epoch
    cdef public bint clipping_enabled
    cdef public double clip_threshold
    cdef public long clips, clips_since_status, updates, updates_since_status
    cdef public bint sparse_updates_enabled

    def __init__(self, m, learning_rate):
        if not isinstance(m, ParameterCollection):
            raise TypeError(f"{type(self).__name__}: the first argument must be a ParameterCollection "
                            f"(Model), got {type(m).__name__}")
        if learning_rate < 0:
            raise ValueError(f"{type(self).__name__}: the learning rate must be >= 0, got {learning_rate}")
        self.model = m
        self.learning_rate = learning_rate
        self.eta0 = learning_rate
        self.eta_decay = 0.0
        self.epoch = 0
        self.clipping_enabled = True
        self.clip_threshold = 5.0
        self.sparse_updates_enabled = True

    # ---- configuration ------------------------------------------------------------------
    def set_clip_threshold(self, thr):
        """Clip gradients whose global L2 norm exceeds thr; thr <= 0 turns clipping off."""
        if thr <= 0:
            self.clipping_enabled = False
            self.clip_threshold = 0.0
        else:
            self.clipping_enabled = True
            self.clip_threshold = thr

    def get_clip_threshold(self):
        return self.clip_threshold

    def set_sparse_updates(self, su):
        self.sparse_updates_enabled = bool(su)

    def get_sparse_updates(self):
        return self.sparse_updates_enabled

    def status(self):
        """Print the epoch, learning rate and clip count, then restart the counts."""
        print(f"[epoch={self.epoch:g} eta={self.learning_rate:g} clips={self.clips_since_status} "
              f"updates={self.updates_since_status}] ", end="")
        self.clips_since_status = 0
        self.updates_since_status = 0

    def update_epoch(self, r=1.0):
        """Advance the epoch count; the learning rate becomes e0 / (1 + epoch * edecay)."""
        self.epoch += r
        self.learning_rate = self.eta0 / (1 + self.epoch * self.eta_decay)

    def restart(self, learning_rate=None):
        if learning_rate is not None:
            self.learning_rate = self.eta0 = learning_rate
        self._restart_state()

    def _restart_state(self):
        pass

    # ---- the update -------------------------------------------------------------------------
    cdef double _grad_norm_squared(self, list params, list lookups):
        cdef Parameters p
        cdef LookupParameters lp
        cdef double total = 0
        cdef cnp.ndarray g
        cdef Py_ssize_t i, n
        for p in params:
            if p.has_grad:
                total += sum_squares(p.gptr, cnp.PyArray_SIZE(p.grads))
        for lp in lookups:
            if lp.all_rows_touched or not self.sparse_updates_enabled:
                total += sum_squares(lp.gptr, cnp.PyArray_SIZE(lp.grads))
            else:
                for i in range(lp.n_touched):
                    total += sum_squares(lp.gptr + lp.touched_list[i] * lp.row_size, lp.row_size)
        return total

    cpdef _update_params(self, list params, list lookups, double s):
        cdef double scale = s, norm
        if self.clipping_enabled:
            norm = sqrt(self._grad_norm_squared(params, lookups))
            if not isfinite(norm):
                raise RuntimeError(f"{type(self).__name__}.update: the gradient norm is {norm}; "
                                   f"refusing to update (the model would be destroyed)")
            if s * norm > self.clip_threshold:
                self.clips += 1
                self.clips_since_status += 1
                scale = self.clip_threshold / norm
        cdef Parameters p
        cdef LookupParameters lp
        cdef Py_ssize_t i, row
        for p in params:
            if p.updated:
                self._update_block(p, 0, p.vptr, p.gptr, cnp.PyArray_SIZE(p.values), scale)
            if p.has_grad:
                memset(p.gptr, 0, cnp.PyArray_SIZE(p.grads) * sizeof(float))
                p.has_grad = False
        for lp in lookups:
            if lp.updated:
                if self.sparse_updates_enabled and not lp.all_rows_touched:
                    for i in range(lp.n_touched):
                        row = lp.touched_list[i]
                        self._update_block(lp, row, lp.vptr + row * lp.row_size,
                                           lp.gptr + row * lp.row_size, lp.row_size, scale)
                else:
                    self._update_block(lp, -1, lp.vptr, lp.gptr, cnp.PyArray_SIZE(lp.values), scale)
            if lp.all_rows_touched or not self.sparse_updates_enabled:
                memset(lp.gptr, 0, cnp.PyArray_SIZE(lp.grads) * sizeof(float))
            else:
                for i in range(lp.n_touched):
                    memset(lp.gptr + lp.touched_list[i] * lp.row_size, 0, lp.row_size * sizeof(float))
            lp.clear_touched()
        self.updates += 1
        self.updates_since_status += 1

    cdef int _update_block(self, object owner, Py_ssize_t row, float* w, float* g, Py_ssize_t n,
                           double scale) except -1:
        raise TypeError(f"{type(self).__name__} does not define an update rule")

    def update(self, s=1.0):
        """Apply one update from the accumulated gradients (scaled by s), then clear them."""
        root = self.model._root
        self._update_params(root._params, root._lookups, s)

    def update_subset(self, updated_params, updated_lookups, s=1.0):
        """Update only the parameters (and lookup parameters) with these indices."""
        root = self.model._root
        params, lookups = root._params, root._lookups
        for i in updated_params:
            if not isinstance(i, (int, np.integer)) or not 0 <= i < len(params):
                raise IndexError(f"update_subset: parameter index {i!r} is out of range "
                                 f"(the model has {len(params)} parameters)")
        for i in updated_lookups:
            if not isinstance(i, (int, np.integer)) or not 0 <= i < len(lookups):
                raise IndexError(f"update_subset: lookup parameter index {i!r} is out of range "
                                 f"(the model has {len(lookups)} lookup parameters)")
        self._update_params([params[i] for i in updated_params], [lookups[i] for i in updated_lookups], s)


cdef class SimpleSGDTrainer(Trainer):
    """w -= learning_rate * g"""

    def __init__(self, m, e0=0.1, edecay=0.0, learning_rate=None):
        Trainer.__init__(self, m, e0 if learning_rate is None else learning_rate)
        self.eta_decay = edecay

    cdef int _update_block(self, object owner, Py_ssize_t row, float* w, float* g, Py_ssize_t n,
                           double scale) except -1:
        cdef float step = <float>(self.learning_rate * scale)
        cdef Py_ssize_t i
        with nogil:
            for i in range(n):
                w[i] -= step * g[i]
        return 0
