"""Baking a stock (and its print) into the tables the per-pixel pipeline reads: the `Look`.

Per pixel (render.py) the pipeline is
    linear sRGB --(3×3, spectral)--> layer exposure --(halation)--> log10 H --(curves)--> dye amounts c
        --(+ grain)--> 3-D LUT(c) --> display sRGB.
What depends only on the stock is computed here once:

1. Exposure matrix (spectral.exposure_matrix): the scene as Mallett-Yuksel reflectances lit by the stock's
   balance light (D55 for daylight stocks, a 3200 K black body for tungsten stocks) through each layer's
   spectral sensitivity.
2. Curves (sensitometry.build): each layer's dye amount against log exposure.
3. Granularity (granularity.layer_sigma): each layer's RMS dye-amount fluctuation at 48 µm against its amount.
4. The LUT over the dye amounts, (S, S, S, 3) for colour negatives and slides, (S, 3) for black-and-white:
   - negative -> print: the negative's spectral transmittance T(λ) = 10^-(D_min + Σ c_i ε_i) filters a 3200 K
     printer lamp L(λ) onto the print's layers, H_j = k_j Σ L T s_j / Σ L s_j; the print's curves give its dye
     amounts, its dyes its spectral density D_p(λ); viewed under the print's viewing light V (its
     projection_kelvin), XYZ = Σ V 10^-D_p x̄ȳz̄ / Σ V ȳ. The printer lights k_j are "timed" (Newton on log k)
     so that an 18 % grey exposed at box speed prints as a neutral of 18 % of the print's white.
   - slide: the slide itself, D(λ) = D_min + Σ c_i ε_i, viewed the same way (no timing: the slide is the
     picture).
   - scan: a neutral scan of the negative: each Status M channel inverted about the grey's density with the
     channel's own mid-tone contrast γ, v = 0.18·10^((D - D_grey)/γ), highlights rolled off softly.
   Display: XYZ relative to the print's (slide's) own white, its minimum density, adapted from that white's
   chromaticity to D65 (CAT16, full adaptation, as the eye adapts to the paper or the screen), linear sRGB,
   clipped at 0, sRGB-encoded.
   Grey balance (`Balance`): per-layer corrections of the red and blue dye amounts (at most 0.2 density
   on the stocks here) so that a grey scale renders neutral, as the printing system or the reversal film is
   designed to; reported as grey_balance_max_density.
5. Interimage κ: the sheet's colour-masking figure (slides: 0.3-0.5; none given for negatives) becomes the
   gain of colour differences in log exposure before the curves (DIR-coupler interimage effects; render.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from ...imaging import colorimetry
from ...imaging.color import linear_to_srgb
from . import dyes as dye_model
from . import granularity, sensitometry, spectral, stocks

PRINTER_KELVIN = 3200.0     # tungsten-halogen printer and enlarger lamps
GREY = sensitometry.GREY
TIMING_STEPS = 12
BALANCE_STEPS = 10
BALANCE_DAMPING = 10.0      # ΔE that a grey-balance correction of 1 density costs (0.1 density ~ 1 ΔE)
SCAN_WHITE = 2.0            # the neutral scan's soft shoulder: linear values near this roll off toward 1
DEFAULT_LUT_SIZE = 65
CHUNK = 1 << 15             # LUT points per pass of the spectral computation
# Dye-cloud size (µm) ~ GRAIN_SIZE_PER_SQRT_RMS · sqrt(RMS × 1000): coarser stocks have larger clumps. An
# empirical scale: about 7 µm for Portra 400 and 14 µm for Tri-X, what 4000 dpi scans of them show.
GRAIN_SIZE_PER_SQRT_RMS = 3.5


@dataclass
class Emulsion:
    """One film's spectral model: dyes (L, 41), D_min (41,), curves, densitometer weights."""
    sheet: Any
    dyes: np.ndarray
    d_min: np.ndarray
    weights: np.ndarray
    curves: sensitometry.Curves


def emulsion(sheet) -> Emulsion:
    weights = spectral.densitometer(sheet.density_measure)
    minima = np.array([y.min() for _, y in sheet.curves])
    if sheet.layers == 3:
        dyes, d_min = dye_model.colour_model(sheet, weights, minima)
    else:
        dyes, d_min = np.ones((1, spectral.N_LAMBDA)), np.full(spectral.N_LAMBDA, float(minima[0]))
    return Emulsion(sheet, dyes, d_min, weights, sensitometry.build(sheet, weights, dyes, d_min))


@dataclass
class Look:
    """Everything the per-pixel pipeline needs for one stock through one print (or none: grain only)."""
    stock: str
    print_id: str
    layers: int
    matrix: np.ndarray            # (L, 3) linear sRGB -> relative layer exposure
    log_h_grey: float             # log10 H of an 18 % grey at box speed
    curve_h0: float
    curve_step: float
    curves: np.ndarray            # (L, N) dye amount per log H sample
    lut: np.ndarray               # (S,)*L + (3,) display sRGB over the dye-amount box
    lut_lo: np.ndarray            # (L,) dye amount at the LUT's first sample
    lut_hi: np.ndarray            # (L,) ... at its last
    grain_c0: np.ndarray          # (L,) first dye amount of the granularity table
    grain_step: np.ndarray        # (L,)
    grain: np.ndarray             # (L, M) RMS dye-amount fluctuation at 48 µm against the layer's own amount
    grain_size_um: float          # the stock's dye-cloud size
    interimage: float = 0.0       # κ: log-exposure colour differences gain (1 + κ) before the curves (DIR)
    info: Dict[str, Any] = field(default_factory=dict)
    bake_seconds: float = 0.0     # time this process spent baking it (0: read from the cache)

    def arrays(self) -> Dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k)) for k in ARRAY_FIELDS}


ARRAY_FIELDS = ("matrix", "curves", "lut", "lut_lo", "lut_hi", "grain_c0", "grain_step", "grain")
SCALAR_FIELDS = ("stock", "print_id", "layers", "log_h_grey", "curve_h0", "curve_step", "grain_size_um",
                 "interimage")


# ---------------------------------------------------------------------------------------------------------------
# Display


def _display(xyz: np.ndarray, white_xyz: np.ndarray) -> np.ndarray:
    """XYZ of a print or slide (…, 3) relative to its own white -> linear sRGB (white = 1, 1, 1)."""
    rel = xyz / white_xyz[1]
    adapt = colorimetry.adaptation_matrix_xy(colorimetry.xyz_to_xy(white_xyz), colorimetry.srgb_white_xy())
    return rel @ (adapt @ colorimetry.xyz_to_linear_srgb_matrix()).T


class Viewer:
    """A film (print or slide) seen under its viewing light: dye amounts -> linear sRGB."""

    def __init__(self, em: Emulsion):
        self.em = em
        self.light = spectral.illuminant(em.sheet.projection_kelvin)
        self.white = spectral.xyz_of(10.0 ** (-em.d_min), self.light)

    def linear(self, c: np.ndarray) -> np.ndarray:
        spec = self.em.d_min + np.asarray(c, np.float64) @ self.em.dyes
        return _display(spectral.xyz_of(10.0 ** (-spec), self.light), self.white)


class Printer:
    """A negative printed onto a print film or paper: negative dye amounts -> the print's dye amounts."""

    def __init__(self, negative: Emulsion, paper: Emulsion):
        self.neg, self.paper = negative, paper
        lamp = spectral.illuminant(PRINTER_KELVIN)
        s = paper.sheet.sensitivity * lamp[None, :]
        self.response = (s / s.sum(axis=1, keepdims=True)).T        # (41, Lp): T -> relative print exposure
        self.log_k = np.zeros(paper.sheet.layers)
        self.viewer = Viewer(paper)
        self.balance: Optional["Balance"] = None   # grey balance of the negative's layers, set by `bake`

    def print_amounts(self, c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, np.float64)
        if self.balance is not None:
            c = self.balance.apply(c)
        spec = self.neg.d_min + c @ self.neg.dyes
        exposure = (10.0 ** (-spec)) @ self.response                  # (…, Lp)
        log_h = np.log10(np.maximum(exposure, 1e-30)) + self.log_k
        return self.paper.curves.dye_at(log_h)

    def linear(self, c: np.ndarray) -> np.ndarray:
        out = self.viewer.linear(self.print_amounts(c))
        return np.repeat(out.mean(axis=-1, keepdims=True), 3, axis=-1) if self.paper.sheet.layers == 1 else out

    def time(self, c_grey: np.ndarray) -> None:
        """Printer lights: Newton on log k so that the grey negative prints to a neutral of 18 % (black-and-
        white paper: one light, luminance only)."""
        lp = self.paper.sheet.layers
        # Start where the grey's print exposure sits mid-way up each print curve.
        grid = self.paper.curves.log_h
        mid = [float(np.interp(0.5 * (self.paper.curves.c[j].max()), self.paper.curves.c[j], grid))
               for j in range(lp)]
        spec = self.neg.d_min + np.asarray(c_grey, np.float64) @ self.neg.dyes
        base = np.log10((10.0 ** (-spec)) @ self.response)
        self.log_k = np.array(mid) - base
        target = math.log10(GREY)

        def residual(log_k):
            self.log_k = log_k
            rgb = np.maximum(self.linear(c_grey[None, :])[0], 1e-9)
            return np.log10(rgb if lp == 3 else rgb[:1]) - target

        for _ in range(TIMING_STEPS):
            k0 = self.log_k.copy()
            r0 = residual(k0)
            if np.max(np.abs(r0)) < 1e-6:
                break
            jac = np.empty((lp, lp))
            for j in range(lp):
                dk = k0.copy()
                dk[j] += 1e-3
                jac[:, j] = (residual(dk) - r0) / 1e-3
            step = np.linalg.lstsq(jac, r0, rcond=None)[0]
            self.log_k = k0 - np.clip(step, -1.0, 1.0)
        residual(self.log_k)


class Balance:
    """Grey balance: per-layer corrections Δ_i(c_i) of the dye amounts (red and blue layers, green as it is)
    that make a grey scale render neutral. A printing system, or a reversal film, is designed so that a grey
    scale comes out grey; the digitised curves and spectra are not exact enough to give that by themselves (a
    crossover or cast of a few ΔE otherwise).

    Per wedge step, damped Gauss-Newton on r = (a*, b*, μδ_r, μδ_b): the CIELAB chroma against the medium's own
    white, plus the corrections themselves weighted by BALANCE_DAMPING ΔE per density, so that where the
    medium hardly responds (near its white and its maximum density) nothing large is invented."""

    def __init__(self, render, wedge: np.ndarray):
        k = wedge.shape[0]
        delta = np.zeros((k, 3))
        mu2 = BALANCE_DAMPING ** 2

        def chroma(d):
            lab = colorimetry.linear_srgb_to_lab(np.clip(render(wedge + d), 0.0, None).astype(np.float32))
            return lab[:, 1:].astype(np.float64)

        for _ in range(BALANCE_STEPS):
            r0 = chroma(delta)
            jac = np.empty((k, 2, 2))
            for col, layer in enumerate((0, 2)):
                d = delta.copy()
                d[:, layer] += 1e-3
                jac[:, :, col] = (chroma(d) - r0) / 1e-3
            x = delta[:, [0, 2]]
            lhs = np.einsum("kia,kib->kab", jac, jac) + mu2 * np.eye(2)
            rhs = np.einsum("kia,ki->ka", jac, r0) + mu2 * x
            step = np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]
            delta[:, 0] -= np.clip(step[:, 0], -0.05, 0.05)
            delta[:, 2] -= np.clip(step[:, 1], -0.05, 0.05)
        self.largest = float(np.max(np.abs(delta)))
        self.grids, self.deltas = [], []
        for i in range(3):
            x, idx = np.unique(wedge[:, i], return_index=True)
            self.grids.append(x)
            self.deltas.append(delta[idx, i])

    def apply(self, c: np.ndarray) -> np.ndarray:
        out = np.array(c, np.float64, copy=True)
        for i in (0, 2):
            out[..., i] += np.interp(out[..., i], self.grids[i], self.deltas[i])
        return out


def balanced(render, balance: Balance):
    return lambda c: render(balance.apply(c))


class Scanner:
    """A neutral scan of a negative: each channel inverted about the grey with its own contrast."""

    def __init__(self, em: Emulsion, c_grey: np.ndarray):
        self.em = em
        ch = em.curves.channel                                          # (L, N) Status M along the wedge
        grid = em.curves.log_h
        g = sensitometry.grey_log_exposure(em.sheet)
        self.d_grey = np.array([np.interp(g, grid, ch[i]) for i in range(ch.shape[0])])
        # mid-tone contrast: slope over ±1 stop around the grey
        step = math.log10(2.0)
        self.gamma = np.array([(np.interp(g + step, grid, ch[i]) - np.interp(g - step, grid, ch[i])) / (2 * step)
                               for i in range(ch.shape[0])])
        self.gamma = np.maximum(self.gamma, 0.05)

    def linear(self, c: np.ndarray) -> np.ndarray:
        spec = self.em.d_min + np.asarray(c, np.float64) @ self.em.dyes
        d = spectral.density(spec, self.em.weights)
        v = GREY * 10.0 ** ((d - self.d_grey) / self.gamma)
        # soft shoulder: v / (1 + v / W) rescaled so that the grey stays at 0.18
        out = v / (1.0 + v / SCAN_WHITE) * (1.0 + GREY / SCAN_WHITE)
        return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out


# ---------------------------------------------------------------------------------------------------------------


def _lut(render, lo: np.ndarray, hi: np.ndarray, size: int, progress=None) -> np.ndarray:
    layers = len(lo)
    axes = [np.linspace(lo[i], hi[i], size) for i in range(layers)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, layers)
    out = np.empty((grid.shape[0], 3), np.float32)
    for s in range(0, grid.shape[0], CHUNK):
        lin = render(grid[s:s + CHUNK])
        out[s:s + CHUNK] = np.clip(linear_to_srgb(np.clip(lin, 0.0, None).astype(np.float32)), 0.0, 1.0)
        if progress is not None:
            progress(min(1.0, (s + CHUNK) / grid.shape[0]))
    return out.reshape((size,) * layers + (3,))


def _grain_tables(sheet, em: Emulsion, size: int = 256):
    sig, vis_rms = granularity.layer_sigma(sheet, em.curves, em.d_min, em.dyes, em.weights)
    layers = em.curves.c.shape[0]
    c0 = np.zeros(layers)
    hi = em.curves.c.max(axis=1)
    step = np.maximum(hi, 1e-6) / (size - 1)
    table = np.zeros((layers, size))
    if sig is not None:
        for i in range(layers):
            x, idx = np.unique(em.curves.c[i], return_index=True)
            table[i] = np.interp(c0[i] + step[i] * np.arange(size), x, sig[i][idx])
    return c0, step, table, vis_rms


def bake(stock_id: str, print_choice: str = "auto", size: int = DEFAULT_LUT_SIZE, progress=None) -> Look:
    """The Look of a stock through a print ('auto' = the stock's own, 'scan', or a print id)."""
    st = stocks.stock(stock_id)
    print_id = stocks.resolve_print(st, print_choice)
    sheet = stocks.camera_datasheet(stock_id)
    em = emulsion(sheet)
    log_h_grey = sensitometry.grey_log_exposure(sheet)
    c_grey = em.curves.dye_at(np.full((1, sheet.layers), log_h_grey))[0]
    info: Dict[str, Any] = {"stock_title": st.title, "grey_dye_amounts": [round(float(v), 4) for v in c_grey]}
    # the grey scale from 6 stops under to 8 stops over the grey, as dye amounts
    steps = log_h_grey + math.log10(2.0) * np.linspace(-6.0, 8.0, 57)
    wedge = em.curves.dye_at(np.repeat(steps[:, None], sheet.layers, axis=1))
    balance = None
    if st.kind == "slide":
        render = Viewer(em).linear
        balance = Balance(render, wedge)
        render = balanced(render, balance)
    elif print_id == "scan":
        render = Scanner(em, c_grey).linear
        if sheet.layers == 3:
            balance = Balance(render, wedge)
            render = balanced(render, balance)
    else:
        paper = emulsion(stocks.print_datasheet(print_id))
        printer = Printer(em, paper)
        printer.time(c_grey)
        if sheet.layers == 3 and paper.sheet.layers == 3:
            balance = Balance(printer.linear, wedge)
            printer.balance = balance
            printer.time(c_grey)          # the grey itself moved a little: time again
        render = printer.linear
        info["printer_log_k"] = [round(float(v), 4) for v in printer.log_k]
        info["print_title"] = stocks.print_stock(print_id).title
    info["grey_balance_max_density"] = None if balance is None else round(balance.largest, 4)
    lo = np.zeros(sheet.layers)
    hi = em.curves.c.max(axis=1)
    lut = _lut(render, lo, hi, size, progress)
    grey_out = render(c_grey[None, :])[0]
    info["grey_linear_out"] = [round(float(v), 4) for v in grey_out]
    c0, step, table, vis_rms = _grain_tables(sheet, em)
    info["chart_visual_rms_x1000"] = None if vis_rms is None else round(float(vis_rms), 3)
    info["rms_x1000"] = sheet.rms
    rms = sheet.rms if sheet.rms else (vis_rms or 5.0)
    return Look(stock=stock_id, print_id=print_id, layers=sheet.layers,
                matrix=spectral.exposure_matrix(sheet.sensitivity, sheet.exposure_kelvin).astype(np.float32),
                log_h_grey=float(log_h_grey), curve_h0=em.curves.log_h0, curve_step=em.curves.step,
                curves=em.curves.c.astype(np.float32), lut=lut, lut_lo=lo.astype(np.float32),
                lut_hi=hi.astype(np.float32), grain_c0=c0.astype(np.float32), grain_step=step.astype(np.float32),
                grain=table.astype(np.float32), grain_size_um=float(GRAIN_SIZE_PER_SQRT_RMS * math.sqrt(rms)),
                interimage=float(sheet.interimage if sheet.layers == 3 else 0.0), info=info)
