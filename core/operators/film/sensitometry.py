"""Characteristic curves: exposure of each layer -> its dye amount, on one uniform log-exposure grid.

Exposure. A layer's exposure is H = E·t in lux-seconds; the datasheet's curve gives density against log10 H.
The scene's linear value v (0.18 = a mid-grey card) is placed on that axis by the ISO meter calibration: a
reflected-light meter with K = 12.5 cd·s/m² and a camera with the lens/vignetting factor q = 0.65 (ISO 2720,
ISO 12232) expose the metered mid-grey to
    H_grey = q·K / S = 8.125 / S  lux·s,          S = the stock's ISO speed,
so log10 H = log10(v / 0.18) + log10(8.125 / S) + EV·log10 2, EV = the push/pull in stops (+ = more light).
Sheets whose curves are in stops relative to the normal exposure have their mid-grey at 0.

Curves. The sheet's channel densities are sampled on one grid of log10 H, held flat beyond the digitised
ends (base + fog below the toe; the last density read off the shoulder above), made monotone (digitising
wiggles would make the curve's inverse ambiguous), then turned into analytical dye amounts per layer
(`dyes.analytical`), measured from D_min: c = 0 at the film's minimum density.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import dyes as dye_model
from . import spectral

Q_K = 0.65 * 12.5          # lux·s·ISO: the metered mid-grey's exposure times the speed
GREY = 0.18
GRID_STEP = 0.01           # log10 H per sample of the curve tables
GRID_MARGIN = 1.5          # log10 H of flat curve kept beyond the digitised ends (halation, pushes, highlights)


def grey_log_exposure(sheet) -> float:
    """log10 H (lux·s) of an 18 % grey at the stock's box speed (0 for sheets in relative stops)."""
    if sheet.relative_exposure:
        return 0.0
    if sheet.iso:
        return math.log10(Q_K / sheet.iso)
    # no speed given: the exposure where the green (middle) curve is halfway up its density range
    x, y = sheet.curves[len(sheet.curves) // 2]
    return float(np.interp(0.5 * (y.min() + y.max()), y, x)) if y[-1] > y[0] else \
        float(np.interp(0.5 * (y.min() + y.max()), y[::-1], x[::-1]))


@dataclass(frozen=True)
class Curves:
    """Per-layer dye amount against log10 H on a uniform grid: c[i, k] at log_h0 + k·step."""
    log_h0: float
    step: float
    c: np.ndarray              # (layers, N) analytical dye amounts above D_min
    channel: np.ndarray        # (layers, N) the sheet's channel densities on the same grid (monotone)
    positive: bool             # density falls with exposure (slides, prints)

    @property
    def log_h(self) -> np.ndarray:
        return self.log_h0 + self.step * np.arange(self.c.shape[1])

    def dye_at(self, log_h) -> np.ndarray:
        """(…, layers) dye amounts at log exposures (…, layers) (linear interpolation, held at the ends)."""
        lh = np.asarray(log_h, np.float64)
        out = np.empty(lh.shape)
        grid = self.log_h
        for i in range(self.c.shape[0]):
            out[..., i] = np.interp(lh[..., i], grid, self.c[i])
        return out


def channel_curves(sheet, pad: float = GRID_MARGIN):
    """(log_h grid, (layers, N) channel densities) sampled from the sheet, flat beyond the ends, monotone."""
    lo = min(x[0] for x, _ in sheet.curves) - pad
    hi = max(x[-1] for x, _ in sheet.curves) + pad
    n = int(math.ceil((hi - lo) / GRID_STEP)) + 1
    grid = lo + GRID_STEP * np.arange(n)
    positive = sheet.curves[0][1][-1] < sheet.curves[0][1][0]
    rows = []
    for x, y in sheet.curves:
        d = np.interp(grid, x, y)
        d = np.minimum.accumulate(d) if positive else np.maximum.accumulate(d)
        rows.append(d)
    return grid, np.stack(rows), positive


def build(sheet, weights: np.ndarray, dyes: np.ndarray, d_min: np.ndarray) -> Curves:
    """The analytical per-layer curves of a datasheet (colour: Newton per grid point; silver: D - D_min)."""
    grid, channel, positive = channel_curves(sheet)
    if sheet.layers == 1:
        c = channel - channel.min()
    else:
        c = dye_model.analytical(channel.T, d_min, dyes, weights).T
        c = np.minimum.accumulate(c, axis=1) if positive else np.maximum.accumulate(c, axis=1)
    return Curves(float(grid[0]), GRID_STEP, c.astype(np.float64), channel, positive)


def spectral_density(c: np.ndarray, d_min: np.ndarray, dyes: np.ndarray) -> np.ndarray:
    """D(λ) (…, 41) of dye amounts c (…, layers)."""
    return d_min + np.asarray(c, np.float64) @ dyes


def wedge_densities(curves: Curves, d_min, dyes, weights, log_h) -> np.ndarray:
    """What a densitometer reads on a grey wedge exposed at `log_h` (N,): (N, layers) channel densities of
    the dye amounts the curves give (the check that the model reproduces the sheet)."""
    lh = np.repeat(np.asarray(log_h, np.float64)[:, None], curves.c.shape[0], axis=1)
    spec = spectral_density(curves.dye_at(lh), d_min, dyes)
    return spectral.density(spec, weights)
