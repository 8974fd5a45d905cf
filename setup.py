"""Build every Cython extension module of the package.

Modules are found by globbing dynet/**/*.pyx, so a new kernel or node family is just a new file.

Environment:
  DYNET_PORTABLE=1   no -march=native (build wheels that run on other machines of the architecture)
  DYNET_CYTHON_WERROR=1   Cython's own warnings fail the build (CI turns it on)
"""
import glob
import os
import shutil
import sys
import time

import numpy
from Cython.Build import cythonize
from Cython.Compiler import Options as CythonOptions
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILE_ARGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function",
                "-Wno-maybe-uninitialized"]
# The package is compiled where it is installed (pip builds it from source), so the kernels may use
# every vector instruction of this machine. Set DYNET_PORTABLE=1 when building a wheel to ship.
if os.environ.get("DYNET_PORTABLE", "0") != "1":
    COMPILE_ARGS.append("-march=native")

if os.environ.get("DYNET_CYTHON_WERROR", "0") == "1":
    CythonOptions.warning_errors = True


# Modules that link a library beyond Python's: the random kernels call NumPy's C distributions
# (numpy/random/lib/libnpyrandom.a, shipped with NumPy for extensions to link).
NPYRANDOM = {"libraries": ["npyrandom"],
             "library_dirs": [os.path.join(os.path.dirname(numpy.__file__), "random", "lib")]}
LINK = {"dynet.kernels.rand": NPYRANDOM}


def extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("dynet", "**", "*.pyx"), recursive=True)):
        name = os.path.splitext(pyx)[0].replace(os.sep, ".")
        exts.append(Extension(name, [pyx], include_dirs=[numpy.get_include()],
                              extra_compile_args=COMPILE_ARGS,
                              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                              **LINK.get(name, {})))
    return exts


class BuildExt(build_ext):
    """Compiles the extensions in parallel, reuses up-to-date in-place builds, and says how long it took.

    `pip install -e .` builds in a fresh temporary directory every time; without the reuse, a second
    editable install (the README's test command after its first one) would recompile every module.
    """

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self):
        start = time.perf_counter()
        self.compiled = []                # appended to by the parallel workers
        super().run()
        print(f"dynet-py: {len(self.compiled)} of {len(self.extensions)} extension modules compiled "
              f"({self.parallel} in parallel) in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    def build_extension(self, ext):
        target = self.get_ext_fullpath(ext.name)
        in_place = self.get_ext_filename(ext.name)      # relative to the project root
        sources = list(ext.sources) + list(ext.depends or [])
        if not self.force and up_to_date(target, sources):
            return
        if getattr(self, "editable_mode", False) and not self.force and up_to_date(in_place, sources):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(in_place, target)
            return
        self.compiled.append(ext.name)
        super().build_extension(ext)


def up_to_date(built, sources):
    return os.path.exists(built) and all(os.path.getmtime(built) >= os.path.getmtime(src)
                                         for src in sources)


setup(
    ext_modules=cythonize(
        extensions(),
        language_level=3,
        nthreads=os.cpu_count() or 1,
        # Python-object indexing stays checked (a wrong index must raise, not crash); the hot loops index
        # raw pointers, which these directives do not touch.
        compiler_directives={"boundscheck": True, "wraparound": True, "cdivision": True,
                             "initializedcheck": False, "embedsignature": True,
                             # a def function's typed argument refuses None (a cdef method called
                             # on None would crash the interpreter); where None is meant, "or None"
                             "allow_none_for_extension_args": False,
                             # signatures as CPython's own (__text_signature__): inspect.signature works
                             "embedsignature.format": "clinic"},
    ),
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
