"""Install the reference DyNet (dynet38) into .oracle/ for the oracle tests: python -m tests.oracle.install"""
import subprocess
import sys

from tests.oracle.refdynet import oracle_dir

if __name__ == "__main__":
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--target", oracle_dir(), "dynet38==2.2"]
    sys.exit(subprocess.call(cmd))
