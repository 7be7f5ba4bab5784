"""Operator packages. Importing this package imports every sub-package, and each registers its operator.

One package per operator, with stage modules inside (like a camera pipeline); its `__init__` holds the
declaration (inputs, parameters, demo) and the run function.
"""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
