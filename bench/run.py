"""Run benchmark workloads for this package and the reference DyNet side by side, print ratios.

    python -m bench.run                 # every workload in bench/workloads
    python -m bench.run chain conv2d    # some of them
    python -m bench.run --seconds 6 --json results.json chain

Each measurement runs in a fresh process (one implementation at a time), alternating ours and the
reference `--repeat` times per config and keeping each one's best, so that a burst of load on a
shared machine does not decide a ratio. The ratio is ours / reference throughput: above 1.0 means
faster than DyNet.
"""
import argparse
import json
import os
import pkgutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def workloads():
    from bench import workloads as pkg
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))


def measure(impl, name, config, seconds):
    cmd = [sys.executable, "-m", "bench.worker", impl, name, json.dumps(config), str(seconds)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"impl": impl, "error": (out.stderr or out.stdout).strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="workloads (default: all)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    parser.add_argument("--repeat", type=int, default=2, help="alternations of ours and the reference")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--impls", default="ours,ref",
                        help="the two implementations to compare, A,B (ratio = A / B): ours, ref, "
                             "gpu (ours on GPU:0), generic (ours, generic backend)")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    import importlib
    names = args.names or workloads()
    first, second = [s.strip() for s in args.impls.split(",")]
    results = []
    print(f"{'workload':<16} {'config':<28} {first:>14} {second:>14} {'ratio':>7}")
    for name in names:
        module = importlib.import_module(f"bench.workloads.{name}")
        for config in module.CONFIGS:
            best = {}
            for _ in range(max(1, args.repeat)):
                for impl in (first, second):
                    r = measure(impl, name, config, args.seconds)
                    if impl not in best or r.get("throughput", 0) > best[impl].get("throughput", 0):
                        best[impl] = r
            ours, ref = best[first], best[second]
            ratio = (ours["throughput"] / ref["throughput"]) if "throughput" in ours and "throughput" in ref else None

            def fmt(r):
                return f"{r['throughput']:.1f}" if "throughput" in r else "error"
            cfg = ",".join(f"{k}={v}" for k, v in config.items())
            print(f"{name:<16} {cfg:<28} {fmt(ours):>14} {fmt(ref):>14} "
                  f"{(f'{ratio:.2f}x' if ratio else '-'):>7}   ({module.UNIT})", flush=True)
            for r in (ours, ref):
                if "error" in r:
                    print(f"    {r['impl']}: {r['error']}")
            results.append({"workload": name, "config": config, "unit": module.UNIT,
                            "ours": ours, "reference": ref, "ratio": ratio})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
