"""The new light's shading: diffuse (Lambert, area lights, wrap) and a specular microfacet lobe.

All functions take unit normals (H×W×3, camera space: x right, y up, z toward the camera) and the unit vector
toward the light, and return float32 maps. The viewer is orthographic along +z (v = (0, 0, 1)).

Diffuse, per light, normalised so that a fully visible light gives cos θ = n·l:
- size 0, wrap 0: max(n·l, 0), the hard point source a user reasons with;
- a source of angular radius α (half its size): the exact irradiance of a uniform sphere (Snyder 1996),
  divided by π sin²α:  E = cos θ  where θ ≤ π/2 − α (all of the source above the horizon);  0 where
  θ ≥ π/2 + α;  and in between (the terminator, softened over 2α)
      E = [ (cos θ · acos y − x sin θ √(1 − y²)) sin²α + atan(sin θ √(1 − y²) / x) ] / (π sin²α),
      x = cos α / sin α,  y = −x cos θ / sin θ;
- wrap w (skin's subsurface scattering carries light a little past the terminator): cos θ is replaced by
  (cos θ + w) / (1 + w) before the above, so the lit side keeps its peak and the terminator moves by w.

Specular (skin only; the caller masks it): GGX / Trowbridge-Reitz distribution with α = roughness², Smith's
height-correlated visibility and Schlick's Fresnel with F0 = 0.028 (skin, n ≈ 1.4):
      f · cos θ = D(h) · Vis(n·l, n·v) · F(v·h) · n·l,
      D = α² / (π ((n·h)² (α² − 1) + 1)²),   Vis = 0.5 / (n·l √((n·v)²(1 − α²) + α²) + n·v √((n·l)²(1 − α²) + α²)).
An area light widens the lobe (Karis 2013): α' = min(1, α + tan(size / 2) / 2), renormalised by (α / α')².
"""
from __future__ import annotations

import numpy as np

SKIN_F0 = 0.028


def n_dot(normals: np.ndarray, direction: np.ndarray) -> np.ndarray:
    d = np.asarray(direction, np.float32)
    return (normals @ d).astype(np.float32)


def diffuse(cos_theta: np.ndarray, half_angle_rad: float = 0.0, wrap=0.0) -> np.ndarray:
    """Irradiance factor of one light from cos θ = n·l (see the module docstring)."""
    c = np.asarray(cos_theta, np.float32)
    if np.ndim(wrap) or float(wrap) > 0.0:
        w = np.asarray(wrap, np.float32)
        c = (c + w) / (1.0 + w)
    if half_angle_rad < 1e-4:
        return np.maximum(c, 0.0)
    s = np.float32(np.sin(half_angle_rad))
    out = np.maximum(c, 0.0)
    mid = (c < s) & (c > -s)
    if mid.any():
        cm = np.clip(c[mid].astype(np.float64), -1.0, 1.0)
        sin_t = np.sqrt(np.maximum(1.0 - cm * cm, 1e-12))
        x = np.cos(half_angle_rad) / np.sin(half_angle_rad)
        y = np.clip(-x * cm / sin_t, -1.0, 1.0)
        root = sin_t * np.sqrt(np.maximum(1.0 - y * y, 0.0))
        s2 = float(s) ** 2
        e = ((cm * np.arccos(y) - x * root) * s2 + np.arctan(root / x)) / (np.pi * s2)
        out[mid] = np.maximum(e, 0.0).astype(np.float32)
    out[c <= -s] = 0.0
    return out


def specular(normals: np.ndarray, direction: np.ndarray, roughness: float, half_angle_rad: float = 0.0,
             f0: float = SKIN_F0) -> np.ndarray:
    """GGX lobe times n·l (radiance per unit light intensity), H×W float32."""
    l = np.asarray(direction, np.float32)
    v = np.array([0.0, 0.0, 1.0], np.float32)
    h = l + v
    hn = np.linalg.norm(h)
    h = h / hn if hn > 1e-6 else np.array([0.0, 0.0, 1.0], np.float32)   # a light exactly behind: no lobe
    nl = np.clip(normals @ l, 0.0, 1.0)
    nv = np.clip(normals[..., 2], 1e-4, 1.0)
    nh = np.clip(normals @ h, 0.0, 1.0)
    vh = float(np.clip(v @ h, 0.0, 1.0))
    a = float(np.clip(roughness, 0.02, 1.0)) ** 2
    a_wide = min(1.0, a + 0.5 * np.tan(half_angle_rad))
    a2 = np.float32(a_wide * a_wide)
    d = a2 / (np.pi * (nh * nh * (a2 - 1.0) + 1.0) ** 2)
    d *= np.float32((a / a_wide) ** 2)    # a wider lobe from a bigger light holds the same energy
    vis = 0.5 / (nl * np.sqrt(nv * nv * (1.0 - a2) + a2) + nv * np.sqrt(nl * nl * (1.0 - a2) + a2) + 1e-7)
    fresnel = f0 + (1.0 - f0) * (1.0 - vh) ** 5
    return (d * vis * np.float32(fresnel) * nl).astype(np.float32)
