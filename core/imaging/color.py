"""Colour transfer functions and luminance.

Host pixels are sRGB-encoded ("R'G'B'"); physics (blur, light, noise) happens in linear light. The sRGB curve is
the exact IEC 61966-2-1 piecewise function, extended to values above 1 and mirrored below 0 so that HDR and
slightly negative float data survive a round trip.
"""
from __future__ import annotations

import numpy as np

# Rec. 709 / sRGB primaries, D65: relative luminance weights of linear RGB.
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_to_linear(x):
    """sRGB-encoded values -> linear light. Works on numpy arrays and torch tensors."""
    if _is_torch(x):
        import torch
        # exp/log instead of a general power and copysign instead of a sign product: about twice as fast on
        # CPU, and burst denoise decodes every frame's pixels on its hot path.
        a = x.abs()
        curve = torch.exp(2.4 * torch.log((a + 0.055) * (1.0 / 1.055)))
        return torch.copysign(torch.where(a <= 0.04045, a * (1.0 / 12.92), curve), x)
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    return (np.sign(x) * lin).astype(np.float32)


def linear_to_srgb(x):
    """Linear light -> sRGB-encoded values. Works on numpy arrays and torch tensors."""
    if _is_torch(x):
        import torch
        a = x.abs()
        enc = torch.where(a <= 0.0031308, a * 12.92, 1.055 * a.clamp_min(1e-12) ** (1 / 2.4) - 0.055)
        return torch.sign(x) * enc
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    enc = np.where(a <= 0.0031308, a * 12.92, 1.055 * np.power(np.maximum(a, 1e-12), 1 / 2.4) - 0.055)
    return (np.sign(x) * enc).astype(np.float32)


def luminance(rgb_linear):
    """Relative luminance Y of linear RGB (H×W×3 -> H×W)."""
    if _is_torch(rgb_linear):
        w = rgb_linear.new_tensor(LUMA_709)
        return (rgb_linear * w.view(-1, 1, 1)).sum(dim=-3)
    return np.asarray(rgb_linear, dtype=np.float32)[..., :3] @ LUMA_709


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")
