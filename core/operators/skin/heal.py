"""Healing of the low and mid bands inside the blemishes: the smooth part of the skin filled in from around them.

Inside a footprint the smooth part of the skin, B = low + mid = G_σh^w(x), is replaced by a guess from the
skin around it: pull-push (`core.imaging.fill.fill_holes`) from the pixels that are skin and outside every hard
footprint (weights w·(1 − hard)), then RELAX_ITERATIONS Jacobi steps of Laplace's equation inside the holes
(each pixel the mean of its four neighbours, the known pixels held), which turns pull-push's multi-scale average
into a membrane: exact for a constant, close to exact for a shading ramp under the spot, free of the block
structure of the coarse levels. The correction added to the image is ΔB = (B_filled − B)·α, α the soft
footprint, so nothing moves outside the footprints. Each spot is filled in a window around it (the fill draws
on the skin up to WINDOW_RADII footprint radii away).
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from ...imaging.fill import fill_holes

RELAX_ITERATIONS = 60   # membrane steps after pull-push (its guess is already close: they converge fast)
WINDOW_RADII = 3.0      # the fill of a spot sees the skin up to this many footprint radii around it


def _relax(values: np.ndarray, hole: np.ndarray, iterations: int) -> np.ndarray:
    """Jacobi steps of Δv = 0 on the hole pixels (H×W bool), known pixels fixed, mirrored borders."""
    import cv2

    if iterations <= 0 or not hole.any():
        return values
    ys, xs = np.nonzero(hole)
    pad = 2
    y0, y1 = max(0, ys.min() - pad), min(hole.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(hole.shape[1], xs.max() + pad + 1)
    v = values[y0:y1, x0:x1].copy()
    m = hole[y0:y1, x0:x1][:, :, None]
    kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)
    for _ in range(iterations):
        avg = cv2.filter2D(v, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        if avg.ndim == 2:
            avg = avg[:, :, None]
        v = np.where(m, avg, v)
    out = values.copy()
    out[y0:y1, x0:x1] = v
    return out


def heal(smooth: np.ndarray, weight: np.ndarray, hard: np.ndarray, soft: np.ndarray, spots,
         sigma_high: float, iterations: int = RELAX_ITERATIONS) -> np.ndarray:
    """ΔB (H×W×C float32) that heals the smooth bands B (H×W×C) inside the footprints.

    weight: H×W skin weights; hard: H×W footprints (nonzero = a spot, excluded from the fill's data); soft:
    H×W α in [0, 1] (the soft footprint); spots: the blemishes (centre y, x and footprint radius, px), each
    filled in a window of WINDOW_RADII × its radius around it, so the cost follows the spots, not the picture."""
    known = np.asarray(weight, np.float32) * (np.asarray(hard) <= 0)
    filled = smooth.copy()
    with _one_torch_thread():
        for s in spots:
            _fill_one(s, smooth, known, soft, filled, sigma_high, iterations)
    return ((filled - smooth) * soft[:, :, None]).astype(np.float32)


@contextmanager
def _one_torch_thread():
    """Pull-push on a spot's window is tiny: a second torch thread only spins against the first (7× slower
    measured on a busy 2-core machine). One thread, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _fill_one(s, smooth, known, soft, filled, sigma_high, iterations) -> None:
    """Fill spot s's holes in a window around it, into `filled` (its own pixels only)."""
    h, w = known.shape
    reach = int(math.ceil(WINDOW_RADII * s.radius)) + 4
    y0, y1 = max(0, int(s.y) - reach), min(h, int(s.y) + reach + 1)
    x0, x1 = max(0, int(s.x) - reach), min(w, int(s.x) + reach + 1)
    kw = known[y0:y1, x0:x1]
    if float(kw.max()) <= 0.0:
        return
    f = fill_holes(smooth[y0:y1, x0:x1], kw)
    hole = (kw < 0.25) & (soft[y0:y1, x0:x1] > 0)  # pull-push keeps its own value from 1/4 known up
    f = _relax(f, hole, iterations)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    own = hole & (np.hypot(yy - s.y, xx - s.x) <= s.radius + 3.0 * sigma_high + 1.0)
    filled[y0:y1, x0:x1][own] = f[own]
