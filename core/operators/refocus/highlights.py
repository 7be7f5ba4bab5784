"""Highlight recovery before blurring.

A clipped highlight (a lamp, a specular glint) was brighter than the sensor could record. Blurred as stored it
spreads into a dim grey disc; a real lens spreads its true, much larger energy into a bright disc. So, in linear
light, pixels near clipping are scaled up by a gain before the blur, only where the pixel will be blurred (an
in-focus highlight must stay as it was).
"""
from __future__ import annotations

import torch

KNEE = 0.92  # sRGB value where the boost starts; full boost at 1.0 (clipped)


def boost(lin: torch.Tensor, srgb: torch.Tensor, coc_abs: torch.Tensor, gain: float) -> torch.Tensor:
    """lin, srgb: 3×H×W; coc_abs: H×W |CoC| px. Returns the boosted linear image (same tensor if gain <= 1)."""
    if gain <= 1.0:
        return lin
    peak = srgb.max(dim=0).values
    hot = peak > KNEE
    if not bool(hot.any()):
        return lin
    # Highlights are few: work on those pixels only.
    idx = torch.nonzero(hot.reshape(-1)).reshape(-1)
    ramp = ((peak.reshape(-1)[idx] - KNEE) / (1.0 - KNEE)).clamp(0.0, 1.0) ** 2
    blurred = ((coc_abs.reshape(-1)[idx] - 1.0) / 3.0).clamp(0.0, 1.0)  # none at <= 1 px CoC, full from 4 px
    factor = 1.0 + (gain - 1.0) * ramp * blurred
    out = lin.clone().reshape(lin.shape[0], -1)
    out[:, idx] *= factor[None]
    return out.reshape(lin.shape)
