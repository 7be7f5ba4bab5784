"""Convolution by an aperture kernel: a few shifted adds for tiny kernels, an FFT for the rest.

True convolution (a point becomes the kernel's shape, not its mirror image: this matters for odd-bladed
polygons), with replicated borders so that the frame's edge does not darken. FFT sizes are rounded up to
products of 2, 3 and 5, the sizes FFT libraries are quick at.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fast_len(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5 (quick FFT sizes)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def convolve(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Convolve C×h×w with an odd square kernel (true convolution: a point becomes the kernel's shape),
    replicate borders. Returns C×h×w."""
    kh, kw = kernel.shape
    if kh == 1 and kw == 1:
        return x * float(kernel[0, 0])
    r = kh // 2
    xp = F.pad(x[None], (r, r, r, r), mode="replicate")[0]
    ph, pw = xp.shape[-2:]
    if kh <= 3:
        # A few taps: shifted adds beat both a depthwise conv2d and an FFT on CPU.
        h, w = x.shape[-2:]
        out = torch.zeros_like(x)
        for dy in range(kh):
            for dx in range(kw):
                tap = float(kernel[kh - 1 - dy, kw - 1 - dx])
                if tap != 0.0:
                    out.add_(xp[:, dy:dy + h, dx:dx + w], alpha=tap)
        return out
    fh, fw = fast_len(ph), fast_len(pw)
    kp = torch.zeros((fh, fw), dtype=x.dtype, device=x.device)
    kp[:kh, :kw] = torch.from_numpy(kernel).to(x)
    kp = torch.roll(kp, shifts=(-r, -r), dims=(0, 1))
    spec = torch.fft.rfft2(xp, s=(fh, fw)) * torch.fft.rfft2(kp)
    out = torch.fft.irfft2(spec, s=(fh, fw))
    return out[:, r:r + x.shape[1], r:r + x.shape[2]]
