"""Operator packages. Importing this package imports every sub-package, and each registers its operator.

One package per operator, with stage modules inside (like a camera pipeline); its `__init__` holds the
declaration (inputs, parameters, demo) and the run function.

A package that fails to import is a bug, but it must not take the other operators down with it (the worker
would not start at all): the failure is kept in BROKEN, shown by `python -m core list`, and a test fails on it.
"""
import importlib
import pkgutil
import traceback

BROKEN = {}  # package name -> the traceback of its import failure

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        try:
            importlib.import_module(f"{__name__}.{_info.name}")
        except Exception:  # noqa: BLE001 - isolate one broken operator from the rest
            BROKEN[_info.name] = traceback.format_exc()
