"""Grain fields: resolution-independent, seeded, position-hashed random fields of a physical size.

Model. On the film, a layer's grain is a stationary random density field f(x) (x in µm on the frame): white
noise w of unit spectral density filtered by a Gaussian dye cloud h_g of standard deviation σ_g,
    f = G · (w ∗ h_g),     ∫ h_g = 1,
so its autocovariance is G² times the Gaussian of variance 2σ_g², and G² = ∫ C(r) d²r is the Selwyn
granularity: read through an aperture of area A much larger than the grain, the RMS density is G / sqrt(A).
`unit_field` scales G so that the field's RMS through the 48 µm circular aperture of the datasheets is exactly
1 (`aperture_variance` integrates the covariance against the aperture's own autocorrelation, so it holds for
any grain size, not only in Selwyn's limit); multiplied by the sheet's RMS granularity it is that layer's grain.

Pixels. A pixel of pitch p µm averages the field over its square, so two pixels m apart (per axis) covary by
G² c1(m_x) c1(m_y) with c1 the dye cloud's autocorrelation weighted by the triangle of two overlapping pixel
boxes (`pixel_covariance`). Each pixel draws one unit normal n_j and the field at pixel i is
    f_i = (G / p) Σ_j n_j κ[i - j]   (κ⊗κ, separable),
κ the spectral factor of that covariance (`pixel_kernel`), so the pixels have exactly the covariance of the
continuous field averaged over them. With σ_g ≪ p, κ is a single tap and the pixel RMS is G / p (Selwyn at the
pixel's aperture); with σ_g ≫ p it samples the continuous field. Either way the same frame rendered at 6 MP and
24 MP and brought to one size has the same grain (tests/test_film.py): grain sizes and amplitudes are physical,
not per pixel.

Randomness. The normals come in cells of CELL_H×CELL_W pixels on the infinite plane, each drawn from its own
generator seeded by a hash of (seed, layer, cell row, cell column): any region, rendered whole or in strips or
tiles, gets the same numbers at the same positions, so tiles have no seams and the same seed gives the same
bytes whatever the thread count.
"""
from __future__ import annotations

import functools
import math
from typing import Tuple

import numpy as np

APERTURE_UM = 48.0        # the datasheets' granularity aperture (diameter)
CELL_H, CELL_W = 32, 256  # pixels per noise cell
KERNEL_SIGMAS = 3.5       # the dye-cloud kernel is cut at ±3.5 σ_g (plus the pixel)
_MASK64 = (1 << 64) - 1


def sigma_of_size(size_um: float) -> float:
    """σ_g of a Gaussian dye cloud with the second moment of a disc of diameter `size_um` (d / 2√2)."""
    return max(float(size_um), 0.0) / (2.0 * math.sqrt(2.0))


@functools.lru_cache(maxsize=64)
def aperture_variance(sigma_um: float, aperture_um: float = APERTURE_UM) -> float:
    """Variance, through a circular aperture of diameter `aperture_um`, of the field with G = 1:
        ∫_0^{2R} C(r) · O(r) / A² · 2πr dr,   C(r) = exp(-r² / 4σ²) / (4πσ²),
    O(r) = 2R² acos(r / 2R) - (r / 2) sqrt(4R² - r²) the overlap of two apertures r apart, A = πR².
    σ → 0 gives 1 / A (Selwyn)."""
    radius = 0.5 * aperture_um
    area = math.pi * radius * radius
    if sigma_um <= 1e-6:
        return 1.0 / area
    t = np.linspace(0.0, 1.0, 20001)
    r = 2.0 * radius * t * t                      # dense near 0, where a small grain's covariance lives
    dr = 4.0 * radius * t
    cov = np.exp(-r * r / (4.0 * sigma_um ** 2)) / (4.0 * math.pi * sigma_um ** 2)
    x = np.clip(r / (2.0 * radius), 0.0, 1.0)
    overlap = 2.0 * radius ** 2 * np.arccos(x) - 0.5 * r * np.sqrt(np.maximum(4.0 * radius ** 2 - r * r, 0.0))
    return float(np.trapezoid(cov * overlap / area ** 2 * 2.0 * math.pi * r * dr, t))


def selwyn_for_unit_rms(sigma_um: float) -> float:
    """G of the field whose RMS through the 48 µm aperture is 1."""
    return 1.0 / math.sqrt(aperture_variance(sigma_um))


@functools.lru_cache(maxsize=64)
def pixel_covariance(sigma_um: float, pitch_um: float, reach: int) -> np.ndarray:
    """c1(m) p for m = -reach..reach: the exact covariance, per axis, of the field's averages over two pixels m
    apart, with G = 1 and in units of 1/p:
        c1(m) = (1/p) ∫ g(u) Λ(u/p − m) du,   g = N(0, 2σ²) (the dye cloud's autocorrelation),
    Λ the unit triangle (the overlap of two pixel boxes)."""
    m = np.arange(-reach, reach + 1, dtype=np.float64)
    s = math.sqrt(2.0) * sigma_um / pitch_um                 # g's σ in pixels
    u = np.linspace(-reach - 1.0, reach + 1.0, 40 * (2 * reach + 2) + 1)
    g = np.exp(-0.5 * (u / s) ** 2) / (math.sqrt(2.0 * math.pi) * s)
    tri = np.clip(1.0 - np.abs(u[None, :] - m[:, None]), 0.0, None)
    return np.trapezoid(g[None, :] * tri, u, axis=1)


@functools.lru_cache(maxsize=64)
def pixel_kernel(sigma_um: float, pitch_um: float) -> np.ndarray:
    """1-D taps κ (float32) whose autocorrelation is the pixels' exact covariance (`pixel_covariance`): the
    zero-phase spectral factor κ = IDFT(sqrt(DFT(c1·p))). White noise filtered by κ⊗κ and scaled by G/p then has
    exactly the covariance of the continuous field averaged over pixels, at any pitch: this is what makes 6 MP
    and 24 MP agree. A grain much smaller than a pixel gives κ = δ (Selwyn at the pixel's aperture)."""
    if sigma_um <= 1e-6 or pitch_um <= 0 or sigma_um / pitch_um < 0.02:
        return np.ones(1, np.float32)
    reach = int(math.ceil(KERNEL_SIGMAS * math.sqrt(2.0) * sigma_um / pitch_um + 1.0))
    cov = pixel_covariance(sigma_um, pitch_um, 2 * reach)
    n = 8 * len(cov)
    grid = np.zeros(n)
    half = len(cov) // 2
    grid[:half + 1] = cov[half:]
    grid[-half:] = cov[:half]
    power = np.maximum(np.real(np.fft.fft(grid)), 0.0)
    kappa = np.real(np.fft.ifft(np.sqrt(power)))
    taps = np.concatenate([kappa[-reach:], kappa[:reach + 1]])
    taps *= math.sqrt(cov[half] / float(np.sum(taps * taps)))    # exact variance after cutting the tails
    return taps.astype(np.float32)


def _cell_seed(seed: int, layer: int, cy: int, cx: int) -> int:
    """splitmix64 over the cell's identity (negative cell indices are fine: cells tile the whole plane)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + layer * 0xD1B54A32D192ED03 + cy * 0x8CB92BA72F3D8DD7
         + cx * 0xABC98388FB8FAC03) & _MASK64
    for _ in range(2):
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
        x ^= x >> 31
    return x & ((1 << 63) - 1)


def normals(seed: int, layer: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Unit normals for pixel rows y0..y1-1 and columns x0..x1-1 of the plane (float32), cell by cell."""
    import torch

    out = np.empty((y1 - y0, x1 - x0), np.float32)
    for cy in range(y0 // CELL_H, (y1 - 1) // CELL_H + 1):          # floor division: negative rows too
        for cx in range(x0 // CELL_W, (x1 - 1) // CELL_W + 1):
            gen = torch.Generator().manual_seed(_cell_seed(seed, layer, cy, cx))
            cell = torch.randn(CELL_H, CELL_W, generator=gen).numpy()
            ya, yb = max(y0, cy * CELL_H), min(y1, (cy + 1) * CELL_H)
            xa, xb = max(x0, cx * CELL_W), min(x1, (cx + 1) * CELL_W)
            out[ya - y0:yb - y0, xa - x0:xb - x0] = cell[ya - cy * CELL_H:yb - cy * CELL_H,
                                                          xa - cx * CELL_W:xb - cx * CELL_W]
    return out


def unit_field(seed: int, layer: int, rows: Tuple[int, int], cols: Tuple[int, int], pitch_um: float,
               sigma_um: float) -> np.ndarray:
    """The layer's grain field, RMS 1 through the 48 µm aperture, at pixels rows[0]..rows[1]-1 ×
    cols[0]..cols[1]-1 (absolute positions in the frame) of pitch `pitch_um`."""
    import cv2

    k = pixel_kernel(sigma_um, pitch_um)
    r = len(k) // 2
    (y0, y1), (x0, x1) = rows, cols
    n = normals(seed, layer, y0 - r, y1 + r, x0 - r, x1 + r)
    if r:
        n = cv2.sepFilter2D(n, -1, k, k, borderType=cv2.BORDER_CONSTANT)[r:-r, r:-r]
    scale = selwyn_for_unit_rms(sigma_um) / pitch_um
    return np.multiply(n, np.float32(scale), out=np.ascontiguousarray(n))


def pixel_rms(sigma_um: float, pitch_um: float) -> float:
    """Expected RMS of `unit_field` at one pixel: (G / p) · Σ k² (2-D)."""
    k = pixel_kernel(sigma_um, pitch_um).astype(np.float64)
    return selwyn_for_unit_rms(sigma_um) / pitch_um * float(np.sum(k * k))
