"""What clipping at black and white does to the mean and variance of noisy samples, and its inverse.

A frame stores y = clip(L + n, lo, hi) (linear light), n ~ N(0, σ²(L)), σ² = a·L + b: every camera or phone
export is clipped at black (lo = 0) and white (hi = 1). With α = (lo − L)/σ, β = (hi − L)/σ, φ and Φ the
standard normal density and distribution,
    E[y]  = lo·Φ(α) + L·(Φ(β) − Φ(α)) + σ·(φ(α) − φ(β)) + hi·(1 − Φ(β))
    E[y²] = lo²·Φ(α) + L²·(Φ(β) − Φ(α)) + 2Lσ·(φ(α) − φ(β)) + σ²·(Φ(β) − Φ(α) + αφ(α) − βφ(β)) + hi²·(1 − Φ(β))
(the truncated moments of a Gaussian plus the mass piled up at each clip level). E[y] is not L: near black it
is larger (at L = 0 it is 0.4·σ), near white smaller, so a mean of clipped frames converges to the wrong value.
g(L) = E[y] rises strictly with L on [lo, hi]: dg/dL = Φ(β) − Φ(α) + (φ(α) − φ(β))·σ'(L), σ' = a/(2σ), and
near white, where the second term is negative, it is at least ½ − φ(0)·√a/2 > 0 for any a ≤ 1. So the merge's
estimate m of E[y] is taken back to the scene by L̂ = g⁻¹(m): a method-of-moments estimate, unbiased to first
order wherever m is (the merge pools the frames and smooths spatially, so m carries little noise, and the
inverse's slope, 1/(dg/dL), is about 2 at most, at black and at white).

L̂ is kept within [lo, hi]: below black there is no scene, and above white the frames say only "at least white"
(a highlight clipped in every frame stays clipped, no invented detail). Where m ≤ g(lo) the estimate is lo.

The inverse is tabulated once per burst on a uniform grid of m (TABLE_SIZE values over [lo, hi]), so that the
merge's every pixel costs one interpolation (OpenCV's remap used as a 1-D table: about 6 ns a value on one core,
0.2 s of CPU for a 12 MP merge). The moments also serve the noise fit (noise.py), which needs Var[y].

Where the inversion runs: on the merged canvas, after the tiles are overlap-added (merge.py), so each pixel's
value is what the temporal merge and the spatial Wiener made of every frame there: the pooled mean in static
areas, the reference's own (spatially smoothed) value where the other frames were rejected. E[·] of both is
g(L), so one inverse serves both; it differs only in the noise it is handed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ...imaging.noise import NoiseModel

TABLE_SIZE = 8193       # m step 1/8192 of the range: interpolation error 4e-6 linear, 6e-5 at the kink at black
FORWARD_SAMPLES = 20001  # L samples for the forward curve, denser at the ends where it bends
REMAP_MAX_COLUMNS = 32000   # OpenCV's remap addresses pixels with 16-bit integers


def _phi(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def _cdf(t: np.ndarray) -> np.ndarray:
    return torch.special.ndtr(torch.from_numpy(np.asarray(t, np.float64))).numpy()


def clipped_moments(level, noise: NoiseModel, lo: Optional[float], hi: Optional[float]):
    """(E[y], Var[y]) of y = clip(L + n, lo, hi) at scene levels L (numpy, float64); lo or hi None: no clip."""
    L = np.asarray(level, np.float64)
    s = np.sqrt(np.maximum(noise.a * np.maximum(L, 0.0) + noise.b, 1e-12))
    alpha = np.full_like(L, -np.inf) if lo is None else (lo - L) / s
    beta = np.full_like(L, np.inf) if hi is None else (hi - L) / s
    ca, cb = _cdf(alpha), _cdf(beta)
    # An absent clip level sits at ±∞, where φ and t·φ vanish: computed on finite stand-ins, then zeroed.
    fa, fb = np.isfinite(alpha), np.isfinite(beta)
    a0, b0 = np.where(fa, alpha, 0.0), np.where(fb, beta, 0.0)
    pa, pb = np.where(fa, _phi(a0), 0.0), np.where(fb, _phi(b0), 0.0)
    apa, bpb = a0 * pa, b0 * pb
    inside = cb - ca
    low = 0.0 if lo is None else lo
    high = 0.0 if hi is None else hi
    m1 = low * ca + L * inside + s * (pa - pb) + high * (1.0 - cb)
    m2 = (low * low * ca + L * L * inside + 2.0 * L * s * (pa - pb) + s * s * (inside + apa - bpb)
          + high * high * (1.0 - cb))
    return m1, np.maximum(m2 - m1 * m1, 0.0)


def invert_mean(m, noise: NoiseModel, lo: Optional[float], hi: Optional[float], iterations: int = 48):
    """Scene levels L with E[y](L) = m, by bisection (vectorised; for a few values, e.g. a noise fit's bins).
    Kept within [lo, hi]: m at or below E[y](lo) gives lo, at or above E[y](hi) gives hi."""
    m = np.asarray(m, np.float64)
    a = np.full_like(m, -1.0 if lo is None else lo)
    b = np.full_like(m, 2.0 if hi is None else hi)
    for _ in range(iterations):                       # 2^-48 of the range: far below any noise
        mid = 0.5 * (a + b)
        above = clipped_moments(mid, noise, lo, hi)[0] > m
        b = np.where(above, mid, b)
        a = np.where(above, a, mid)
    return 0.5 * (a + b)


@dataclass(frozen=True)
class Unclipper:
    """The burst's clip levels and noise model, tabulated: m (the merge's estimate of a clipped mean) -> the
    scene level L̂ = g⁻¹(m), table[i] for m_i = lo + i·(hi − lo)/(N − 1)."""
    lo: float
    hi: float
    table: np.ndarray      # (N,) float32
    black: bool            # the frames are clipped at black (lo), so the table's low end is the clip level
    white: bool            # ... and at white (hi)

    @staticmethod
    def build(noise: NoiseModel, lo: Optional[float], hi: Optional[float]) -> "Unclipper":
        """lo / hi: the frames' clip levels (None where the frames are not clipped on that side: float data). An
        unclipped side extends the table by 8 σ, where the inverse is the identity."""
        t_lo = lo if lo is not None else -8.0 * math.sqrt(max(noise.b, 1e-12))
        t_hi = hi if hi is not None else 1.0 + 8.0 * math.sqrt(noise.a + noise.b)
        # The forward curve on L samples clustered at both ends (where it bends), inverted onto the m grid.
        u = np.linspace(0.0, 1.0, FORWARD_SAMPLES)
        L = t_lo + (t_hi - t_lo) * (0.5 - 0.5 * np.cos(np.pi * u))
        m = np.maximum.accumulate(clipped_moments(L, noise, lo, hi)[0])   # rising; guard the rounding
        table = np.interp(np.linspace(t_lo, t_hi, TABLE_SIZE), m, L)     # below g(lo): lo, above g(hi): hi
        return Unclipper(float(t_lo), float(t_hi), table.astype(np.float32), lo is not None, hi is not None)

    def apply(self, view: np.ndarray, gain: float = 1.0) -> None:
        """In place on a 2-D float32 view whose rows are contiguous (a block of one channel of the merge's
        canvas): m -> gain·g⁻¹(m), through OpenCV's remap used as a 1-D table with linear interpolation (m beyond
        the table: its end values; beyond an unclipped side: m itself)."""
        import cv2
        table = self.table[None, :] if gain == 1.0 else self.table[None, :] * np.float32(gain)
        scale = np.float32((len(self.table) - 1) / (self.hi - self.lo))
        keep = None
        if not (self.black and self.white):          # float data: values beyond an unclipped side pass
            keep = ((view < self.lo) if not self.black else np.zeros(view.shape, bool)) | \
                   ((view > self.hi) if not self.white else np.zeros(view.shape, bool))
            kept = view[keep] * np.float32(gain)
        step = REMAP_MAX_COLUMNS                      # remap addresses its maps with 16-bit integers: chunks
        for r0 in range(0, view.shape[0], step):
            for c0 in range(0, view.shape[1], step):
                part = view[r0:r0 + step, c0:c0 + step]
                idx = np.multiply(part, scale)
                if self.lo != 0.0:
                    idx -= np.float32(self.lo) * scale
                cv2.remap(table, idx, np.zeros_like(idx), cv2.INTER_LINEAR, dst=part,
                          borderMode=cv2.BORDER_REPLICATE)
        if keep is not None:
            view[keep] = kept

    def level(self, m: np.ndarray) -> np.ndarray:
        """L̂ = g⁻¹(m) of any float array (a new float32 array of the same shape)."""
        out = np.array(m, np.float32, copy=True)
        self.apply(out.reshape(out.shape[0], -1) if out.ndim >= 2 else out.reshape(1, -1))
        return out
