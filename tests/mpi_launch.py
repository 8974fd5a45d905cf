"""How tests and bench/distributed.py start N processes on this machine: `mpirun` over loopback."""
import functools
import os
import shutil
import subprocess


@functools.lru_cache(maxsize=None)
def is_open_mpi():
    try:
        out = subprocess.run(["mpirun", "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Open MPI" in out.stdout + out.stderr


def mpirun_command(nprocs):
    """The mpirun command line for nprocs processes on this machine. Open MPI: more processes than
    cores allowed, no binding (the processes share a busy machine), shared memory only; other MPIs
    (MPICH's hydra) need nothing of that."""
    if shutil.which("mpirun") is None:
        raise RuntimeError("mpirun not found: install Open MPI (Debian: openmpi-bin libopenmpi-dev)")
    cmd = ["mpirun", "-np", str(nprocs)]
    if is_open_mpi():
        cmd += ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader"]
    return cmd


def mpirun_env(root):
    """The environment for mpirun: the package importable from `root`; Open MPI may run as root
    (CI containers)."""
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
