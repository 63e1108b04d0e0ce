"""Where an installed tapegrad keeps its C header and shared library, for C programs and
C extensions that build against it (docs/embedding.md):

    cc prog.c $(python -m tapegrad config --cflags --libs)

Only ``os`` is imported here (the C library itself is not loaded to answer).
"""
import os

__all__ = ["get_include", "get_library_dir", "get_pkgconfig_dir", "get_cmake_dir", "cflags",
           "libs", "main", "register_threadpoolctl"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_include():
    """The directory holding ``tapegrad.h`` (for ``-I``)."""
    path = os.path.join(_HERE, "include")
    if not os.path.isfile(os.path.join(path, "tapegrad.h")):
        raise FileNotFoundError(
            f"tapegrad: no tapegrad.h under {path}: this tapegrad was not built with its C "
            "library (build it with `pip install .`, or use `make` for the C library alone)")
    return path


def get_library_dir():
    """The directory holding ``libtapegrad.so`` (for ``-L`` and the run-time path)."""
    path = os.path.join(_HERE, "lib")
    if not os.path.isfile(os.path.join(path, "libtapegrad.so")):
        raise FileNotFoundError(
            f"tapegrad: no libtapegrad.so under {path}: the shared library is built on Linux "
            "only (elsewhere, build the C library with `make`)")
    return path


def get_pkgconfig_dir():
    """The directory holding ``tapegrad.pc`` (for ``PKG_CONFIG_PATH``)."""
    return os.path.join(get_library_dir(), "pkgconfig")


def get_cmake_dir():
    """The directory holding ``tapegradConfig.cmake`` (for ``-Dtapegrad_DIR=`` or
    ``CMAKE_PREFIX_PATH``)."""
    return os.path.join(get_library_dir(), "cmake", "tapegrad")


def cflags():
    """Compiler flags: ``-I<include dir>``."""
    return f"-I{get_include()}"


def libs():
    """Linker flags: the library, its run-time path (so the program finds it without
    LD_LIBRARY_PATH) and the system libraries it needs."""
    d = get_library_dir()
    return f"-L{d} -Wl,-rpath,{d} -ltapegrad -lm -pthread"


USAGE = """usage: python -m tapegrad config [--cflags] [--libs] [--includedir] [--libdir]
                                 [--pkgconfigdir] [--cmakedir] [--version]

Print what a C build needs to compile and link against this tapegrad, e.g.
    cc prog.c $(python -m tapegrad config --cflags --libs)
"""


def main(argv):
    import sys

    options = {"--cflags": cflags, "--libs": libs, "--includedir": get_include,
               "--libdir": get_library_dir, "--pkgconfigdir": get_pkgconfig_dir, "--cmakedir": get_cmake_dir,
               "--version": _version}
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    unknown = [a for a in argv if a not in options]
    if unknown:
        print(f"tapegrad config: unknown option {unknown[0]!r}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    try:
        print(" ".join(options[a]() for a in argv))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _version():
    # read from the shipped header: no need to load the compiled core
    with open(os.path.join(get_include(), "tapegrad.h")) as f:
        fields = dict(line.split()[1:3] for line in f if line.startswith("#define TG_VERSION_")
                      and len(line.split()) >= 3)
    return ".".join(fields[f"TG_VERSION_{k}"] for k in ("MAJOR", "MINOR", "PATCH"))


def register_threadpoolctl():
    """Teach ``threadpoolctl`` (if installed) about tapegrad's kernel threads, so that
    ``threadpool_info()`` lists libtapegrad and ``threadpool_limits(n)`` caps it with the
    BLAS and OpenMP pools. tapegrad's thread count is a per-thread setting, so a limit
    applies to the thread that sets it (as ``tapegrad.set_num_threads`` does). Returns the
    controller class; calling it again does nothing more."""
    global _CONTROLLER
    if _CONTROLLER is not None:
        return _CONTROLLER
    import ctypes

    import threadpoolctl

    class TapegradController(threadpoolctl.LibController):
        user_api = "tapegrad"
        internal_api = "tapegrad"
        filename_prefixes = ("libtapegrad",)
        check_symbols = ("tg_get_num_threads", "tg_set_num_threads", "tg_version")

        def get_num_threads(self):
            return self.dynlib.tg_get_num_threads()

        def set_num_threads(self, num_threads):
            return self.dynlib.tg_set_num_threads(int(num_threads))

        def get_version(self):
            f = self.dynlib.tg_version
            f.restype = ctypes.c_char_p
            return f().decode()

    threadpoolctl.register(TapegradController)
    _CONTROLLER = TapegradController
    return _CONTROLLER


_CONTROLLER = None
