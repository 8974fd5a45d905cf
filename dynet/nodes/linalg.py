"""Linear algebra on the generic array path: inverse, logdet, circular convolution/correlation and
the 3-d tensor contractions: the device-neutral implementations of the typed CPU nodes in
linalg_cpu.pyx (which makes the public operations); the arrays' module `xp` is NumPy or CuPy.
(dot_product and trace_of_product are typed nodes in norms.pyx.)
Every operation works per batch element; a batch-1 argument is broadcast."""
from dynet.nodes.npbase import fmt, strip, batch_of, acc, batch_first, array_module


def _square(name, dims):
    (shape, bd), = dims
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name}: expects a square matrix, got {fmt(shape, bd)}")
    return shape[0], bd


class Inverse:
    name = "inverse"

    def dim(self, dims):
        n, bd = _square(self.name, dims)
        return (n, n), bd

    def forward(self, xs, out):
        xp = array_module(out)
        try:
            inv = xp.linalg.inv(batch_first(xs[0]))
        except xp.linalg.LinAlgError:
            raise ValueError("inverse: the matrix is singular") from None
        if not bool(xp.isfinite(inv).all()):      # CuPy reports a singular matrix this way
            raise ValueError("inverse: the matrix is singular")
        batch_first(out)[...] = inv

    def backward(self, xs, out, dout, i, dxi):
        # d(X^-1) = -X^-1 dX X^-1, so dX = -Y^T dY Y^T
        yt = batch_first(out).transpose(0, 2, 1)
        batch_first(dxi)[...] -= yt @ batch_first(dout) @ yt


class LogDet:
    """log |det X| (the gradient, X^-T, is the same for either sign of the determinant)."""
    name = "logdet"

    def dim(self, dims):
        return (1,), _square(self.name, dims)[1]

    def forward(self, xs, out):
        xp = array_module(out)
        sign, logabs = xp.linalg.slogdet(batch_first(xs[0]).astype(xp.float64))
        if bool((sign == 0).any()):
            raise ValueError("logdet: the matrix is singular")
        out[...] = logabs.reshape(out.shape)

    def backward(self, xs, out, dout, i, dxi):
        xp = array_module(out)
        inv_t = xp.linalg.inv(batch_first(xs[0]).astype(xp.float64)).transpose(0, 2, 1)
        batch_first(dxi)[...] += inv_t * dout.reshape(-1, 1, 1)


def _same_vectors(name, dims):
    (su, bu), (sv, bv) = dims
    if len(strip(su)) != 1 or strip(su) != strip(sv):
        raise ValueError(f"{name}: expects two vectors of the same size, got {fmt(su, bu)} and {fmt(sv, bv)}")
    return (su[0],), batch_of(name, dims)


class CircConv:
    """[u * v]_k = sum_i u_i v_{(k - i) mod n} (correlate=False), or
    [u (star) v]_k = sum_i u_i v_{(i + k) mod n} (correlate=True)."""

    def __init__(self, correlate):
        self.correlate = correlate
        self.name = "circ_corr" if correlate else "circ_conv"

    def dim(self, dims):
        return _same_vectors(self.name, dims)

    def _table(self, xp, n):
        k, i = xp.meshgrid(xp.arange(n), xp.arange(n), indexing="ij")
        return (i + k) % n if self.correlate else (k - i) % n     # [k, i] -> index into v

    def forward(self, xs, out):
        xp = array_module(out)
        u, v = xs[0].reshape(out.shape[0], -1), xs[1].reshape(out.shape[0], -1)
        out[...] = xp.einsum("kib,ib->kb", v[self._table(xp, out.shape[0])], u)

    def backward(self, xs, out, dout, i, dxi):
        xp = array_module(out)
        n = out.shape[0]
        u, v = xs[0].reshape(n, -1), xs[1].reshape(n, -1)
        t = self._table(xp, n)
        g = dout.reshape(n, -1)
        if i == 0:
            acc(dxi, xp.einsum("kib,kb->ib", v[t], g))
        else:
            # v's index t[k, i] gets g_k u_i: for each j, sum over the k of row-shifted g
            d = xp.zeros((n, max(u.shape[1], g.shape[1])), dtype=out.dtype)
            for k in range(n):
                d[t[k]] += g[k] * u
            acc(dxi, d)


class Contract3D:
    """z_ij = sum_k x_ijk y_k (+ b_ij), or with z_vec: t_i = sum_jk x_ijk y_k z_j (+ b_i)."""

    def __init__(self, two_vectors, bias):
        self.two = two_vectors
        self.bias = bias
        self.name = ("contract3d_1d_1d" if two_vectors else "contract3d_1d") + ("_bias" if bias else "")

    def dim(self, dims):
        shapes = [fmt(s, b) for s, b in dims]
        sx = dims[0][0]
        bad = len(sx) != 3 or len(strip(dims[1][0])) != 1 or dims[1][0][0] != sx[2]
        if self.two:
            bad = bad or len(strip(dims[2][0])) != 1 or dims[2][0][0] != sx[1]
        out = (sx[0],) if self.two else tuple(sx[:2])
        if not bad and self.bias and strip(dims[-1][0]) != strip(out):
            bad = True
        if bad:
            raise ValueError(f"{self.name}: expects a {{i,j,k}} tensor, a {{k}} vector"
                             + (", a {j} vector" if self.two else "")
                             + (", a bias of the output's dimensions" if self.bias else "")
                             + ", got " + ", ".join(shapes))
        return out, batch_of(self.name, dims)

    def _args(self, xs, bd):
        xp = array_module(xs[0])
        x = xp.broadcast_to(xs[0], xs[0].shape[:3] + (bd,))
        y = xp.broadcast_to(xs[1].reshape(xs[1].shape[0], -1), (xs[1].shape[0], bd))
        z = xp.broadcast_to(xs[2].reshape(xs[2].shape[0], -1), (xs[2].shape[0], bd)) if self.two else None
        return x, y, z

    def forward(self, xs, out):
        xp = array_module(out)
        bd = out.shape[-1]
        x, y, z = self._args(xs, bd)
        if self.two:
            r = xp.einsum("ijkb,kb,jb->ib", x, y, z)
        else:
            r = xp.einsum("ijkb,kb->ijb", x, y)
        if self.bias:
            r = r + xs[-1].reshape(r.shape[:-1] + (-1,), order="F")
        out[...] = r.reshape(out.shape, order="F")

    def backward(self, xs, out, dout, i, dxi):
        xp = array_module(out)
        bd = out.shape[-1]
        x, y, z = self._args(xs, bd)
        g = dout.reshape(((out.shape[0],) if self.two else out.shape[:2]) + (bd,), order="F")
        if i == len(xs) - 1 and self.bias:
            acc(dxi, g)
        elif self.two:
            spec = {0: "ib,kb,jb->ijkb", 1: "ijkb,ib,jb->kb", 2: "ijkb,ib,kb->jb"}[i]
            ops = {0: (g, y, z), 1: (x, g, z), 2: (x, g, y)}[i]
            acc(dxi, xp.einsum(spec, *ops))
        elif i == 0:
            acc(dxi, xp.einsum("ijb,kb->ijkb", g, y))
        else:
            acc(dxi, xp.einsum("ijkb,ijb->kb", x, g))

