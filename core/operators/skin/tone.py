"""Tone evening: a smooth dodge-and-burn field from the mid band, not a blur of the image.

The field is D = −s·f(mid) per CIELAB channel, s = strength in [0, 1], added to the image (the high band, the
pores, is never touched by it). f is the identity up to a limit T and rolls off beyond it,
    f(m) = m                          for |m| ≤ T
    f(m) = sign(m)·(T + T·u/(T + u))  for |m| = T + u > T     (continuous slope, bounded by 2T)
so blotches, redness and dark patches (a few L* deep) are attenuated by exactly s, while the deep mid-band
structure of the face's form (the side of the nose, the nasolabial fold, the orbit: 10-20 L*) loses at most
2·s·T and keeps its shape. T per channel = max(LIMIT_L or LIMIT_AB, LIMIT_SPREADS × the channel's robust spread
over the skin), in CIELAB units.
"""
from __future__ import annotations

import numpy as np

from .blemishes import robust_spread

LIMIT_L = 6.0          # L*: mid-band excursions up to this are evened fully
LIMIT_AB = 4.0         # a*, b*
LIMIT_SPREADS = 3.0    # or this many robust spreads of the skin's own mid band, if larger


def limits(mid: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """T per channel (3,) float32."""
    skin = weight > 0.9
    sample = mid[skin] if skin.sum() >= 16 else mid.reshape(-1, 3)
    floors = (LIMIT_L, LIMIT_AB, LIMIT_AB)
    return np.array([max(f, LIMIT_SPREADS * robust_spread(sample[:, c], 0.0)) for c, f in enumerate(floors)],
                    np.float32)


def rolloff(m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """f(m) of the module docstring, per channel limits t (broadcast over the last axis)."""
    a = np.abs(m)
    u = np.maximum(a - t, 0.0)
    return np.sign(m) * np.where(a <= t, a, t + t * u / (t + u))


def field(mid: np.ndarray, weight: np.ndarray, strength: float) -> np.ndarray:
    """The dodge-and-burn field D (H×W×3 float32, CIELAB units) for the mid band over the skin weights."""
    if strength <= 0.0:
        return np.zeros_like(mid, dtype=np.float32)
    return (-float(strength) * rolloff(mid, limits(mid, weight))).astype(np.float32)
