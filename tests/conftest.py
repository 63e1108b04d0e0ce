"""Shared test setup: each test starts in grad mode on (a test that leaks no_grad must not
change the next one's results), and hypothesis runs a modest, deadline-free profile."""
import os

import pytest

# TAPEGRAD_NO_TORCH=1 runs the suite as on a machine without PyTorch (tests/notorch/
# sitecustomize.py hides it, here and, through PYTHONPATH, in child processes): every
# parity test must skip cleanly. The sanitizer job (.ci/asan) uses it for its PyTorch-free
# subset.
if os.environ.get("TAPEGRAD_NO_TORCH", "") not in ("", "0"):
    _NOTORCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notorch")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [_NOTORCH] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    with open(os.path.join(_NOTORCH, "sitecustomize.py")) as _f:
        exec(compile(_f.read(), _f.name, "exec"), {"__name__": "tapegrad_notorch"})

import tapegrad as tg  # noqa: E402

try:
    from hypothesis import settings

    settings.register_profile("tapegrad", max_examples=50, deadline=None)
    settings.load_profile("tapegrad")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(autouse=True)
def _grad_mode_on():
    previous = tg.set_grad_enabled(True).prev
    yield
    assert tg.is_grad_enabled(), "the test left grad mode off"
    tg.set_grad_enabled(previous)
