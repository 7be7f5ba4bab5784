"""How big an image and how large its values may be: the memory budget and the range float32 arithmetic survives.

Memory: the budget is AI_PORTRAIT_MEMORY_BUDGET_MB (the settings' `memory_budget_mb`, which the hosts pass to the
worker) or, when unset, a share of the memory available now. Each operator declares its peak bytes per pixel
(measured, see the registry); an image is refused, before the operator runs, when that times its pixels does not
fit, and a file is refused from its header, before it is decoded, when decoding it alone would not fit.

Values: colour arrives sRGB-encoded with white at 1 (HDR a little above); past COLOUR_LIMIT the squares and sums
of an operator's float32 arithmetic overflow to inf and then NaN (3e38 squared is inf), so such input is refused
as bad input, and NaN or inf in a result is a bug caught before anything is written.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..errors import UserError

BUDGET_ENV = "AI_PORTRAIT_MEMORY_BUDGET_MB"
SETTING = "memory_budget_mb"
# Auto budget: this share of the memory available now; the rest stays for the host application, the model
# weights (counted once, not per pixel) and the allocator's slack.
AUTO_SHARE = 0.7
# An operator that has not measured its peak: about the worst measured one (refocus ~130 B/px at 80 MP).
DEFAULT_BYTES_PER_PIXEL = 200.0
# Peak bytes per pixel of each operator (per pixel of all frames for a burst), measured as the slope of the peak
# resident memory (ru_maxrss, one fresh process per run, inputs included, CPU, default settings of its demo)
# between two sizes of the bundled portrait; see the comment on each. An operator's own `bytes_per_pixel`
# overrides its entry. Figures are rounded up by about a fifth: the allocator's peaks vary from run to run.
MEASURED_BYTES_PER_PIXEL = {
    "film": 200.0,
    "skin": 200.0,
    "refocus": 250.0,
    "relight": 200.0,
    "expression": 200.0,
    "denoise": 70.0,
    "background": 300.0,
}
# Largest |value| per input kind. Colour: sRGB-encoded, white = 1; 1e6 leaves 1e26 of headroom for the fourth
# powers a colour pipeline takes (float32 ends at 3.4e38). Depth in metres: Blender writes 1e10 for the sky.
VALUE_LIMITS = {"image": 1e6, "frames": 1e6, "reference": 1e6, "background": 1e6, "normals": 1e6,
                "depth": 1e12, "mask": None}  # a mask is clipped to [0, 1]: any finite value is fine


def available_bytes() -> int:
    """Memory the system can give now without swapping (Linux MemAvailable; elsewhere free physical pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # Windows, or macOS without the name
        pass
    try:
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                        ("avail", ctypes.c_ulonglong), ("a", ctypes.c_ulonglong), ("b", ctypes.c_ulonglong),
                        ("c", ctypes.c_ulonglong), ("d", ctypes.c_ulonglong), ("e", ctypes.c_ulonglong)]
        status = _Status()
        status.length = ctypes.sizeof(_Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.avail)
    except Exception:  # noqa: BLE001 - no way to ask: assume a modest machine
        pass
    return 4 << 30


def budget_bytes() -> int:
    """The memory budget in bytes: the setting when given, else AUTO_SHARE of what is available now."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if raw and raw.lower() not in ("auto", "none", "null"):
        try:
            mb = float(raw)
        except ValueError:
            mb = float("nan")
        if not mb > 0 or mb == float("inf"):
            raise UserError(f"{BUDGET_ENV} (the settings' {SETTING}) must be a positive number of megabytes, "
                            f"not '{raw}'", "usage")
        return int(mb * 1e6)
    return int(available_bytes() * AUTO_SHARE)


def _budget_text(budget: int) -> str:
    told = os.environ.get(BUDGET_ENV, "").strip()
    how = "set" if told and told.lower() not in ("auto", "none", "null") else "auto, from the free memory"
    return f"the memory budget of {budget / 1e6:.0f} MB ({how})"


def max_pixels(bytes_per_pixel: float, budget: Optional[int] = None) -> int:
    """The most pixels that fit the budget at `bytes_per_pixel`."""
    budget = budget_bytes() if budget is None else budget
    return int(budget // max(float(bytes_per_pixel), 1.0))


def megapixels(pixels: float) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 1e5 else f"{pixels / 1e6:.3f} MP"


def check_fits(what: str, width: int, height: int, bytes_per_pixel: float, task: str,
               count: int = 1, budget: Optional[int] = None) -> None:
    """Raise UserError (code 'too-large') unless `count` pictures of width x height at `bytes_per_pixel` fit.

    what: the thing the user knows ('photo.png', "input 'image'"); task: what needs the memory ('refocus',
    'decoding it')."""
    budget = budget_bytes() if budget is None else budget
    pixels = int(width) * int(height) * int(count)
    need = pixels * float(bytes_per_pixel)
    if need <= budget:
        return
    frames = f" x {count} frames" if count > 1 else ""
    most = max_pixels(bytes_per_pixel, budget) // max(count, 1)
    raise UserError(f"{what} is {width}x{height}{frames} ({megapixels(pixels)}): {task} needs about "
                    f"{bytes_per_pixel:.0f} bytes per pixel, {need / 1e6:.0f} MB, over {_budget_text(budget)}; "
                    f"the most that fits is {megapixels(most)}{' per frame' if count > 1 else ''}: use a smaller "
                    f"image or selection, or raise '{SETTING}' in the AI Portrait settings ({BUDGET_ENV} for the "
                    f"command line)", "too-large")


def value_range(arr: np.ndarray):
    """(min, max) of an array without a temporary the size of the image; NaN when it holds a NaN."""
    if arr.size == 0:
        return 0.0, 0.0
    return float(np.min(arr)), float(np.max(arr))


def check_values(name: str, arr: np.ndarray, kind: str) -> None:
    """Refuse (UserError 'bad-input') NaN, inf, and values beyond what float32 arithmetic survives for `kind`."""
    lo, hi = value_range(arr)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise UserError(f"input '{name}' contains NaN or infinite values ({bad} samples): fix or re-export the "
                        f"image", "bad-input")
    limit = VALUE_LIMITS.get(kind, VALUE_LIMITS["image"])
    if limit is None:
        return
    worst = hi if abs(hi) >= abs(lo) else lo
    if abs(worst) > limit:
        what = "distances in metres" if kind == "depth" else "colour values (white = 1)"
        raise UserError(f"input '{name}' holds the value {worst:.3g}, beyond the ±{limit:g} that {what} may take "
                        f"(float32 arithmetic overflows past it): rescale or clip the image", "bad-input")


def count_nonfinite(arr: np.ndarray) -> int:
    """Samples that are NaN or inf (0 for a clean array, found without a full-size temporary)."""
    lo, hi = value_range(arr)
    if np.isfinite(lo) and np.isfinite(hi):
        return 0
    return int(arr.size - np.count_nonzero(np.isfinite(arr)))
