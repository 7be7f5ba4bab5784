"""Highlight recovery before blurring: refocus's stage around the shared boost (core.optics.highlights, which
says why and how much).

Highlights are few, so only the pixels above the knee are gathered, multiplied and put back.
"""
from __future__ import annotations

import torch

from ...optics.highlights import KNEE, factor


def boost(lin: torch.Tensor, srgb: torch.Tensor, coc_abs: torch.Tensor, gain: float) -> torch.Tensor:
    """lin, srgb: 3×H×W; coc_abs: H×W |CoC| px. Returns the boosted linear image (same tensor if gain <= 1)."""
    if gain <= 1.0:
        return lin
    peak = srgb.max(dim=0).values
    hot = peak > KNEE
    if not bool(hot.any()):
        return lin
    idx = torch.nonzero(hot.reshape(-1)).reshape(-1)
    out = lin.clone().reshape(lin.shape[0], -1)
    out[:, idx] *= factor(peak.reshape(-1)[idx], coc_abs.reshape(-1)[idx], gain)[None]
    return out.reshape(lin.shape)
