"""Trainers: DyNet's update rules, gradient clipping, sparse lookup updates and global weight decay.

One `update()`:
  1. with clipping on (the default, threshold 5), computes the L2 norm of the gradient of the whole
     model (or takes the caller's, update(grad_norm=...): dynet.distributed computes it while
     averaging the gradients); if s * norm > threshold the gradient is scaled by
     threshold / (s * norm), so the step uses s * that = threshold / norm;
  2. applies the rule to every parameter whose `is_updated()` is true -- also to those that got no
     gradient this time (momentum and the adaptive rules still move them, as DyNet does); lookup
     parameters are updated only on the rows that got gradients (sparse updates, the default) unless
     set_sparse_updates(False) or the whole table was used as one expression;
  3. clears the gradients, counts the update, and advances the collection's weight decay.
Each parameter (or lookup row) is updated by one fused loop (scale, moments, step, clear) on raw
pointers; the moments live in float32 arrays owned by the trainer, made at the first update that
sees the parameter.

Bad gradients: with clipping on, a NaN or infinite gradient norm raises RuntimeError ("Magnitude of
gradient is bad", as DyNet) before anything is changed, so the model is never destroyed. Unlike
DyNet, which leaves the bad gradient in place (so every later update fails too), the gradients are
then cleared: the bad batch is dropped and training can go on. With clipping off nothing is checked
(as in DyNet): the bad values go into the model.

Weight decay (--dynet-weight-decay, DynetParams.set_weight_decay, or
ParameterCollection.set_weight_decay_lambda) is DyNet's lazy L2 decay: a factor c per collection
(real weights = c * stored values) is multiplied by (1 - lambda) after each update; the rules divide
their step by c, and when c drops below 0.25 the stored values are multiplied by c and c is reset to
1. as_array() shows the stored values, as in DyNet. (DyNet folds c only into the parameters that are
updated, so frozen ones jump back up; here every parameter is folded, so all decay alike.)

Shared parameters (DynetParams.set_shared_parameters): the moments come from the parameter pool's
shared memory. A trainer made before the workers are forked makes the moments of every parameter it
has not seen yet just before each fork (os.register_at_fork), so all processes update one set.

Devices: the fused loops above run where the parameter's device runs the typed loops (the CPU).
Each rule is also written once on arrays, `generic_rule(xp, w, g, st, gs, inv_c)`, for parameters on
a device that runs the generic implementation (the generic CPU backend, NumPy; a GPU, CuPy, where
dynet/kernels/gpu.py has a fused kernel for each rule and the array code is the fallback).
Moments then live on the parameter's device too.

A new rule subclasses Trainer, sets `nstate` (moment buffers per parameter value) and overrides
`rule` and `generic_rule` (and `prepare` for per-update constants).
"""
cimport cython
from libc.math cimport sqrt, sqrtf, isfinite, pow, floor, fabs
from libc.string cimport memset
cimport numpy as cnp
import os
import sys
import weakref
import numpy as np

from dynet.core.params cimport Parameters, LookupParameters, WeightDecay, ParameterStorage
from dynet.core.collection import ParameterCollection
from dynet.core import config
from dynet.core import parampool
from dynet.core.graph cimport ReentrantLock, in_viz_mode
from dynet.core.graph import gradient_lock, require_values
from dynet.kernels import gpu as _gpu
from dynet.kernels.cpu cimport sum_of_squares, flush_subnormals, restore_float_mode

cnp.import_array()


cdef inline Py_ssize_t array_size(cnp.ndarray a) noexcept:
    """PyArray_SIZE without its call into NumPy (the dimensions' product, inline)."""
    cdef Py_ssize_t n = 1
    cdef int i
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(a)
    for i in range(cnp.PyArray_NDIM(a)):
        n *= dims[i]
    return n


cdef inline Py_ssize_t nvalues(ParameterStorage p):
    return array_size(<cnp.ndarray>p.values) if p.dev.on_host else p.values.size


cdef inline float* state_ptr(object arr):
    return NULL if arr is None else <float*>cnp.PyArray_DATA(arr)


cdef inline int check_nonneg(str who, str name, double v) except -1:
    if not v >= 0:
        raise ValueError(f"{who}: {name} must be >= 0, got {v}")
    return 0


cdef inline int check_unit(str who, str name, double v, bint one_ok=True) except -1:
    if not (0 <= v <= 1 if one_ok else 0 <= v < 1):
        raise ValueError(f"{who}: {name} must be in [0, 1{']' if one_ok else ')'}, got {v}")
    return 0


cdef object pick_rate(str who, str old_name, object old_value, object new_value):
    """DyNet 2.0 calls the learning rate e0 (alpha...), 2.1 learning_rate: accept either, not both."""
    if new_value is not None:
        if old_value is not None:
            raise TypeError(f"{who}: give either {old_name} or learning_rate, not both")
        return new_value
    return old_value


cdef class Trainer:
    """Trainer(m, learning_rate)\n--\n\n
    Base class of the trainers

    Base of all trainers: clipping, sparse updates, learning-rate schedule, weight decay, status.

    Args:
        m (ParameterCollection): the model whose parameters are trained
        learning_rate (float): the initial learning rate
    """
    cdef readonly object model
    cdef WeightDecay wd
    cdef double lr, eta0
    cdef public double eta_decay
    cdef public double epoch
    cdef bint clipping_enabled
    cdef double clip_threshold
    cdef bint sparse_updates_enabled
    cdef readonly long clips, clips_since_status, updates, updates_since_status
    cdef int nstate                # moment buffers per parameter value
    cdef dict state                # Parameters / LookupParameters -> float32 array (nstate * size)
    cdef tuple _tree               # the collection tree's (parameters, lookups): the root's lists
    cdef bint _root                # model is the root of its tree
    cdef tuple _lists_key
    cdef list _plist, _llist
    cdef object __weakref__

    def __init__(self, m, learning_rate):
        if not isinstance(m, ParameterCollection):
            raise TypeError(f"{type(self).__name__}: the first argument must be a ParameterCollection "
                            f"(Model), got {type(m).__name__}")
        self.model = m
        self.wd = m.weight_decay_state()
        self._tree = tuple(m.storage())      # the same list objects for the collection's life
        self._root = m.is_root()
        self._set_rate(float(learning_rate), "learning rate")
        self.eta0 = self.lr
        self.eta_decay = 0.0
        self.epoch = 0
        self.clipping_enabled = True
        self.clip_threshold = 5.0
        self.sparse_updates_enabled = True
        self.state = {}
        if parampool.is_shared():
            _shared_trainers.add(self)

    cdef int _set_rate(self, double lr, str what) except -1:
        if not lr >= 0 or not isfinite(lr):
            raise ValueError(f"{type(self).__name__}: the {what} must be a finite number >= 0, got {lr}")
        self.lr = lr
        return 0

    # ---- configuration ------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The current learning rate (settable: same as set_learning_rate)"""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value):
        self.set_learning_rate(value)

    def set_learning_rate(self, lr):
        """Set the current learning rate; a later update_epoch decays from it (not from e0)."""
        self._set_rate(float(lr), "learning rate")
        self.eta0 = self.lr * (1 + self.epoch * self.eta_decay)

    def set_clip_threshold(self, thr):
        """Clip gradients whose global L2 norm exceeds thr; thr <= 0 turns clipping off."""
        thr = float(thr)
        if thr != thr:
            raise ValueError("set_clip_threshold: the threshold is NaN")
        if thr <= 0:
            self.clipping_enabled = False
            self.clip_threshold = 0.0
        else:
            self.clipping_enabled = True
            self.clip_threshold = thr

    def get_clip_threshold(self):
        """The gradient-clipping threshold

        Returns:
            float: the threshold (0 when clipping is off)
        """
        return self.clip_threshold

    def set_sparse_updates(self, su):
        """True (default): lookup parameters are updated only on the rows that got gradients."""
        self.sparse_updates_enabled = bool(su)

    def get_sparse_updates(self):
        """Whether lookup parameters are updated only on rows that got gradients

        Returns:
            bool: see set_sparse_updates
        """
        return self.sparse_updates_enabled

    def status(self):
        """Print the epoch, learning rate, clips and updates since the last status to stderr (at
        the 2.1 API level in DyNet 2.1's words, which have no epoch)."""
        counts = f"clips={self.clips_since_status} updates={self.updates_since_status}] "
        if config.api_2_1():
            sys.stderr.write(f"[lr={self.lr:g} " + counts)
        else:
            sys.stderr.write(f"[epoch={self.epoch:g} eta={self.lr:g} " + counts)
        sys.stderr.flush()
        self.clips_since_status = 0
        self.updates_since_status = 0

    def update_epoch(self, r=1.0):
        """Advance the epoch count by r; the learning rate becomes e0 / (1 + epoch * edecay)."""
        self.epoch += float(r)
        self.lr = self.eta0 / (1 + self.epoch * self.eta_decay)

    def restart(self, learning_rate=None):
        """Clear the moments (momentum, averages); optionally set a new learning rate."""
        if learning_rate is not None:
            self.set_learning_rate(learning_rate)
        for arr in self.state.values():
            arr[...] = 0

    def whoami(self):
        """The trainer's class name

        Returns:
            str: e.g. "AdamTrainer"
        """
        return type(self).__name__

    # ---- the update -------------------------------------------------------------------------
    cdef tuple _lists(self):
        """The parameters this trainer owns: the collection's, subcollections included."""
        if self._root:
            return self._tree
        tree_params, tree_lookups = self._tree
        key = (len(tree_params), len(tree_lookups))
        if key != self._lists_key:
            self._plist = self.model.parameters_list()
            self._llist = self.model.lookup_parameters_list()
            self._lists_key = key
        return self._plist, self._llist

    cdef object _state_of(self, ParameterStorage p, Py_ssize_t size):
        if self.nstate == 0:
            return None
        arr = self.state.get(p)
        if arr is None:
            # on the parameter's device (host: the parameter pool, shared under shared_parameters)
            arr = parampool.value_zeros(self.nstate * size) if p.dev.on_host else \
                p.dev.zeros(self.nstate * size)
            self.state[p] = arr
        return arr

    def _make_all_state(self):
        """Make the moments of every parameter now (before a fork, under shared parameters)."""
        cdef Parameters p
        cdef LookupParameters lp
        params, lookups = self._lists()
        for p in params:
            self._state_of(p, p.values.shape[0])
        for lp in lookups:
            self._state_of(lp, lp.values.shape[0])

    cdef double _grad_norm_squared(self, list params, list lookups) except? -1:
        cdef Parameters p
        cdef LookupParameters lp
        cdef double total = 0
        cdef Py_ssize_t i
        cdef list on_device = None   # the generic path: device scalars, brought to the host once at
                                     # the end (made only then: no GC-tracked allocation per update)
        for p in params:
            if p.has_grad:
                if p.dev.host_loops:
                    total += sum_of_squares(p.gptr, array_size(<cnp.ndarray>p.grads))
                else:
                    if on_device is None:
                        on_device = []
                    on_device.append(p.dev.xp.dot(p.grads, p.grads))
        for lp in lookups:
            if not lp.dev.host_loops:
                if lp.all_rows_touched or lp.n_touched:
                    g = lp.grads if lp.all_rows_touched else \
                        lp.grads.reshape(lp.n, lp.row_size)[_rows_on(lp)].ravel()
                    if on_device is None:
                        on_device = []
                    on_device.append(lp.dev.xp.dot(g, g))
            elif lp.all_rows_touched:
                total += sum_of_squares(lp.gptr, array_size(<cnp.ndarray>lp.grads))
            else:   # the other rows are zero
                for i in range(lp.n_touched):
                    total += sum_of_squares(lp.gptr + <Py_ssize_t>lp.touched_list[i] * lp.row_size,
                                         lp.row_size)
        if on_device is not None:
            for v in on_device:
                total += float(v)
        return total

    cdef int _clear_all(self, list params, list lookups) except -1:
        cdef Parameters p
        cdef LookupParameters lp
        for p in params:
            if p.has_grad:
                _clear_grads(p)
                p.has_grad = False
        for lp in lookups:
            _clear_lookup_grads(lp)
        return 0

    cdef int _update_params(self, list params, list lookups, double s,
                            double known_norm=-1) except -1:
        if not isfinite(s):
            raise ValueError(f"{type(self).__name__}.update: the scale s must be finite, got {s}")
        if in_viz_mode():
            require_values(f"{type(self).__name__}.update")
        if self.wd.lam != 0 and parampool.is_shared():
            raise RuntimeError(f"{type(self).__name__}.update: weight decay with shared_parameters is "
                               f"not supported (the lazy decay factor is kept per process, and each "
                               f"process would fold its own factor into the shared values)")
        cdef double gscale = s, norm
        all_params, all_lookups = self._lists()
        if self.clipping_enabled:
            norm = sqrt(self._grad_norm_squared(all_params, all_lookups)) if known_norm == -1 \
                else known_norm         # (-1: not given)
            if not isfinite(norm):
                self._clear_all(all_params, all_lookups)
                raise RuntimeError(f"{type(self).__name__}.update: Magnitude of gradient is bad: "
                                   f"{norm}; no parameter was changed, and the gradients were cleared")
            if s * norm > self.clip_threshold:
                self.clips += 1
                self.clips_since_status += 1
                gscale = self.clip_threshold / norm
        self.prepare()
        cdef float gs = <float>gscale
        cdef float inv_c = <float>(1.0 / self.wd.scale)
        cdef unsigned int float_mode = flush_subnormals()    # (see kernels/cpu.pxd)
        try:
            self._apply_rules(params, lookups, gs, inv_c)
        finally:
            restore_float_mode(float_mode)
        self.updates += 1
        self.updates_since_status += 1
        self._advance_weight_decay()
        return 0

    cdef int _apply_rules(self, list params, list lookups, float gs, float inv_c) except -1:
        """Each parameter's and lookup table's update rule (clearing its gradient)."""
        cdef bint skip_no_grad = self.nstate == 0   # a stateless rule does nothing without gradient
        cdef Parameters p
        cdef LookupParameters lp
        cdef Py_ssize_t i, row, n, rs
        cdef float* st
        for p in params:
            n = nvalues(p)
            if p.updated and not (skip_no_grad and not p.has_grad):
                if p.dev.host_loops:
                    st = state_ptr(self._state_of(p, n))
                    self.rule(p.vptr, p.gptr, st, n, n, gs, inv_c)   # also clears the gradient
                else:
                    self._generic_update(p, None, gs, inv_c)
            elif p.has_grad:
                _clear_grads(p)
            p.has_grad = False
        for lp in lookups:
            n = nvalues(lp)
            if lp.updated and not lp.dev.host_loops:
                if lp.all_rows_touched or not self.sparse_updates_enabled:
                    if not (skip_no_grad and not lp.all_rows_touched and lp.n_touched == 0):
                        self._generic_update(lp, None, gs, inv_c)
                elif lp.n_touched:
                    self._generic_update(lp, _rows_on(lp), gs, inv_c)
                lp.clear_touched()
            elif lp.updated:
                st = state_ptr(self._state_of(lp, n))
                if lp.all_rows_touched or not self.sparse_updates_enabled:
                    if not (skip_no_grad and not lp.all_rows_touched and lp.n_touched == 0):
                        self.rule(lp.vptr, lp.gptr, st, n, n, gs, inv_c)
                else:
                    rs = lp.row_size
                    for i in range(lp.n_touched):
                        row = <Py_ssize_t>lp.touched_list[i] * rs
                        self.rule(lp.vptr + row, lp.gptr + row, st + row if st != NULL else NULL,
                                  rs, n, gs, inv_c)
                lp.clear_touched()
            else:
                _clear_lookup_grads(lp)
        return 0

    cdef int _advance_weight_decay(self) except -1:
        cdef WeightDecay wd = self.wd
        if wd.lam == 0:
            return 0
        cdef float keep = <float>(1 - wd.lam)
        wd.scale = wd.scale * keep     # float32 product, as DyNet
        if wd.scale < 0.25:   # fold the factor into the stored values before precision suffers
            tree_params, tree_lookups = self.model.storage()
            for p in tree_params:
                _scale_values(p, wd.scale)
            for lp in tree_lookups:
                _scale_values(lp, wd.scale)
            wd.scale = 1.0
        return 0

    cdef int _generic_update(self, ParameterStorage p, object rows, float gs, float inv_c) except -1:
        """The rule on the parameter's device arrays (all values, or the lookup rows `rows`), then
        the gradient cleared."""
        cdef Py_ssize_t n = p.values.size, k
        xp = p.dev.xp
        st = self._state_of(p, n)
        states = [st[k * n:(k + 1) * n] for k in range(self.nstate)]
        if rows is None:
            self.generic_rule(xp, p.values, p.grads, states, gs, inv_c)
            p.grads.fill(0)
            return 0
        cdef LookupParameters lp = <LookupParameters>p
        shape = (lp.n, lp.row_size)
        w, g = p.values.reshape(shape), p.grads.reshape(shape)
        sub_w, sub_st = w[rows], [s.reshape(shape)[rows] for s in states]
        self.generic_rule(xp, sub_w, g[rows], sub_st, gs, inv_c)
        w[rows] = sub_w
        for k in range(self.nstate):
            states[k].reshape(shape)[rows] = sub_st[k]
        g[rows] = 0
        return 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        """`rule` on arrays of the array module xp: update w (and the moments st[k], arrays shaped
        like w) in place from the gradient g * gs. The caller clears g. Every rule overrides it."""
        raise RuntimeError(f"internal error: {type(self).__name__} has no generic rule")

    cdef int prepare(self) except -1:
        """Per-update constants of the rule (before `updates` is incremented)."""
        return 0

    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        """Update n values w from gradients g (to be multiplied by gs), and set g to 0. Moment k of
        w[i] is st[k * stride + i]. inv_c is 1 / the weight-decay factor."""
        pass

    def update(self, s=1.0, grad_norm=None):
        """Apply one update from the accumulated gradients (scaled by s), then clear them.

        grad_norm: the L2 norm of the whole model's gradient when the caller knows it already
        (dynet.distributed computes it while averaging the gradients): clipping then uses it instead
        of its own pass over the gradients. None (the default): computed here."""
        cdef double scale = float(s), known = -1
        if grad_norm is not None:
            known = float(grad_norm)
            if known < 0:           # (NaN or inf: the gradient is bad, as if computed here)
                raise ValueError(f"{type(self).__name__}.update: grad_norm must be >= 0 (or None), "
                                 f"got {grad_norm!r}")
        params, lookups = self._lists()
        _lock.acquire_c()        # not while another thread's backward pass adds into gradients
        try:
            self._update_params(params, lookups, scale, known)
            self.after_update()
        finally:
            _lock.release_c()

    cdef int after_update(self) except -1:
        return 0

    def update_subset(self, updated_params, updated_lookups, s=1.0):
        """Update only the parameters and lookup parameters with these indices (positions in the
        collection's parameters_list() / lookup_parameters_list()). Clipping still uses the norm of
        the whole model's gradient; the other parameters keep their gradients."""
        params, lookups = self._lists()
        sel_p = _select(params, updated_params, "parameter", "parameters")
        sel_l = _select(lookups, updated_lookups, "lookup parameter", "lookup parameters")
        cdef double scale = float(s)
        _lock.acquire_c()
        try:
            self._update_params(sel_p, sel_l, scale)
        finally:
            _lock.release_c()


cdef ReentrantLock _lock = gradient_lock


# Trainers made under shared parameters; before a fork each makes its missing moments in shared memory.
_shared_trainers = weakref.WeakSet()


def _share_trainer_state():
    for t in list(_shared_trainers):
        t._make_all_state()


os.register_at_fork(before=_share_trainer_state)


cdef list _select(list items, object indices, str what, str plural):
    try:
        indices = list(indices)
    except TypeError:
        raise TypeError(f"update_subset: the {what} indices must be a list of integers, got "
                        f"{type(indices).__name__}")
    out = []
    seen = set()
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"update_subset: {what} index {i!r} is not an integer")
        if not 0 <= i < len(items):
            raise IndexError(f"update_subset: {what} index {i} is out of range (the model has "
                             f"{len(items)} {plural})")
        if i not in seen:
            seen.add(i)
            out.append(items[i])
    return out


cdef object _rows_on(LookupParameters lp):
    """The touched rows as an index array on the table's device."""
    return lp.dev.xp.asarray(np.array([lp.touched_list[i] for i in range(lp.n_touched)], dtype=np.int64))


cdef int _clear_grads(ParameterStorage p) except -1:
    if p.dev.on_host:
        memset(p.gptr, 0, p.grads.size * sizeof(float))
    else:
        p.grads.fill(0)
    return 0


cdef int _clear_lookup_grads(LookupParameters lp) except -1:
    cdef Py_ssize_t i
    if not lp.dev.on_host:
        if lp.all_rows_touched:
            lp.grads.fill(0)
        elif lp.n_touched:
            lp.grads.reshape(lp.n, lp.row_size)[_rows_on(lp)] = 0
        lp.clear_touched()
        return 0
    if lp.all_rows_touched:
        memset(lp.gptr, 0, cnp.PyArray_SIZE(lp.grads) * sizeof(float))
    else:
        for i in range(lp.n_touched):
            memset(lp.gptr + <Py_ssize_t>lp.touched_list[i] * lp.row_size, 0, lp.row_size * sizeof(float))
    lp.clear_touched()
    return 0


cdef int _scale_values(ParameterStorage p, float c) except -1:
    if not p.dev.on_host:
        p.values *= p.dev.xp.float32(c)
        return 0
    cdef float* w = p.vptr
    cdef Py_ssize_t i, n = p.values.size
    for i in range(n):
        w[i] *= c
    return 0


# ---- the rules ------------------------------------------------------------------------------
# Each `rule` follows DyNet's equations (training.cc), with gg = g * gs the (clipped, scaled)
# gradient and c the weight-decay factor; the arithmetic is float32 as in DyNet.

cdef class SimpleSGDTrainer(Trainer):
    """SimpleSGDTrainer(m, e0=None, edecay=0.0, learning_rate=None)\n--\n\n
    Stochastic gradient descent

    w -= learning_rate * gg / c

    Args:
        m (ParameterCollection): the model whose parameters are trained
        e0 (float): the initial learning rate (default 0.1)
        edecay (float): learning-rate decay: after update_epoch(), rate = e0 / (1 + epoch * edecay)
        learning_rate (float): DyNet 2.1 name of e0 (give one of them)

    Raises:
        TypeError: if m is not a ParameterCollection
        ValueError: if a rate or constant is negative or not finite
    """
    cdef float step

    def __init__(self, m, e0=None, edecay=0.0, learning_rate=None):
        rate = pick_rate("SimpleSGDTrainer", "e0", e0, learning_rate)
        Trainer.__init__(self, m, 0.1 if rate is None else rate)
        check_nonneg("SimpleSGDTrainer", "edecay", edecay)
        self.eta_decay = edecay

    @cython.boundscheck(False)
    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        cdef float step = <float>(self.lr * gs) * inv_c
        cdef Py_ssize_t i
        for i in range(n):
            w[i] -= g[i] * step
            g[i] = 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        cdef float step = <float>(self.lr * gs) * inv_c
        if not _gpu.rule("sgd", xp, g, w, step=step):
            w -= g * xp.float32(step)


cdef class CyclicalSGDTrainer(SimpleSGDTrainer):
    """CyclicalSGDTrainer(m, e0_min=None, e0_max=None, step_size=2000, gamma=0.0, edecay=0.0, \
    learning_rate_min=None, learning_rate_max=None)\n--\n\n
    SGD with a cyclical learning rate (Smith, 2015)

    SGD whose learning rate follows Smith's (2015) triangular cycle, recomputed after each
    update(): it = number of updates so far, cycle = floor(1 + it / (2 step_size)),
    x = |it / step_size - 2 cycle + 1|, eta = e_min + (e_max - e_min) max(0, 1 - x) gamma^it.
    The first two updates use e_min. DyNet 2.0's default gamma is 0.0 (kept here), which makes
    gamma^it = 0 after the first update: pass gamma=1.0 for an undecayed cycle. Under the 2.1 API
    level (dynet_config.set(api="2.1")) the default is DyNet 2.1's, 1.0.

    Args:
        m (ParameterCollection): the model whose parameters are trained
        e0_min (float): the lower learning rate (default 0.01)
        e0_max (float): the upper learning rate (default 0.1)
        step_size (float): updates per half cycle
        gamma (float): decay of the cycle's amplitude per update (default 0.0; 1.0 at the 2.1 API level)
        edecay (float): learning-rate decay: after update_epoch(), rate = e0 / (1 + epoch * edecay)
        learning_rate_min (float): DyNet 2.1 name of e0_min
        learning_rate_max (float): DyNet 2.1 name of e0_max

    Raises:
        TypeError: if m is not a ParameterCollection
        ValueError: if a rate or constant is negative or not finite
    """
    cdef public double e_min, e_max, step_size, gamma
    cdef public long it

    def __init__(self, m, e0_min=None, e0_max=None, step_size=2000, gamma=None, edecay=0.0,
                 learning_rate_min=None, learning_rate_max=None):
        if gamma is None:
            gamma = 1.0 if config.api_2_1() else 0.0
        lo = pick_rate("CyclicalSGDTrainer", "e0_min", e0_min, learning_rate_min)
        hi = pick_rate("CyclicalSGDTrainer", "e0_max", e0_max, learning_rate_max)
        lo = 0.01 if lo is None else float(lo)
        hi = 0.1 if hi is None else float(hi)
        SimpleSGDTrainer.__init__(self, m, learning_rate=lo, edecay=edecay)
        if not hi >= lo:
            raise ValueError(f"CyclicalSGDTrainer: the upper learning rate {hi} is below the lower {lo}")
        if not step_size > 0:
            raise ValueError(f"CyclicalSGDTrainer: step_size must be > 0, got {step_size}")
        check_nonneg("CyclicalSGDTrainer", "gamma", gamma)
        self.e_min, self.e_max, self.step_size, self.gamma = lo, hi, step_size, gamma
        self.it = 0

    cdef int after_update(self) except -1:
        cdef double cycle = floor(1 + self.it / (2 * self.step_size))
        cdef double x = fabs(self.it / self.step_size - 2 * cycle + 1)
        self.lr = self.e_min + (self.e_max - self.e_min) * max(0.0, 1 - x) * pow(self.gamma, self.it)
        self.it += 1
        return 0


cdef class MomentumSGDTrainer(Trainer):
    """MomentumSGDTrainer(m, e0=None, mom=0.9, edecay=0.0, learning_rate=None)\n--\n\n
    SGD with momentum

    v = mom * v - learning_rate * gg;  w += v / c. The default learning rate is DyNet 2.0's 0.1;
    under the 2.1 API level (dynet_config.set(api="2.1")) it is DyNet 2.1's 0.01.

    Args:
        m (ParameterCollection): the model whose parameters are trained
        e0 (float): the initial learning rate (default 0.1; 0.01 at the 2.1 API level)
        mom (float): the momentum
        edecay (float): learning-rate decay: after update_epoch(), rate = e0 / (1 + epoch * edecay)
        learning_rate (float): DyNet 2.1 name of e0 (give one of them)

    Raises:
        TypeError: if m is not a ParameterCollection
        ValueError: if a rate or constant is negative or not finite
    """
    cdef public float momentum

    def __init__(self, m, e0=None, mom=0.9, edecay=0.0, learning_rate=None):
        rate = pick_rate("MomentumSGDTrainer", "e0", e0, learning_rate)
        if rate is None:
            rate = 0.01 if config.api_2_1() else 0.1
        Trainer.__init__(self, m, rate)
        check_nonneg("MomentumSGDTrainer", "mom", mom)
        check_nonneg("MomentumSGDTrainer", "edecay", edecay)
        self.momentum = mom
        self.eta_decay = edecay
        self.nstate = 1

    @cython.boundscheck(False)
    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        cdef float step = <float>(self.lr * gs), mom = self.momentum, v
        cdef Py_ssize_t i
        for i in range(n):
            v = st[i] * mom - g[i] * step
            st[i] = v
            w[i] += v * inv_c
            g[i] = 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        cdef float step = <float>(self.lr * gs)
        if not _gpu.rule("momentum", xp, g, w, st[0], step=step, mom=self.momentum, inv_c=inv_c):
            st[0] *= xp.float32(self.momentum)
            st[0] -= g * xp.float32(step)
            w += st[0] * xp.float32(inv_c)


cdef class AdagradTrainer(Trainer):
    """AdagradTrainer(m, e0=None, eps=1e-20, edecay=0.0, learning_rate=None)\n--\n\n
    Adagrad (Duchi et al., 2011)

    s += gg^2;  w -= learning_rate * gg / sqrt(s + eps) / c

    Args:
        m (ParameterCollection): the model whose parameters are trained
        e0 (float): the initial learning rate (default 0.1)
        eps (float): added to the accumulated squares
        edecay (float): learning-rate decay: after update_epoch(), rate = e0 / (1 + epoch * edecay)
        learning_rate (float): DyNet 2.1 name of e0 (give one of them)

    Raises:
        TypeError: if m is not a ParameterCollection
        ValueError: if a rate or constant is negative or not finite
    """
    cdef public float eps

    def __init__(self, m, e0=None, eps=1e-20, edecay=0.0, learning_rate=None):
        rate = pick_rate("AdagradTrainer", "e0", e0, learning_rate)
        Trainer.__init__(self, m, 0.1 if rate is None else rate)
        check_nonneg("AdagradTrainer", "eps", eps)
        check_nonneg("AdagradTrainer", "edecay", edecay)
        self.eps = eps
        self.eta_decay = edecay
        self.nstate = 1

    @cython.boundscheck(False)
    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        cdef float step = -<float>self.lr * inv_c, eps = self.eps, gg, s
        cdef Py_ssize_t i
        for i in range(n):
            gg = g[i] * gs
            s = st[i] + gg * gg
            st[i] = s
            w[i] += gg / sqrtf(s + eps) * step
            g[i] = 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        cdef float step = -<float>self.lr * inv_c
        if not _gpu.rule("adagrad", xp, g, w, st[0], gs=gs, step=step, eps=self.eps):
            gg = g * xp.float32(gs)
            st[0] += gg * gg
            w += gg / xp.sqrt(st[0] + xp.float32(self.eps)) * xp.float32(step)


cdef class AdadeltaTrainer(Trainer):
    """AdadeltaTrainer(m, eps=1e-6, rho=0.95, edecay=0.0)\n--\n\n
    Adadelta (Zeiler, 2012)

    hg = rho hg + (1 - rho) gg^2;  d = -gg sqrt(hd + eps) / sqrt(hg + eps);
    hd = rho hd + (1 - rho) d^2;  w += d / c   (no learning rate, as in DyNet)

    Args:
        m (ParameterCollection): the model whose parameters are trained
        eps (float): added to the averages
        rho (float): the decay of the moving averages
        edecay (float): learning-rate decay: after update_epoch(), rate = e0 / (1 + epoch * edecay)

    Raises:
        TypeError: if m is not a ParameterCollection
        ValueError: if a rate or constant is negative or not finite
    """
    cdef public float eps, rho

    def __init__(self, m, eps=1e-6, rho=0.95, edecay=0.0):
        Trainer.__init__(self, m, 1.0)
        check_nonneg("AdadeltaTrainer", "eps", eps)
        check_unit("AdadeltaTrainer", "rho", rho)
        check_nonneg("AdadeltaTrainer", "edecay", edecay)
        self.eps, self.rho = eps, rho
        self.eta_decay = edecay
        self.nstate = 2

    @cython.boundscheck(False)
    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        cdef float eps = self.eps, rho = self.rho, rho1 = 1.0 - self.rho, gg, hg, d
        cdef float* hd = st + stride
        cdef Py_ssize_t i
        for i in range(n):
            gg = g[i] * gs
            hg = st[i] * rho + gg * gg * rho1
            st[i] = hg
            d = -gg * sqrtf(hd[i] + eps) / sqrtf(hg + eps)
            hd[i] = hd[i] * rho + d * d * rho1
            w[i] += d * inv_c
            g[i] = 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        cdef float rho = self.rho, rho1 = 1.0 - self.rho
        if not _gpu.rule("adadelta", xp, g, w, st[0], st[1], gs=gs, eps=self.eps, rho=rho, inv_c=inv_c):
            f = xp.float32
            gg = g * f(gs)
            st[0] *= f(rho)
            st[0] += gg * gg * f(rho1)
            d = -gg * xp.sqrt(st[1] + f(self.eps)) / xp.sqrt(st[0] + f(self.eps))
            st[1] *= f(rho)
            st[1] += d * d * f(rho1)
            w += d * f(inv_c)


cdef class RMSPropTrainer(Trainer):
    """RMSPropTrainer(m, e0=None, eps=1e-8, rho=0.9, edecay=0.0, learning_rate=None)\n--\n\n
    RMSProp (Hinton)

    s = rho s + (1 - rho) gg^2;  w -= learning_rate * gg / sqrt(s + eps) / c

    Args:
        m (ParameterCollection): the model whose parameters are trained
        e0 (float): the initial learning rate (default 0.001)
        eps (float): added to the average
        rho (float): the decay of the moving average
        edecay (float): learning-rate decay: after update_epoch(), rate = e0 / (1 + epoch * edecay)
        learning_rate (float): DyNet 2.1 name of e0 (give one of them)

    Raises:
        TypeError: if m is not a ParameterCollection
        ValueError: if a rate or constant is negative or not finite
    """
    cdef public float eps, rho

    def __init__(self, m, e0=None, eps=1e-8, rho=0.9, edecay=0.0, learning_rate=None):
        rate = pick_rate("RMSPropTrainer", "e0", e0, learning_rate)
        Trainer.__init__(self, m, 0.001 if rate is None else rate)
        check_nonneg("RMSPropTrainer", "eps", eps)
        check_unit("RMSPropTrainer", "rho", rho)
        check_nonneg("RMSPropTrainer", "edecay", edecay)
        self.eps, self.rho = eps, rho
        self.eta_decay = edecay
        self.nstate = 1

    @cython.boundscheck(False)
    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        cdef float lr = <float>self.lr, eps = self.eps, rho = self.rho, rho1 = 1.0 - self.rho, gg, s
        cdef Py_ssize_t i
        for i in range(n):
            gg = g[i] * gs
            s = st[i] * rho + gg * gg * rho1
            st[i] = s
            w[i] += lr * (-gg / sqrtf(s + eps)) * inv_c
            g[i] = 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        cdef float lr = <float>self.lr, rho = self.rho, rho1 = 1.0 - self.rho
        if not _gpu.rule("rmsprop", xp, g, w, st[0], gs=gs, lr=lr, eps=self.eps, rho=rho, inv_c=inv_c):
            f = xp.float32
            gg = g * f(gs)
            st[0] *= f(rho)
            st[0] += gg * gg * f(rho1)
            w += f(lr) * (-gg / xp.sqrt(st[0] + f(self.eps))) * f(inv_c)


cdef class AdamTrainer(Trainer):
    """AdamTrainer(m, alpha=None, beta_1=0.9, beta_2=0.999, eps=1e-8, edecay=0.0, learning_rate=None)\n--\n\n
    Adam (Kingma and Ba, 2014)

    m = b1 m + (1 - b1) gg;  v = b2 v + (1 - b2) gg^2;
    w -= m / (sqrt(v) + eps) * alpha sqrt(1 - b2^t) / (1 - b1^t) / c,  t = the trainer's update
    count (as DyNet, also for lookup rows that were not touched for a while).

    Args:
        m (ParameterCollection): the model whose parameters are trained
        alpha (float): the initial learning rate (default 0.001)
        beta_1 (float): the decay of the first moment
        beta_2 (float): the decay of the second moment
        eps (float): added to the second moment's root
        edecay (float): learning-rate decay: after update_epoch(), rate = e0 / (1 + epoch * edecay)
        learning_rate (float): DyNet 2.1 name of alpha

    Raises:
        TypeError: if m is not a ParameterCollection
        ValueError: if a rate or constant is negative or not finite
    """
    cdef public float beta_1, beta_2, eps
    cdef float lr_t

    def __init__(self, m, alpha=None, beta_1=0.9, beta_2=0.999, eps=1e-8, edecay=0.0, learning_rate=None):
        rate = pick_rate(type(self).__name__, "alpha", alpha, learning_rate)
        Trainer.__init__(self, m, 0.001 if rate is None else rate)
        who = type(self).__name__
        check_unit(who, "beta_1", beta_1, False)
        check_unit(who, "beta_2", beta_2, False)
        check_nonneg(who, "eps", eps)
        check_nonneg(who, "edecay", edecay)
        self.beta_1, self.beta_2, self.eps = beta_1, beta_2, eps
        self.eta_decay = edecay
        self.nstate = 2

    cdef int prepare(self) except -1:
        cdef double t = self.updates + 1
        cdef double b1 = self.beta_1, b2 = self.beta_2
        self.lr_t = <float>(self.lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)) / self.wd.scale)
        return 0

    @cython.boundscheck(False)
    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        cdef float b1 = self.beta_1, b2 = self.beta_2, b1c = 1.0 - self.beta_1
        cdef float b2c = 1.0 - self.beta_2, eps = self.eps, lr_t = self.lr_t, gg, mm, vv
        cdef float* v = st + stride
        cdef Py_ssize_t i
        for i in range(n):
            gg = g[i] * gs
            mm = st[i] * b1 + gg * b1c
            vv = v[i] * b2 + gg * gg * b2c
            st[i] = mm
            v[i] = vv
            w[i] -= mm / (sqrtf(vv) + eps) * lr_t
            g[i] = 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        if not _gpu.rule("adam", xp, g, w, st[0], st[1], gs=gs, b1=self.beta_1, b2=self.beta_2,
                         eps=self.eps, lr_t=self.lr_t):
            adam_moments(xp, g, st, gs, self.beta_1, self.beta_2)
            w -= st[0] / (xp.sqrt(st[1]) + xp.float32(self.eps)) * xp.float32(self.lr_t)


cdef class AmsgradTrainer(AdamTrainer):
    """AmsgradTrainer(m, alpha=None, beta_1=0.9, beta_2=0.999, eps=1e-8, edecay=0.0, learning_rate=None)\n--\n\n
    AMSGrad (Reddi et al., 2018)

    Adam with v_hat = max(v_hat, v) in place of v in the step (Reddi et al. 2018).

    Args: as AdamTrainer.
    """

    def __init__(self, m, alpha=None, beta_1=0.9, beta_2=0.999, eps=1e-8, edecay=0.0, learning_rate=None):
        AdamTrainer.__init__(self, m, alpha, beta_1, beta_2, eps, edecay, learning_rate)
        self.nstate = 3

    @cython.boundscheck(False)
    cdef void rule(self, float* w, float* g, float* st, Py_ssize_t n, Py_ssize_t stride, float gs,
                   float inv_c) noexcept nogil:
        cdef float b1 = self.beta_1, b2 = self.beta_2, b1c = 1.0 - self.beta_1
        cdef float b2c = 1.0 - self.beta_2, eps = self.eps, lr_t = self.lr_t, gg, mm, vv, vh
        cdef float* v = st + stride
        cdef float* vhat = st + 2 * stride
        cdef Py_ssize_t i
        for i in range(n):
            gg = g[i] * gs
            mm = st[i] * b1 + gg * b1c
            vv = v[i] * b2 + gg * gg * b2c
            vh = vhat[i] if vhat[i] > vv else vv
            st[i] = mm
            v[i] = vv
            vhat[i] = vh
            w[i] -= mm / (sqrtf(vh) + eps) * lr_t
            g[i] = 0

    def generic_rule(self, xp, w, g, list st, float gs, float inv_c):
        if not _gpu.rule("amsgrad", xp, g, w, st[0], st[1], st[2], gs=gs, b1=self.beta_1,
                         b2=self.beta_2, eps=self.eps, lr_t=self.lr_t):
            adam_moments(xp, g, st, gs, self.beta_1, self.beta_2)
            xp.maximum(st[2], st[1], out=st[2])
            w -= st[0] / (xp.sqrt(st[2]) + xp.float32(self.eps)) * xp.float32(self.lr_t)


def adam_moments(xp, g, list st, float gs, float beta_1, float beta_2):
    """Adam's first and second moments (st[0], st[1]) updated in place from the gradient g * gs."""
    f = xp.float32
    cdef float b1c = 1.0 - beta_1, b2c = 1.0 - beta_2
    gg = g * f(gs)
    st[0] *= f(beta_1)
    st[0] += gg * f(b1c)
    st[1] *= f(beta_2)
    st[1] += gg * gg * f(b2c)
