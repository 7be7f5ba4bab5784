"""Refocus's layer plan: the signed CoCs the shared renderer (core.optics.layered) slices the picture at.

The renderer's own plan (optics.layered.layer_centres) grows each cell by 25 % from the 1 px in-focus width, so
every occupied cell becomes a layer, and each layer costs a blur over the bounding box of its pixels. Refocus
changes two things:

- A cell is at least MIN_STEP of the frame's long side wide (0.1 %: 4 px at 4000 px, 1.2 px at 1155 px). Below
  that width the renderer's tents, which split a pixel between the two layers around its CoC, mix two blurs that
  look like the one between them; and a plan in fractions of the frame slices a picture the same way at any
  resolution. A rounded body whose outline is 5 px blurrier than its middle at 12 MP no longer makes five
  layers, each a ring as large as the body, but two.
- With a matte (the depth proxy's person coverage), only pure pixels, within MIXED of 0 or 1, place layers. A
  mixed pixel is part person, part background, and its CoC, linear in the matte as disparity is, lies between
  theirs: the tents then split it between the person's and the background's layers as its matte says (alpha
  matting), instead of one in-between layer per cell, each as large as the person's outline. Against exact
  thin-lens ground truth of a soft-edged subject the edge band is as good (tests/test_refocus.py: 40.6 dB
  against 41.4 for an edge 2 px soft, 41.1 against 41.1 at 4 px) with 2 layers instead of 14; on the astronaut
  at 12 MP (85 mm f/2) 6 layers instead of 23.

Each layer sits at the mean CoC of its cell's pixels (exact for a scene of discrete planes), the in-focus cell
at 0, as in the renderer's plan.
"""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from ...optics.layered import IN_FOCUS_PX, LAYER_RATIO

MIN_STEP = 0.001   # narrowest cell, as a fraction of the frame's long side
MIXED = 0.02       # matte values within this of 0 or 1 count as pure background or person
PLAN_SAMPLES = 2_000_000   # the plan reads a regular grid of about this many pixels at most (12 MP: every 2nd)


def cell_edges(max_abs_coc: float, long_side: int) -> List[float]:
    """Upper edges of |CoC| cells: IN_FOCUS_PX, then each the larger of 1.25 × and + MIN_STEP × long side."""
    step = MIN_STEP * long_side
    edges = [IN_FOCUS_PX]
    while edges[-1] < max_abs_coc:
        edges.append(max(edges[-1] * LAYER_RATIO, edges[-1] + step))
    return edges


def plan(coc, matte: Optional[np.ndarray], long_side: int) -> List[float]:
    """Signed layer CoCs, back to front, for the renderer. coc: H×W torch tensor (px, + = in front);
    matte: H×W in [0, 1] or None."""
    import torch

    # A regular grid of pixels: layer CoCs are cell means, which a grid estimates to a fraction of a pixel.
    step = max(1, int(math.sqrt(coc.numel() / PLAN_SAMPLES)))
    flat = coc[::step, ::step].reshape(-1)
    lo, hi = float(flat.min()), float(flat.max())
    if matte is not None:
        m = torch.from_numpy(np.asarray(matte[::step, ::step], np.float32).copy()).to(coc.device).reshape(-1)
        pure = (m <= MIXED) | (m >= 1.0 - MIXED)
        if bool(pure.any()):
            flat = flat[pure]
    cmax = float(flat.abs().max()) if flat.numel() else 0.0
    edges = cell_edges(cmax, long_side)
    bounds = torch.tensor([-e for e in reversed(edges)] + edges, dtype=flat.dtype, device=flat.device)
    idx = torch.bucketize(flat, bounds)
    n = len(bounds) + 1
    counts = torch.bincount(idx, minlength=n).cpu().numpy()
    sums = torch.bincount(idx, weights=flat.double(), minlength=n).cpu().numpy()
    focus_cell = len(edges)
    centres = sorted(0.0 if i == focus_cell else float(sums[i] / counts[i]) for i in range(n) if counts[i])
    # Every pixel between two layers: should no pure pixel reach the extremes (a background all faintly
    # "person"), the extremes themselves get a layer, or those pixels would take the outermost layer's blur.
    if lo < centres[0] - IN_FOCUS_PX:
        centres.insert(0, lo)
    if hi > centres[-1] + IN_FOCUS_PX:
        centres.append(hi)
    return centres
