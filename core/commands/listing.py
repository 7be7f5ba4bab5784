"""`python -m core list [--json]`: the registered operators with their inputs and parameters."""
import json
import sys

from .. import registry
from . import command


def _setup(ap):
    ap.add_argument("--json", action="store_true", help="machine-readable (what hosts build dialogs from)")


def _run(args) -> int:
    if args.json:
        json.dump(registry.as_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    ops = registry.operators()
    from ..operators import BROKEN
    for name, trace in BROKEN.items():
        reason = trace.strip().splitlines()[-1]
        print(f"warning: operator package '{name}' failed to load (a bug): {reason}\n{trace}", file=sys.stderr)
    if not ops:
        print("no operators registered")
    for op in ops:
        print(f"{op.name:<12} {op.title}: {op.help}")
        for inp in op.inputs:
            req = "" if inp.required else " (optional)"
            print(f"    input {inp.name:<14} {inp.kind}{req}: {inp.help}")
        for p in op.params:
            unit = f" [{p.unit}]" if p.unit else ""
            rng = ""
            if p.type in ("float", "int") and (p.min is not None or p.max is not None):
                rng = f" {registry._fmt(p.min)}..{registry._fmt(p.max)}"
            if p.choices:
                rng = " " + "|".join(p.choices)
            default = "auto" if p.default is None else p.default
            kind = p.type + (f"[{p.size}]" if p.type == "vector" else "") + (", repeatable" if p.repeat else "")
            print(f"    --{p.name.replace('_', '-'):<20} {kind}{unit}{rng} (default {default}): {p.help}")
    return 0


command("list", "list the operators, their inputs and parameters", _setup, _run)
