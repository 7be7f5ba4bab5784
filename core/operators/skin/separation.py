"""Frequency separation restricted to the skin: normalised Gaussian blurs and the low / mid / high split.

Masked blur (normalised convolution, Knutsson & Westin 1993): with skin weights w in [0, 1],
    G_σ^w(x) = G_σ(w·x) / G_σ(w),
so a band of the skin is computed from skin alone: the dark of an eye, a brow or the hair beside the mask never
leaks into the skin's bands (the halo a plain blur leaves around every feature after tone evening). Where the
weight around a pixel is nil (G_σ(w) < EMPTY) the plain blur stands in; those pixels lie outside the skin and
are not used.

Bands, in the units of the array (here CIELAB), with σ_h < σ_m in pixels of this array:
    high = x − G_σh^w(x)            pores, fine lines, grain
    mid  = G_σh^w(x) − G_σm^w(x)    blotches, redness, dark spots, under-eye shadow
    low  = G_σm^w(x)                light and colour
They telescope: high + mid + low = x exactly (to float32 rounding), whatever the blurs are.

Large σ are blurred on a coarser level of the Gaussian pyramid (`core.imaging.bands.pyr_down`, each level
adding about 1 px² of variance in its own pixels, and the same again on the way up), so the cost of a blur does
not grow with σ; the blur is then a Gaussian of σ to within a few per cent, which moves a band boundary, never
the exactness of the split.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from ...imaging import bands

EMPTY = 1e-4          # normalising weight below which a pixel has no skin near it
DIRECT_MAX_SIGMA = 4.0  # σ (px) up to which a blur runs at full resolution; above, on a pyramid level


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of σ px (H×W or H×W×C float32), on a pyramid level when σ > DIRECT_MAX_SIGMA.

    Going down k levels and back up adds a variance of about 2·(4^k − 1)/3 px² (the 5-tap kernel's 1 px² per
    level, in that level's pixels, both ways); the blur at the level supplies the rest."""
    if sigma <= DIRECT_MAX_SIGMA:
        return bands.gaussian_blur(x, sigma)
    k = 0
    while sigma / 2 ** (k + 1) >= DIRECT_MAX_SIGMA / 2 and min(x.shape[:2]) >> (k + 1) >= 8:
        k += 1
    if k == 0:
        return bands.gaussian_blur(x, sigma)
    levels = [x]
    for _ in range(k):
        levels.append(bands.pyr_down(levels[-1]))
    added = 2.0 * (4 ** k - 1) / 3.0
    rest = math.sqrt(max(sigma * sigma - added, 0.25 * 4 ** k)) / 2 ** k
    y = bands.gaussian_blur(levels[-1], rest)
    for lev in reversed(levels[:-1]):
        y = bands.pyr_up(y, lev.shape[:2])
    return y


def masked_blur(x: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """G_σ(w·x) / G_σ(w) for H×W×C float32 x and H×W weights; the plain blur where no weight is near."""
    x = np.ascontiguousarray(x, np.float32)
    w = np.ascontiguousarray(weight, np.float32)
    c = x.shape[2]
    stack = np.empty(x.shape[:2] + (c + 1,), np.float32)
    np.multiply(x, w[:, :, None], out=stack[:, :, :c])
    stack[:, :, c] = w
    b = blur(stack, sigma)
    den = b[:, :, c]
    ok = den > EMPTY
    out = np.divide(b[:, :, :c], np.maximum(den, EMPTY)[:, :, None])
    if not ok.all():
        out = np.where(ok[:, :, None], out, blur(x, sigma))
    return out


def split(x: np.ndarray, weight: np.ndarray, sigma_high: float, sigma_mid: float) -> Tuple[np.ndarray, ...]:
    """(high, mid, low) of x over the skin weights; high + mid + low == x to float32 rounding."""
    if not 0 < sigma_high < sigma_mid:
        raise ValueError(f"band sigmas must satisfy 0 < high < mid, got {sigma_high}, {sigma_mid}")
    smooth = masked_blur(x, weight, sigma_high)
    low = masked_blur(x, weight, sigma_mid)
    return x - smooth, smooth - low, low
