"""Sensor noise model of a burst: variance = a·signal + b in linear light (shot + read noise).

The measurement starts from the shared level model (core.imaging.noise: Haar HH block variances binned by
brightness, a low quantile per bin divided by its chi-square bias) and refits its bins with the exact model of a
clipped sample (clipping.py). A bin's level is a mean of clipped pixels, E[y] = g(L), not the scene level L, and
its variance is Var[y], which clipping shrinks (at L = 0 to a third of σ²): each round takes every bin's level
back to L = g⁻¹(level) with the current model, divides its variance by κ = Var[y]/σ²(L) and fits the line
a·L + b again (weights 1/variance), for bins above black (L > 0: below g(0) the level says nothing of L) where κ
is at least MIN_KAPPA. Both clip levels count: the bright bins that show the shot-noise slope sit near white.

Measured on the shadowed portrait (tests/scenes.py, a = 0.004, b = 0.0004): at 2 % exposure σ within 6 % of
the truth at black and 8 % over the levels present, where the shared fit (which corrects black only, and at the
clipped mean's level) reads σ at black 35-44 % low and a three times too high; at full exposure a within 4 %
(shared fit 8-9 % low), σ at black 8-9 % high (both fits: texture).

This module also adds what is particular to a burst: a central crop of big frames, linear light, and the median
of a few frames' fits.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ...imaging import noise as shared
from ...imaging.color import srgb_to_linear
from ...imaging.noise import MIN_VARIANCE, NoiseModel, combine, level_model  # noqa: F401  (re-exported)
from ...parallel import cpu_map
from .clipping import clipped_moments, invert_mean

CLIP_FIT_ROUNDS = 6   # rounds of the clipped refit (it settles in 3-4 on the dark test bursts)
MIN_KAPPA = 0.25      # bins whose clipped variance is under a quarter of σ² lean too much on the model itself


def refit_clipped(levels: np.ndarray, variances: np.ndarray, start: NoiseModel, lo: Optional[float],
                  hi: Optional[float]) -> NoiseModel:
    """The line a·L + b through bins measured on frames clipped to [lo, hi] (None: not clipped on that side),
    from the scene levels and unclipped variances the current model implies (module notes)."""
    model = start
    for _ in range(CLIP_FIT_ROUNDS):
        L = invert_mean(levels, model, lo, hi)
        sigma2 = np.maximum(model.a * np.maximum(L, 0.0) + model.b, MIN_VARIANCE)
        kappa = clipped_moments(L, model, lo, hi)[1] / sigma2
        keep = (L > (lo if lo is not None else -np.inf)) & (kappa >= MIN_KAPPA)
        if keep.sum() < 2:
            break
        corrected = variances[keep] / kappa[keep]
        model = shared._fit_line(L[keep], corrected, 1.0 / corrected)
    return model


def estimate_image(frame_srgb: np.ndarray, max_pixels: int = 1_000_000, lo: Optional[float] = 0.0,
                   hi: Optional[float] = 1.0) -> NoiseModel:
    """Fit variance = a·signal + b on one H×W×3 sRGB-encoded image (measured in linear light) whose pixels are
    clipped to [lo, hi] (None: not clipped on that side, as float data may not be)."""
    h, w = frame_srgb.shape[:2]
    if h * w > max_pixels:  # a central crop is plenty and bounds the cost on 12 MP frames
        s = (max_pixels / (h * w)) ** 0.5
        ch, cw = max(int(h * s), 16), max(int(w * s), 16)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        frame_srgb = frame_srgb[y0:y0 + ch, x0:x0 + cw]
    linear = srgb_to_linear(torch.from_numpy(np.ascontiguousarray(frame_srgb[:, :, :3], np.float32)).permute(2, 0, 1))
    levels, variances = shared.level_bins(*shared.haar_blocks(linear))
    if len(levels) < 2:       # too few blocks to bin: the shared model's own fallbacks
        return level_model(linear)
    start = shared._fit_clipped(levels, variances)   # what level_model gives, from the same bins
    return start if lo is None and hi is None else refit_clipped(levels, variances, start, lo, hi)


def burst_picks(frames: int, reference: int, max_frames: int = 3):
    """The frames measured for a burst's model: the reference and the next few (the sensor is the same)."""
    return [reference] + [k for k in range(frames) if k != reference][:max_frames - 1]


def estimate_burst(frames_srgb: Sequence[np.ndarray], reference: int, max_frames: int = 3, device=None,
                   lo: Optional[float] = 0.0, hi: Optional[float] = 1.0) -> NoiseModel:
    """The burst's model from a few of its frames, measured in parallel on a CPU."""
    picks = burst_picks(len(frames_srgb), reference, max_frames)
    return combine(cpu_map(lambda k: estimate_image(frames_srgb[k], lo=lo, hi=hi), picks, device))
