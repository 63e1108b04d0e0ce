"""Shared test setup: each test starts in grad mode on (a test that leaks no_grad must not
change the next one's results), and hypothesis runs a modest, deadline-free profile."""
import pytest

import tapegrad as tg

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
