"""Aperture kernels: the image of a point light through the lens, a disc or an N-blade polygon.

A kernel is the exact area fraction of each pixel covered by the aperture shape (supersampled), so that
non-integer diameters stay exact in size and the edge of a bokeh disc is anti-aliased; it sums to 1 so that
blurring keeps energy (a point light's total light is conserved, only spread).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _inside(x: np.ndarray, y: np.ndarray, radius: float, blades: int, rotation_rad: float) -> np.ndarray:
    """Points (x right, y down, pixels from the centre) inside the aperture of circumradius `radius`."""
    if blades < 3:
        return x * x + y * y <= radius * radius
    # A regular polygon inscribed in the circle: inside when within the apothem of every edge.
    apothem = radius * math.cos(math.pi / blades)
    inside = np.ones(x.shape, bool)
    for i in range(blades):
        theta = rotation_rad + (i + 0.5) * 2.0 * math.pi / blades
        # y is down in pixel coordinates: negate it so that the rotation reads counter-clockwise on screen.
        inside &= x * math.cos(theta) - y * math.sin(theta) <= apothem
    return inside


@lru_cache(maxsize=256)
def _kernel_cached(diameter_q: int, blades: int, rotation_q: int, supersample: int) -> np.ndarray:
    diameter = diameter_q / 1000.0
    radius = diameter / 2.0
    half = int(math.ceil(radius + 0.5))
    size = 2 * half + 1
    s = supersample
    # Sample positions at sub-pixel centres, relative to the kernel's centre pixel.
    coords = (np.arange(size * s, dtype=np.float64) + 0.5) / s - half - 0.5
    xx, yy = np.meshgrid(coords, coords)
    cover = _inside(xx, yy, radius, blades, math.radians(rotation_q / 1000.0))
    k = cover.reshape(size, s, size, s).mean(axis=(1, 3))
    # Trim empty border rows/columns symmetrically so FFT padding stays small.
    while k.shape[0] > 1 and not k[0].any() and not k[-1].any() and not k[:, 0].any() and not k[:, -1].any():
        k = k[1:-1, 1:-1]
    total = k.sum()
    if total <= 0:  # a shape smaller than the sampling grid: all its light lands in the centre pixel
        return np.ones((1, 1), np.float32)
    return (k / total).astype(np.float32)


def aperture_kernel(diameter_px: float, blades: int = 0, rotation_deg: float = 0.0) -> np.ndarray:
    """Point-spread kernel (odd square, sums to 1) for a circle of confusion of `diameter_px` pixels.

    blades = 0: a round aperture; blades >= 3: a regular polygon inscribed in that circle, rotated by
    `rotation_deg` counter-clockwise. A diameter of at most one pixel is a single tap (the identity).
    """
    d = abs(float(diameter_px))
    if d <= 1.0:
        return np.ones((1, 1), np.float32)
    if blades not in (0,) and blades < 3:
        raise ValueError("blades must be 0 (round) or at least 3")
    supersample = 8 if d < 24 else 4
    rot = (float(rotation_deg) % 360.0) if blades >= 3 else 0.0
    return _kernel_cached(int(round(d * 1000)), int(blades), int(round(rot * 1000)), supersample)
