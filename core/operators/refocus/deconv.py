"""Bounded sharpening where the new focus is sharper than the original photo was.

The original photo already carries a known blur (its own circle of confusion, from the original aperture and
focus). Where the new focus asks for less blur than that, the lost detail is not recoverable in full: a disc's
spectrum has zeros. A Wiener deconvolution by the known disc restores what the optics let through, with its gain
bounded (at most 1 / (2 sqrt(lambda)), 5x here) so that noise and ringing stay in check, instead of promising a
sharpness that the lens never recorded.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...optics.convolve import fast_len

LAMBDA = 0.01  # Wiener regulariser: bounds the gain at 5x


def wiener(x: torch.Tensor, kernel: np.ndarray, lam: float) -> torch.Tensor:
    """Deconvolve C×h×w by `kernel` with a Wiener filter (constant noise-to-signal `lam`), replicate borders."""
    kh, kw = kernel.shape
    if kh == 1:
        return x
    r = kh // 2 + 4
    xp = F.pad(x[None], (r, r, r, r), mode="replicate")[0]
    ph, pw = xp.shape[-2:]
    fh, fw = fast_len(ph), fast_len(pw)
    kp = torch.zeros((fh, fw), dtype=x.dtype, device=x.device)
    kp[:kh, :kw] = torch.from_numpy(kernel).to(x)
    kp = torch.roll(kp, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
    hk = torch.fft.rfft2(kp)
    filt = hk.conj() / (hk.abs() ** 2 + lam)
    out = torch.fft.irfft2(torch.fft.rfft2(xp, s=(fh, fw)) * filt, s=(fh, fw))
    return out[:, r:r + x.shape[1], r:r + x.shape[2]]


def sharpen(lin: torch.Tensor, original_coc: torch.Tensor, target_coc: torch.Tensor,
            kernel_for: Callable[[float, bool], np.ndarray], noise_sigma: float = 0.0):
    """Replace pixels whose original blur exceeds the target blur by a bounded deconvolution of the original
    blur. lin: 3×H×W linear; original_coc, target_coc: H×W signed px. Returns (image, fraction sharpened)."""
    c0 = original_coc.abs()
    need = (c0 > target_coc.abs() + 0.5) & (c0 > 1.5)
    if not bool(need.any()):
        return lin, 0.0
    lam = LAMBDA + float(noise_sigma) ** 2 * 100.0  # noisier pictures get a gentler filter
    vals = c0[need]
    lo, hi = float(vals.min()), float(vals.max())
    # Deconvolution layers of original CoC, geometric spacing (the same 25 % tolerance as the renderer).
    centres = [lo]
    while centres[-1] < hi:
        centres.append(centres[-1] * 1.25)
    ct = torch.tensor(centres, dtype=lin.dtype, device=lin.device)
    j = torch.bucketize(c0, ct).clamp(1, max(len(centres) - 1, 1))
    if len(centres) > 1:
        frac = ((c0 - ct[j - 1]) / (ct[j] - ct[j - 1])).clamp(0.0, 1.0)
    else:
        frac = torch.zeros_like(c0)
    out = lin.clone()
    gate = need.to(lin.dtype)
    for k, c in enumerate(centres):
        wk = torch.where(j - 1 == k, 1.0 - frac, torch.zeros_like(frac)) + torch.where(j == k, frac, 0.0)
        if len(centres) == 1:
            wk = torch.ones_like(frac)
        wk = wk * gate
        if not bool((wk > 0).any()):
            continue
        restored = wiener(lin, kernel_for(c, False), lam).clamp_min(0.0)
        out += wk[None] * (restored - lin)
    return out, float(need.float().mean())
