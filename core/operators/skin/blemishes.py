"""Blemish detection on the mid band: dark spots, red spots and raised bumps up to the blemish size.

Contrast. With mid_L and mid_a a band's L* and a* and σ_L, σ_a their spread around each pixel
(`local_spreads`: the RMS within about SPREAD_SIZES blemish sizes of the band clipped at CLIP_SPREADS × its
robust spread over the whole skin, 1.4826 × the median absolute deviation; floored at MIN_SPREAD_L /
MIN_SPREAD_A so that a very even skin does not turn its faintest bumps into spots), each pixel's blemish
contrast in units of that spread is
    z = max(−mid_L/σ_L, mid_a/σ_a, (−mid_L/σ_L + mid_a/σ_a)/√2)
dark spots by the first term, red ones by the second, a raised bump by its redness and the shadow it casts (the
third). It is taken on two views of the mid band, the larger counting: the band itself, and its finest octave
(from σ_h to 3σ_h, see the operator), where a spot of a few pixels stands well out of the skin's blotchiness.
Pores do not reach it: they lie below σ_h, in the high band.

Spots. Local maxima of z at least Z_SEED / sensitivity (and an absolute contrast of MIN_DEPTH_L L* or
MIN_DEPTH_A a*) are candidates, strongest first. A candidate's extent is the connected set around it where z
stays above half its peak, of equivalent diameter d_half = 2√(area/π); the spot's size is 2·d_half (a spot
whose depth falls smoothly to nothing at radius r has d_half ≈ r). Kept: MIN_SIZE ≤ size ≤ the blemish size
(larger dark or red areas are blotches or shadows: the tone stage evens them, they are not healed), at least
MIN_SKIN of it on skin. Candidates inside a kept spot's footprint are the same spot.

Footprint: the half-peak set dilated by d_half/2 + FOOTPRINT_SIGMAS·σ_h (the spot's falling edge and the
σ_h blur of the band), its soft edge a Gaussian of σ_h. Units: pixels of the array given (the work grid).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

Z_SEED = 5.0            # peak contrast of a spot, in local spreads of the band
Z_LOW = 1.5             # nothing below this belongs to a spot
MIN_SPREAD_L = 0.6      # L* units: the floor of σ_L (an even skin's mid band varies about this much)
MIN_SPREAD_A = 0.4      # a* units: the floor of σ_a
MIN_DEPTH_L = 2.5       # L*: a dark spot shallower than this is not worth healing (about two noticeable steps)
MIN_DEPTH_A = 2.0       # a*: the same for redness
MIN_SIZE = 3.0          # px of the grid: smaller spots are pores or noise
MIN_SKIN = 0.5          # mean skin weight over a spot's extent
FOOTPRINT_SIGMAS = 2.5  # the footprint reaches this many σ_h past the spot's edge
SPREAD_SIZES = 2.0      # the local spread is measured within about this many blemish sizes
CLIP_SPREADS = 2.5      # the local spread clips the band at this many global spreads


@dataclass
class Blemish:
    y: float            # centre (grid px)
    x: float
    size: float         # 2·d_half, about the diameter where the spot fades out, grid px
    radius: float       # footprint radius from the centre, grid px
    kind: str           # 'dark', 'red' or 'bump'
    contrast: float     # peak z


MAX_SAMPLES = 200_000    # a robust spread is taken on at most this many evenly strided samples


def robust_spread(values: np.ndarray, floor: float) -> float:
    """1.4826 × the median absolute deviation (σ for Gaussian data), at least `floor`."""
    v = np.asarray(values)
    if v.size > MAX_SAMPLES:
        v = v[:: -(-v.size // MAX_SAMPLES)]
    med = float(np.median(v))
    return max(1.4826 * float(np.median(np.abs(v - med))), floor)


def local_spreads(bands: np.ndarray, weight: np.ndarray, global_spreads, sigma: float, floors) -> np.ndarray:
    """H×W×C spread of each channel of `bands` (H×W×C) around each pixel: the RMS over the skin within about
    σ px of the channel clipped at CLIP_SPREADS × its global robust spread (so the spots themselves barely raise
    it), never below its floor. Smooth skin (a forehead) gets its own small spread, busy skin (beside the nose,
    the eyes, the mouth) a larger one: a spot is judged against its own surroundings. One masked blur for all."""
    from .separation import masked_blur

    c = CLIP_SPREADS * np.asarray(global_spreads, np.float32)
    sq = np.minimum(bands * bands, c * c)
    rms = np.sqrt(np.maximum(masked_blur(np.ascontiguousarray(sq, np.float32), weight, sigma), 0.0))
    return np.maximum(rms, np.asarray(floors, np.float32)).astype(np.float32)


def contrast(bands, weight: np.ndarray, spread_sigma: float = 0.0):
    """(z, kind index 0 dark / 1 red / 2 bump) of one or more bands (each H×W×3 CIELAB) over the skin weights:
    the largest contrast of any band, in units of its spread (local when spread_sigma > 0, see
    `local_spreads`; the global robust spread otherwise)."""
    bands = [bands] if isinstance(bands, np.ndarray) else list(bands)
    skin = weight > 0.9
    if skin.sum() < 16:
        skin = weight > 0.0
    la = np.concatenate([b[:, :, :2] for b in bands], axis=2)          # L*, a* of each band
    sample = la[skin] if skin.any() else la.reshape(-1, la.shape[2])
    floors = [MIN_SPREAD_L, MIN_SPREAD_A] * len(bands)
    spreads = [robust_spread(sample[:, c], floors[c]) for c in range(la.shape[2])]
    if spread_sigma > 0:
        spread = local_spreads(la, weight, spreads, spread_sigma, floors)
    else:
        spread = np.asarray(spreads, np.float32)
    zs = la / spread
    best_z, best_k = None, None
    for i in range(len(bands)):
        dark, red = -zs[:, :, 2 * i], zs[:, :, 2 * i + 1]
        stack = np.stack([dark, red, (dark + red) / math.sqrt(2.0)], axis=2)
        z, k = stack.max(axis=2), stack.argmax(axis=2)
        if best_z is None:
            best_z, best_k = z, k
        else:
            best_k = np.where(z > best_z, k, best_k)
            best_z = np.maximum(best_z, z)
    return best_z, best_k


def detect(mid: np.ndarray, weight: np.ndarray, max_size: float, sigma_high: float,
           sensitivity: float = 1.0, fine=None) -> Tuple[List[Blemish], np.ndarray, np.ndarray]:
    """Spots of the mid band (H×W×3 CIELAB, grid px) no larger than max_size px: (blemishes, soft, hard) with
    soft the H×W float32 union of their soft footprints in [0, 1] and hard the H×W uint8 footprints (0/1).
    `fine`: the mid band's finest octave (H×W×3), where small spots stand out of the skin's blotchiness."""
    import cv2

    h, w = mid.shape[:2]
    z, kind = contrast([mid] if fine is None else [mid, fine], weight, SPREAD_SIZES * max_size)
    z = z * (weight > 0.0)
    depth_ok = (-mid[:, :, 0] >= MIN_DEPTH_L) | (mid[:, :, 1] >= MIN_DEPTH_A)
    seed_level = Z_SEED / max(sensitivity, 1e-3)
    win = max(3, int(2 * round(0.25 * max_size) + 1))
    peaks = (z >= seed_level) & depth_ok & (z >= cv2.dilate(z, np.ones((win, win), np.uint8)))
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-z[ys, xs], kind="stable")
    hard = np.zeros((h, w), np.uint8)
    found: List[Blemish] = []
    reach = int(math.ceil(max_size)) + 2
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        if hard[y, x]:
            continue
        y0, y1, x0, x1 = max(0, y - reach), min(h, y + reach + 1), max(0, x - reach), min(w, x + reach + 1)
        zl = z[y0:y1, x0:x1]
        level = max(0.5 * float(z[y, x]), Z_LOW)
        n, labels = cv2.connectedComponents((zl >= level).astype(np.uint8), connectivity=8)
        part = labels == labels[y - y0, x - x0]
        area = int(part.sum())
        half = 2.0 * math.sqrt(area / math.pi)
        size = 2.0 * half
        if ((y0 > 0 and part[0].any()) or (y1 < h and part[-1].any()) or (x0 > 0 and part[:, 0].any())
                or (x1 < w and part[:, -1].any())):
            continue   # runs past the search window: far larger than a spot
        if not MIN_SIZE <= size <= max_size:
            continue
        if float(weight[y0:y1, x0:x1][part].mean()) < MIN_SKIN:
            continue
        grow = 0.5 * half + FOOTPRINT_SIGMAS * sigma_high
        k = int(math.ceil(grow))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        # Dilate inside a padded window so the footprint is not cut by the search window's edge.
        py0, py1, px0, px1 = max(0, y0 - k), min(h, y1 + k), max(0, x0 - k), min(w, x1 + k)
        pad = np.zeros((py1 - py0, px1 - px0), np.uint8)
        pad[y0 - py0:y1 - py0, x0 - px0:x1 - px0] = part
        np.maximum(hard[py0:py1, px0:px1], cv2.dilate(pad, disk), out=hard[py0:py1, px0:px1])
        pys, pxs = np.nonzero(part)
        cy, cx = float(pys.mean() + y0), float(pxs.mean() + x0)
        rad = float(np.sqrt(((pys + y0 - cy) ** 2 + (pxs + x0 - cx) ** 2).max())) + grow + 0.5
        found.append(Blemish(cy, cx, size, rad, ("dark", "red", "bump")[int(kind[y, x])], float(z[y, x])))
    soft = hard.astype(np.float32)
    if found:
        soft = cv2.GaussianBlur(soft, (0, 0), max(sigma_high, 0.5))
    return found, np.clip(soft, 0.0, 1.0), hard
