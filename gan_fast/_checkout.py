"""``gan_fast.kernels`` in a source checkout used in place (``PYTHONPATH=<checkout>``, nothing installed).

An install maps the checkout's top-level ``kernels/`` to ``gan_fast.kernels`` (setup.py's ``package_dir``).
Used in place, without that mapping, ``import gan_fast.kernels`` would fail and every Triton path with it;
this finder serves the same folder under the same name. It is installed only when ``gan_fast/kernels`` does
not exist and ``kernels/`` sits beside ``gan_fast/``, i.e. in a checkout, never in an installed wheel.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_NAME = "gan_fast.kernels"


class _CheckoutKernels(importlib.abc.MetaPathFinder):
    def __init__(self, directory: str):
        self.directory = directory

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _NAME:
            return None
        return importlib.util.spec_from_file_location(
            _NAME, os.path.join(self.directory, "__init__.py"), submodule_search_locations=[self.directory])


def install() -> None:
    package = os.path.dirname(os.path.abspath(__file__))
    kernels = os.path.join(os.path.dirname(package), "kernels")
    if os.path.isdir(os.path.join(package, "kernels")) or not os.path.isfile(os.path.join(kernels, "__init__.py")):
        return
    if not any(isinstance(f, _CheckoutKernels) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutKernels(kernels))
