"""The perceptual working space of the skin operator: CIELAB (D65), from and back to the host's sRGB pixels.

Forward: sRGB-encoded → linear light (`core.imaging.color.srgb_to_linear`) → CIELAB
(`core.imaging.colorimetry.linear_srgb_to_lab`): L* (0 black .. 100 white), a* (+ red / − green), b* (+ yellow /
− blue). Redness, the commonest blemish colour, is +a*; darkness is −L*. One unit of L* is about one just
noticeable step, so thresholds in these units mean the same on a dark and a light skin.

Inverse: `core.imaging.colorimetry.lab_to_linear_srgb`, then the sRGB encoding; a round trip is exact to float32
rounding (about 1e-6 on [0, 1] values; checked in the tests).
"""
from __future__ import annotations

import numpy as np

from ...imaging import colorimetry
from ...imaging.color import linear_to_srgb, srgb_to_linear


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 (or N×3) sRGB-encoded float32 → CIELAB float32 of the same shape."""
    return colorimetry.linear_srgb_to_lab(srgb_to_linear(np.ascontiguousarray(rgb[..., :3], np.float32)))


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIELAB (…×3 float32) → linear sRGB (float32; out-of-gamut colours come back below 0 or above 1)."""
    return colorimetry.lab_to_linear_srgb(np.asarray(lab, np.float32))


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB → sRGB-encoded float32 (the inverse of `srgb_to_lab`)."""
    return linear_to_srgb(lab_to_linear(lab))
