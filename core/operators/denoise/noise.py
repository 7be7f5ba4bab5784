"""Sensor noise model of a burst: variance = a·signal + b in linear light (shot + read noise).

The measurement itself is the shared level model (core.imaging.noise.level_model: Haar HH block variances
binned by brightness, a low quantile per bin, a line fitted with the correction for clipping at black). This
module adds what is particular to a burst: a central crop of big frames, linear light, and the median of a few
frames' fits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...imaging.color import srgb_to_linear
from ...imaging.noise import MIN_VARIANCE, NoiseModel, combine, level_model  # noqa: F401  (re-exported)
from ...parallel import cpu_map


def estimate_image(frame_srgb: np.ndarray, max_pixels: int = 1_000_000) -> NoiseModel:
    """Fit variance = a·signal + b on one H×W×3 sRGB-encoded image (measured in linear light)."""
    h, w = frame_srgb.shape[:2]
    if h * w > max_pixels:  # a central crop is plenty and bounds the cost on 12 MP frames
        s = (max_pixels / (h * w)) ** 0.5
        ch, cw = max(int(h * s), 16), max(int(w * s), 16)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        frame_srgb = frame_srgb[y0:y0 + ch, x0:x0 + cw]
    linear = srgb_to_linear(torch.from_numpy(np.ascontiguousarray(frame_srgb[:, :, :3], np.float32)).permute(2, 0, 1))
    return level_model(linear)


def burst_picks(frames: int, reference: int, max_frames: int = 3):
    """The frames measured for a burst's model: the reference and the next few (the sensor is the same)."""
    return [reference] + [k for k in range(frames) if k != reference][:max_frames - 1]


def estimate_burst(frames_srgb: Sequence[np.ndarray], reference: int, max_frames: int = 3,
                   device=None) -> NoiseModel:
    """The burst's model from a few of its frames, measured in parallel on a CPU."""
    picks = burst_picks(len(frames_srgb), reference, max_frames)
    return combine(cpu_map(lambda k: estimate_image(frames_srgb[k]), picks, device))
