"""Time one workload config with one implementation, in its own process; prints one JSON line.

python -m bench.worker IMPL WORKLOAD CONFIG_JSON SECONDS   (IMPL: ours | ref)
"""
import importlib
import json
import sys
import time


def load(impl, autobatch=0):
    if impl == "ref":
        from tests.oracle.refdynet import load as load_ref
        module = load_ref(autobatch=autobatch)
        if module is None:
            raise SystemExit("the reference DyNet is not installed: python -m tests.oracle.install")
        return module
    import _dynet as dy
    params = dy.DynetParams()
    params.set_random_seed(1)
    params.set_mem(1024)
    params.set_autobatch(autobatch)
    params.init()
    return dy


def main():
    impl, name, config, seconds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
    # a config's "autobatch" is DyNet's --dynet-autobatch for both implementations, not a workload argument
    dy = load(impl, config.pop("autobatch", 0))
    workload = importlib.import_module(f"bench.workloads.{name}")
    step = workload.make(dy, **config)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < min(1.0, seconds / 4):   # warm up
        step()
    # best of several rounds: the machines are shared and noisy
    # step() returns the units it did, or (units, seconds) when only part of the step is the thing
    # being measured (e.g. Trainer.update() without the graph that produces the gradients)
    rounds = []
    for _ in range(3):
        n, own, t0 = 0, 0.0, time.perf_counter()
        while True:
            r = step()
            if isinstance(r, tuple):
                n += r[0]
                own += r[1]
            else:
                n += r
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds / 3:
                break
        rounds.append(n / (own or elapsed))
    print(json.dumps({"impl": impl, "throughput": max(rounds), "rounds": rounds}))


if __name__ == "__main__":
    main()
