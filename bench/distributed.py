"""Data-parallel scaling: training throughput on 1, 2, ... processes (mpirun over loopback), with
dynet.distributed.DistributedTrainer, and the reference DyNet's one process alongside.

    python -m bench.distributed                       # mlp_batch and rnnlm_batch at 1 and 2 processes
    python -m bench.distributed --procs 1 2 3 --seconds 6 mlp_batch

Weak scaling: every process trains on the workload's own minibatch, so P processes do P times the
work of one per step. Each process count runs in a fresh `mpirun -np P`, and the counts alternate
`--repeat` times (1, 2, 1, 2, ...), so that drift on a shared machine falls on every count alike.
All ranks run the same number of steps per round (rank 0 fixes it from its warm-up speed), three
rounds per run; the throughput is the units of all ranks together over rank 0's time for the round,
barrier to barrier, the best round of the run. "speedup" is the best run of P processes over the best
of one; "per repeat" is each repetition's P-process run over the one-process run just before it (the
spread says how much the machine moved). Scaling efficiency = speedup / P. "independent" is the
speedup that P unconnected processes (each a `mpirun -np 1` of the same timed loop, all at once)
get together: what the machine itself allows, the ceiling of the speedup on a shared machine.
The load average is printed before each workload and after it. The reference DyNet has no
multi-process training for Python, so its column is its one process (bench.worker). `--breakdown`
also prints each rank's time per step in its parts (compute: forward and backward; allreduce:
averaging the gradients, waiting for the other ranks included, and "of it waiting" that wait;
update) and the CPU time it used per step. On a busy machine the waiting is the others' lateness (a
rank set aside by the scheduler), and allreduce less waiting is what the exchange itself costs.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the workloads and the config of each that is measured (the first of its CONFIGS)
DEFAULT_WORKLOADS = ["mlp_batch", "rnnlm_batch"]


def timed_trainer(dd, clock):
    """A DistributedTrainer that adds the seconds spent averaging the gradients (waiting for the
    other ranks included), of those waiting, and updating to clock["allreduce"], clock["waiting"]
    and clock["update"]."""
    class TimedTrainer(dd.DistributedTrainer):
        def update(self, s=1.0):
            waited = dd.seconds_waiting()
            t0 = time.perf_counter()
            norm = dd.allreduce_gradients(self.trainer.model)
            t1 = time.perf_counter()
            # as DistributedTrainer.update: the norm the exchange computed saves the clipping's pass
            if norm is None:
                self.trainer.update(s)
            else:
                self.trainer.update(s, grad_norm=norm)
            clock["allreduce"] += t1 - t0
            clock["waiting"] += dd.seconds_waiting() - waited
            clock["update"] += time.perf_counter() - t1
    return TimedTrainer


def rank_main(name, config, seconds):
    """One rank, under mpirun: time the workload's steps with a DistributedTrainer."""
    import _dynet as dy
    params = dy.DynetParams()
    params.set_random_seed(1)
    params.set_mem(1024)
    params.init()
    import importlib
    import dynet.distributed as dd
    rank, size = dd.init(use_mpi=True)
    workload = importlib.import_module(f"bench.workloads.{name}")
    clock = {"allreduce": 0.0, "waiting": 0.0, "update": 0.0}
    step = workload.make(dy, **config, wrap_trainer=timed_trainer(dd, clock))
    # every rank must make the same number of steps (each update is a collective): rank 0 says
    # when the warm-up ends, and how many steps a round has
    t0, warm = time.perf_counter(), 0
    while dd.broadcast_object(time.perf_counter() - t0 < min(1.0, seconds / 4) or warm < 2):
        step()
        warm += 1
    per_round = dd.broadcast_object(max(2, int(warm * (seconds / 3) / (time.perf_counter() - t0))))
    rounds, parts = [], []
    for _ in range(3):
        dd.barrier()
        clock.update(allreduce=0.0, waiting=0.0, update=0.0)
        t0, cpu0, units = time.perf_counter(), time.process_time(), 0
        for _ in range(per_round):
            units += step()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        dd.barrier()
        rounds.append(units * size / (time.perf_counter() - t0))
        # this rank's milliseconds per step: the whole step, its parts, and the CPU time it used
        parts.append({k: round(1e3 * v / per_round, 3) for k, v in
                      (("step", wall), ("compute", wall - clock["allreduce"] - clock["update"]),
                       ("allreduce", clock["allreduce"]), ("of it waiting", clock["waiting"]),
                       ("update", clock["update"]),
                       ("cpu", cpu))})
    best = max(range(len(rounds)), key=rounds.__getitem__)
    per_rank = dd.allgather_object(parts[best])
    if rank == 0:
        print(json.dumps({"procs": size, "throughput": rounds[best], "rounds": rounds,
                          "transport": dd.gradient_transport(), "ms_per_step": per_rank}))


def _rank_worker_command(procs, name, config, seconds):
    from tests.mpi_launch import mpirun_command
    return mpirun_command(procs) + [sys.executable, "-m", "bench.distributed", "--rank-worker", name,
                                    json.dumps(config), str(seconds)]


def _result(out, procs):
    if out.returncode != 0:
        return {"procs": procs, "error": (out.stderr or out.stdout).strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(procs, name, config, seconds):
    """One `mpirun -np procs` of the timed loop (rank_main): its result, or {"error": ...}."""
    from tests.mpi_launch import mpirun_env
    try:
        out = subprocess.run(_rank_worker_command(procs, name, config, seconds), cwd=ROOT,
                             env=mpirun_env(ROOT), capture_output=True, text=True,
                             timeout=60 + 10 * seconds)
    except subprocess.TimeoutExpired:
        return {"procs": procs, "error": ["timed out"]}
    return _result(out, procs)


def measure_independent(procs, name, config, seconds):
    """The machine's own parallel capacity: `procs` single processes (each a `mpirun -np 1` of the
    same timed loop, no communication) at once, their throughputs summed. On a shared machine this,
    not procs x one process, is the ceiling for the data-parallel run."""
    from tests.mpi_launch import mpirun_env
    runs = [subprocess.Popen(_rank_worker_command(1, name, config, seconds), cwd=ROOT,
                             env=mpirun_env(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(procs)]
    results = []
    for run in runs:
        try:
            out, err = run.communicate(timeout=60 + 10 * seconds)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            results.append({"procs": procs, "error": ["timed out"]})
            continue
        results.append(_result(subprocess.CompletedProcess(run.args, run.returncode, out, err), 1))
    failed = [r for r in results if "throughput" not in r]
    if failed:
        return {"procs": procs, "error": failed[0]["error"]}
    return {"procs": procs, "throughput": sum(r["throughput"] for r in results)}


def _load():
    try:
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"workloads (default: {' '.join(DEFAULT_WORKLOADS)})")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="alternations of the process counts")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference's column")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print each rank's milliseconds per step: compute (forward and "
                             "backward), allreduce (waiting included; and the waiting alone), "
                             "update, CPU time")
    parser.add_argument("--rank-worker", nargs=3, metavar=("NAME", "CONFIG", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    if args.rank_worker:
        name, config, seconds = args.rank_worker
        rank_main(name, json.loads(config), float(seconds))
        return
    if shutil.which("mpirun") is None:
        raise SystemExit("mpirun not found: install Open MPI (openmpi-bin libopenmpi-dev) and mpi4py")
    import importlib
    from bench.run import measure as measure_one
    results = []
    print(f"{'workload':<12} {'procs':>5} {'throughput':>12} {'speedup':>8} {'efficiency':>10} "
          f"{'independent':>12} {'reference 1 proc':>17}")
    for name in args.names or DEFAULT_WORKLOADS:
        module = importlib.import_module(f"bench.workloads.{name}")
        config = module.CONFIGS[0]
        load_before = _load()
        runs = {procs: [] for procs in args.procs}         # per process count: one per repeat
        alone = {procs: [] for procs in args.procs if procs > 1}
        for _ in range(max(1, args.repeat)):
            for procs in args.procs:
                runs[procs].append(measure(procs, name, config, args.seconds))
                if procs > 1:
                    alone[procs].append(measure_independent(procs, name, config, args.seconds))
        ref = None if args.no_reference else measure_one("ref", name, config, args.seconds)
        print(f"{name}: {load_before} before, {_load()} after")

        def throughputs(results):
            return [r.get("throughput") for r in results]

        def best(results):
            ok = [r for r in results if "throughput" in r]
            return max(ok, key=lambda r: r["throughput"]) if ok else results[0]
        ones = throughputs(runs.get(1, []))
        base = best(runs[1]).get("throughput") if 1 in runs else None
        for procs in args.procs:
            r = best(runs[procs])
            if "throughput" not in r:
                print(f"{name:<12} {procs:>5} error: {r['error']}")
                continue
            speedup = r["throughput"] / base if base else None
            ref_text = (f"{ref['throughput']:.1f}" if ref and "throughput" in ref else "-")
            ceiling = best(alone[procs]).get("throughput") if procs > 1 else base
            print(f"{name:<12} {procs:>5} {r['throughput']:>12.1f} "
                  f"{(f'{speedup:.2f}x' if speedup else '-'):>8} "
                  f"{(f'{speedup / procs:.0%}' if speedup else '-'):>10} "
                  f"{(f'{ceiling / base:.2f}x' if ceiling and base else '-'):>12} "
                  f"{ref_text if procs == 1 else '':>17}   ({module.UNIT})", flush=True)
            # each repeat's ratio to the one-process run just before it: the spread
            pairs = [(t / one if t and one else None, (a.get("throughput") or 0) / one if one else None)
                     for t, one, a in zip(throughputs(runs[procs]), ones,
                                          alone.get(procs, [{}] * len(ones)))]
            if procs > 1 and pairs:
                print(f"{'':<12} {'':>5}   per repeat: speedup " +
                      " ".join(f"{p:.2f}x" if p else "-" for p, _ in pairs) +
                      ", independent " + " ".join(f"{c:.2f}x" if c else "-" for _, c in pairs))
            if args.breakdown:
                for rank, parts in enumerate(r["ms_per_step"]):
                    print(f"{'':<12} {'':>5}   rank {rank} ms/step: " + ", ".join(
                        f"{k} {v:.3f}" for k, v in parts.items()) + f"  ({r['transport']})")
            results.append({"workload": name, "config": config, "unit": module.UNIT, "procs": procs,
                            "throughput": r["throughput"], "speedup": speedup,
                            "runs": throughputs(runs[procs]),
                            "independent_processes": ceiling,
                            "independent_runs": throughputs(alone.get(procs, [])),
                            "transport": r["transport"], "ms_per_step": r["ms_per_step"],
                            "load": [load_before, _load()],
                            "reference_1proc": ref.get("throughput") if ref else None})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
