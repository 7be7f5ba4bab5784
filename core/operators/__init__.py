"""Operator packages. Importing this package imports every sub-package, and each registers its operator.

One package per operator, with stage modules inside (like a camera pipeline); its `__init__` holds the
declaration (inputs, parameters, demo) and the run function.

A package that fails to import is a bug, but it must not take the other operators down with it (the worker
would not start at all): the failure is kept in BROKEN, shown by `python -m core list`, and a test fails on it.
A declaration the registry refuses (a reserved parameter name such as 'seed', an unknown type) fails the same
way, when the package registers, so the command line's parser is never built from it.
"""
import importlib
import pkgutil
import traceback

BROKEN = {}  # package name -> the traceback of its import failure


def load_packages(path, prefix: str) -> None:
    """Import every non-private package under `path` (its modules named `prefix` + name), isolating failures."""
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{prefix}{info.name}")
        except Exception:  # noqa: BLE001 - isolate one broken operator from the rest
            BROKEN[info.name] = traceback.format_exc()


load_packages(__path__, f"{__name__}.")
