"""Fused CuPy kernels for the hot primitives on a GPU, each beside the generic array code it replaces.

Every function here takes the array module `xp` first and does its work only when `xp` is CuPy and
the kernel compiled; it returns False otherwise (or on a compile failure: a GPU whose CUDA toolchain
cannot build the kernel still runs, on the generic code), and the caller then runs its generic array
code. So the generic implementation is always the fallback, and it is what the CPU tests exercise.

    rule(name, xp, g, w, *moments, **constants)   the trainer rules (SimpleSGD ... Amsgrad): one pass
                                                  over w, g and the moments instead of 5-10
    unary(name, xp, x, out), unary_backward(...)  elementwise maps and their derivatives
    softmax_columns, logsumexp_columns            (log-)softmax over each column, one block per column
                                                  (softmax, log_softmax, pickneglogsoftmax)
    lstm_activate, lstm_c, lstm_h                 the LSTM cell's gate activations, c and h
These are called from dynet/kernels/generic.py, at the start of the generic function they fuse.
Matrix products need nothing here: CuPy's matmul is cuBLAS.
"""
_cache = {}
_failed = set()


def is_cupy(xp):
    return getattr(xp, "__name__", "") == "cupy"


def _kernel(key, build):
    """The compiled kernel `key` (built once by `build(cupy)`), or None if it cannot be built."""
    k = _cache.get(key)
    if k is None and key not in _failed:
        try:
            import cupy
            k = _cache[key] = build(cupy)
        except Exception:          # no CUDA compiler, or CuPy too old: the generic code runs
            _failed.add(key)
            return None
    return k


# ---- trainer rules ------------------------------------------------------------------------------
# (constants, moments, code) per rule; w and the moments are read and written, g is read.
_RULES = {
    "sgd": (("step",), 0, "w -= g * step;"),
    "momentum": (("step", "mom", "inv_c"), 1,
                 "float v = m0 * mom - g * step; m0 = v; w += v * inv_c;"),
    "adagrad": (("gs", "step", "eps"), 1,
                "float gg = g * gs; float s = m0 + gg * gg; m0 = s; w += gg / sqrtf(s + eps) * step;"),
    "adadelta": (("gs", "eps", "rho", "inv_c"), 2,
                 "float gg = g * gs; float hg = m0 * rho + gg * gg * (1.f - rho); m0 = hg;"
                 "float d = -gg * sqrtf(m1 + eps) / sqrtf(hg + eps);"
                 "m1 = m1 * rho + d * d * (1.f - rho); w += d * inv_c;"),
    "rmsprop": (("gs", "lr", "eps", "rho", "inv_c"), 1,
                "float gg = g * gs; float s = m0 * rho + gg * gg * (1.f - rho); m0 = s;"
                "w += lr * (-gg / sqrtf(s + eps)) * inv_c;"),
    "adam": (("gs", "b1", "b2", "eps", "lr_t"), 2,
             "float gg = g * gs; float mm = m0 * b1 + gg * (1.f - b1);"
             "float vv = m1 * b2 + gg * gg * (1.f - b2); m0 = mm; m1 = vv;"
             "w -= mm / (sqrtf(vv) + eps) * lr_t;"),
    "amsgrad": (("gs", "b1", "b2", "eps", "lr_t"), 3,
                "float gg = g * gs; float mm = m0 * b1 + gg * (1.f - b1);"
                "float vv = m1 * b2 + gg * gg * (1.f - b2); float vh = m2 > vv ? m2 : vv;"
                "m0 = mm; m1 = vv; m2 = vh; w -= mm / (sqrtf(vh) + eps) * lr_t;"),
}
RULES = tuple(_RULES)


def _build_rule(name):
    consts, nm, code = _RULES[name]

    def build(cupy):
        ins = ", ".join(["float32 g"] + [f"float32 {c}" for c in consts])
        outs = ", ".join(["float32 w"] + [f"float32 m{k}" for k in range(nm)])
        return cupy.ElementwiseKernel(ins, outs, code, f"dynet_rule_{name}")
    return build


def rule(name, xp, g, w, *moments, **constants):
    """Run trainer rule `name` fused over w, g and the moments (in place); False where the generic
    code must run instead."""
    if not is_cupy(xp):
        return False
    k = _kernel(("rule", name), _build_rule(name))
    if k is None:
        return False
    consts, nm, _ = _RULES[name]
    f = xp.float32
    k(g, *[f(constants[c]) for c in consts], w, *moments[:nm])
    return True


# ---- elementwise maps ---------------------------------------------------------------------------
# name -> (forward y = f(x), derivative dy/dx written with x and y)
UNARY = {
    "tanh": ("y = tanhf(x);", "1.f - y * y"),
    "logistic": ("y = 1.f / (1.f + expf(-x));", "y * (1.f - y)"),
    "rectify": ("y = x > 0.f ? x : 0.f;", "(x > 0.f ? 1.f : 0.f)"),
    "exp": ("y = expf(x);", "y"),
    "log": ("y = logf(x);", "1.f / x"),
    "square": ("y = x * x;", "2.f * x"),
    "sqrt": ("y = sqrtf(x);", "0.5f / y"),
    "softsign": ("y = x / (1.f + fabsf(x));", "1.f / ((1.f + fabsf(x)) * (1.f + fabsf(x)))"),
    "log_sigmoid": ("y = x < 0.f ? x - log1pf(expf(x)) : -log1pf(expf(-x));",
                    "1.f / (1.f + expf(x))"),
}


def unary(name, xp, x, out):
    """out = f(x) for the elementwise map `name` (one kernel); False where it is not fused."""
    if not is_cupy(xp) or name not in UNARY:
        return False
    k = _kernel(("unary", name), lambda cp: cp.ElementwiseKernel(
        "float32 x", "float32 y", UNARY[name][0], f"dynet_{name}_fwd"))
    if k is None:
        return False
    k(x, out)
    return True


def unary_backward(name, xp, x, y, dy, dx):
    """dx += f'(x) * dy, with y = f(x) (one kernel); False where it is not fused."""
    if not is_cupy(xp) or name not in UNARY:
        return False
    k = _kernel(("unary_bwd", name), lambda cp: cp.ElementwiseKernel(
        "float32 x, float32 y, float32 dy", "float32 dx", f"dx += ({UNARY[name][1]}) * dy;",
        f"dynet_{name}_bwd"))
    if k is None:
        return False
    k(x, y, dy, dx)
    return True


# ---- softmaxes (over axis 0 of a (rows, columns) array: DyNet's softmax over each column) -------

def _column_kernel(cp):
    # one thread block per column: the column's max, then the log of its sum of exponentials, then
    # (if y is given) the output pass
    code = r'''
    extern "C" __global__ void dynet_softmax_cols(const float* x, float* y, float* logz, int rows,
                                                  int cols, int logspace, int want_y, int want_logz) {
        extern __shared__ float red[];
        int c = blockIdx.x; if (c >= cols) return;
        const float* xc = x + (long long)c * rows;
        float m = -INFINITY;
        for (int i = threadIdx.x; i < rows; i += blockDim.x) m = fmaxf(m, xc[i]);
        red[threadIdx.x] = m; __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
            __syncthreads();
        }
        m = red[0]; __syncthreads();
        float z = 0.f;
        for (int i = threadIdx.x; i < rows; i += blockDim.x) z += expf(xc[i] - m);
        red[threadIdx.x] = z; __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
            __syncthreads();
        }
        float lz = m + logf(red[0]);
        if (threadIdx.x == 0 && want_logz) logz[c] = lz;
        if (want_y) {
            float* yc = y + (long long)c * rows;
            for (int i = threadIdx.x; i < rows; i += blockDim.x)
                yc[i] = logspace ? xc[i] - lz : expf(xc[i] - lz);
        }
    }
    '''
    return cp.RawKernel(code, "dynet_softmax_cols")


def _columns(xp, x2, y2, logz, logspace):
    if not (is_cupy(xp) and x2.ndim == 2 and x2.flags.f_contiguous and x2.dtype == xp.float32
            and (y2 is None or (y2.flags.f_contiguous and y2.shape == x2.shape))):
        return False
    k = _kernel(("softmax",), _column_kernel)
    if k is None:
        return False
    rows, cols = x2.shape
    threads = min(256, max(32, 1 << (max(rows, 1) - 1).bit_length()))
    unused = xp.empty(1, dtype=xp.float32)     # stands for the output not asked for
    k((cols,), (threads,), (x2, unused if y2 is None else y2, unused if logz is None else logz,
                            xp.int32(rows), xp.int32(cols), xp.int32(logspace),
                            xp.int32(y2 is not None), xp.int32(logz is not None)),
      shared_mem=threads * 4)
    return True


def softmax_columns(xp, x2, y2, log=False):
    """y2[:, c] = (log_)softmax(x2[:, c]) for 2-D Fortran-ordered float32 arrays; False if not fused."""
    return _columns(xp, x2, y2, None, 1 if log else 0)


def logsumexp_columns(xp, x2):
    """log(sum(exp(x2[:, c]))) for each column c as a (1, columns) array, or None if not fused."""
    if not is_cupy(xp):
        return None
    logz = xp.empty(x2.shape[1], dtype=xp.float32)
    return logz.reshape(1, -1) if _columns(xp, x2, None, logz, 0) else None


# ---- the LSTM cell (DyNet's vanilla_lstm_gates / _c / _h: gates [i; f; o; g]) -------------------

def lstm_activate(xp, pre, H):
    """The gate activations in place: sigmoid on the [i; f; o] rows, tanh on the g rows, one pass."""
    if not is_cupy(xp):
        return False
    k = _kernel(("lstm_act",), lambda cp: cp.ElementwiseKernel(
        "int32 row, int32 H", "float32 x",
        "x = row < 3 * H ? 1.f / (1.f + expf(-x)) : tanhf(x);", "dynet_lstm_activate"))
    if k is None:
        return False
    k(xp.arange(pre.shape[0], dtype=xp.int32)[:, None], xp.int32(H), pre)
    return True


def lstm_c(xp, i, g, c_prev, f, out):
    """out = i * g + c_prev * f (c_prev None: i * g), one pass."""
    if not is_cupy(xp):
        return False
    if c_prev is None:
        k = _kernel(("lstm_c0",), lambda cp: cp.ElementwiseKernel(
            "float32 i, float32 g", "float32 c", "c = i * g;", "dynet_lstm_c0"))
        args = (i, g)
    else:
        k = _kernel(("lstm_c",), lambda cp: cp.ElementwiseKernel(
            "float32 i, float32 g, float32 cp, float32 f", "float32 c", "c = i * g + cp * f;",
            "dynet_lstm_c"))
        args = (i, g, c_prev, f)
    if k is None:
        return False
    k(*args, out)
    return True


def lstm_h(xp, o, c, out):
    """out = o * tanh(c), one pass."""
    if not is_cupy(xp):
        return False
    k = _kernel(("lstm_h",), lambda cp: cp.ElementwiseKernel(
        "float32 o, float32 c", "float32 h", "h = o * tanhf(c);", "dynet_lstm_h"))
    if k is None:
        return False
    k(o, c, out)
    return True
