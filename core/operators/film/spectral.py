"""The spectral grid and the spectral data every stage shares: illuminants, observer, densitometers, upsampling.

Grid: 380-780 nm in 10 nm steps (41 samples), the grid of the densitometer responses that ship with
spectral-film-lut (ISO 5-3 Status A and Status M, each normalised to unit sum). Dye densities and sensitivities
are smooth at that scale; sums over the grid stand for the integrals (the common step cancels in every ratio).

Spectral upsampling (Mallett & Yuksel 2019, "Spectral primary decomposition for rendering with sRGB
reflectance"): a linear sRGB triplet becomes the reflectance S(λ) = r·B_r(λ) + g·B_g(λ) + b·B_b(λ), with the
three basis spectra chosen so that S reproduces the triplet under D65 for the CIE 1931 observer, stays within
[0, 1] for every colour inside the sRGB gamut, and B_r + B_g + B_b = 1 (so a neutral is a flat spectrum). Being
linear, the exposure of a film layer to such a scene is a 3×3 matrix of the linear RGB (see `exposure_matrix`).
The basis comes from colour-science (`MSDS_BASIS_FUNCTIONS_sRGB_MALLETT2019`, 5 nm; every other sample here).
"""
from __future__ import annotations

import functools
from typing import Dict, Optional

import numpy as np

from ...imaging import colorimetry

WAVELENGTHS = np.arange(380.0, 781.0, 10.0)   # nm
N_LAMBDA = len(WAVELENGTHS)
DAYLIGHT_MIN_K = 4000.0                       # CIE D series below this is undefined: a black body instead


def resample(table: Dict[float, float], outside: Optional[float] = None) -> np.ndarray:
    """A digitised curve {nm: value} on the grid (linear interpolation). Outside the digitised range the end
    values are held (`outside` None: densities keep absorbing past the last point read off the chart) or the
    given constant is used (a sensitivity is 0 where the chart shows nothing)."""
    x = np.array(sorted(table), np.float64)
    y = np.array([table[k] for k in sorted(table)], np.float64)
    out = np.interp(WAVELENGTHS, x, y)
    if outside is not None:
        out[(WAVELENGTHS < x[0]) | (WAVELENGTHS > x[-1])] = outside
    return out


def log_sensitivity(table: Dict[float, float]) -> np.ndarray:
    """Relative spectral sensitivity 10^(log sensitivity) on the grid, 0 outside the digitised range."""
    return np.where(_inside(table), 10.0 ** resample(table), 0.0)


def _inside(table) -> np.ndarray:
    keys = sorted(table)
    return (WAVELENGTHS >= keys[0] - 1e-6) & (WAVELENGTHS <= keys[-1] + 1e-6)


@functools.lru_cache(maxsize=16)
def illuminant(kelvin: float) -> np.ndarray:
    """Relative spectral power of a light of colour temperature `kelvin`: the CIE D series (daylight) from
    4000 K up, a black body below (tungsten 3200 K, a printer lamp). Normalised to unit mean."""
    colour = colorimetry.colour_module()
    k = float(kelvin)
    if k >= DAYLIGHT_MIN_K:
        xy = colorimetry.cct_to_xy(k, "daylight")
        sd = colour.sd_CIE_illuminant_D_series(xy)
    else:
        sd = colour.sd_blackbody(k)
    values = np.asarray(sd.copy().align(colour.SpectralShape(380, 780, 10)).values, np.float64)
    values = np.interp(WAVELENGTHS, np.arange(380.0, 781.0, 10.0), values)
    return values / values.mean()


@functools.lru_cache(maxsize=1)
def cmfs() -> np.ndarray:
    """(41, 3) CIE 1931 2° colour-matching functions x̄, ȳ, z̄."""
    colour = colorimetry.colour_module()
    c = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    return np.stack([np.interp(WAVELENGTHS, c.wavelengths, c.values[:, k]) for k in range(3)], axis=1)


@functools.lru_cache(maxsize=1)
def mallett_basis() -> np.ndarray:
    """(41, 3) reflectance basis spectra for linear sRGB r, g, b (rows sum to 1)."""
    colour = colorimetry.colour_module()
    b = colour.recovery.MSDS_BASIS_FUNCTIONS_sRGB_MALLETT2019
    out = np.stack([np.interp(WAVELENGTHS, b.wavelengths, b.values[:, k]) for k in range(3)], axis=1)
    return out / out.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=4)
def densitometer(kind: str) -> np.ndarray:
    """(41, C) spectral responses of a densitometer, each column summing to 1, so that the density of a
    spectral transmittance T is D = -log10(Σ_λ w(λ) T(λ)).

    'status_m' (negatives, read for printing) and 'status_a' (prints and slides, read for viewing) are the ISO
    5-3 responses shipped with spectral-film-lut; 'bw' and 'visual' are one channel weighted by the luminous
    efficiency ȳ(λ) (silver is neutral, so any weighting reads it alike)."""
    if kind in ("status_m", "status_a"):
        from . import stocks
        table = stocks.densitometry()[kind]
        return np.asarray(table, np.float64) / np.asarray(table, np.float64).sum(axis=0, keepdims=True)
    if kind in ("bw", "visual"):
        y = cmfs()[:, 1:2].copy()
        return y / y.sum()
    raise ValueError(f"unknown densitometer {kind}")


def density(spectral_density: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Densitometer reading(s) of spectral densities (..., 41) through weights (41, C): (..., C)."""
    t = 10.0 ** (-np.asarray(spectral_density, np.float64))
    return -np.log10(np.maximum(t @ weights, 1e-30))


def exposure_matrix(sensitivities: np.ndarray, kelvin: float) -> np.ndarray:
    """(L, 3) matrix taking linear sRGB (the scene's reflectances, lit by a light of `kelvin`) to the relative
    exposure of each of the L layers with spectral sensitivities (L, 41):

        A[i, k] = Σ_λ B_k(λ) I(λ) s_i(λ) / Σ_λ I(λ) s_i(λ),

    so a neutral of reflectance v exposes every layer to v (rows sum to 1): the scene is lit by the light the
    stock is balanced for, and each layer's speed is in its characteristic curve, not here."""
    light = illuminant(kelvin)
    s = np.asarray(sensitivities, np.float64) * light[None, :]
    return (s @ mallett_basis()) / s.sum(axis=1, keepdims=True)


def xyz_of(transmittance: np.ndarray, light: np.ndarray) -> np.ndarray:
    """XYZ (..., 3) of spectral transmittances/reflectances (..., 41) seen under `light` (41,), scaled so that
    a perfect white has Y = 1."""
    c = cmfs()
    weights = c * light[:, None]
    return (np.asarray(transmittance) @ weights) / float(weights[:, 1].sum())
