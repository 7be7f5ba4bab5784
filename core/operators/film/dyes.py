"""Dye spectra and the analytical density of each layer.

A colour film holds three dyes (cyan, magenta, yellow: formed in the red-, green- and blue-sensitive layers).
Its spectral density is
    D(λ) = D_min(λ) + Σ_i c_i ε_i(λ),
with c_i the amount of dye i ("analytical density") and ε_i its unit spectral density, scaled here so that a
unit of dye i alone reads density 1 on densitometer channel i. A characteristic curve on the datasheet is
measured with a densitometer (Status M for negatives, Status A for prints and slides) on a grey wedge: its
three channel densities D_ch = -log10(Σ_λ w_ch(λ) 10^(-D(λ))) each mix all three dyes (every dye absorbs a
little outside its band). `analytical` inverts that reading exactly, by Newton's method, so the pipeline's
grey wedge reads the datasheet's curves back (tests/test_film.py).

Many negative datasheets give only D_min(λ) and the spectral density of a mid-scale neutral, not the dyes.
`fit_dyes` then splits (mid-scale neutral - D_min) into three dyes of measured shape: those of a Kodak negative
whose sheet gives them (Vision3 250D), each moved in wavelength and scaled to fit that stock's own neutral.

Colour negatives are masked (`masked`): their coloured couplers cancel the dyes' unwanted absorptions, so the
net dyes the print sees are cleaner than the dyes themselves.

Black-and-white: silver is neutral, ε = 1 at every wavelength.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import spectral

LN10 = np.log(10.0)
NEWTON_STEPS = 30
SHIFTS = np.arange(-30.0, 31.0, 2.0)   # nm: how far each template dye may move to fit a stock's neutral
FIT_ROUNDS = 4
TEMPLATE_STOCK = "vision3-250d"        # a colour negative whose sheet gives its three dyes (Kodak 5207)


def _shifted(curve: np.ndarray, shift_nm: float) -> np.ndarray:
    """curve(λ - shift) on the grid (edge values held)."""
    return np.interp(spectral.WAVELENGTHS - shift_nm, spectral.WAVELENGTHS, curve)


def fit_dyes(d_ref: np.ndarray, d_min: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(3, 41) dyes (cyan, magenta, yellow) for a stock whose sheet gives only its minimum and mid-scale neutral
    spectra: the template's measured dye shapes, each moved in wavelength (±30 nm) and scaled (≥ 0) so that
    their sum fits d_ref - d_min in least squares (coordinate search over the shifts, amounts solved for
    every candidate at once)."""
    target = np.asarray(d_ref, np.float64) - np.asarray(d_min, np.float64)
    cands = [np.stack([_shifted(template[j], sh) for sh in SHIFTS]) for j in range(3)]   # (S, 41) each
    pick = [len(SHIFTS) // 2] * 3

    def solve(basis):                                    # basis (K, 41, 3) -> errors (K,), amounts (K, 3)
        gram = np.einsum("kla,klb->kab", basis, basis) + 1e-12 * np.eye(3)
        rhs = np.einsum("kla,l->ka", basis, target)
        amounts = np.maximum(np.linalg.solve(gram, rhs[:, :, None])[:, :, 0], 0.0)
        err = np.sum((np.einsum("kla,ka->kl", basis, amounts) - target) ** 2, axis=1)
        return err, amounts

    for _ in range(FIT_ROUNDS):
        for k in range(3):
            fixed = [cands[j][pick[j]] for j in range(3)]
            basis = np.repeat(np.stack(fixed, axis=1)[None], len(SHIFTS), axis=0)
            basis[:, :, k] = cands[k]
            err, _ = solve(basis)
            pick[k] = int(np.argmin(err))
    basis = np.stack([cands[j][pick[j]] for j in range(3)], axis=1)[None]
    _, amounts = solve(basis)
    return np.stack([amounts[0, j] * cands[j][pick[j]] for j in range(3)])


def unit_readings(dyes: np.ndarray, weights: np.ndarray, amount: float = 0.1) -> np.ndarray:
    """M[ch, j]: density per unit of dye j read on channel ch (a small amount alone, linearised)."""
    return np.stack([spectral.density(amount * dyes[j][None], weights)[0] / amount for j in range(len(dyes))],
                    axis=1)


def masked(dyes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The net dyes of a masked colour negative. Colour negatives carry coloured couplers (the orange mask): the
    magenta-forming layer's is yellow, the cyan-forming layer's reddish, and each is used up where its dye
    forms, so the dye's unwanted absorptions (magenta's in the blue, cyan's in the green and blue) are cancelled
    by the mask it destroys; the mask itself is in D_min. Net dyes:
        ε'_M = ε_M − e ε_Y,          e = M[B, M] / M[B, Y],
        ε'_C = ε_C − a ε_M − b ε_Y,  (a, b) solving M[(G, B), (M, Y)] (a, b) = M[(G, B), C],
    so that ε'_C reads nothing on G and B and ε'_M nothing on B (M = unit_readings)."""
    m = unit_readings(dyes, weights)
    cyan, magenta, yellow = dyes
    e = m[2, 1] / m[2, 2]
    magenta_net = magenta - e * yellow
    ab = np.linalg.solve(m[1:, 1:], m[1:, 0])
    cyan_net = cyan - ab[0] * magenta - ab[1] * yellow
    return np.stack([cyan_net, magenta_net, yellow])


def normalise(dyes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Scale each dye so that one unit of it alone reads density 1 on its own densitometer channel."""
    out = []
    for i, eps in enumerate(np.asarray(dyes, np.float64)):
        eps = np.maximum(eps, 0.0)
        # density of s·ε on channel i is monotone in s: bisection on the scale s
        lo, hi = 0.0, 1.0
        while spectral.density(hi * eps, weights[:, i:i + 1])[0] < 1.0 and hi < 1e6:
            hi *= 2.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if spectral.density(mid * eps, weights[:, i:i + 1])[0] < 1.0:
                lo = mid
            else:
                hi = mid
        out.append(eps * 0.5 * (lo + hi))
    return np.stack(out)


def analytical(channel_density: np.ndarray, d_min: np.ndarray, dyes: np.ndarray, weights: np.ndarray,
               start: Optional[np.ndarray] = None, floor: Optional[float] = 0.0) -> np.ndarray:
    """Dye amounts c (N, L) whose spectral density D_min + c·ε reads `channel_density` (N, L) on the
    densitometer `weights` (41, L). Newton's method on
        f(c) = -log10(wᵀ 10^-(D_min + εᵀc)) - D,   ∂f_ch/∂c_j = Σ_λ w_ch T ε_j / Σ_λ w_ch T,
    c kept at or above `floor` (None: unbounded)."""
    target = np.atleast_2d(np.asarray(channel_density, np.float64))
    n, layers = target.shape
    c = np.zeros((n, layers)) if start is None else np.array(start, np.float64, copy=True)
    for _ in range(NEWTON_STEPS):
        spec = d_min[None, :] + c @ dyes                         # (N, 41)
        t = 10.0 ** (-spec)
        wt = t[:, :, None] * weights[None, :, :]                 # (N, 41, L)
        s = wt.sum(axis=1)                                       # (N, L)
        f = -np.log10(np.maximum(s, 1e-30)) - target
        jac = np.einsum("nlc,jl->ncj", wt, dyes) / s[:, :, None]  # (N, L ch, L dye)
        step = np.linalg.solve(jac, f[:, :, None])[:, :, 0]
        c = c - step
        if floor is not None:
            c = np.maximum(c, floor)
        if np.max(np.abs(step)) < 1e-9:
            break
    return c


def colour_model(sheet, weights: np.ndarray, minima: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(dyes (3, 41) normalised, D_min (41,)) for a colour datasheet whose channel curves start at `minima`.

    D_min(λ) is the sheet's own where it gives one, moved by a dye combination (of either sign) so that it
    reads exactly the curves' minimum densities: the curves and the spectra were digitised from different
    charts, and the curve is what the test holds the pipeline to."""
    if sheet.dyes is not None:
        dyes = sheet.dyes
    else:
        from . import stocks
        template = normalise(stocks.camera_datasheet(TEMPLATE_STOCK).dyes, weights)
        dyes = fit_dyes(sheet.d_ref, sheet.d_min, template)
    dyes = normalise(dyes, weights)
    if sheet.kind == "negative":
        dyes = masked(dyes, weights)
    base = np.zeros(spectral.N_LAMBDA) if sheet.d_min is None else np.maximum(sheet.d_min, 0.0)
    shift = analytical(minima[None, :], base, dyes, weights, floor=None)[0]
    d_min = np.maximum(base + shift @ dyes, 0.0)
    return dyes, d_min
