"""Non-operator sub-commands of `python -m core` (list, models, faces, mask, depth, worker, demo, ...).

Each module here calls `command(...)` at import time; the CLI imports them all, so a new command is a new file.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Dict

_COMMANDS: Dict[str, "Command"] = {}


@dataclass
class Command:
    name: str
    help: str
    setup: Callable  # (argparse.ArgumentParser) -> None
    run: Callable    # (argparse.Namespace) -> int
    # SIGTERM cleans up like Ctrl-C (exit 143, no half-written temporary); off for commands that handle signals
    # themselves or must not be stopped by an exception (the workers and servers).
    sigterm_cancels: bool = False


def command(name: str, help: str, setup: Callable, run: Callable, sigterm_cancels: bool = False) -> Command:
    cmd = Command(name, help, setup, run, sigterm_cancels)
    _COMMANDS[name] = cmd
    return cmd


def all_commands() -> Dict[str, Command]:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_COMMANDS.items()))
