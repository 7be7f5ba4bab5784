"""sRGB decoding on the hot path: the same curve as imaging.color.srgb_to_linear (mirrored below 0), about
twice as fast on CPU (exp/log instead of a general power, copysign instead of sign() products). Every frame's
pixels pass through it once or twice, so it is a visible share of the run time."""
from __future__ import annotations

import torch


def decode(x: torch.Tensor) -> torch.Tensor:
    a = x.abs()
    curve = torch.exp(2.4 * torch.log((a + 0.055) * (1.0 / 1.055)))
    return torch.copysign(torch.where(a <= 0.04045, a * (1.0 / 12.92), curve), x)
