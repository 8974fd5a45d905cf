"""Fused CuPy kernels for the hot primitives on a GPU, each beside the generic array code it replaces.

Every function here takes the array module `xp` first and does its work only when `xp` is CuPy and
the kernel compiled; it returns False otherwise (or on a compile failure: a GPU whose CUDA toolchain
cannot build the kernel still runs, on the generic code), and the caller then runs its generic array
code. So the generic implementation is always the fallback, and it is what the CPU tests exercise.

    rule(name, xp, g, w, *moments, **constants)   the trainer rules (SimpleSGD ... Amsgrad): one pass
                                                  over w, g and the moments instead of 5-10
    unary(name, xp, x, out), unary_backward(...)  elementwise maps and their derivatives
    softmax_columns / log_softmax_columns         softmax over each column (exp-normalise fused)
    pickneglogsoftmax_columns                     -log softmax(x)[idx] per column, and its gradient
    lstm_cell(...), lstm_cell_backward(...)       the fused LSTM cell (gates -> c, h)
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

def _column_kernels(cp):
    # one thread block per column: a max, a sum of exponentials, and the output pass
    code = r'''
    extern "C" __global__ void dynet_softmax_cols(const float* x, float* y, float* logz, int rows,
                                                  int cols, int logspace) {
        extern __shared__ float red[];
        int c = blockIdx.x; if (c >= cols) return;
        const float* xc = x + (long long)c * rows; float* yc = y + (long long)c * rows;
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
        if (threadIdx.x == 0 && logz) logz[c] = lz;
        if (y) for (int i = threadIdx.x; i < rows; i += blockDim.x)
            yc[i] = logspace ? xc[i] - lz : expf(xc[i] - lz);
    }
    '''
    return cp.RawKernel(code, "dynet_softmax_cols")


def _softmax_launch(xp, x2, y2, logz, logspace):
    k = _kernel(("softmax",), _column_kernels)
    if k is None:
        return False
    rows, cols = x2.shape
    threads = 256 if rows >= 256 else max(32, 1 << (max(rows, 1) - 1).bit_length())
    x2 = xp.asfortranarray(x2)
    k((cols,), (threads,), (x2, y2 if y2 is not None else 0, logz if logz is not None else 0,
                            xp.int32(rows), xp.int32(cols), xp.int32(logspace)),
      shared_mem=threads * 4)
    return True


def softmax_columns(xp, x2, y2, log=False):
    """y2[:, c] = (log_)softmax(x2[:, c]) for 2-D Fortran-ordered float32 arrays; False if not fused."""
    if not is_cupy(xp) or not (y2.flags.f_contiguous):
        return False
    return _softmax_launch(xp, x2, y2, None, 1 if log else 0)


def pickneglogsoftmax_columns(xp, x2, idx, out):
    """out[c] = -log softmax(x2[:, c])[idx[c]] (idx an int array on the device); False if not fused."""
    if not is_cupy(xp):
        return False
    logz = xp.empty(x2.shape[1], dtype=xp.float32)
    if not _softmax_launch(xp, x2, None, logz, 0):
        return False
    cols = xp.arange(x2.shape[1])
    out[...] = (logz - x2[idx, cols]).reshape(out.shape)
    return True


# ---- the LSTM cell ------------------------------------------------------------------------------
# gates (4H, B) pre-activations [i; f; o; g] -> c = sigma(f) c_prev + sigma(i) tanh(g), h = sigma(o)
# tanh(c); DyNet's vanilla_lstm layout.

def lstm_cell(xp, pre, c_prev, c, h):
    """From pre-activations `pre` (4H, B) and c_prev (H, B): c and h (H, B). False if not fused."""
    if not is_cupy(xp):
        return False
    k = _kernel(("lstm",), lambda cp: cp.ElementwiseKernel(
        "raw float32 pre, float32 cp_, int32 H",
        "float32 c, float32 h",
        """
        int r = i % H, b = i / H;
        const float* p = &pre[(long long)b * 4 * H];
        float ig = 1.f / (1.f + expf(-p[r])), fg = 1.f / (1.f + expf(-p[H + r]));
        float og = 1.f / (1.f + expf(-p[2 * H + r])), gg = tanhf(p[3 * H + r]);
        c = fg * cp_ + ig * gg;
        h = og * tanhf(c);
        """, "dynet_lstm_cell"))
    if k is None:
        return False
    H = c.shape[0]
    flat = [a.reshape(-1, order="F") for a in (c_prev, c, h)]   # i is then the memory index
    k(xp.asfortranarray(pre), flat[0], xp.int32(H), flat[1], flat[2])
    return True
