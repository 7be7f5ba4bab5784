"""Grain and noise: the plate gets the noise the subject's camera put into the photo.

One capture has one noise. The subject keeps the photo's noise; the plate, blurred by the lens model and often
a cleaner (or a noisier) picture, does not match it. The noise of both is measured in the stored encoding
(sRGB, where grain is perceived) with the shared estimator (core.imaging.noise.measure): the subject's over the
matte's core, the plate's over the placed, defocused plate. Each gives variance = a·level + b, a spatial
autocovariance and a cross-channel covariance. The plate then gets the missing variance at every level,

    σ_add(level)² = max(σ_subject(level)² − σ_plate(level)², 0),

as noise with the subject's spatial correlation and cross-channel correlation: white Gaussian noise filtered by
the zero-phase kernel whose power spectrum is the subject's normalised noise spectrum (|K̂|² = S/σ², so the
filtered noise has the subject's autocorrelation at unit variance), mixed across channels by the Cholesky factor
of the subject's channel correlation, scaled per channel and per pixel. It is weighted by s · (1 − α) (s =
match_grain): the subject's own pixels already carry the photo's noise. Seeded: same seed, same grain.

The profile rests on smooth 32 px blocks; a small picture, or a subject in textured clothes, has too few of
them, and a few textured blocks then pass for noise (the 512 px astronaut: 18 blocks inside the person, σ read
0.052 where the photo's grain is about 0.005). Below MIN_BLOCKS the plan falls back to one white-noise σ per
channel by Immerkaer's estimator over the flattest half of the region (core.imaging.noise.immerkaer_sigma),
which texture fools far less.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

from ...imaging import noise as noise_room

MIN_BLOCKS = 64           # smooth blocks needed before a measured profile is trusted (see the notes)
SPECTRUM_SIZE = 32        # DFT grid for the kernel design (the autocovariance reaches ±2 px)
TILE = 1024               # px: side of the periodic noise tile (see synthesise)
KERNEL_RADIUS = 3         # kernel taps kept: ±3 px hold all but a negligible part of a ±2 px correlation


@dataclass
class GrainPlan:
    subject_var: Callable[[np.ndarray], np.ndarray]     # level -> the subject's pooled noise variance
    plate_var: Callable[[np.ndarray], np.ndarray]       # level -> the plate's
    kernel: np.ndarray            # (2R+1)² zero-phase filter, Σk² = 1 (1×1: white noise)
    mix: np.ndarray               # 3×3 Cholesky factor of the subject's channel correlation
    channel_scale: np.ndarray     # (3,) each channel's σ relative to the pooled σ
    method: str                   # "profile" or "white"

    def facts(self) -> dict:
        lv = np.float32(0.5)
        return {"grain_subject_sigma": round(float(np.sqrt(self.subject_var(lv))), 5),
                "grain_plate_sigma": round(float(np.sqrt(self.plate_var(lv))), 5), "grain_model": self.method}


def correlation_kernel(profile: noise_room.NoiseProfile, radius: int = KERNEL_RADIUS) -> np.ndarray:
    """A (2r+1)×(2r+1) zero-phase kernel k with k ⋆ k = the profile's mean normalised autocorrelation."""
    spec = profile.spectrum(SPECTRUM_SIZE).mean(axis=0).astype(np.float64)
    spec = np.maximum(spec, 0.0)
    if spec.mean() <= 0:
        k = np.zeros((2 * radius + 1,) * 2)
        k[radius, radius] = 1.0
        return k.astype(np.float32)
    amp = np.sqrt(spec / spec.mean())
    k = np.real(np.fft.ifft2(amp))
    k = np.fft.fftshift(k)
    c = SPECTRUM_SIZE // 2
    k = k[c - radius:c + radius + 1, c - radius:c + radius + 1]
    return (k / np.sqrt((k * k).sum())).astype(np.float32)


def plan(subject_srgb: np.ndarray, core: np.ndarray, plate_srgb: Optional[np.ndarray]) -> Optional[GrainPlan]:
    """Measure both noises (the subject's over `core`, H×W bool; plate_srgb None: a plate blurred so much that
    its noise is gone, a disc of 8 px or more leaving under 1/7 of it); None when the region is too small to
    measure anything."""
    subj = noise_room.measure(subject_srgb, core.astype(np.float32))
    zero = lambda lv: np.zeros_like(lv)  # noqa: E731
    if subj.blocks >= MIN_BLOCKS:
        plate_var = zero if plate_srgb is None else noise_room.measure(plate_srgb).model.variance
        cov = np.asarray(subj.covariance, np.float64)
        d = np.sqrt(np.maximum(np.diag(cov), 1e-20))
        mix = _cholesky(cov / np.outer(d, d))
        scale = d / max(float(np.sqrt(np.mean(d * d))), 1e-12)
        return GrainPlan(subj.model.variance, plate_var, correlation_kernel(subj), mix,
                         scale.astype(np.float32), "profile")
    if np.count_nonzero(core) < 256:
        return None
    s_sub = _white_sigma(subject_srgb, core)
    pooled_s = float(np.mean(s_sub ** 2))
    pooled_p = 0.0 if plate_srgb is None else float(np.mean(_white_sigma(plate_srgb, None) ** 2))
    scale = s_sub / max(np.sqrt(pooled_s), 1e-12)
    return GrainPlan(lambda lv: np.full_like(lv, pooled_s), lambda lv: np.full_like(lv, pooled_p),
                     np.ones((1, 1), np.float32), np.eye(3, dtype=np.float32), scale.astype(np.float32), "white")


def _white_sigma(srgb: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    import torch
    t = torch.from_numpy(np.ascontiguousarray(srgb.transpose(2, 0, 1), np.float32))
    m = None if mask is None else mask.astype(np.float32)
    return noise_room.immerkaer_sigma(t, m).numpy().astype(np.float64)


def _cholesky(corr: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(corr + 1e-9 * np.eye(3)).astype(np.float32)
    except np.linalg.LinAlgError:
        return np.eye(3, dtype=np.float32)


def _noise_blocks(shape, grain: GrainPlan, seed: int):
    """Yields (y, x, block): the frame's unit-σ correlated noise, TILE-sized block by block (see synthesise)."""
    h, w = shape[:2]
    rng = np.random.default_rng(int(seed))
    th, tw = min(h, TILE), min(w, TILE)
    white = rng.standard_normal((th, tw, 3), dtype=np.float32)
    k = grain.kernel
    if k.shape != (1, 1):
        r = k.shape[0] // 2
        padded = np.pad(white, ((r, r), (r, r), (0, 0)), mode="wrap")
        white = cv2.filter2D(padded, -1, k[::-1, ::-1].copy())[r:r + th, r:r + tw]
    if not np.array_equal(grain.mix, np.eye(3, dtype=np.float32)):
        white = cv2.transform(white, grain.mix)
    tile = np.ascontiguousarray(white * grain.channel_scale, np.float32)
    if (th, tw) == (h, w):
        yield 0, 0, tile
        return
    # Two copies side by side and one above the other: any offset's block is then one contiguous slice.
    tile4 = np.tile(tile, (2, 2, 1))
    for y in range(0, h, th):
        for x in range(0, w, tw):
            bh, bw = min(th, h - y), min(tw, w - x)
            oy, ox = int(rng.integers(th)), int(rng.integers(tw))
            yield y, x, tile4[oy:oy + bh, ox:ox + bw]


def synthesise(shape, grain: GrainPlan, seed: int) -> np.ndarray:
    """H×W×3 unit-σ noise with the subject's spatial and cross-channel correlation (seeded).

    A periodic noise tile of at most TILE px is made (white Gaussian noise, filtered circularly, so the tile wraps
    seamlessly) and laid over the frame in TILE-sized blocks, each starting at its own random offset into the
    tile: drawing 36 million normals for a 12 MP frame cost more than the rest of the grain stage, and a random
    pattern repeating with an unknown shift every 1024 px is not something the eye finds in grain."""
    out = np.empty(tuple(shape[:2]) + (3,), np.float32)
    for y, x, block in _noise_blocks(shape, grain, seed):
        out[y:y + block.shape[0], x:x + block.shape[1]] = block
    return out


def apply(comp_srgb: np.ndarray, alpha: np.ndarray, grain: GrainPlan, strength: float, seed: int) -> np.ndarray:
    """comp + s·(1 − α)·σ_add(level)·n, in the stored encoding (H×W×3), block by block (in place)."""
    out = np.ascontiguousarray(comp_srgb, np.float32)
    s = np.float32(strength)
    constant = grain.method == "white"
    if constant:
        lv = np.zeros(1, np.float32)
        sigma0 = float(np.sqrt(max(float(grain.subject_var(lv)[0] - grain.plate_var(lv)[0]), 0.0)))
    for y, x, block in _noise_blocks(out.shape, grain, seed):
        bh, bw = block.shape[:2]
        clear = 1.0 - alpha[y:y + bh, x:x + bw]
        if not clear.any():
            continue                  # all subject: its own noise is the photo's
        dst = out[y:y + bh, x:x + bw]
        if constant:
            weight = clear * np.float32(s * sigma0)
        else:
            level = cv2.transform(np.ascontiguousarray(dst), np.full((1, 3), 1.0 / 3.0, np.float32))
            var_add = grain.subject_var(level) - grain.plate_var(level)
            weight = clear * s * np.sqrt(np.maximum(var_add, 0.0)).astype(np.float32)
        dst += block * weight[:, :, None]
    return out
