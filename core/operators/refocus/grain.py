"""Noise and grain: measured on the original, re-added where the blur removed it.

Blurring with a CoC of area A px averages A noise samples, leaving 1/sqrt(A) of the noise: a blurred region
looks pasted next to the noisy sharp subject. The original noise level is measured per channel (Immerkaer's
Laplacian-difference estimator over the flattest half of the image, so texture is not mistaken for noise: the
shared core.imaging.noise.immerkaer_sigma) and white noise of the missing amount, sigma * sqrt(1 - 1/A), is
added back in the stored (sRGB) encoding, where grain is perceived.
"""
from __future__ import annotations

import math

import torch

from ...imaging.noise import immerkaer_sigma

# The measurement is the shared one (per-channel white-noise σ by Immerkaer's estimator); this is the name the
# operator calls.
estimate_sigma = immerkaer_sigma


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
