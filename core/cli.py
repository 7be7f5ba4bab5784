"""Command line: `python -m core OPERATOR INPUT [INPUT...] -o OUTPUT [--param value ...]`, plus `list` and the
other sub-commands in `core.commands`. Every operator option is generated from the registry.

Exit status: 0 success, 2 a problem the user can fix (one clear line, no traceback), 130 cancelled (Ctrl-C),
143 terminated (SIGTERM; cleaned up like a cancel), 1 an internal error (a bug: the traceback is printed so it can
be reported).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import registry
from .device import DEVICE_CHOICES, configure_threads
from .errors import Cancelled, UserError
from .jobs import Job

PROG = "python -m core"
# Seeds every random source takes: numpy's generators refuse negative seeds, torch's stop at 64 bits.
SEED_MAX = 2 ** 63 - 1
EXIT_TERMINATED = 128 + 15


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that the same clean-up runs (a half-written temporary removed)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UserError(f"{message} (see '{self.prog} --help')", "usage")


def seed_value(text: str) -> int:
    """argparse type of --seed: a whole number every random source accepts."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {SEED_MAX}, not '{text[:40]}'")
    return value


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread, so writes clean
    up as on Ctrl-C. A second SIGTERM during that clean-up is ignored; SIGKILL still ends the process."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def on_term(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe_param(p: registry.Param) -> str:
    bits = [p.help]
    if p.unit:
        bits.append(f"unit: {p.unit}")
    if p.type in ("float", "int") and (p.min is not None or p.max is not None):
        bits.append(f"range {registry._fmt(p.min)}..{registry._fmt(p.max)}")
    if p.choices:
        bits.append("one of " + "|".join(p.choices))
    if p.repeat:
        bits.append("repeat the option for several")
    bits.append("default: auto" if p.default is None else f"default: {_default_text(p)}")
    return _literal("; ".join(bits))


def _literal(text: str) -> str:
    """argparse formats help strings with %: a '50 %' in an operator's text must not break --help."""
    return text.replace("%", "%%")


def _default_text(p: registry.Param) -> str:
    def item(v):
        return ",".join(f"{c:g}" for c in v) if isinstance(v, (list, tuple)) else str(v)
    if p.repeat:
        return " ".join(f"{option_name(p.name)} {item(v)}" for v in p.default) or "none"
    return item(p.default)


def add_operator_parser(sub, op: registry.Operator) -> None:
    ap = sub.add_parser(op.name, help=_literal(op.help), description=f"{op.title}: {op.help}")
    primary = op.primary
    if primary.kind == "frames":
        ap.add_argument("inputs", nargs="+", metavar="FRAME", help=_literal(primary.help))
    else:
        ap.add_argument("inputs", nargs=1, metavar="INPUT", help=_literal(primary.help))
    ap.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                    help="result file (.png, .tif, .jpg, .npy); written atomically, bit depth kept")
    for inp in op.inputs:
        if inp is primary:
            continue
        ap.add_argument(option_name(inp.name), dest=f"input__{inp.name}", metavar="PATH",
                        help=inp.help + ("" if inp.required else " (optional)"))
    for p in op.params:
        dest = f"param__{p.name}"
        if p.type == "bool":
            ap.add_argument(option_name(p.name), dest=dest, action=argparse.BooleanOptionalAction, default=None,
                            help=describe_param(p))
        else:
            if p.type == "point":
                metavar = "X,Y"
            elif p.type == "vector":
                metavar = ",".join(["N"] * p.size)
            else:
                metavar = p.unit.upper().replace("-", "_") or "VALUE"
            ap.add_argument(option_name(p.name), dest=dest, default=None, metavar=metavar, help=describe_param(p),
                            action="append" if p.repeat else "store")
    ap.add_argument("--mask", metavar="PATH",
                    help="soft selection (grey image, white = apply); pixels where it is 0 stay bit-identical")
    ap.add_argument("--seed", type=seed_value, default=0,
                    help=f"random seed, 0..{SEED_MAX} (same seed, same bytes); default 0")
    ap.add_argument("--overwrite", action="store_true",
                    help="allow the output to replace one of the input files (refused otherwise)")
    ap.add_argument("--device", choices=DEVICE_CHOICES, default=None,
                    help="compute device; default: $AI_PORTRAIT_DEVICE or auto (CUDA > MPS > CPU)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    ap.set_defaults(_operator=op.name)


def build_parser():
    from .commands import all_commands

    ap = _Parser(prog=PROG, description="AI Portrait: portrait retouching operators on image files.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for op in registry.operators():
        add_operator_parser(sub, op)
    for cmd in all_commands().values():
        cp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.setup(cp)
        cp.set_defaults(_command=cmd)
    return ap


class StderrProgress:
    """Progress on stderr: a rewritten line on a terminal, a line per 10 % otherwise."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last_step = -1
        self.last_time = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if self.quiet:
            return
        pct = int(fraction * 100)
        now = time.monotonic()
        if self.tty:
            if now - self.last_time > 0.1 or pct == 100:
                sys.stderr.write(f"\r[{pct:3d}%] {message[:60]:<60}")
                if pct == 100:
                    sys.stderr.write("\n")
                sys.stderr.flush()
                self.last_time = now
        elif pct // 10 != self.last_step:
            self.last_step = pct // 10
            sys.stderr.write(f"[{pct:3d}%] {message}\n")
            sys.stderr.flush()


def run_operator(args) -> int:
    from .imaging.io import write_image

    op = registry.get(args._operator)
    aux_paths = {inp.name: getattr(args, f"input__{inp.name}") for inp in op.inputs if inp is not op.primary}
    sources = list(args.inputs) + [p for p in aux_paths.values() if p] + ([args.mask] if args.mask else [])
    check_output(args.output, sources, args.overwrite)  # before any file is decoded or any work done
    primary = op.primary
    frames = len(args.inputs)  # refused from each file's header, before decoding, when the operator won't fit
    files = [read_quietly(p, check=lambda w, h: registry.check_memory(op.name, h, w, frames)) for p in args.inputs]
    inputs: Dict[str, Any] = {}
    if primary.kind == "frames":
        inputs[primary.name] = [f.pixels for f in files]
    else:
        inputs[primary.name] = files[0].pixels
    params = {p.name: getattr(args, f"param__{p.name}") for p in op.params
              if getattr(args, f"param__{p.name}") is not None}
    # How each file was stored travels with it: a depth file's type says what it holds (float = metres,
    # 8/16-bit = disparity), and the operator reads that from the context, as it does for a host's layer.
    stored_as = {primary.name: files[0].depth}
    for inp in op.inputs:
        if inp is primary:
            continue
        path = aux_paths[inp.name]
        if path:
            aux = read_quietly(path)
            inputs[inp.name] = aux.pixels
            stored_as[inp.name] = aux.depth
    mask = read_quietly(args.mask).pixels if args.mask else None
    job = Job(StderrProgress(args.quiet))
    out = registry.run(op.name, inputs, params, mask=mask, seed=args.seed, device=args.device, job=job,
                       stored_as=stored_as)
    written = write_image(args.output, out.image, files[0].depth)
    notes = {k: v for k, v in out.info.items() if k not in ("operator", "params", "seed")}
    if not args.quiet:
        extra = ", ".join(f"{k}={_short(v)}" for k, v in notes.items())
        sys.stderr.write(f"{op.name}: wrote {args.output} ({written})" + (f"; {extra}" if extra else "") + "\n")
    return 0


def check_output(output: str, sources: List[str], overwrite: bool = False) -> None:
    """The output can be written (type, folder, name, permission) and is none of the inputs, unless the user
    said --overwrite: a result replacing its own source is rarely what was meant."""
    from .imaging.io import check_output as check_writable, same_file

    check_writable(output)
    if not overwrite:
        for src in sources:
            if same_file(output, src):
                raise UserError(f"the output {output} is the input {src}: give another output name, or add "
                                f"--overwrite to replace the input", "bad-file")


def read_quietly(path: str, **kwargs):
    """read_image, with what the C decoders print on stderr kept out of the terminal: added to the error's one
    line when the file cannot be read, one warning line when it could."""
    from .imaging.io import decoder_messages, read_image

    failed = None
    with decoder_messages() as said:
        try:
            image = read_image(path, **kwargs)
        except UserError as exc:
            failed = exc
        except OSError as exc:  # a name too long, a folder we may not enter: the system's reason, in one line
            failed = UserError(f"cannot read {path}: {exc.strerror or exc}", "bad-file")
    if failed is not None:
        detail = "; ".join(said)
        raise UserError(f"{failed} ({detail})" if detail else str(failed), failed.code) from None
    if said:
        sys.stderr.write(f"warning: {Path(path).name}: " + "; ".join(said) + "\n")
    return image


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 6:
        return f"[{len(v)} values]"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def main(argv: Optional[List[str]] = None) -> int:
    try:
        configure_threads()  # wait policy and thread count, before build_parser imports torch
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "_operator", None):
            with sigterm_as_interrupt():
                return run_operator(args)
        if getattr(args, "_command", None):
            if not args._command.sigterm_cancels:  # a server or worker has its own signal handling
                return int(args._command.run(args) or 0)
            with sigterm_as_interrupt():
                return int(args._command.run(args) or 0)
        parser.print_help()
        return 2
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except Terminated:
        sys.stderr.write("terminated\n")
        return EXIT_TERMINATED
    except (Cancelled, KeyboardInterrupt):
        sys.stderr.write("cancelled\n")
        return 130
    except BrokenPipeError:
        return 1
    except Exception:  # a bug: say so, with the traceback to report
        traceback.print_exc()
        sys.stderr.write("internal error in AI Portrait (a bug): please report the traceback above\n")
        return 1
