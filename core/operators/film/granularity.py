"""Granularity per dye layer, from the datasheet: the RMS density fluctuation each layer's dye carries.

The sheet's granularity chart gives, per channel, the RMS granularity σ_ch (diffuse density, read through a
48 µm circular aperture) against the channel's density on a grey wedge. On film the dye clouds of the three
layers form independently, so the grain is independent per layer in dye amount c_j, and a densitometer channel
sees all three through the dye overlap: to first order
    σ_ch² = Σ_j J_ch,j² σ_j²,        J_ch,j = ∂D_ch/∂c_j  (the same Jacobian as in dyes.analytical).
At every step of the wedge that 3×3 system is solved for the layers' σ_j² (non-negative least squares by
elimination of negative components), giving σ_j as a function of the layer's own dye amount c_j. The channels'
grain is then correlated through the overlap, as on film.

Scale. Where the sheet quotes one RMS granularity figure (×1000, "at a net diffuse density of 1.0 above D-min,
48 µm aperture", visual density for colour films), every σ_j is scaled so that the visual density of the grey
wedge at net 1.0 has exactly that RMS; the chart then only sets how grain varies with density and between
layers. (The charts in spectral-film-lut 0.18.13 are shared templates: all colour negatives carry one chart,
all slides another.) Without a quoted figure the chart is used as it is.
"""
from __future__ import annotations

import numpy as np

from . import spectral

NET_DENSITY = 1.0     # the quoted RMS is read at this net visual density above D-min


def _jacobian(spec: np.ndarray, dyes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, C, L) ∂D_ch/∂c_j at spectral densities spec (N, 41)."""
    t = 10.0 ** (-spec)
    wt = t[:, :, None] * weights[None, :, :]                  # (N, 41, C)
    return np.einsum("nlc,jl->ncj", wt, dyes) / wt.sum(axis=1)[:, :, None]


def _nonneg_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x ≥ 0 minimising |a x - b| for a small square a (drop the most negative component and re-solve)."""
    active = list(range(a.shape[1]))
    x = np.zeros(a.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        if np.all(sol >= 0):
            x[active] = sol
            return x
        active.pop(int(np.argmin(sol)))
    return x


def layer_sigma(sheet, curves, d_min: np.ndarray, dyes: np.ndarray, weights: np.ndarray):
    """(σ (L, N) of each layer's dye amount along the wedge, scale applied, the visual RMS×1000 at net 1.0
    before scaling, visual net density grid) — σ on the same log-exposure grid as `curves`."""
    layers, n = curves.c.shape
    if not sheet.granularity:
        return None, None
    spec = d_min[None, :] + curves.c.T @ dyes                 # (N, 41) the grey wedge
    channel = spectral.density(spec, weights)                 # (N, C)
    sig_ch = np.stack([np.interp(channel[:, i], *sheet.granularity[min(i, len(sheet.granularity) - 1)])
                       for i in range(layers)], axis=1)       # (N, C)
    if layers == 1:
        sig = sig_ch.T.copy()
    else:
        jac = _jacobian(spec, dyes, weights)
        var = np.stack([_nonneg_solve(jac[k] ** 2, sig_ch[k] ** 2) for k in range(n)])
        sig = np.sqrt(var).T
    visual = spectral.densitometer("visual")
    d_vis = spectral.density(spec, visual)[:, 0]
    jv = _jacobian(spec, dyes, visual)[:, 0, :]               # (N, L)
    sig_vis = np.sqrt(np.sum((jv * sig.T) ** 2, axis=1))
    net = d_vis - d_vis.min()
    order = np.argsort(net, kind="stable")
    at_one = float(np.interp(NET_DENSITY, net[order], sig_vis[order]))
    if sheet.rms and at_one > 0:
        sig = sig * (sheet.rms / 1000.0 / at_one)
    return sig, at_one * 1000.0


def visual_wedge(curves, d_min, dyes):
    """(net visual density (N,), spectral densities (N, 41)) of the grey wedge."""
    spec = d_min[None, :] + curves.c.T @ dyes
    d_vis = spectral.density(spec, spectral.densitometer("visual"))[:, 0]
    return d_vis - d_vis.min(), spec
