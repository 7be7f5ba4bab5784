"""Foreground colour at full resolution, so the old background does not fringe the hair.

A pixel of the photo is I = αF + (1−α)B (linear light): F the subject's colour, B the old plate's. Pasting I
itself over a new plate B' leaves (1−α)·α of the old plate in every strand (a fringe of its colour); the
composite wants αF + (1−α)B'. F and B come from the working-resolution estimate (matte.estimate_colours),
smooth and interpolated to full size (F₀, B₀), and are then corrected per pixel so that they explain the
full-resolution pixel exactly: the residual e = I − (αF₀ + (1−α)B₀) is split by the smallest change to (F, B)
that removes it (least squares, per channel),

    F = F₀ + α e / (α² + (1−α)²),     B = B₀ + (1−α) e / (α² + (1−α)²),

so αF + (1−α)B = I exactly; the denominator is at least ½, so nothing blows up. Where α = 1, F = I exactly (the
subject's own pixels stay as they are); where α = 0, B = I. Detail finer than the working resolution thus goes to
the layer that covers more of the pixel.
"""
from __future__ import annotations

import numpy as np


def full_colours(i: np.ndarray, a: np.ndarray, f0: np.ndarray, b0: np.ndarray):
    """(F, B) for pixels of linear colour i (N×3), alpha a (N) and smooth estimates f0, b0 (N×3): the minimum-norm
    correction of the module notes, so that a·F + (1 − a)·B = i."""
    a = a.reshape(-1, 1).astype(np.float32)
    beta = 1.0 - a
    e = i - (a * f0 + beta * b0)
    k = e / (a * a + beta * beta)
    return (f0 + a * k).astype(np.float32), (b0 + beta * k).astype(np.float32)
