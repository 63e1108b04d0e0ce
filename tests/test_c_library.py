"""tapegrad's C library as a C programmer uses it: the examples in examples/c/ compiled
with ``python -m tapegrad config --cflags --libs`` against the library the package
installed, run, and checked against the same programs run through the Python API; the
same programs under valgrind memcheck and under -fsanitize=address,undefined; and the
library built on its own with ``make`` (soname, exported symbols, pkg-config, static)."""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "c")
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"]

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler on PATH"),
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="the shared library is built on Linux only"),
]


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{shlex.join(map(str, cmd))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _config(*options):
    return shlex.split(_run([sys.executable, "-m", "tapegrad", "config", *options]))


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """examples/c/*.c built against the installed library, as the README says."""
    out = tmp_path_factory.mktemp("cexamples")
    flags = _config("--cflags", "--libs")
    built = {}
    for name in ("xor", "xor_replay", "xor_threads", "xor_infer", "fit_line"):
        exe = str(out / name)
        _run([CC, *CFLAGS, os.path.join(EXAMPLES, name + ".c"), *flags, "-o", exe])
        built[name] = exe
    return built


# ---------------------------------------------------------------- the XOR net, eager

def python_xor(epochs, lr=0.4):
    """examples/c/xor.c through the Python API, op for op, printed the same way."""
    w1 = tg.tensor([[0.1, -0.1], [-0.1, 0.1]], requires_grad=True)
    b1 = tg.tensor([0.1, -0.1], requires_grad=True)
    w2 = tg.tensor([0.1, -0.1], requires_grad=True)
    b2 = tg.tensor(0.1, requires_grad=True)
    data = [([1.0, 1.0], 0.0), ([0.0, 1.0], 1.0), ([1.0, 0.0], 1.0), ([0.0, 0.0], 0.0)]
    xs = [tg.tensor(x) for x, _ in data]
    ys = [tg.tensor(y) for _, y in data]
    opt = tg.optim.SGD([w1, b1, w2, b2], lr=lr)

    def forward(x):
        h = F.linear(x, w1, b1).sigmoid()
        return (tg.matmul(h, w2) + b2).sigmoid()

    lines = []
    for e in range(epochs):
        total = 0.0
        for x, y in zip(xs, ys):
            loss = F.binary_cross_entropy(forward(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        if e % 100 == 0 or e == epochs - 1:
            lines.append(f"epoch {e:4d}  mean loss {total / 4:.9g}")
    with tg.no_grad():
        for (x, _), xt in zip(data, xs):
            lines.append(f"{x[0]:g} xor {x[1]:g} -> {forward(xt).item():.9g}")
    return lines


def test_xor_in_c_gives_the_python_apis_numbers(programs):
    out = _run([programs["xor"]]).splitlines()
    assert out[0].startswith(f"tapegrad {tg.__version__} (simd ")
    assert out[-1].startswith("speed: 4000 steps in ")
    assert out[1:-1] == python_xor(1000)  # digit for digit: the same core, the same ops
    # and PyTorch's numbers for this net (the seed's reference run)
    losses = [float(line.split()[-1]) for line in out if line.startswith("epoch")]
    assert round(losses[0], 4) == 0.7752 and round(losses[-1], 4) == 0.0205
    preds = [float(line.split()[-1]) for line in out if " xor " in line]
    assert np.allclose(preds, [0.031, 0.983, 0.982, 0.014], atol=6e-4)


def test_xor_in_c_matches_pytorch():
    torch = pytest.importorskip("torch")
    w1 = torch.tensor([[0.1, -0.1], [-0.1, 0.1]], requires_grad=True)
    b1 = torch.tensor([0.1, -0.1], requires_grad=True)
    w2 = torch.tensor([0.1, -0.1], requires_grad=True)
    b2 = torch.tensor(0.1, requires_grad=True)
    opt = torch.optim.SGD([w1, b1, w2, b2], lr=0.4)
    X = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    Y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    means = []
    for _ in range(200):
        total = 0.0
        for x, y in zip(X, Y):
            p = torch.sigmoid(torch.nn.functional.linear(x, w1, b1).sigmoid() @ w2 + b2)
            loss = torch.nn.functional.binary_cross_entropy(p, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        means.append(total / 4)
    ours = [float(line.split()[-1]) for line in python_xor(200) if line.startswith("epoch")]
    assert np.allclose(ours, [means[0], means[100], means[199]], rtol=1e-4)


def test_two_c_threads_give_the_serial_numbers(programs):
    out = _run([programs["xor_threads"], "1000"])
    assert "threaded == serial: yes" in out
    assert "model 0 (lr 0.4): final loss 0.0205" in out


# ---------------------------------------------------------------- inference from Python's weights

def _xor_model(steps=200):
    tg.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
    opt = tg.optim.SGD(model.parameters(), lr=0.5)
    x = tg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = tg.tensor([[0.0], [1.0], [1.0], [0.0]])
    for _ in range(steps):
        loss = F.binary_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, x


def test_c_inference_from_weights_saved_by_python(programs, tmp_path):
    model, x = _xor_model()
    path = str(tmp_path / "xor.npz")
    tg.save(model.state_dict(), path)
    with tg.no_grad():
        want = model(x).numpy().reshape(-1)
    expected = [f"{a:g} xor {b:g} -> {float(p):.9g}" for (a, b), p in zip(x.numpy().tolist(), want)]
    assert _run([programs["xor_infer"], path]).splitlines() == expected


@pytest.mark.parametrize("case, message", [
    ("compressed", "compressed members are not supported"),
    ("float16", "dtype is not <f4, <f8, <i8 or |b1"),
    ("fortran", "Fortran-order arrays are not supported"),
    ("missing", "2.bias: no such array"),
    ("truncated", "npz:"),
    ("not_zip", "0.weight: no such array"),
])
def test_npz_reader_refuses_what_it_cannot_read(programs, tmp_path, case, message):
    model, _ = _xor_model(steps=1)
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    path = str(tmp_path / "w.npz")
    if case == "compressed":
        np.savez_compressed(path, **arrays)
    elif case == "float16":
        np.savez(path, **{k: v.astype(np.float16) for k, v in arrays.items()})
    elif case == "fortran":
        np.savez(path, **{k: np.asfortranarray(v) if v.ndim == 2 else v for k, v in arrays.items()})
    elif case == "missing":
        del arrays["2.bias"]
        tg.save(arrays, path)
    elif case == "truncated":
        tg.save(arrays, path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 3])
    else:
        with open(path, "w") as f:
            f.write("not a zip file\n")
    proc = subprocess.run([programs["xor_infer"], path], capture_output=True, text=True)
    assert proc.returncode == 1
    assert message in proc.stderr and path in proc.stderr


# ---------------------------------------------------------------- memory checkers

VALGRIND = shutil.which("valgrind")


@pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed")
def test_c_examples_are_clean_under_valgrind(programs, tmp_path):
    model, _ = _xor_model(steps=5)
    weights = str(tmp_path / "xor.npz")
    tg.save(model.state_dict(), weights)
    for cmd in ([programs["xor"], "300"], [programs["xor_replay"], "300"],
                [programs["xor_threads"], "100"], [programs["xor_infer"], weights],
                [programs["fit_line"]]):
        proc = subprocess.run([VALGRIND, "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
                               "--errors-for-leak-kinds=definite", *cmd], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "ERROR SUMMARY: 0 errors" in proc.stderr, proc.stderr
        assert re.search(r"definitely lost: 0 bytes|no leaks are possible", proc.stderr), proc.stderr


@pytest.fixture(scope="module")
def sanitized_objects(tmp_path_factory):
    """The core compiled with -fsanitize=address,undefined (once for the module)."""
    out = tmp_path_factory.mktemp("asan")
    flags = ["-std=c11", "-O0", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all", "-D_POSIX_C_SOURCE=200809L", "-pthread",
             "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc")]
    probe = out / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    if subprocess.run([CC, *flags, str(probe), "-o", str(out / "probe")],
                      capture_output=True).returncode != 0:
        pytest.skip("this compiler cannot build with -fsanitize=address,undefined")
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.c"), recursive=True))
    procs, objects = [], []
    for i, src in enumerate(sources):
        obj = str(out / f"{i}_{os.path.basename(src)}.o")
        objects.append(obj)
        procs.append(subprocess.Popen([CC, *flags, "-c", src, "-o", obj], stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err.decode()
    return out, flags, objects


def test_c_examples_are_clean_under_address_and_ub_sanitizers(sanitized_objects, tmp_path):
    out, flags, objects = sanitized_objects
    model, _ = _xor_model(steps=5)
    weights = str(tmp_path / "xor.npz")
    tg.save(model.state_dict(), weights)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    for name, args in (("xor", ["300"]), ("xor_replay", ["300"]), ("xor_threads", ["100"]),
                       ("xor_infer", [weights]), ("fit_line", [])):
        exe = str(out / name)
        if not os.path.exists(exe):
            _run([CC, *flags, os.path.join(EXAMPLES, name + ".c"), *objects, "-lm", "-o", exe])
        proc = subprocess.run([exe, *args], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------- the library on its own

def _header_functions():
    sys.path.insert(0, os.path.join(ROOT, "pybind"))
    try:
        from cdef_from_header import cdef_from_header
    finally:
        sys.path.pop(0)
    return set(re.findall(r"\b(tg_[A-Za-z0-9_]+)\s*\(", cdef_from_header()))


def _exported(lib):
    out = _run(["nm", "-D", "--defined-only", lib])
    return {line.split()[-1] for line in out.splitlines() if line.split()[1:2] == ["T"]}


@pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("nm") is None,
                    reason="binutils not installed")
def test_installed_library_has_a_soname_and_exports_exactly_the_header():
    libdir = _config("--libdir")[0]
    lib = os.path.join(libdir, "libtapegrad.so")
    major, minor = tg.__version__.split(".")[:2]
    soname = f"libtapegrad.so.0.{minor}" if major == "0" else f"libtapegrad.so.{major}"
    assert f"Library soname: [{soname}]" in _run(["readelf", "-d", lib])
    assert os.path.isfile(os.path.join(libdir, soname))
    assert _exported(lib) == _header_functions()
    # the binding uses this very file, so C extensions share its core (tapegrad.capi)
    native = glob.glob(os.path.join(os.path.dirname(tg.__file__), "_native*.so"))
    assert native and f"[{soname}]" in _run(["readelf", "-d", native[0]])


def test_version_everywhere_agrees():
    from tapegrad._ffi import ffi, lib

    assert ffi.string(lib.tg_version()).decode() == tg.__version__
    major, minor, patch = map(int, tg.__version__.split("."))
    assert lib.tg_version_number() == lib.TG_VERSION_NUMBER == major * 10000 + minor * 100 + patch
    assert _config("--version") == [tg.__version__]
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        assert f'version = "{tg.__version__}"' in f.read()


def test_config_points_at_the_header_and_the_library():
    assert tg.get_include() == _config("--includedir")[0]
    assert os.path.isfile(os.path.join(tg.get_include(), "tapegrad.h"))
    assert os.path.isfile(os.path.join(tg.get_library_dir(), "libtapegrad.so"))
    assert _config("--cflags") == [f"-I{tg.get_include()}"]
    libs = _config("--libs")
    assert f"-L{tg.get_library_dir()}" in libs and "-ltapegrad" in libs
    with open(os.path.join(tg.get_include(), "tapegrad.h")) as f, \
            open(os.path.join(ROOT, "csrc", "include", "tapegrad.h")) as g:
        assert f.read() == g.read()  # the shipped header is the source's
    proc = subprocess.run([sys.executable, "-m", "tapegrad", "config", "--bogus"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown option '--bogus'" in proc.stderr


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="pkg-config not installed")
def test_shipped_pkg_config_file(programs, tmp_path):
    env = dict(os.environ, PKG_CONFIG_PATH=_config("--pkgconfigdir")[0])
    assert _run(["pkg-config", "--modversion", "tapegrad"], env=env).strip() == tg.__version__
    flags = shlex.split(_run(["pkg-config", "--cflags", "--libs", "tapegrad"], env=env))
    exe = str(tmp_path / "fit_line")
    _run([CC, *CFLAGS, os.path.join(EXAMPLES, "fit_line.c"), *flags, "-o", exe])
    assert "w = 2.000000" in _run([exe])


_CMAKE_PROJECT = """cmake_minimum_required(VERSION 3.10)
project(xor_c C)
find_package(tapegrad {version} REQUIRED)
add_executable(xor "{source}")
target_link_libraries(xor PRIVATE tapegrad::tapegrad)
"""


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_find_package_with_the_shipped_config(tmp_path):
    major, minor = tg.__version__.split(".")[:2]
    src, build = tmp_path / "src", tmp_path / "build"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(_CMAKE_PROJECT.format(
        version=f"{major}.{minor}", source=os.path.join(EXAMPLES, "xor.c").replace("\\", "/")))
    _run(["cmake", "-S", str(src), "-B", str(build), f"-DCMAKE_C_COMPILER={CC}",
          f"-Dtapegrad_DIR={_config('--cmakedir')[0]}"])
    _run(["cmake", "--build", str(build)])
    assert _run([str(build / "xor"), "200"]).splitlines()[1:-1] == python_xor(200)
    # a request for another minor version of 0.x is refused (it would be another soname)
    (src / "CMakeLists.txt").write_text(_CMAKE_PROJECT.format(
        version=f"{major}.{int(minor) + 1}", source="x.c"))
    proc = subprocess.run(["cmake", "-S", str(src), "-B", str(tmp_path / "b2"),
                           f"-Dtapegrad_DIR={_config('--cmakedir')[0]}"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "tapegrad" in proc.stderr


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("readelf") is None,
                    reason="make or binutils not installed")
def test_make_builds_and_installs_the_library_alone(tmp_path):
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    _run(["make", "-C", ROOT, "-j4", f"BUILD={build}", "CFLAGS=-O1", f"PREFIX={prefix}", "install"])
    lib = prefix / "lib"
    major, minor = tg.__version__.split(".")[:2]
    soname = f"libtapegrad.so.0.{minor}" if major == "0" else f"libtapegrad.so.{major}"
    assert os.path.islink(lib / "libtapegrad.so") and os.path.islink(lib / soname)
    assert (lib / f"libtapegrad.so.{tg.__version__}").is_file() and (lib / "libtapegrad.a").is_file()
    assert (prefix / "include" / "tapegrad.h").is_file()
    assert _exported(str(lib / "libtapegrad.so")) == _header_functions()
    pc = (lib / "pkgconfig" / "tapegrad.pc").read_text()
    assert f"prefix={prefix}" in pc and f"Version: {tg.__version__}" in pc
    assert (lib / "cmake" / "tapegrad" / "tapegradConfig.cmake").is_file()
    assert (lib / "cmake" / "tapegrad" / "tapegradConfigVersion.cmake").is_file()
    # a program linked against the shared library (found through its run-time path)
    exe = str(tmp_path / "xor")
    _run([CC, *CFLAGS, os.path.join(EXAMPLES, "xor.c"), f"-I{prefix}/include", f"-L{lib}",
          f"-Wl,-rpath,{lib}", "-ltapegrad", "-lm", "-pthread", "-o", exe])
    assert _run([exe, "1000"]).splitlines()[1:-1] == python_xor(1000)
    # and one linked statically: no libtapegrad.so needed at run time
    exe = str(tmp_path / "fit_line_static")
    _run([CC, *CFLAGS, os.path.join(EXAMPLES, "fit_line.c"), f"-I{prefix}/include",
          str(lib / "libtapegrad.a"), "-lm", "-pthread", "-o", exe])
    assert "libtapegrad" not in _run(["readelf", "-d", exe])
    assert "w = 2.000000" in _run([exe])
