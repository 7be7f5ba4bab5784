"""Run a local computation over overlapping tiles with feathered seams.

Each tile is handed to `fn` with a halo of context around it (clamped to the image, so borders behave as in an
untiled run); the halo is cropped off the answer and neighbouring tiles are cross-faded over `overlap` pixels
with raised-cosine ramps. The per-axis weights are normalised to sum to one, so no full-size weight buffer is
needed: only the output is full size, which is what lets a 100-megapixel image run in a fixed memory budget.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..jobs import Job

TileFunction = Callable[[np.ndarray], np.ndarray]


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets covering [0, length) with tiles of `tile` px overlapping by at least `overlap` px."""
    if tile >= length:
        return [0]
    step = max(tile - overlap, 1)
    n = math.ceil((length - tile) / step) + 1
    starts = [min(i * step, length - tile) for i in range(n)]
    return sorted(set(starts))


def _axis_weights(length: int, tile: int, overlap: int, starts: List[int]) -> List[np.ndarray]:
    """Raised-cosine ramps over each tile's interior overlaps, normalised to a partition of unity."""
    raw = []
    total = np.zeros(length, dtype=np.float64)
    for s in starts:
        n = min(tile, length - s)
        w = np.ones(n, dtype=np.float64)
        ramp = min(overlap, n // 2)
        if ramp > 0:
            r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
            if s > 0:
                w[:ramp] = np.minimum(w[:ramp], r)
            if s + n < length:
                w[n - ramp:] = np.minimum(w[n - ramp:], r[::-1])
        raw.append(w)
        total[s:s + n] += w
    return [(w / total[s:s + len(w)]).astype(np.float32) for s, w in zip(starts, raw)]


def run_tiled(image: np.ndarray, fn: TileFunction, tile: int = 512, overlap: int = 32, halo: int = 0,
              job: Optional[Job] = None, out_channels: Optional[int] = None) -> np.ndarray:
    """Apply `fn` tile by tile. `fn` maps an h×w×C array to an h×w×C' array (same h, w).

    halo: context pixels each side that `fn` sees but whose output is discarded (the operator's support radius).
    overlap: pixels over which neighbouring tiles' outputs are cross-faded.
    """
    h, w = image.shape[:2]
    tile = max(int(tile), 2 * overlap + 1)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    wy, wx = _axis_weights(h, tile, overlap, ys), _axis_weights(w, tile, overlap, xs)
    out: Optional[np.ndarray] = None
    count, done = len(ys) * len(xs), 0
    for iy, y0 in enumerate(ys):
        th = min(tile, h - y0)
        for ix, x0 in enumerate(xs):
            tw = min(tile, w - x0)
            if job is not None:
                job.progress(done / count, "tiles")
            hy0, hx0 = max(y0 - halo, 0), max(x0 - halo, 0)
            hy1, hx1 = min(y0 + th + halo, h), min(x0 + tw + halo, w)
            res = np.asarray(fn(image[hy0:hy1, hx0:hx1]))
            if res.ndim == 2:
                res = res[:, :, None]
            if res.shape[:2] != (hy1 - hy0, hx1 - hx0):
                raise RuntimeError(f"tile function returned {res.shape[:2]} for a {(hy1 - hy0, hx1 - hx0)} tile")
            core = res[y0 - hy0:y0 - hy0 + th, x0 - hx0:x0 - hx0 + tw]
            if out is None:
                out = np.zeros((h, w, out_channels or res.shape[2]), dtype=np.float32)
            weight = wy[iy][:, None, None] * wx[ix][None, :, None]
            out[y0:y0 + th, x0:x0 + tw] += core * weight
            done += 1
    if job is not None:
        job.progress(1.0, "tiles")
    assert out is not None
    return out


def tile_for_budget(bytes_per_pixel: float, budget_bytes: float, halo: int = 0, minimum: int = 64,
                    maximum: int = 4096) -> int:
    """Largest square tile whose working set (including halo) fits in `budget_bytes`."""
    side = int(math.sqrt(max(budget_bytes, 1) / max(bytes_per_pixel, 1e-9))) - 2 * halo
    return int(min(max(side, minimum), maximum))


def tile_grid(shape: Tuple[int, int], tile: int, overlap: int) -> Tuple[List[int], List[int]]:
    """The tile start offsets along y and x (exposed for operators that schedule tiles themselves)."""
    return tile_starts(shape[0], tile, overlap), tile_starts(shape[1], tile, overlap)
