"""The per-pixel pipeline, in strips of rows (independent pieces: one CPU core each, see core.parallel).

Through a stock (a baked Look):
    v (sRGB) -> linear -> E = A·rgb (layer exposures) -> E + halation -> log10 H = log10 E + log10 H_grey
        - log10 0.18 + EV·log10 2 -> interimage: log10 H_i + κ (log10 H_i − mean_j log10 H_j)
        -> c_i = curve_i(log10 H_i) -> c_i + amount·σ_i(c_i)·f_i -> LUT(c) -> sRGB
f_i being layer i's unit grain field (grain.py), σ_i its RMS dye-amount fluctuation at 48 µm from the datasheet
(granularity.py). Grain thus lives in density, independent per layer, and reaches the picture through the
print, which flattens it in deep shadows and highlights (toe and shoulder) as on film.

Without a stock ('none'): halation on linear light, then monochrome silver grain in an equivalent density
D = -log10(linear) whose RMS follows the Siedentopf/Nutting law of a silver deposit, σ_D = σ_1 sqrt(D)
(variance proportional to the number of grains, hence to the density), σ_1 = NONE_RMS / 1000 through 48 µm at
D = 1. It is added to the output linearised, v + (dv/dD)·σ_D·f, so every level keeps its mean exactly (before
clipping at 0 and 1) and the grain vanishes toward white (D -> 0) and toward black (dv/dD -> 0).

Lengths are physical: `pitch_um` is the frame's long side (the format) divided by the picture's long side, so
grain and glow look the same at every resolution. Strips are a multiple of the halation reduction high, and
the grain fields are position-hashed, so the strips join without seams and give the same bytes as a whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ...imaging.color import linear_to_srgb, srgb_to_linear
from ...parallel import cpu_map
from . import grain as grain_field
from . import halation as glow
from . import lut as tables

STRIP = 512                 # rows per piece of work (a multiple of every halation reduction factor)
MIN_EXPOSURE = 1e-7         # linear exposure floor before the log (a black far below every film's toe)
NONE_RMS = 10.0             # 'none': RMS granularity ×1000 at D = 1, 48 µm (a medium-speed silver film)
NONE_LOW = 1e-4             # 'none': linear floor for the equivalent density
LOG10_2 = math.log10(2.0)

FORMATS = {"35mm": (36.0, 24.0), "645": (56.0, 41.5), "6x7": (70.0, 56.0), "4x5": (120.0, 96.0)}


def pitch_um(shape: Tuple[int, int], film_format: str) -> float:
    """µm of film per pixel: the format's long side over the picture's long side."""
    long_mm = FORMATS[film_format][0]
    return long_mm * 1000.0 / max(int(shape[0]), int(shape[1]), 1)


@dataclass(frozen=True)
class Settings:
    exposure_ev: float = 0.0
    grain: float = 1.0                    # × the datasheet granularity
    grain_size_um: Optional[float] = None  # dye-cloud size; None: the stock's
    pitch_um: float = 10.0
    halation: float = 1.0                 # × the anti-halation-layer strengths
    halation_radius_um: float = 200.0
    strength: float = 1.0
    seed: int = 0
    origin: Tuple[int, int] = (0, 0)      # the picture's top-left pixel in the frame (tiles, crops)


def strips(h: int):
    """(y0, y1) row ranges of the pieces of work."""
    return [(y, min(h, y + STRIP)) for y in range(0, h, STRIP)]


class _Glow:
    """Halation over the whole picture: the exposure is computed strip by strip (kept for the main pass), and
    each reduction's blurred glow once; `apply` gives a strip's E (1 − h) + glow."""

    def __init__(self, src: np.ndarray, to_exposure, layers: int, s: Settings, device):
        self.parts = glow.components(s.halation, s.halation_radius_um, s.pitch_um, layers)
        self.keep = (1.0 - glow.strengths(s.halation, layers)).astype(np.float32)
        height = src.shape[0]
        pieces = strips(height)
        exposures = cpu_map(lambda r: to_exposure(src[r[0]:r[1]]), pieces, device)
        self.exposure = exposures
        self.index = {r: k for k, r in enumerate(pieces)}
        self.glows = {}
        for f, parts in self.parts.items():
            small = np.concatenate([_chan(glow.shrink(e, f)) for e in exposures], axis=0) if f > 1 else None
            full = None if f > 1 else np.concatenate(exposures, axis=0)
            self.glows[f] = glow.glow(small if f > 1 else full, parts, layers)

    def apply(self, r) -> np.ndarray:
        y0, y1 = r
        e = self.exposure[self.index[r]]
        e *= self.keep
        for f, g in self.glows.items():
            e += glow.enlarge_rows(g, f, y0, y1, e.shape[1]).reshape(e.shape)
        return e


def _chan(a: np.ndarray) -> np.ndarray:
    return a if a.ndim == 3 else a[:, :, None]


def _grain_sigma(look, s: Settings) -> float:
    return grain_field.sigma_of_size(look.grain_size_um if s.grain_size_um is None else s.grain_size_um)


def render_stock(src: np.ndarray, look, s: Settings, device=None, job=None) -> np.ndarray:
    """H×W×3 sRGB through the stock's Look."""
    import cv2

    layers = look.layers
    matrix = np.asarray(look.matrix, np.float32)

    def exposure(rows: np.ndarray) -> np.ndarray:
        lin = srgb_to_linear(np.ascontiguousarray(rows))
        if layers == 3:
            e = cv2.transform(lin, matrix)
        else:
            e = cv2.transform(lin, matrix.reshape(1, 3))
            e = e.reshape(e.shape[0], e.shape[1], 1) if e.ndim == 3 else e[:, :, None]
        return e

    g = _Glow(src, exposure, layers, s, device) if s.halation > 0 else None
    offset = look.log_h_grey - math.log10(0.18) + s.exposure_ev * LOG10_2
    # the curve lookup's coordinate straight from ln E: x = (log10 E + offset - h0) / step
    scale = np.float32(1.0 / (math.log(10.0) * look.curve_step))
    shift = np.float32((offset - look.curve_h0) / look.curve_step)
    curve_tables = _curve_tables(look, s.grain)
    # x_i = scale · (ln E_i + κ (ln E_i − mean_j ln E_j)) + shift: interimage (DIR couplers) amplifies the log-
    # exposure differences between layers by 1 + κ before the curves; a neutral is untouched
    mixing = np.eye(3) + look.interimage * (np.eye(3) - np.full((3, 3), 1.0 / 3.0))
    to_coordinate = np.hstack([float(scale) * mixing, np.full((3, 1), float(shift))]).astype(np.float32)
    sigma_g = _grain_sigma(look, s)
    image = tables.layout(look.lut) if layers == 3 else None
    use_torch = device is not None and getattr(device, "type", "cpu") == "cuda" and layers == 3
    oy, ox = s.origin
    width = src.shape[1]

    def strip(r):
        y0, y1 = r
        rows = src[y0:y1]
        e = exposure(rows) if g is None else g.apply(r)
        flat = e.reshape(e.shape[0], -1)
        cv2.max(flat, MIN_EXPOSURE, dst=flat)
        cv2.log(flat, dst=flat)
        if layers == 3:   # interimage gain and the curve coordinate in one pass
            planes = list(cv2.split(cv2.transform(e, to_coordinate)))
        else:
            planes = [cv2.addWeighted(np.ascontiguousarray(e[:, :, 0]), float(scale), e[:, :, 0], 0.0, float(shift))]
        zeros = np.zeros_like(planes[0])
        c = []
        for i, p in enumerate(planes):
            ci = cv2.remap(curve_tables[i][0], p, zeros, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if s.grain > 0:
                sigma = cv2.remap(curve_tables[i][1], p, zeros, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                f = grain_field.unit_field(s.seed, i, (oy + y0, oy + y1), (ox, ox + width), s.pitch_um, sigma_g)
                cv2.multiply(sigma, f, dst=f)
                cv2.add(ci, f, dst=ci)
            c.append(ci)
        if layers == 3:
            out = (tables.lut3d_torch(np.dstack(c), look.lut, look.lut_lo, look.lut_hi, device) if use_torch
                   else tables.lut3d(c, image, look.lut_lo, look.lut_hi))
        else:
            out = tables.lut1d(c[0], look.lut, float(look.lut_lo[0]), float(look.lut_hi[0]))
        return _mix(rows, out, s.strength)

    return np.concatenate(cpu_map(strip, strips(src.shape[0]), device, job, "film"), axis=0)


def _curve_tables(look, amount: float):
    """Per layer two 1×N tables over the log-exposure grid: the dye amount c and amount × σ_48(c), so both are
    read with the same coordinate (two one-channel lookups: OpenCV's fastest remap)."""
    out = []
    for i in range(look.layers):
        c = np.asarray(look.curves[i], np.float64)
        grid = look.grain_c0[i] + look.grain_step[i] * np.arange(look.grain.shape[1])
        sigma = np.interp(c, grid, look.grain[i]) * amount
        out.append((np.ascontiguousarray(c[None].astype(np.float32)),
                    np.ascontiguousarray(sigma[None].astype(np.float32))))
    return out


def _mix(rows: np.ndarray, out: np.ndarray, strength: float) -> np.ndarray:
    if strength >= 1.0:
        return out
    return rows + np.float32(strength) * (out - rows)


def none_sigma(linear: np.ndarray) -> np.ndarray:
    """The 'none' grain's output RMS per unit field: |dv/dD| · σ_D(D) for linear values (any shape)."""
    lin = np.clip(linear, NONE_LOW, 1.0)
    d = -np.log10(lin)
    # v = sRGB(lin): dv/dD = ln10 · lin · dv/dlin
    dv = np.where(lin <= 0.0031308, 12.92 * lin, (1.055 / 2.4) * lin ** (1.0 / 2.4)) * math.log(10.0)
    return (dv * (NONE_RMS / 1000.0) * np.sqrt(d)).astype(np.float32)


def render_none(src: np.ndarray, s: Settings, device=None, job=None) -> np.ndarray:
    """Halation and silver grain only: H×W×3 in its own encoding, levels kept."""
    g = _Glow(src, lambda rows: srgb_to_linear(np.ascontiguousarray(rows)), 3, s, device) \
        if s.halation > 0 else None
    sigma_g = grain_field.sigma_of_size(s.grain_size_um if s.grain_size_um is not None
                                        else 3.5 * math.sqrt(NONE_RMS))
    oy, ox = s.origin
    width = src.shape[1]
    ceiling = np.float32(max(1.0, float(src.max())))

    def strip(r):
        y0, y1 = r
        rows = np.ascontiguousarray(src[y0:y1])
        v = rows
        lin = None
        if g is not None:
            lin = g.apply(r)
            np.maximum(lin, 0.0, out=lin)
            v = linear_to_srgb(lin)
        if s.grain > 0:
            lin = srgb_to_linear(v) if lin is None else lin
            f = grain_field.unit_field(s.seed, 0, (oy + y0, oy + y1), (ox, ox + width), s.pitch_um, sigma_g)
            v = v + np.float32(s.grain) * none_sigma(lin) * f[:, :, None]
        v = np.clip(v, 0.0, ceiling)
        return _mix(rows, v.astype(np.float32), s.strength)

    return np.concatenate(cpu_map(strip, strips(src.shape[0]), device, job, "grain"), axis=0)
