"""Noise and grain: measured on the original, re-added where the blur removed it.

Blurring with a CoC of area A px averages A noise samples, leaving 1/sqrt(A) of the noise: a blurred region
looks pasted next to the noisy sharp subject. The original noise level is measured per channel (Immerkaer's
Laplacian-difference estimator over the flattest half of the image, so texture is not mistaken for noise) and
white noise of the missing amount, sigma * sqrt(1 - 1/A), is added back in the stored (sRGB) encoding, where
grain is perceived.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LAPLACE_DIFF = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def estimate_sigma(srgb: torch.Tensor) -> torch.Tensor:
    """Per-channel noise standard deviation of a 3×H×W image (in its own encoding)."""
    c, h, w = srgb.shape
    if h < 8 or w < 8:
        return torch.zeros(c, dtype=srgb.dtype)
    if h * w > 600_000:
        # A big picture: measure on a regular grid of 64×64 tiles covering about a quarter million pixels.
        t = 64
        ny, nx = h // t, w // t
        keep = max(1, int(round(math.sqrt(ny * nx / 64))))
        tiles = srgb[:, :ny * t, :nx * t].reshape(c, ny, t, nx, t)[:, ::keep, :, ::keep, :]
        srgb = tiles.permute(0, 1, 3, 2, 4).reshape(c, -1, t, t)  # C × tiles × t × t, estimated per tile
        return _estimate_tiles(srgb)
    return _estimate_tiles(srgb[:, None])


def _estimate_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """tiles: C×N×t×t; the Laplacian never crosses a tile border, so tiles may come from anywhere."""
    c, n, h, w = tiles.shape
    srgb = tiles.permute(1, 0, 2, 3)  # N×C×t×t
    k = _LAPLACE_DIFF.to(srgb)[None, None].expand(c, 1, 3, 3)
    resp = F.conv2d(srgb, k, groups=c).abs()  # N×C×(t-2)×(t-2)
    # Flat areas only: structure there cannot pose as noise.
    grey = srgb.mean(dim=1)
    gx = (grey[:, 1:-1, 2:] - grey[:, 1:-1, :-2]).abs()
    gy = (grey[:, 2:, 1:-1] - grey[:, :-2, 1:-1]).abs()
    grad = gx + gy
    flat_vals = grad.reshape(-1)
    thresh = flat_vals.kthvalue(max(1, flat_vals.numel() // 2)).values
    flat = grad <= thresh
    sig = []
    for ch in range(c):
        vals = resp[:, ch][flat]
        sig.append(math.sqrt(math.pi / 2.0) / 6.0 * float(vals.mean()) if vals.numel() else 0.0)
    return torch.tensor(sig, dtype=srgb.dtype)


def readd(srgb_out: torch.Tensor, coc_abs: torch.Tensor, sigma: torch.Tensor, seed: int) -> torch.Tensor:
    """Add white noise of the missing amount to the blurred parts of a 3×H×W sRGB result."""
    if float(sigma.max()) <= 0.0:
        return srgb_out
    area = (math.pi / 4.0) * coc_abs.clamp_min(1.0) ** 2
    missing = (1.0 - 1.0 / area).clamp_min(0.0).sqrt()
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    noise = torch.randn(srgb_out.shape, generator=gen, dtype=srgb_out.dtype).to(srgb_out.device)
    noise.mul_(missing[None]).mul_(sigma.to(srgb_out)[:, None, None])
    return srgb_out.add_(noise)
