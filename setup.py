"""Build script: the metadata lives in pyproject.toml; this file only wires the builds
into setuptools so that ``pip install .`` produces

* ``tapegrad/lib/libtapegrad.so.<soname version>`` — the C core as a shared library with
  a soname, exporting exactly the functions declared in ``tapegrad.h`` (plus a copy named
  ``libtapegrad.so`` for ``-ltapegrad``, ``tapegrad/lib/pkgconfig/tapegrad.pc`` and the
  CMake package config ``tapegrad/lib/cmake/tapegrad/``);
* ``tapegrad/include/tapegrad.h`` — the public header;
* ``tapegrad._native`` — the cffi binding (cffi's builder, ``pybind/build_native.py``),
  linked against that library (rpath ``$ORIGIN/lib``), so that a Python process holds one
  copy of the core and C extensions linked with ``-ltapegrad`` share it (and its tensors).

Outside Linux the binding compiles the core into itself as before, and no shared library
is shipped. The C library alone builds without Python: ``make`` (see the Makefile).
"""
import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext as _build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join("csrc", "include", "tapegrad.h")
SHARED_CORE = sys.platform.startswith("linux")
# -ffp-contract=off: no a*b + c is fused unless the code says fma, with any compiler on any
# architecture (GCC's -std=c11 already implies it; clang's default fuses within an
# expression, which on a CPU with FMA would give other bits than the x86 build)
CORE_FLAGS = ["-std=c11", "-O3", "-Wall", "-Wextra", "-D_POSIX_C_SOURCE=200809L", "-pthread",
              "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-g0"]
# TAPEGRAD_SANITIZE=address,undefined,float-cast-overflow builds the core instrumented
# (`python setup.py build_ext --inplace` in a copy of the tree, then run Python with
# LD_PRELOAD="libasan.so libstdc++.so": .ci/asan does both, see docs/testing.md). The C
# tests (tests/test_c_library.py, tests/c/) run their own sanitizer builds.
SANITIZE = os.environ.get("TAPEGRAD_SANITIZE", "")
# -fno-wrapv: Python's CFLAGS (which setuptools passes first) carry -fwrapv, under which
# signed overflow is defined and UBSan's signed-integer-overflow check is compiled out.
SANITIZE_FLAGS = ([f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
                   "-g", "-fno-wrapv"] if SANITIZE else [])


def _version():
    with open(os.path.join(ROOT, HEADER)) as f:
        text = f.read()
    return [int(re.search(rf"#define TG_VERSION_{k} (\d+)", text).group(1))
            for k in ("MAJOR", "MINOR", "PATCH")]


def _soname():
    major, minor, _ = _version()
    # while the major version is 0 every minor release may break the ABI (README)
    return f"libtapegrad.so.0.{minor}" if major == 0 else f"libtapegrad.so.{major}"


def _exported_functions():
    sys.path.insert(0, os.path.join(ROOT, "pybind"))
    from cdef_from_header import cdef_from_header

    return sorted(set(re.findall(r"\b(tg_[A-Za-z0-9_]+)\s*\(", cdef_from_header())))


class build_ext(_build_ext):
    """Builds libtapegrad first, then the binding against it."""

    def run(self):
        if SHARED_CORE:
            if self.inplace or getattr(self, "editable_mode", False):
                pkg = self.get_finalized_command("build_py").get_package_dir("tapegrad")
            else:
                pkg = os.path.join(self.build_lib, "tapegrad")
            libdir = os.path.abspath(os.path.join(pkg, "lib"))
            self._build_core(libdir, os.path.abspath(os.path.join(pkg, "include")))
            for ext in self.extensions:
                if ext.name == "tapegrad._native":
                    # the core comes from the library: drop its sources from the binding
                    core = os.path.join(ROOT, "csrc") + os.sep
                    ext.sources = [s for s in ext.sources
                                   if not os.path.abspath(s).startswith(core)]
                    ext.library_dirs.append(libdir)
                    ext.libraries.append("tapegrad")
                    ext.extra_link_args += ["-Wl,-rpath,$ORIGIN/lib", "-Wl,--disable-new-dtags"]
        super().run()

    def _build_core(self, libdir, incdir):
        from distutils.ccompiler import new_compiler
        from distutils.sysconfig import customize_compiler

        cc = new_compiler(verbose=self.verbose, force=self.force)
        customize_compiler(cc)
        sources = []
        for dirpath, _, files in os.walk("csrc"):
            sources += [os.path.join(dirpath, f) for f in files if f.endswith(".c")]
        sources.sort()
        tmp = os.path.join(self.build_temp, "libtapegrad")

        def compile_one(src):
            return cc.compile([src], output_dir=tmp, include_dirs=["csrc/include", "csrc"],
                              extra_postargs=CORE_FLAGS + SANITIZE_FLAGS)[0]

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            objects = list(pool.map(compile_one, sources))
        os.makedirs(libdir, exist_ok=True)
        vscript = os.path.join(tmp, "tapegrad.map")
        with open(vscript, "w") as f:
            f.write("{ global:\n" + "".join(f"  {n};\n" for n in _exported_functions())
                    + "local: *; };\n")
        soname = _soname()
        cc.link_shared_object(objects, os.path.join(libdir, soname),
                              extra_postargs=[f"-Wl,-soname,{soname}",
                                              f"-Wl,--version-script,{vscript}", "-lm", "-pthread"]
                              + SANITIZE_FLAGS)
        # a copy (wheels cannot hold symlinks) so that -ltapegrad finds it; what a program
        # records is the soname, so at run time both resolve to the file above
        shutil.copyfile(os.path.join(libdir, soname), os.path.join(libdir, "libtapegrad.so"))
        os.makedirs(incdir, exist_ok=True)
        shutil.copyfile(HEADER, os.path.join(incdir, "tapegrad.h"))
        os.makedirs(os.path.join(libdir, "pkgconfig"), exist_ok=True)
        with open(os.path.join("pkgconfig", "tapegrad.pc.in")) as f:
            pc = f.read()
        pc = (pc.replace("@PREFIX@", "${pcfiledir}/../..")
                .replace("@VERSION@", ".".join(map(str, _version())))
                .replace("@RPATH@", "-Wl,-rpath,${libdir} "))
        with open(os.path.join(libdir, "pkgconfig", "tapegrad.pc"), "w") as f:
            f.write(pc)
        major, minor, _ = _version()
        fill = {"@VERSION@": ".".join(map(str, _version())), "@MAJOR@": str(major),
                "@MINOR@": str(minor), "@SONAME@": soname, "@SHARED_FILE@": soname}
        os.makedirs(os.path.join(libdir, "cmake", "tapegrad"), exist_ok=True)
        for name in ("tapegradConfig", "tapegradConfigVersion"):
            with open(os.path.join("cmake", name + ".cmake.in")) as f:
                text = f.read()
            for k, v in fill.items():
                text = text.replace(k, v)
            with open(os.path.join(libdir, "cmake", "tapegrad", name + ".cmake"), "w") as f:
                f.write(text)


setup(
    package_dir={"": "python"},
    packages=find_packages("python"),
    cffi_modules=["pybind/build_native.py:ffibuilder"],
    cmdclass={"build_ext": build_ext},
)
