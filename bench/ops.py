"""Per-operation cost, ours against the reference DyNet, side by side: forward + backward of one
operation in a graph of its own, minus the cost of the same graph without the operation.

    python -m bench.ops                         # every op, sizes 32 and 256, batch 1 and 16
    python -m bench.ops --ops tanh,hinge --sizes 32 --batches 1 --seconds 0.05

A case builds, per step: renew_cg, the inputs (Parameters, or with a batch, lookup_batch rows of
LookupParameters), the op, a scalar loss (sum_elems, sum_batches), forward and backward (the
gradients accumulate in the parameters; nothing is updated). Its baseline is the same step with the
loss taken of one row of the first input instead of the op (a loss over the whole input would cost
as much as a reduction op itself, and bias its cost to zero). cost = step - baseline, the best of several
rounds each, in CPU time of the process
(time.process_time: on a shared machine, time spent descheduled is not the op's). Each implementation runs in its
own processes (`--repeat` alternations, the best kept); a process that dies (the reference crashes
on a few inputs) is restarted after the case that killed it. Printed worst ratio first:
ratio = our cost / the reference's (below 1.0 is faster than DyNet), then the median ratio over the
operations whose reference cost is above 0.25 us.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vec(n):
    return (n,)


def mat(n):
    return (n, n)


def pos(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def prob(rng, shape):
    return rng.uniform(0.05, 0.95, shape)


def well_conditioned(rng, shape):
    n = shape[0]
    return rng.uniform(-1, 1, shape) / n + np.eye(n)[(...,) + (None,) * (len(shape) - 2)]


def tensor3(n):
    return (8, 8, n)


# name: (input shapes as functions of the size n, build(dy, *xs), input makers or None, batchable)
# An input maker gets (rng, shape) where shape includes the batch axis when batched.
U = None
OPS = {}


def op(name, shapes, build, makers=None, batched=True):
    OPS[name] = (shapes, build, makers, batched)


for _u in ["tanh", "logistic", "rectify", "exp", "square", "cube", "abs", "sin", "cos", "erf",
           "log_sigmoid", "elu", "selu", "softsign"]:
    op(_u, [vec], (lambda f: lambda dy, x: getattr(dy, f)(x))(_u))
op("log", [vec], lambda dy, x: dy.log(x), [pos])
op("sqrt", [vec], lambda dy, x: dy.sqrt(x), [pos])
op("lgamma", [vec], lambda dy, x: dy.lgamma(x), [pos])
op("scalar_mul", [vec], lambda dy, x: x * 2.0)
op("scalar_add", [vec], lambda dy, x: x + 1.0)
op("scalar_div", [vec], lambda dy, x: x / 2.0)
op("neg", [vec], lambda dy, x: -x)
op("add", [vec, vec], lambda dy, x, y: x + y)
op("sub", [vec, vec], lambda dy, x, y: x - y)
op("cmult", [vec, vec], lambda dy, x, y: dy.cmult(x, y))
op("cdiv", [vec, vec], lambda dy, x, y: dy.cdiv(x, y), [None, pos])
op("bmax", [vec, vec], lambda dy, x, y: dy.bmax(x, y))
op("bmin", [vec, vec], lambda dy, x, y: dy.bmin(x, y))
op("colwise_add", [mat, vec], lambda dy, x, y: dy.colwise_add(x, y))
op("matvec", [mat, vec], lambda dy, W, x: W * x)
op("matmul", [mat, mat], lambda dy, A, B: A * B)
op("affine_transform", [vec, mat, vec], lambda dy, b, W, x: dy.affine_transform([b, W, x]))
op("sum_elems", [vec], lambda dy, x: dy.sum_elems(x))
op("mean_elems", [vec], lambda dy, x: dy.mean_elems(x))
op("std_elems", [vec], lambda dy, x: dy.std_elems(x))
op("squared_norm", [vec], lambda dy, x: dy.squared_norm(x))
op("l2_norm", [vec], lambda dy, x: dy.l2_norm(x))
op("sum_dim", [mat], lambda dy, x: dy.sum_dim(x, [1]))
op("mean_dim", [mat], lambda dy, x: dy.mean_dim(x, [1], False))
op("moment_dim", [mat], lambda dy, x: dy.moment_dim(x, [0], 3, False))
op("std_dim", [mat], lambda dy, x: dy.std_dim(x, [1], False))
op("max_dim", [mat], lambda dy, x: dy.max_dim(x, 1))
op("logsumexp_dim", [mat], lambda dy, x: dy.logsumexp_dim(x, 0))
op("cumsum", [vec], lambda dy, x: dy.cumsum(x))
op("esum", [vec, vec, vec], lambda dy, a, b, c: dy.esum([a, b, c]))
op("average", [vec, vec, vec], lambda dy, a, b, c: dy.average([a, b, c]))
op("emax", [vec, vec, vec], lambda dy, a, b, c: dy.emax([a, b, c]))
op("logsumexp", [vec, vec, vec], lambda dy, a, b, c: dy.logsumexp([a, b, c]))
op("dot_product", [vec, vec], lambda dy, x, y: dy.dot_product(x, y))
op("squared_distance", [vec, vec], lambda dy, x, y: dy.squared_distance(x, y))
op("l1_distance", [vec, vec], lambda dy, x, y: dy.l1_distance(x, y))
op("huber_distance", [vec, vec], lambda dy, x, y: dy.huber_distance(x, y))
op("trace_of_product", [mat, mat], lambda dy, x, y: dy.trace_of_product(x, y))
op("layer_norm", [vec, vec, vec], lambda dy, x, g, b: dy.layer_norm(x, g, b))
op("weight_norm", [mat, lambda n: (1,)], lambda dy, w, g: dy.weight_norm(w, g), [None, pos])
op("softmax", [vec], lambda dy, x: dy.softmax(x))
op("log_softmax", [vec], lambda dy, x: dy.log_softmax(x))
op("log_softmax_restrict", [vec], lambda dy, x: dy.log_softmax(x, list(range(0, x.dim()[0][0], 2))))
op("pickneglogsoftmax", [vec], lambda dy, x: dy.pickneglogsoftmax(x, 3))
op("sparsemax", [vec], lambda dy, x: dy.sparsemax(x), batched=False)
op("constrained_softmax", [vec, vec], lambda dy, x, u: dy.constrained_softmax(x, u),
   [None, lambda rng, s: rng.uniform(0.05, 0.2, s)], batched=False)
op("pick", [vec], lambda dy, x: dy.pick(x, 3))
op("pickrange", [vec], lambda dy, x: dy.pickrange(x, 2, 10))
op("select_rows", [mat], lambda dy, x: dy.select_rows(x, [0, 2, 5]))
op("select_cols", [mat], lambda dy, x: dy.select_cols(x, [0, 2, 5]))
op("reshape", [mat], lambda dy, x: dy.reshape(x, (x.dim()[0][0] * x.dim()[0][1],)))
op("transpose", [mat], lambda dy, x: dy.transpose(x))
op("concatenate", [vec, vec], lambda dy, x, y: dy.concatenate([x, y]))
op("concatenate_cols", [vec, vec], lambda dy, x, y: dy.concatenate_cols([x, y]))
op("dropout", [vec], lambda dy, x: dy.dropout(x, 0.5))
op("block_dropout", [vec], lambda dy, x: dy.block_dropout(x, 0.5))
op("noise", [vec], lambda dy, x: dy.noise(x, 0.1))
op("binary_log_loss", [vec, vec], lambda dy, x, y: dy.binary_log_loss(x, y), [prob, prob], batched=False)
op("hinge", [vec], lambda dy, x: dy.hinge(x, 3))
op("hinge_batch", [vec], lambda dy, x: dy.hinge_batch(x, [3] * x.dim()[1]))
op("pairwise_rank_loss", [vec, vec], lambda dy, x, y: dy.pairwise_rank_loss(x, y))
op("poisson_loss", [lambda n: (1,)], lambda dy, x: dy.poisson_loss(x, 3))
op("inverse", [mat], lambda dy, x: dy.inverse(x), [well_conditioned])
op("logdet", [mat], lambda dy, x: dy.logdet(x), [well_conditioned])
op("circ_conv", [vec, vec], lambda dy, x, y: dy.circ_conv(x, y))
op("circ_corr", [vec, vec], lambda dy, x, y: dy.circ_corr(x, y))
op("contract3d_1d", [tensor3, vec], lambda dy, x, y: dy.contract3d_1d(x, y))
op("contract3d_1d_1d", [tensor3, vec, lambda n: (8,)], lambda dy, x, y, z: dy.contract3d_1d_1d(x, y, z))
op("kmax_pooling", [mat], lambda dy, x: dy.kmax_pooling(x, 4, 1))
op("fold_rows", [mat], lambda dy, x: dy.fold_rows(x, 2))
op("nobackprop", [vec], lambda dy, x: dy.nobackprop(x))
op("flip_gradient", [vec], lambda dy, x: dy.flip_gradient(x))
op("scale_gradient", [vec], lambda dy, x: dy.scale_gradient(x, 0.5))


def make_case(dy, name, n, batch):
    shapes, build, makers, _ = OPS[name]
    rng = np.random.default_rng(0)
    model = dy.ParameterCollection()
    tables = []
    for i, shape_of in enumerate(shapes):
        shape = tuple(shape_of(n))
        maker = makers[i] if makers and makers[i] else (lambda r, s: r.uniform(-1, 1, s))
        if batch == 1:         # a parameter: its node points at its storage (no copy per step)
            p = model.add_parameters(shape)
            p.set_value(np.asarray(maker(rng, shape), dtype=np.float64))
        else:                  # a batch of rows of a lookup table (one copy per step)
            p = model.add_lookup_parameters((batch,) + shape)
            for b in range(batch):
                p.init_row(b, np.asarray(maker(rng, shape), dtype=np.float64).reshape(-1, order="F"))
        tables.append(p)
    rows = list(range(batch))

    def inputs():
        if batch == 1:
            return [dy.parameter(p) for p in tables]
        return [dy.lookup_batch(p, rows) for p in tables]

    def step():
        dy.renew_cg()
        loss = dy.sum_batches(dy.sum_elems(build(dy, *inputs())))
        loss.value()
        loss.backward()

    def baseline():
        dy.renew_cg()
        loss = dy.sum_batches(dy.sum_elems(dy.pick(inputs()[0], 0)))
        loss.value()
        loss.backward()

    step.model = model     # the reference's parameters must outlive the closures
    return step, baseline


def best_time(fn, seconds, rounds=3):
    fn()
    best = float("inf")
    for _ in range(rounds):
        n, t0 = 0, time.process_time()
        while True:
            fn()
            n += 1
            t = time.process_time() - t0
            if t >= seconds / rounds:
                break
        best = min(best, t / n)
    return best


def worker(impl, cases, seconds):
    """Time `cases` with one implementation; one JSON line per case (flushed: a crash loses one)."""
    sys.path.insert(0, ROOT)
    from bench.worker import load
    dy = load(impl)
    for name, n, batch in cases:
        try:
            step, baseline = make_case(dy, name, n, batch)
            t_op, t_base = best_time(step, seconds), best_time(baseline, seconds)
            out = {"cost_us": max(t_op - t_base, 0.0) * 1e6, "step_us": t_op * 1e6}
        except Exception as e:          # the reference lacks a few ops or batch modes
            out = {"error": f"{type(e).__name__}: {e}"[:120]}
        print(json.dumps({"case": [name, n, batch], **out}), flush=True)


def run_impl(impl, cases, seconds):
    results, todo = {}, list(cases)
    while todo:
        cmd = [sys.executable, "-m", "bench.ops", "--worker", impl, "--seconds", str(seconds),
               "--cases", json.dumps(todo)]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                results[tuple(r.pop("case"))] = r
        todo = [c for c in todo if tuple(c) not in results]
        if todo:       # the process died on todo[0]
            results[tuple(todo[0])] = {"error": f"process died (exit {proc.returncode})"}
            todo = todo[1:]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", help="comma-separated operation names (default: all)")
    parser.add_argument("--sizes", default="32,256")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--seconds", type=float, default=0.06, help="timed seconds per step kind and case")
    parser.add_argument("--repeat", type=int, default=2, help="alternations of ours and the reference")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cases", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, [tuple(c) for c in json.loads(args.cases)], args.seconds)
    names = args.ops.split(",") if args.ops else list(OPS)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise SystemExit(f"unknown operations {unknown}; known: {', '.join(OPS)}")
    cases = [(name, int(n), int(b)) for name in names for n in args.sizes.split(",")
             for b in args.batches.split(",") if int(b) == 1 or OPS[name][3]]
    best = {"ours": {}, "ref": {}}
    for _ in range(max(1, args.repeat)):
        for impl in ("ours", "ref"):
            for case, r in run_impl(impl, cases, args.seconds).items():
                old = best[impl].get(case)
                if old is None or "error" in old or ("cost_us" in r and r["cost_us"] < old["cost_us"]):
                    best[impl][case] = r
    rows = []
    for case in map(tuple, cases):
        ours, ref = best["ours"].get(case, {}), best["ref"].get(case, {})
        ratio = None
        if "cost_us" in ours and "cost_us" in ref:
            ratio = ours["cost_us"] / max(ref["cost_us"], 0.05)   # 0.05 us: below timer noise
        rows.append((case, ours, ref, ratio))
    rows.sort(key=lambda r: -(r[3] if r[3] is not None else -1))
    print(f"{'op':<22} {'size':>5} {'batch':>5} {'ours us':>9} {'ref us':>9} {'ratio':>7}")

    def fmt(r):
        return f"{r['cost_us']:9.2f}" if "cost_us" in r else f"{'error':>9}"
    for (name, n, b), ours, ref, ratio in rows:
        print(f"{name:<22} {n:>5} {b:>5} {fmt(ours)} {fmt(ref)} {(f'{ratio:.2f}x' if ratio is not None else '-'):>7}")
        for label, r in (("ours", ours), ("ref", ref)):
            if "error" in r and label == "ours":
                print(f"    {label}: {r['error']}")
    counted = [r[3] for r in rows if r[3] is not None and r[2]["cost_us"] > 0.25]
    if counted:
        print(f"\n{len(rows)} cases; worst {max(counted):.2f}x; median over the {len(counted)} cases whose "
              f"reference cost is above 0.25 us: {statistics.median(counted):.2f}x; "
              f"{sum(c > 1.2 for c in counted)} above 1.2x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"op": c[0], "size": c[1], "batch": c[2], "ours": o, "reference": r, "ratio": x}
                       for c, o, r, x in rows], f, indent=2)


if __name__ == "__main__":
    main()
