"""tapegrad as a good citizen inside other Python processes and tools: importing it has
no side effects; two Python threads training two models give the serial numbers; a C
extension can work on tensors made in Python (tapegrad.capi); threadpoolctl sees it."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad import capi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

# ---------------------------------------------------------------- import

_PROBE = r"""
import json, os, signal, sys, threading, time
def os_threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None
import numpy, cffi  # tapegrad's dependencies, imported by any user of it anyway
env, cwd, path = dict(os.environ), os.getcwd(), list(sys.path)
handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
before_threads, before_os, before_mods = threading.active_count(), os_threads(), set(sys.modules)
t0 = time.perf_counter()
import tapegrad
own = time.perf_counter() - t0
print(json.dumps({
    "own_ms": own * 1e3,
    "threads": [before_threads, threading.active_count()],
    "os_threads": [before_os, os_threads()],
    "env_same": dict(os.environ) == env, "cwd_same": os.getcwd() == cwd,
    "path_same": sys.path == path,
    "signals_same": all(signal.getsignal(s) == h for s, h in handlers.items()),
    "new_modules": sorted(set(sys.modules) - before_mods),
    "grad": tapegrad.is_grad_enabled(),
}))
"""


def _probe():
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc


def test_import_has_no_side_effects():
    info, proc = _probe()
    assert proc.stderr == ""  # no output (stdout holds only the probe's report)
    assert proc.stdout.count("\n") == 1
    assert info["threads"][0] == info["threads"][1], "import started a Python thread"
    if info["os_threads"][0] is not None:
        assert info["os_threads"][0] == info["os_threads"][1], "import started a native thread"
    assert info["env_same"] and info["cwd_same"] and info["path_same"] and info["signals_same"]
    heavy = {"torch", "matplotlib", "tqdm", "sklearn", "threadpoolctl", "scipy"}
    assert not heavy & {m.split(".")[0] for m in info["new_modules"]}, info["new_modules"]
    # `python -c 'import tapegrad'` prints nothing
    proc = subprocess.run([sys.executable, "-c", "import tapegrad"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_import_time_is_measured(record_property):
    # Measured and reported (pytest -s, or the junit property), never asserted: timings
    # depend on the machine and its load. The aim is < 50 ms.
    times = sorted(_probe()[0]["own_ms"] for _ in range(3))
    record_property("import_ms", round(times[1], 1))
    print(f"import tapegrad (numpy and cffi already imported): {times[1]:.1f} ms")


# ---------------------------------------------------------------- two Python threads

def _make_model(seed):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 1))


def _train(state, seed, steps=25):
    """Trains a model from `state`; everything it touches is its own (no global RNG)."""
    model = _make_model(0)
    model.load_state_dict(state)
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal((128, 32)).astype(np.float32))
    y = tg.tensor(rng.standard_normal((128, 1)).astype(np.float32))
    opt = tg.optim.Adam(model.parameters(), lr=1e-2) if seed % 2 else \
        tg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in model.parameters()]


def test_two_python_threads_give_the_serial_numbers():
    states = [{k: v.detach().clone() for k, v in _make_model(s).state_dict().items()} for s in (1, 2)]
    serial = [_train(states[i], seed=i + 1) for i in range(2)]
    for _ in range(3):  # a few times, to give a race a chance to show
        results = [None, None]

        def work(i):
            results[i] = _train(states[i], seed=i + 1)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for (want_losses, want_params), (losses, params) in zip(serial, results):
            assert losses == want_losses  # exactly: not approximately
            for a, b in zip(want_params, params):
                assert np.array_equal(a, b)
    assert serial[0][0] != serial[1][0]  # two different models


def test_thread_settings_are_per_thread():
    # grad mode and the kernel thread count are settings of the calling thread
    seen = {}

    def work():
        seen["grad"] = tg.is_grad_enabled()
        seen["threads"] = tg.get_num_threads()

    previous = tg.get_num_threads()
    tg.set_num_threads(1)
    try:
        with tg.no_grad():
            t = threading.Thread(target=work)
            t.start()
            t.join()
    finally:
        tg.set_num_threads(previous)
    assert seen["grad"] is True and seen["threads"] >= 1


# ---------------------------------------------------------------- tensors handed to C code

_EXT = r"""
#include "tapegrad.h"
/* What a C extension might do with tensors made in Python. */
double ext_sum(tg_tensor *t) {
    double v = -1;
    tg_tensor *s = tg_sum(t, 1, 0, 0);
    if (s) tg_tensor_item(s, &v);
    tg_tensor_release(s);
    return v;
}
tg_tensor *ext_scale(tg_tensor *t, double s) { return tg_mul_scalar(t, s); }
tg_tensor *ext_matmul(tg_tensor *a, tg_tensor *b) { return tg_matmul(a, b); }
const char *ext_version(void) { return tg_version(); }
"""


@pytest.fixture(scope="module")
def extension(tmp_path_factory):
    if CC is None or not sys.platform.startswith("linux"):
        pytest.skip("needs a C compiler and the shared library (Linux)")
    import ctypes
    import shlex

    out = tmp_path_factory.mktemp("ext")
    (out / "ext.c").write_text(_EXT)
    flags = shlex.split(tg.config.cflags() + " " + tg.config.libs())
    lib = str(out / "libext.so")
    subprocess.run([CC, "-std=c11", "-shared", "-fPIC", "-Wall", "-Werror", str(out / "ext.c"),
                    *flags, "-o", lib], check=True, capture_output=True)
    ext = ctypes.CDLL(lib)
    ext.ext_sum.restype, ext.ext_sum.argtypes = ctypes.c_double, [ctypes.c_void_p]
    ext.ext_scale.restype, ext.ext_scale.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_double]
    ext.ext_matmul.restype, ext.ext_matmul.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]
    ext.ext_version.restype = ctypes.c_char_p
    return ext


def test_c_extension_works_on_python_tensors(extension):
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert extension.ext_sum(capi.handle(x)) == 10.0
    assert extension.ext_version().decode() == tg.__version__
    # a tensor the extension makes is a Python tensor, in the same graph
    y = capi.from_handle(extension.ext_scale(capi.handle(x), 3.0))
    assert y.grad_fn is not None and y.tolist() == [[3.0, 6.0], [9.0, 12.0]]
    (y * y).sum().backward()
    assert x.grad.tolist() == [[18.0, 36.0], [54.0, 72.0]]
    # a failure in the extension is this thread's tapegrad error (one core, one state)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 2\) and \(3,\)"):
        capi.from_handle(extension.ext_matmul(capi.handle(x), capi.handle(tg.ones(3))))
    # grad mode set from Python holds in the extension: nothing recorded
    with tg.no_grad():
        z = capi.from_handle(extension.ext_scale(capi.handle(x), 2.0))
    assert z.grad_fn is None and not z.requires_grad


def test_capsule_holds_a_reference():
    import ctypes
    import gc

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    x = tg.tensor([1.0, 2.0, 3.0])
    cap = capi.capsule(x)
    assert get(cap, b"tapegrad.tensor") == capi.handle(x)
    with pytest.raises(ValueError):
        get(cap, b"something.else")
    h = capi.handle(x)
    del x
    gc.collect()
    y = capi.from_capsule(cap)  # the capsule kept the tensor alive
    assert capi.handle(y) == h and y.tolist() == [1.0, 2.0, 3.0]
    del cap
    gc.collect()
    assert y.tolist() == [1.0, 2.0, 3.0]  # and y holds its own reference
    with pytest.raises(TypeError, match="expected a tapegrad.Tensor"):
        capi.handle(np.zeros(2))


def test_from_handle_without_stealing():
    x = tg.tensor([5.0])
    y = capi.from_handle(capi.handle(x), steal=False)
    del x
    assert y.tolist() == [5.0]


def test_threadpoolctl_sees_and_limits_tapegrad():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not sys.platform.startswith("linux"):
        pytest.skip("the shared library is built on Linux only")
    tg.config.register_threadpoolctl()
    assert tg.config.register_threadpoolctl() is tg.config.register_threadpoolctl()
    infos = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "tapegrad"]
    assert len(infos) == 1 and infos[0]["version"] == tg.__version__
    before = tg.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="tapegrad"):
        assert tg.get_num_threads() == 1
    assert tg.get_num_threads() == before


def _big_job(seed, steps=4, size=384):
    tg.set_num_threads(1)  # one core per model: the figure is about the GIL, not the pool
    rng = np.random.default_rng(seed)
    ws = [tg.tensor(rng.standard_normal((size, size)).astype(np.float32) * 0.05,
                    requires_grad=True) for _ in range(3)]
    x = tg.tensor(rng.standard_normal((256, size)).astype(np.float32))
    opt = tg.optim.SGD(ws, lr=0.01)
    for _ in range(steps):
        h = x
        for w in ws:
            h = F.linear(h, w).tanh()
        loss = (h * h).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_threads_scaling_figure(record_property):
    """Two threads training two models (matmul-sized ops) at once vs one after the other:
    the results are the same; the time is measured and reported only (performance is
    never asserted; on an idle machine with two free cores it is well under 2x)."""
    t0 = time.perf_counter()
    serial = [_big_job(1), _big_job(2)]
    one = (time.perf_counter() - t0) / 2
    results = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, _big_job(i + 1)))
               for i in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = time.perf_counter() - t0
    assert results == serial
    record_property("two_threads_over_one", round(both / one, 2))
    print(f"one model {one:.3f} s, two models in two threads {both:.3f} s ({both / one:.2f}x)")
