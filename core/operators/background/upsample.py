"""Matte upsampling by the colour-line model: the matte solved at a working resolution, brought to full size.

Closed-form matting rests on alpha being an affine function of colour inside small windows, α ≈ aᵀI + b.
That model is fitted at the working resolution (a colour guided filter, He, Sun & Tang 2013: per window of
radius r, a = (Σ + εU)⁻¹ cov(I, α), b = mean(α) − aᵀ mean(I), then a and b averaged over the windows that
cover a pixel), the coefficient fields are interpolated bilinearly to full size, and evaluated there on the full-size
colours: α_full = āᵀ I_full + b̄ (the "fast guided filter", He & Sun 2015). A strand thinner than a working
pixel thus gets its alpha from its own full-resolution colour, not from a smeared low-resolution value: edge-aware
upsampling that follows colour (all three channels), which `core.imaging.resample.guided_upsample` (luminance
only, a weighted mean of the low-resolution values) cannot do for a matte.

Only the unknown band is evaluated this way; known pixels keep exactly 0 or 1.
"""
from __future__ import annotations

import cv2
import numpy as np

RADIUS = 1           # window radius at the working resolution (3×3, the matting Laplacian's own window)
EPS = 1e-4           # ε of the fit in linear light²: keeps a bounded in flat windows (alpha then ≈ its mean)
SAMPLE_ROW = 4096    # points per row of the remap layout in `sample`


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def affine_coefficients(guide: np.ndarray, alpha: np.ndarray, radius: int = RADIUS, eps: float = EPS) -> np.ndarray:
    """h×w×4 float32 (a_r, a_g, a_b, b), averaged over the windows, with alpha ≈ a·I + b. guide: h×w×3."""
    g = np.ascontiguousarray(guide, np.float32)
    p = np.ascontiguousarray(alpha, np.float32)
    mean_i = _box(g, radius)
    mean_p = _box(p, radius)
    cov_ip = _box(g * p[:, :, None], radius) - mean_i * mean_p[:, :, None]
    # Σ + εU per pixel (3×3, symmetric) from the six second moments, inverted by its cofactors (float64: the
    # determinant of a nearly flat window is tiny).
    def var(i, j):
        v = _box(g[:, :, i] * g[:, :, j], radius) - mean_i[:, :, i] * mean_i[:, :, j]
        return v.astype(np.float64) + (eps if i == j else 0.0)
    s00, s01, s02, s11, s12, s22 = var(0, 0), var(0, 1), var(0, 2), var(1, 1), var(1, 2), var(2, 2)
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    v0, v1, v2 = (cov_ip[:, :, k].astype(np.float64) for k in range(3))
    a = np.stack([c00 * v0 + c01 * v1 + c02 * v2, c01 * v0 + c11 * v1 + c12 * v2,
                  c02 * v0 + c12 * v1 + c22 * v2], axis=2) / det[:, :, None]
    a = a.astype(np.float32)
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_i)
    coef = np.concatenate([a, b[:, :, None]], axis=2).astype(np.float32)
    return _box(coef, radius)


def sample(low: np.ndarray, ys: np.ndarray, xs: np.ndarray, full_hw) -> np.ndarray:
    """Bilinear samples (N×C) of an h×w×C working-resolution map at full-resolution pixels (ys, xs), with the
    pixel-centre alignment of cv2.resize (v = (y + ½)·h/H − ½) and replicated borders. C ≤ 4."""
    H, W = full_hw
    h, w = low.shape[:2]
    n = ys.size
    cols = SAMPLE_ROW
    rows = max(1, -(-n // cols))
    # remap takes a 2-D map: the N points laid out row by row (OpenCV limits a map's side to 32767).
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n] = (xs.astype(np.float32) + 0.5) * np.float32(w / W) - 0.5
    my[:n] = (ys.astype(np.float32) + 0.5) * np.float32(h / H) - 0.5
    src = np.ascontiguousarray(low, np.float32)
    out = cv2.remap(src, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    c = 1 if low.ndim == 2 else low.shape[2]
    return out.reshape(rows * cols, c)[:n]


def alpha_at(coef_low: np.ndarray, colours: np.ndarray, ys: np.ndarray, xs: np.ndarray, full_hw) -> np.ndarray:
    """α = ā·I + b̄ (clipped to [0, 1]) at full-resolution pixels (ys, xs) of colour `colours` (N×3 linear),
    from the working-resolution coefficients (affine_coefficients)."""
    c = sample(coef_low, ys, xs, full_hw)
    out = np.einsum("nc,nc->n", c[:, :3], colours) + c[:, 3]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
