"""The cffi binding is generated from the public header, so the two cannot drift."""
import importlib.util
import os
import re

import pytest

import tapegrad  # noqa: F401 - the built extension
from tapegrad._ffi import lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "csrc", "include", "tapegrad.h")


def _generator():
    spec = importlib.util.spec_from_file_location(
        "cdef_from_header", os.path.join(ROOT, "pybind", "cdef_from_header.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_header_function_and_constant_is_bound():
    cdef = _generator().cdef_from_header(HEADER)
    functions = set(re.findall(r"\b(tg_[a-z0-9_]+)\s*\(", cdef))
    assert len(functions) > 60
    missing = sorted(f for f in functions if not hasattr(lib, f))
    assert not missing, f"declared in tapegrad.h but not bound: {missing}"
    for name, value in re.findall(r"#define (TG_[A-Z0-9_]+) (-?\d+)", cdef):
        assert getattr(lib, name) == int(value)


def test_the_generated_cdef_parses_and_unknown_preprocessor_lines_fail(tmp_path):
    cffi = pytest.importorskip("cffi")
    gen = _generator()
    cffi.FFI().cdef(gen.cdef_from_header(HEADER))
    bad = tmp_path / "bad.h"
    bad.write_text("#define TG_X 1\n#if FOO\nint tg_f(int);\n#endif\n")
    with pytest.raises(ValueError, match="preprocessor line"):
        gen.cdef_from_header(str(bad))
