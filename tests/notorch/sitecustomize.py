"""Hides PyTorch from this interpreter: on PYTHONPATH (tests/conftest.py puts it there when
TAPEGRAD_NO_TORCH=1, so child processes inherit it) ``import torch`` raises
ModuleNotFoundError and ``importlib.util.find_spec("torch")`` is None, as on a machine
without PyTorch. The path finder is wrapped rather than ``sys.modules["torch"] = None``
because libraries such as scipy read ``sys.modules["torch"]`` and expect a module or no
entry. The sanitizer job (.ci/asan) uses it for its PyTorch-free subset."""
import sys
from importlib.machinery import PathFinder


def _hidden(name):
    return name == "torch" or name.startswith("torch.")


class _PathFinderWithoutTorch:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if _hidden(name):
            return None
        return PathFinder.find_spec(name, path, target)

    @staticmethod
    def find_distributions(*args, **kwargs):   # importlib.metadata: entry points, plugins
        return PathFinder.find_distributions(*args, **kwargs)

    @staticmethod
    def invalidate_caches():
        PathFinder.invalidate_caches()


# idempotent: a second run (a child that also loads tests/conftest.py) finds no PathFinder
sys.meta_path[:] = [_PathFinderWithoutTorch() if f is PathFinder else f for f in sys.meta_path]
for _name in [m for m in sys.modules if _hidden(m)]:
    del sys.modules[_name]
