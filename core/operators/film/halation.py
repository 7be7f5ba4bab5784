"""Halation: light that crossed the emulsion, reflected off the back of the film base, exposing it again.

Light that no layer absorbed reaches the base (about 125 µm of triacetate), reflects at its back surface and
returns into the emulsion a little way off: a glow around bright lights. The red-sensitive layer lies next to
the base and red light is what gets through the layers above, so the glow is mostly red, some green, hardly any
blue: red-orange. It acts on exposure, before the characteristic curve.

Model, per layer i (exposure E_i, relative, 1 = white):
    E_i' = E_i + h_i (P_i ∗ E_i - E_i),
P_i the glow's spread, a unit-area mixture of two Gaussians, σ = r_i and 2.5 r_i (weights 0.7, 0.3: a soft
core and a long tail). A uniform area keeps its exposure (the datasheet's curves were measured on large uniform
patches, with their halation already in them); only edges and highlights spread. Strengths at --halation 1
(a film with an anti-halation layer) are STRENGTH, radii RADIUS_SCALE × the red radius (--halation-radius, µm on
the film); CineStill-like film without the layer is about --halation 8.

The spread is wide (hundreds of µm: tens of pixels), so each of its Gaussians is blurred on a copy reduced by
a power of two (area average) until its σ is at least MIN_SIGMA_PX there, and enlarged back bilinearly: the
glow is smooth, nothing of it is lost. The exposure itself keeps full resolution: E_i (1 − h_i) + the glow.
"""
from __future__ import annotations

import math

import numpy as np

STRENGTH = (0.012, 0.004, 0.0008)   # h for red, green, blue layers at --halation 1
RADIUS_SCALE = (1.0, 0.8, 0.6)      # layer radius / red radius: red light travelled farthest
TAIL = 2.5                          # second Gaussian's σ / first
TAIL_WEIGHT = 0.3
MIN_SIGMA_PX = 3.0


def reduction(sigma_px: float, limit: int = 16) -> int:
    """Power-of-two reduction f with sigma_px / f >= MIN_SIGMA_PX (1 when the glow is small already)."""
    f = 1
    while sigma_px / (2 * f) >= MIN_SIGMA_PX and 2 * f <= limit:
        f *= 2
    return f


def strengths(amount: float, layers: int) -> np.ndarray:
    if layers == 1:
        return np.array([STRENGTH[0] * amount])
    return np.array(STRENGTH) * amount


def radii_px(radius_um: float, pitch_um: float, layers: int) -> np.ndarray:
    scale = RADIUS_SCALE if layers == 3 else RADIUS_SCALE[:1]
    return np.array(scale) * radius_um / pitch_um


def components(amount: float, radius_um: float, pitch_um: float, layers: int):
    """{reduction f: [(layer, σ in reduced px, weight h·w)]}: the two Gaussians of every layer's spread, each
    blurred at its own power-of-two reduction (a wide tail need not be blurred at full size)."""
    groups = {}
    for i, (h, s) in enumerate(zip(strengths(amount, layers), radii_px(radius_um, pitch_um, layers))):
        if h <= 0 or s <= 0.05:
            continue
        for sigma, weight in ((s, 1.0 - TAIL_WEIGHT), (TAIL * s, TAIL_WEIGHT)):
            f = reduction(sigma)
            groups.setdefault(f, []).append((i, sigma / f, h * weight))
    return groups


def glow(exposure_small: np.ndarray, parts, layers: int) -> np.ndarray:
    """Σ_parts w (G_σ ∗ E_i) on one reduced copy (H×W×L float32): that reduction's share of h_i P_i ∗ E_i.
    The full-size E_i (1 − h_i) is added back per strip, so a uniform area keeps E_i exactly."""
    import cv2

    out = np.zeros(exposure_small.shape[:2] + (layers,), np.float32)
    for i, sigma, weight in parts:
        e = np.ascontiguousarray(exposure_small[:, :, i])
        blurred = cv2.GaussianBlur(e, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)
        out[:, :, i] += np.float32(weight) * blurred
    return out


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Area average by an integer factor (the last partial block averaged over what it has)."""
    import cv2
    if factor == 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (math.ceil(w / factor), math.ceil(h / factor)), interpolation=cv2.INTER_AREA)


def enlarge_rows(small: np.ndarray, factor: int, y0: int, y1: int, width: int) -> np.ndarray:
    """Rows y0..y1-1 (first `width` columns) of the bilinear enlargement of `small` by `factor`, pixel centres
    aligned (source coordinate (y + 0.5) / f − 0.5), from the few small rows they need plus one on each side:
    strips agree exactly with the whole."""
    import cv2
    if factor == 1:
        return small[y0:y1, :width]
    a = max(0, y0 // factor - 1)
    b = min(small.shape[0], -(-y1 // factor) + 1)
    band = np.ascontiguousarray(small[a:b])
    big = cv2.resize(band, (band.shape[1] * factor, band.shape[0] * factor), interpolation=cv2.INTER_LINEAR)
    return big[y0 - a * factor:y1 - a * factor, :width]
