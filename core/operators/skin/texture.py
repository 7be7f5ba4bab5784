"""Pore synthesis: inside a healed blemish the high band comes from the subject's own clean skin nearby.

For each spot (centre c, footprint radius R, soft footprint α, all at full resolution), in a window around it:
- the high band H = x − G_σh^w(x) of the window (separation.masked_blur: skin alone);
- the target's statistics: per channel, the RMS of H on the clean ring R ≤ |p − c| ≤ RING × R (skin, outside
  every footprint) and the mean of the smooth bands there;
- candidate sources: discs of radius R at c + ρ(cos θ, sin θ), ρ ∈ DISTANCES × R, θ on ANGLES directions turned
  by a seeded random offset; a source must lie on skin (weight ≥ 0.9 everywhere in it) and off every
  footprint (α ≤ 0.02), or, when no disc around qualifies, mostly so (PASSES);
- score = Σ_c k_c |ln(rms_src,c / rms_ring,c)| + |ΔL̄|/TONE_SCALE + DISTANCE_COST·ρ/R (the same grain and the
  same light, close by); the lowest wins;
- the source's high band, scaled per channel by g = rms_ring/rms_src (clamped to GAIN_RANGE: the ring's
  amplitude), replaces the target's through a variance-preserving blend
      H' = ((1 − α)·H + α·g·H_src) / √((1 − α)² + α²),
  which keeps the grain's amplitude constant across the footprint's soft edge (two independent textures
  mixed linearly would lose up to half their variance at α = ½).
A spot with no valid source anywhere (a blemish in a tiny skin region) keeps the healed smooth bands with its
own high band faded out by α; `synthesise` counts those. Where footprints overlap, each pixel belongs to the
nearest spot's centre, so no pixel is synthesised twice.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

from .separation import masked_blur

RING = 1.6                      # the target's reference ring reaches RING × R
DISTANCES = (2.2, 2.8, 3.5, 4.5, 6.0)   # source distances, × R
ANGLES = 16
PASSES = ((0.9, 0.02), (0.5, 0.3))   # (least skin weight, most footprint α) a source disc may hold
TONE_SCALE = 6.0                # L*: a source 6 L* brighter or darker costs as much as a grain twice as strong
DISTANCE_COST = 0.03
CHANNEL_WEIGHTS = (1.0, 0.5, 0.5)
GAIN_RANGE = (0.5, 2.0)
MIN_RMS = 1e-3


def _disc_offsets(radius: float) -> Tuple[np.ndarray, np.ndarray]:
    r = int(math.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = yy * yy + xx * xx <= radius * radius
    return yy[keep], xx[keep]


def synthesise(lab: np.ndarray, weight: np.ndarray, alpha: np.ndarray, spots: Sequence[Tuple[float, float, float]],
               sigma_high: float, rng: np.random.Generator) -> Tuple[List[Tuple[slice, slice, np.ndarray]], int]:
    """Per spot (y, x, R) in full-resolution pixels of `lab` (H×W×3 CIELAB): the high-band change ΔH = H' − H
    as (rows, cols, ΔH window) triples to add to the image, and the number of spots without a source."""
    h, w = lab.shape[:2]
    margin = int(math.ceil(3.0 * sigma_high)) + 2
    centres = np.array([(s[0], s[1]) for s in spots], np.float64).reshape(-1, 2)
    changes = []
    missing = 0
    for k, (cy, cx, rad) in enumerate(spots):
        rad = max(float(rad), 1.0)
        own_r = rad + 2.0 * sigma_high + 1.0     # the soft footprint's reach
        reach = int(math.ceil(rad * max(DISTANCES, default=0.0) + own_r)) + margin
        y0, y1 = max(0, int(cy) - reach), min(h, int(cy) + reach + 1)
        x0, x1 = max(0, int(cx) - reach), min(w, int(cx) + reach + 1)
        win = lab[y0:y1, x0:x1]
        ww = weight[y0:y1, x0:x1]
        aw = alpha[y0:y1, x0:x1]
        smooth = masked_blur(win, ww, sigma_high)
        high = win - smooth
        ty, tx = cy - y0, cx - x0
        yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
        dist = np.hypot(yy - ty, xx - tx)
        ring = (dist >= rad) & (dist <= RING * rad) & (ww >= 0.9) & (aw <= 0.02)
        if ring.sum() < 8:
            ring = (dist <= RING * rad * 1.5) & (ww >= 0.5) & (aw <= 0.2)
        if ring.sum() < 8:
            missing += 1
            continue
        ring_rms = np.sqrt(np.mean(high[ring] ** 2, axis=0)) + MIN_RMS
        ring_tone = float(smooth[ring][:, 0].mean())

        best = None
        oy, ox = _disc_offsets(own_r + 1.0)
        turn = rng.uniform(0.0, 2.0 * math.pi / ANGLES)
        for skin_min, free_max in PASSES:   # strict first; a crowded or small skin region relaxes it once
            for rho in DISTANCES:
                for j in range(ANGLES):
                    th = turn + 2.0 * math.pi * j / ANGLES
                    sy = int(round(ty + rho * rad * math.sin(th)))
                    sx = int(round(tx + rho * rad * math.cos(th)))
                    py, px = sy + oy, sx + ox
                    if py.min() < 0 or px.min() < 0 or py.max() >= y1 - y0 or px.max() >= x1 - x0:
                        continue
                    if ww[py, px].min() < skin_min or aw[py, px].max() > free_max:
                        continue
                    rms = np.sqrt(np.mean(high[py, px] ** 2, axis=0)) + MIN_RMS
                    score = float(np.sum(np.asarray(CHANNEL_WEIGHTS) * np.abs(np.log(rms / ring_rms))))
                    score += abs(float(smooth[py, px][:, 0].mean()) - ring_tone) / TONE_SCALE
                    score += DISTANCE_COST * rho
                    if best is None or score < best[0]:
                        best = (score, sy - int(round(ty)), sx - int(round(tx)), rms)
            if best is not None:
                break
        # The spot's own pixels: its footprint around the centre, owned by the nearest spot centre.
        own = (aw > 0) & (dist <= own_r)
        if len(centres) > 1:
            d_all = np.full(own.shape, np.inf, np.float32)
            for j, (qy, qx) in enumerate(centres):
                if j == k or abs(qy - cy) > 2 * reach or abs(qx - cx) > 2 * reach:
                    continue
                d_all = np.minimum(d_all, np.hypot(yy - (qy - y0), xx - (qx - x0)))
            own &= dist <= d_all
        if not own.any():
            continue
        a = np.where(own, aw, 0.0)[:, :, None]
        if best is None:
            missing += 1
            new = high * (1.0 - a)   # no grain to borrow: the blemish's own detail faded out
        else:
            _, dy, dx = best[:3]
            gain = np.clip(ring_rms / best[3], *GAIN_RANGE).astype(np.float32)
            src = np.zeros_like(high)
            ys, xs = np.nonzero(own)
            src[ys, xs] = high[ys + dy, xs + dx] * gain
            new = ((1.0 - a) * high + a * src) / np.sqrt((1.0 - a) ** 2 + a ** 2)
        ys, xs = np.nonzero(own)
        r0, r1, c0, c1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        delta = (new - high)[r0:r1, c0:c1] * own[r0:r1, c0:c1, None]
        changes.append((slice(y0 + r0, y0 + r1), slice(x0 + c0, x0 + c1), delta.astype(np.float32)))
    return changes, missing
