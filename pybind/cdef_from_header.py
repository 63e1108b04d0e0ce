"""The cffi declarations, generated from csrc/include/tapegrad.h (the one source).

A hand-kept copy can drift from the header without any compiler noticing: a cdef that
says ``long f(long)`` over a header with ``int f(int)`` compiles without a warning and
truncates arguments. So the build reads the header itself: comments, include guards,
``#include`` lines and the ``extern "C"`` wrapper are dropped; integer ``#define TG_...``
constants are kept (cffi reads them as constants); any other preprocessor line is an
error, so a header change that this reader does not understand fails the build loudly.
"""
import os
import re

HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "csrc", "include", "tapegrad.h")

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DEFINE_INT = re.compile(r"#\s*define\s+(TG_[A-Z0-9_]+)\s+(-?\d+)\s*$")


def cdef_from_header(path=HEADER):
    with open(path) as f:
        text = _COMMENT.sub("", f.read())
    out = []
    skip_cplusplus = False
    for raw in text.splitlines():
        line = raw.strip()
        if skip_cplusplus:
            if line.startswith("#endif"):
                skip_cplusplus = False
            continue
        if not line.startswith("#"):
            if line:
                out.append(raw.rstrip())
            continue
        m = _DEFINE_INT.match(line)
        if m:
            out.append(f"#define {m.group(1)} {m.group(2)}")
        elif line.startswith("#ifdef __cplusplus"):
            skip_cplusplus = True  # extern "C" { ... } and its closing brace
        elif re.match(r"#\s*(include|ifndef TAPEGRAD_H|define TAPEGRAD_H\s*$|endif)", line):
            continue
        else:
            raise ValueError(f"{path}: preprocessor line the cdef generator does not know: {line!r}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(cdef_from_header(), end="")
