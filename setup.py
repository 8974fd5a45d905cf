"""Build every Cython extension module of the package.

Modules are found by globbing dynet/**/*.pyx, so a new kernel or node family is just a new file.
"""
import glob
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function",
                "-Wno-maybe-uninitialized"]
# The package is compiled where it is installed (pip builds it from source), so the kernels may use
# every vector instruction of this machine. Set DYNET_PORTABLE=1 when building a wheel to ship.
if os.environ.get("DYNET_PORTABLE", "0") != "1":
    COMPILE_ARGS.append("-march=native")


def extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("dynet", "**", "*.pyx"), recursive=True)):
        name = os.path.splitext(pyx)[0].replace(os.sep, ".")
        exts.append(Extension(name, [pyx], include_dirs=[numpy.get_include()],
                              extra_compile_args=COMPILE_ARGS,
                              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]))
    return exts


setup(
    ext_modules=cythonize(
        extensions(),
        language_level=3,
        nthreads=os.cpu_count() or 1,
        # Python-object indexing stays checked (a wrong index must raise, not crash); the hot loops index
        # raw pointers, which these directives do not touch.
        compiler_directives={"boundscheck": True, "wraparound": True, "cdivision": True,
                             "initializedcheck": False, "embedsignature": True},
    ),
    zip_safe=False,
)
