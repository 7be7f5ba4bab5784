"""A hand-held low-light burst synthesised from one clean picture: what `install.py --demo` shows.

Each frame is the picture moved as a hand shakes (a few pixels, sub-pixel, a fraction of a degree of roll) with
shot + read noise added in linear light, as a small sensor gives it in dim light.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from ...imaging.color import linear_to_srgb, srgb_to_linear

DEMO_FRAMES = 6
DEMO_SHIFT_PX = 4.0
DEMO_ROLL_DEG = 0.5
DEMO_SIGMA_MID_GREY = 0.06   # noise standard deviation at mid grey (linear 0.214)
DEMO_READ_SIGMA = 0.006


def hand_held_burst(clean_srgb: np.ndarray, n: int, seed: int, shift_px: float = DEMO_SHIFT_PX,
                    roll_deg: float = DEMO_ROLL_DEG, sigma_mid_grey: float = DEMO_SIGMA_MID_GREY,
                    read_sigma: float = DEMO_READ_SIGMA):
    """n noisy frames (H×W×3 sRGB float32 in [0, 1]); frame 0 is the unmoved one."""
    import cv2

    rng = np.random.default_rng(seed)
    lin = srgb_to_linear(np.asarray(clean_srgb, np.float32)[:, :, :3])
    h, w = lin.shape[:2]
    b = read_sigma ** 2
    a = (sigma_mid_grey ** 2 - b) / float(srgb_to_linear(np.float32(0.5)))
    frames = []
    for k in range(n):
        dx, dy = (0.0, 0.0) if k == 0 else rng.uniform(-shift_px, shift_px, 2)
        roll = 0.0 if k == 0 else rng.uniform(-roll_deg, roll_deg)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(roll), 1.0)
        m[:, 2] += (dx, dy)
        moved = cv2.warpAffine(lin, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        moved = np.clip(moved, 0.0, 1.0)
        noisy = moved + rng.standard_normal(moved.shape).astype(np.float32) * np.sqrt(a * moved + b)
        frames.append(np.clip(linear_to_srgb(noisy), 0.0, 1.0).astype(np.float32))
    return frames


def demo(image: np.ndarray, seed: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    return {"frames": hand_held_burst(image, DEMO_FRAMES, seed)}, {}
