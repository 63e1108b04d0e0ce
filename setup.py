"""Build script: the metadata lives in pyproject.toml; this file only wires cffi's
builder into setuptools so ``pip install .`` compiles ``tapegrad._native``."""
from setuptools import find_packages, setup

setup(
    package_dir={"": "python"},
    packages=find_packages("python"),
    cffi_modules=["pybind/build_native.py:ffibuilder"],
)
