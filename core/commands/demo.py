"""`python -m core demo --out DIR`: every available operator on the bundled public-domain portrait.

The portrait is scikit-image's astronaut photo (NASA, public domain), shipped inside the scikit-image wheel, so
the demo needs no download. Each operator's declaration supplies its own showcase inputs (`Operator.demo`).
Writes one PNG per operator, a before/after contact sheet and summary.json with timings and facts.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .. import registry
from ..cli import seed_value
from ..device import DEVICE_CHOICES
from ..errors import UserError
from ..imaging.io import check_writable_folder, write_bytes_atomic, write_image
from ..jobs import Job
from . import command

LABEL_HEIGHT = 28


def bundled_portrait() -> np.ndarray:
    from skimage import data
    return data.astronaut().astype(np.float32) / 255.0


def _setup(ap):
    ap.add_argument("--out", default="ai-portrait-demo", help="folder for the results (created if missing)")
    ap.add_argument("--seed", type=seed_value, default=0)
    ap.add_argument("--device", choices=DEVICE_CHOICES, default=None)
    ap.add_argument("--only", help="comma-separated operator names")


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2
    bar = np.full((LABEL_HEIGHT, tile.shape[1], 3), 30, np.uint8)  # OpenCV draws text on 8-bit only
    cv2.putText(bar, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (240, 240, 240), 1, cv2.LINE_AA)
    return np.concatenate([bar.astype(np.float32) / 255.0, tile[:, :, :3]], axis=0)


def contact_sheet(rows) -> np.ndarray:
    """rows: list of (name, before, after) -> one image with a labelled before/after pair per row."""
    lines = []
    for name, before, after in rows:
        pair = [_label(before, f"{name}: before"), np.ones((before.shape[0] + LABEL_HEIGHT, 6, 3), np.float32),
                _label(after, f"{name}: after")]
        lines.append(np.concatenate(pair, axis=1))
        lines.append(np.ones((6, lines[-1].shape[1], 3), np.float32))
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=1.0) for line in lines]
    return np.clip(np.concatenate(padded, axis=0), 0.0, 1.0)


def prepare_folder(out: Path) -> None:
    """The results folder exists and takes files, or a one-line error: before any operator runs."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: give a folder for the results", "bad-file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {out}: {exc.strerror or exc}", "bad-file") from None
    check_writable_folder(out)


def _wanted(only):
    if not only:
        return None
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    known = {op.name for op in registry.operators() if op.demo is not None}
    unknown = sorted(wanted - known)
    if unknown:
        raise UserError(f"--only: no operator '{unknown[0]}' with a demo (choose from {', '.join(sorted(known))})",
                        "usage")
    return wanted


def _run(args) -> int:
    out = Path(args.out)
    wanted = _wanted(args.only)
    prepare_folder(out)
    portrait = bundled_portrait()
    write_image(out / "portrait.png", portrait, "u8")
    rows, summary = [], {}
    for op in registry.operators():
        if op.demo is None or (wanted and op.name not in wanted):
            continue
        t0 = time.perf_counter()
        try:
            inputs, params = op.demo(portrait, args.seed)
            result = registry.run(op.name, inputs, params, seed=args.seed, device=args.device, job=Job())
        except UserError as exc:  # e.g. a model that is not installed: say so and go on with the others
            print(f"demo: {op.name} skipped: {exc}", file=sys.stderr)
            summary[op.name] = {"skipped": str(exc)}
            continue
        seconds = time.perf_counter() - t0
        before = inputs[op.primary.name]
        if op.primary.kind == "frames":
            before = before[int(result.info.get("reference_index", 0))]
        write_image(out / f"{op.name}.png", result.image, "u8")
        rows.append((op.title, before, result.image))
        summary[op.name] = {"seconds": round(seconds, 3), "file": f"{op.name}.png",
                            "info": json.loads(json.dumps(result.info, default=str))}
        print(f"demo: {op.name} done in {seconds:.2f} s -> {out / (op.name + '.png')}", file=sys.stderr)
    if rows:
        write_image(out / "contact_sheet.png", contact_sheet(rows), "u8")
    write_bytes_atomic(out / "summary.json", json.dumps(summary, indent=1).encode("utf-8"))
    print(f"demo: {len(rows)} operator(s) written to {out.resolve()} (contact_sheet.png, summary.json)")
    return 0 if rows else 2


command("demo", "run every available operator on the bundled portrait and write a contact sheet", _setup, _run,
        sigterm_cancels=True)
