"""Noise measured from one picture: its level-dependent σ, its spatial correlation, its cross-channel covariance.

One room for the noise estimators of every operator. `measure` gives the whole profile of a picture; the pieces
it is built from are public, and three of them are exactly what an operator computes today (they must stay so,
bit for bit, since those operators' outputs are pinned):

- `level_model`: variance = a·level + b (shot + read noise), denoise's sensor model;
- `immerkaer_sigma`: one white-noise σ per channel, refocus's grain level;
- `hh_median_variance`: the noise variance of a (pre-filtered) luma, the alignment's texture threshold.

All values are in the encoding of the array given (pass linear light for a sensor model, the stored encoding for
grain); levels are the local mean of that array.

Level model. The finest diagonal Haar detail HH = (x00 − x01 − x10 + x11)/2 of 2×2 cells is blind to constant
and linear ramps, so where the picture is smooth it holds noise alone, with the pixels' variance for white noise.
Blocks of BLOCK×BLOCK cells are binned by brightness; in each bin a low quantile of the block variances (divided
by the quantile of the chi-square law it should follow) picks the smooth blocks and ignores the textured ones. A
weighted line through the bins gives a and b. Pictures are clipped at black, which hides part of the noise of
every block within a few σ of 0; the fit corrects each bin by the variance a clipped Gaussian keeps at its
level/σ, iterating with the model's own σ (on a burst at 6 % exposure: a within 3 % of the truth, where the
uncorrected fit found no shot noise at all).

Profile (`measure`). Blocks of STRUCT_BLOCK px in which the picture is smooth (a quadratic surface plus noise)
are detrended by least squares; their residual lag products Σ r(p)·r(p+τ) give the autocovariance c(τ) for lags
|τx|, |τy| ≤ MAX_LAG. Detrending removes part of the noise too, more of correlated noise, so each residual sum's
expectation is written exactly as a linear function of c (E[rᵀ T_τ r] = Σ_u c(u)·tr(T_τ R S_u R), R the residual
projector, S_u the lag-±u pairs) and that system is solved: no bias from the fit, whatever the correlation
within the lag window (without it: ρ 0.013 and σ 1.7 % low on [1 2 1]-filtered noise). The cross-channel
covariance and each block's variance come from the same residuals, the channels assumed to share one spatial
correlation shape; the line a·level + b goes through the block variances' means in level bins. So the profile's
σ is the pixels' own, correlated or not, whereas HH under-reads correlated noise by
var(HH)/σ² = 1 − ρ(0,1) − ρ(1,0) + (ρ(1,1) + ρ(1,−1))/2 (the profile's hh_factor).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# --- level model (denoise) ---
BLOCK = 4            # HH samples per block side: 16 samples per local variance
QUANTILE = 0.2       # low quantile: mostly smooth blocks
BINS = 12
# 20th percentile of chi-square with 16 degrees of freedom, divided by 16: the bias of the low quantile.
CHI2_16_Q20 = 11.152 / 16.0
MIN_VARIANCE = 1e-8  # floor so that later divisions stay finite on clean synthetic input
TOP_EDGES = (0.95, 0.98, 0.995)   # extra bin edges (fractions of the blocks by brightness) at the bright end
MIN_BLOCKS = 32      # blocks per bin for a steady low quantile
CLIP_ROUNDS = 4      # rounds of the clipping correction (converged after 3 on the dark test bursts)
MIN_CLIP_T = 0.5     # bins closer to black than half a σ carry too little of their noise to correct

# --- white-noise σ (refocus) ---
_LAPLACE_DIFF = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
IMMERKAER_MAX_PIXELS = 600_000   # above this, measure on a grid of tiles (about a quarter million pixels)
IMMERKAER_TILE = 64

# --- HH median (alignment) ---
CHI2_1_MEDIAN = 0.4549   # median of chi-square with one degree of freedom: median(HH²) = 0.4549 σ²

# --- structure ---
STRUCT_BLOCK = 32    # px per block side: 1024 samples per block, small enough to find smooth ones
MAX_LAG = 2          # autocovariance measured for |τx|, |τy| <= 2 px (demosaicking and resampling reach 1-2 px)
KEEP_RATIO = 1.5     # blocks above 1.5× their level's reference variance hold texture, not just noise
REF_QUANTILE = 0.25  # the reference: this quantile of the block variances at one level (noise alone reads ~0.95)
STRUCT_MIN_BIN = 32  # blocks per level bin for a steady reference
STRUCT_BINS = 8
MOSAIC_TILE = 64     # big pictures are measured on a regular grid of tiles this size (multiple of 8 and 32)


# ----------------------------------------------------------------------------------------------------------------
# Level-dependent variance: a·level + b


@dataclass(frozen=True)
class NoiseModel:
    a: float  # shot-noise gain: variance per unit of signal
    b: float  # read-noise variance (signal units squared)

    def variance(self, signal):
        """Noise variance at `signal` (numpy, torch or float)."""
        if isinstance(signal, torch.Tensor):
            return (self.a * signal.clamp_min(0.0) + self.b).clamp_min(MIN_VARIANCE)
        return np.maximum(self.a * np.maximum(signal, 0.0) + self.b, MIN_VARIANCE)

    def sigma(self, signal):
        """Noise standard deviation at `signal`."""
        v = self.variance(signal)
        return v.sqrt() if isinstance(v, torch.Tensor) else np.sqrt(v)


def _as_mask(mask, h: int, w: int) -> torch.Tensor:
    """H×W (or H×W×1) mask, numpy or torch, as an H×W float32 tensor on the CPU."""
    m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask, np.float32))
    m = m.to(torch.float32).cpu()
    if m.ndim == 3:
        m = m[..., 0] if m.shape[-1] == 1 else m[0]
    if tuple(m.shape) != (h, w):
        raise ValueError(f"mask of shape {tuple(m.shape)} does not match a picture of {h}×{w}")
    return m


def haar_blocks(image: torch.Tensor, mask=None):
    """(C,H,W) image -> per-block (mean level, mean HH²) over BLOCK×BLOCK Haar cells, all channels pooled.

    With a mask (H×W in [0, 1]), only blocks lying wholly where the mask exceeds 0.5 are kept."""
    c, h, w = image.shape
    h2, w2 = (h // 2) * 2, (w // 2) * 2
    x = image[:, :h2, :w2]
    x00, x01, x10, x11 = x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]
    hh = (x00 - x01 - x10 + x11) * 0.5      # variance σ² for white noise of variance σ²
    mean = (x00 + x01 + x10 + x11) * 0.25
    pool = lambda t: F.avg_pool2d(t[None], BLOCK, BLOCK)[0]  # noqa: E731
    mean, var = pool(mean), pool(hh * hh)
    if mask is None:
        return mean.reshape(-1), var.reshape(-1)
    m = _as_mask(mask, h, w)[:h2, :w2].to(image.device)
    side = 2 * BLOCK
    inside = (-F.max_pool2d(-m[None, None], side, side))[0, 0] > 0.5   # the block's least mask value
    keep = inside[None].expand_as(mean)
    return mean[keep], var[keep]


def level_model(image: torch.Tensor, mask=None) -> NoiseModel:
    """Fit variance = a·level + b on one (C,H,W) image, in its own encoding (pass linear light for a sensor).

    Exact for white noise; correlated noise reads low by var(HH)/σ² (see `measure`, which corrects it)."""
    mean, var = haar_blocks(image, mask)
    levels, qs = level_bins(mean, var)
    if len(levels) == 0:   # too few blocks to bin: no slope, the blocks' median variance
        if mean.numel() == 0:
            return NoiseModel(0.0, MIN_VARIANCE)
        return NoiseModel(0.0, float(var.median().clamp_min(MIN_VARIANCE)))
    return _fit_clipped(levels, qs)


def level_bins(mean: torch.Tensor, var: torch.Tensor):
    """(levels, variances), numpy: the level model's bins of `haar_blocks`' block means and HH² means.

    A bin's level is its median block mean and its variance the low QUANTILE of its block variances over the
    chi-square bias; empty arrays when there are fewer than BINS·8 blocks or no bin holds MIN_BLOCKS."""
    if mean.numel() < BINS * 8:
        return np.zeros(0), np.zeros(0)
    order = torch.argsort(mean)
    mean, var = mean[order], var[order]
    levels, qs = [], []
    n = mean.numel()
    # Equal-count bins, plus finer ones at the bright end: in a dark frame nearly all blocks sit near black and
    # the few brighter ones are what shows the shot noise's slope.
    edges = sorted(set([round(n * k / BINS) for k in range(BINS + 1)] + [round(n * f) for f in TOP_EDGES]))
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi - lo < MIN_BLOCKS:
            continue
        levels.append(float(mean[lo:hi].median()))
        qs.append(float(torch.quantile(var[lo:hi], QUANTILE) / CHI2_16_Q20))
    return np.array(levels), np.maximum(np.array(qs), MIN_VARIANCE)


def _clipped_variance_factor(t: np.ndarray) -> np.ndarray:
    """Var(max(X, 0)) / σ² for X ~ N(t·σ, σ²): how much of the noise survives clipping at black."""
    from math import erf
    cdf = 0.5 * (1.0 + np.array([erf(v / np.sqrt(2.0)) for v in t]))   # a handful of bins
    pdf = np.exp(-0.5 * t * t) / np.sqrt(2.0 * np.pi)
    m1 = t * cdf + pdf
    m2 = (t * t + 1.0) * cdf + t * pdf
    return np.clip(m2 - m1 * m1, 1e-3, 1.0)


def _fit_clipped(levels: np.ndarray, qs: np.ndarray) -> NoiseModel:
    """Fit variance = a·level + b to binned variances, undoing the loss of noise to clipping at black.

    Frames are clipped at 0, so a bin whose level is within a few σ of black reads less variance than the sensor
    gave it (at level = σ, about 75 %). Starting from the bins that clipping cannot touch (or all of them), each
    round predicts every bin's σ, divides its variance by the clipped-Gaussian factor at level/σ and refits,
    keeping the bins at least half a σ above black."""
    clear = levels >= 2.0 * np.sqrt(qs)
    model = _fit_line(levels[clear], qs[clear], 1.0 / qs[clear]) if clear.sum() >= 2 else \
        _fit_line(levels, qs, 1.0 / qs)
    for _ in range(CLIP_ROUNDS):
        sigma = np.sqrt(np.maximum(model.a * levels + model.b, MIN_VARIANCE))
        t = levels / sigma
        keep = t >= MIN_CLIP_T
        if keep.sum() < 2:
            break
        corrected = qs[keep] / _clipped_variance_factor(t[keep])
        model = _fit_line(levels[keep], corrected, 1.0 / corrected)
    return model


def _fit_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> NoiseModel:
    """Weighted least squares y = a·x + b with a, b ≥ 0."""
    sw = np.sqrt(w)
    A = np.stack([x, np.ones_like(x)], axis=1) * sw[:, None]
    (a, b), *_ = np.linalg.lstsq(A, y * sw, rcond=None)
    if b < 0:  # pure shot noise: through the origin
        a, b = float(np.sum(w * x * y) / max(np.sum(w * x * x), 1e-20)), 0.0
    if a < 0:  # pure read noise
        a, b = 0.0, float(np.sum(w * y) / np.sum(w))
    return NoiseModel(max(float(a), 0.0), max(float(b), MIN_VARIANCE))


def combine(models: Sequence[NoiseModel]) -> NoiseModel:
    """Median of per-image fits: one odd frame (a flat sky, a clipped highlight) does not sway the model."""
    return NoiseModel(float(np.median([m.a for m in models])), float(np.median([m.b for m in models])))


# ----------------------------------------------------------------------------------------------------------------
# One white-noise σ per channel: Immerkaer's Laplacian difference over the flattest half


def immerkaer_sigma(image: torch.Tensor, mask=None) -> torch.Tensor:
    """Per-channel noise standard deviation of a C×H×W image (in its own encoding), assuming white noise.

    The 3×3 difference of Laplacians [[1,−2,1],[−2,4,−2],[1,−2,1]] cancels any quadratic surface; for white
    noise of σ its response has mean absolute value 6σ·sqrt(2/π) (Immerkaer 1996). Only the flattest half of the
    pixels by grey gradient count, so texture is not mistaken for noise. With a mask (H×W in [0, 1]), only pixels
    where it exceeds 0.5 count."""
    c, h, w = image.shape
    if h < 8 or w < 8:
        return torch.zeros(c, dtype=image.dtype)
    m = None if mask is None else _as_mask(mask, h, w).to(image)[None]
    if h * w > IMMERKAER_MAX_PIXELS:
        # A big picture: measure on a regular grid of 64×64 tiles covering about a quarter million pixels.
        t = IMMERKAER_TILE
        ny, nx = h // t, w // t
        keep = max(1, int(round(math.sqrt(ny * nx / 64))))

        def tiles_of(x):
            k = x.shape[0]
            tiles = x[:, :ny * t, :nx * t].reshape(k, ny, t, nx, t)[:, ::keep, :, ::keep, :]
            return tiles.permute(0, 1, 3, 2, 4).reshape(k, -1, t, t)  # K × tiles × t × t, estimated per tile
        return _estimate_tiles(tiles_of(image), None if m is None else tiles_of(m))
    return _estimate_tiles(image[:, None], None if m is None else m[:, None])


def _estimate_tiles(tiles: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """tiles: C×N×t×t (mask: 1×N×t×t); the Laplacian never crosses a tile border, so tiles may come from
    anywhere."""
    c, n, h, w = tiles.shape
    srgb = tiles.permute(1, 0, 2, 3)  # N×C×t×t
    k = _LAPLACE_DIFF.to(srgb)[None, None].expand(c, 1, 3, 3)
    resp = F.conv2d(srgb, k, groups=c).abs()  # N×C×(t-2)×(t-2)
    # Flat areas only: structure there cannot pose as noise.
    grey = srgb.mean(dim=1)
    gx = (grey[:, 1:-1, 2:] - grey[:, 1:-1, :-2]).abs()
    gy = (grey[:, 2:, 1:-1] - grey[:, :-2, 1:-1]).abs()
    grad = gx + gy
    if mask is None:
        flat_vals = grad.reshape(-1)
        thresh = flat_vals.kthvalue(max(1, flat_vals.numel() // 2)).values
        flat = grad <= thresh
    else:
        inside = mask[0, :, 1:-1, 1:-1] > 0.5
        flat_vals = grad[inside]
        if flat_vals.numel() == 0:
            return torch.zeros(c, dtype=srgb.dtype)
        thresh = flat_vals.kthvalue(max(1, flat_vals.numel() // 2)).values
        flat = (grad <= thresh) & inside
    sig = []
    for ch in range(c):
        vals = resp[:, ch][flat]
        # Summed in float64: a float32 sum's rounding depends on how torch splits it between threads.
        sig.append(math.sqrt(math.pi / 2.0) / 6.0 * float(vals.double().mean()) if vals.numel() else 0.0)
    return torch.tensor(sig, dtype=srgb.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Variance of pre-filtered noise from the median HH²


def filter_gain(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Variance that the filter `fn` ((H, W) -> (H, W)) leaves of unit white noise, measured on a seeded
    192×192 field away from its borders (deterministic)."""
    g = torch.Generator().manual_seed(0)
    x = fn(torch.randn(192, 192, generator=g))[12:-12, 12:-12]
    return float(x.var())


_HH_GAIN: Dict[Callable, float] = {}


def hh_gain(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """var(HH of fn(white noise)) / var(fn(white noise)), measured once per filter on a seeded 256×256 field:
    a filter correlates neighbours, so HH under-reads the filtered pixels' variance by this much."""
    if fn not in _HH_GAIN:
        g = torch.Generator().manual_seed(0)
        x = fn(torch.randn(256, 256, generator=g))[8:-8, 8:-8]
        hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) * 0.5
        _HH_GAIN[fn] = float((hh * hh).mean() / x.var())
    return _HH_GAIN[fn]


def hh_median_variance(image: torch.Tensor, prefilter: Optional[Callable] = None) -> float:
    """Noise variance of an (H, W) image from its finest diagonal Haar detail, median over the image.

    median(HH²) = 0.4549 σ² for Gaussian noise, and the median ignores the minority of textured cells. If the
    image went through `prefilter` (a blur applied to the noisy picture), HH's known under-reading of that
    filtered noise is undone, so the result is the variance of the filtered picture's noise."""
    h, w = image.shape
    x = image[: h // 2 * 2, : w // 2 * 2]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) * 0.5
    gain = 1.0 if prefilter is None else hh_gain(prefilter)
    return float((hh * hh).median()) / CHI2_1_MEDIAN / gain


# ----------------------------------------------------------------------------------------------------------------
# The whole profile: level model, spatial correlation, cross-channel covariance


@dataclass(frozen=True)
class NoiseProfile:
    """The noise of one picture, in the picture's own encoding.

    model: pixel variance = a·level + b, level = the mean over the channels (all channels pooled).
    autocovariance: (C, 2L+1, 2L+1) noise covariance between p and p + (dy, dx), index [c, L + dy, L + dx]
        (L = MAX_LAG); the centre is the variance, the grid is point-symmetric. An average over the blocks
        measured, so with level-dependent noise it belongs to their mean level.
    covariance: (C, C) cross-channel covariance of the noise at one pixel (same blocks).
    blocks: smooth blocks it was measured on.
    hh_factor: var(HH)/σ² = 1 − ρ(0,1) − ρ(1,0) + (ρ(1,1) + ρ(1,−1))/2 for this noise: divide a Haar-detail
        variance of this picture (level_model, hh_median_variance without a prefilter) by it to get the
        pixels' own."""
    model: NoiseModel
    autocovariance: np.ndarray
    covariance: np.ndarray
    blocks: int
    hh_factor: float

    @property
    def correlation(self) -> np.ndarray:
        """(C, 2L+1, 2L+1) autocorrelation coefficients (centre 1)."""
        lag = self.autocovariance.shape[-1] // 2
        c0 = self.autocovariance[:, lag, lag]
        return self.autocovariance / np.maximum(c0, 1e-30)[:, None, None]

    @property
    def lag1(self) -> np.ndarray:
        """(C, 2) lag-1 autocorrelation (ρx: next pixel to the right, ρy: the pixel below)."""
        r, lag = self.correlation, self.autocovariance.shape[-1] // 2
        return np.stack([r[:, lag, lag + 1], r[:, lag + 1, lag]], axis=1)

    @property
    def channel_correlation(self) -> np.ndarray:
        """(C, C) cross-channel correlation coefficients."""
        d = np.sqrt(np.maximum(np.diag(self.covariance), 1e-30))
        return self.covariance / np.outer(d, d)

    def sigma(self, level):
        """Noise standard deviation of a pixel at `level` (from the level model)."""
        return self.model.sigma(level)

    def spectrum(self, size: int = 32) -> np.ndarray:
        """(C, size, size) noise power spectrum S(f) = Σ_τ c(τ) cos(2π f·τ) on the DFT grid (f in cycles/px,
        numpy FFT order, index [c, fy, fx]); it averages to the variance, and is flat at σ² for white noise."""
        lag = self.autocovariance.shape[-1] // 2
        grid = np.zeros((self.autocovariance.shape[0], size, size))
        for dy in range(-lag, lag + 1):
            for dx in range(-lag, lag + 1):
                grid[:, dy % size, dx % size] += self.autocovariance[:, lag + dy, lag + dx]
        return np.real(np.fft.fft2(grid)).astype(np.float32)


def measure(image: np.ndarray, mask: Optional[np.ndarray] = None, max_pixels: int = 1_000_000,
            block: int = STRUCT_BLOCK) -> NoiseProfile:
    """The noise profile of one H×W×C (or H×W) float32 picture, in its own encoding; mask: H×W in [0, 1],
    only regions where it exceeds 0.5 are measured. Pictures above `max_pixels` are measured on a regular grid
    of 64 px tiles covering about that many pixels. Blocks holding exact 0 or 1 values (clipped) are skipped.

    Every number comes from the same smooth blocks: c(τ) by the exact detrending correction (module notes), the
    cross-channel covariance from the lag-0 residual products, and each block's own variance
    σ_b² = Σ_c rᵀr / (C · Σ_u ρ(u) M[0, u]) (unbiased for the common correlation shape ρ), whose means in
    level bins give the line a·level + b."""
    x = np.asarray(image, np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    h, w, c = x.shape
    m = None if mask is None else _as_mask(mask, h, w).numpy()
    if h * w > max_pixels and h >= 2 * MOSAIC_TILE and w >= 2 * MOSAIC_TILE:
        x, m = _mosaic(x, m, max_pixels)
        h, w = x.shape[:2]
    b = min(block, h, w)
    if b < 8:
        raise ValueError(f"a {w}×{h} picture is too small to measure its noise (8×8 px at least)")
    resid, levels = _smooth_residuals(x, m, b)                               # (N, C, b, b) detrended
    lags = _lags(MAX_LAG)
    if len(resid) == 0:
        zero = np.zeros((c, 2 * MAX_LAG + 1, 2 * MAX_LAG + 1))
        return NoiseProfile(NoiseModel(0.0, MIN_VARIANCE), zero, np.zeros((c, c)), 0, 1.0)
    design = _design(b, lags)
    sums = _lag_sums(resid, lags).mean(axis=0)                               # (C, lags)
    acov = np.linalg.solve(design, sums.T).T                                 # (C, lags): c(τ) per channel
    shape = (acov / np.maximum(acov[:, :1], 1e-30)).mean(axis=0)             # the channels' common ρ(τ)
    kept = float(design[0] @ shape)                                          # E[rᵀr] / c(0)
    flat = resid.reshape(len(resid), c, -1)
    cov = np.einsum("ncp,ndp->cd", flat, flat) / len(resid) / kept           # E[r_cᵀ r_d] = K_cd · kept
    block_var = (flat * flat).sum(axis=2).mean(axis=1) / kept
    rho = {lag: float(shape[i]) for i, lag in enumerate(lags)}
    factor = 1.0 - rho[(0, 1)] - rho[(1, 0)] + 0.5 * (rho[(1, 1)] + rho[(1, -1)])
    model = _level_line(levels, block_var, np.mean)
    return NoiseProfile(model, _lag_grid(acov, lags, MAX_LAG), cov, len(resid), float(factor))


def _level_line(levels: np.ndarray, var: np.ndarray, statistic) -> NoiseModel:
    """variance = a·level + b through `statistic` of the block variances in equal-count level bins."""
    order = np.argsort(levels, kind="stable")
    nbins = max(1, min(STRUCT_BINS, len(levels) // STRUCT_MIN_BIN))
    parts = np.array_split(order, nbins)
    lv = np.array([np.median(levels[p]) for p in parts])
    vs = np.maximum(np.array([statistic(var[p]) for p in parts]), MIN_VARIANCE)
    if nbins < 2 or np.ptp(lv) <= 0:
        return NoiseModel(0.0, float(np.sum(vs * [len(p) for p in parts]) / len(levels)))
    counts = np.array([len(p) for p in parts], np.float64)
    return _fit_line(lv, vs, counts / (vs * vs))        # a bin mean's variance ∝ var² / count


def _mosaic(x: np.ndarray, m: Optional[np.ndarray], max_pixels: int):
    """A regular grid of MOSAIC_TILE tiles of a big picture, packed edge to edge. Haar blocks (8 px) and
    structure blocks (32 px) never straddle two tiles, so the packed picture measures like the tiles."""
    t = MOSAIC_TILE
    ny, nx = x.shape[0] // t, x.shape[1] // t
    keep = max(1, int(math.ceil(math.sqrt(ny * nx * t * t / max_pixels))))
    rows, cols = range(0, ny, keep), range(0, nx, keep)

    def pack(a):
        return np.concatenate([np.concatenate([a[i * t:(i + 1) * t, j * t:(j + 1) * t] for j in cols], axis=1)
                               for i in rows], axis=0)
    return pack(x), None if m is None else pack(m)


def _smooth_residuals(x: np.ndarray, m: Optional[np.ndarray], b: int):
    """Detrended blocks (N, C, b, b) float64 where the picture is smooth enough to hold noise alone, and their
    levels (N,) (mean over the block and the channels).

    Every block's least-squares quadratic surface is removed. A robust line through a low quantile of the
    residual variances in level bins says what noise alone gives at each level; blocks above KEEP_RATIO times
    it hold texture and are dropped. Noise alone varies far less than that between blocks of 1024 samples (a few
    %), so none of it is cut, and level-dependent noise is judged against its own level."""
    h, w, c = x.shape
    ny, nx = h // b, w // b
    blocks = x[:ny * b, :nx * b].reshape(ny, b, nx, b, c).transpose(0, 2, 4, 1, 3).reshape(ny * nx, c, b, b)
    ok = ~((blocks == 0.0) | (blocks == 1.0)).any(axis=(1, 2, 3))             # clipped values hide noise
    if m is not None:
        mb = m[:ny * b, :nx * b].reshape(ny, b, nx, b).transpose(0, 2, 1, 3).reshape(ny * nx, b * b)
        ok &= mb.min(axis=1) > 0.5
    flat = blocks[ok].astype(np.float64).reshape(-1, c, b * b)
    if len(flat) == 0:
        return flat.reshape(0, c, b, b), np.zeros(0)
    q = _basis(b)
    resid = flat - (flat @ q) @ q.T
    var = (resid ** 2).mean(axis=2).mean(axis=1)
    levels = flat.mean(axis=(1, 2))
    gate = _level_line(levels, var, lambda v: np.quantile(v, REF_QUANTILE))
    keep = var <= KEEP_RATIO * gate.variance(levels)
    return resid[keep].reshape(-1, c, b, b), levels[keep]


@lru_cache(maxsize=8)
def _basis(b: int) -> np.ndarray:
    """(b², 6) orthonormal basis of the quadratic surfaces 1, x, y, x², xy, y² over a b×b block."""
    yy, xx = np.mgrid[0:b, 0:b].astype(np.float64)
    xx, yy = (xx - (b - 1) / 2) / b, (yy - (b - 1) / 2) / b
    cols = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], axis=-1).reshape(b * b, 6)
    q, _ = np.linalg.qr(cols)
    q.flags.writeable = False
    return q


def _lags(max_lag: int):
    """Lags (dy, dx) of one half-plane, (0, 0) first: c(−τ) = c(τ), so these are all the unknowns."""
    out = [(0, 0)] + [(0, dx) for dx in range(1, max_lag + 1)]
    out += [(dy, dx) for dy in range(1, max_lag + 1) for dx in range(-max_lag, max_lag + 1)]
    return tuple(out)


def _shift(img: np.ndarray, lag) -> np.ndarray:
    """(T_τ q)(p) = q(p + τ) inside the block, 0 where p + τ falls outside. img: (..., b, b)."""
    dy, dx = lag
    b = img.shape[-1]
    out = np.zeros_like(img)
    ys, yd = (slice(dy, b), slice(0, b - dy)) if dy >= 0 else (slice(0, b + dy), slice(-dy, b))
    xs, xd = (slice(dx, b), slice(0, b - dx)) if dx >= 0 else (slice(0, b + dx), slice(-dx, b))
    out[..., yd, xd] = img[..., ys, xs]
    return out


def _lag_sums(r: np.ndarray, lags) -> np.ndarray:
    """(N, C, lags): Σ_p r(p)·r(p + τ) over the pairs inside each block, = rᵀ T_τ r."""
    return np.stack([(r * _shift(r, lag)).sum(axis=(2, 3)) for lag in lags], axis=-1)


@lru_cache(maxsize=8)
def _design(b: int, lags) -> np.ndarray:
    """M[τ, u] = E[rᵀ T_τ r] per unit of c(u), for detrended b×b blocks (R = I − QQᵀ, Σ = Σ_u c(u) S_u,
    S_u = T_u + T_−u, S_0 = I): M = tr(T_τ S_u) − tr(Qᵀ S_u T_τ Q) − tr(Qᵀ T_τ S_u Q) + tr(QᵀT_τQ · QᵀS_uQ)."""
    basis = _basis(b).T.reshape(-1, b, b)                                    # the 6 basis images q_k

    def sym(u, imgs):                                                        # S_u applied to images
        return imgs.copy() if u == (0, 0) else _shift(imgs, u) + _shift(imgs, (-u[0], -u[1]))

    def gram(imgs):                                                          # Qᵀ A Q from the images A q_k
        return np.einsum("kij,lij->kl", basis, imgs)

    m = np.zeros((len(lags), len(lags)))
    for i, tau in enumerate(lags):
        n_pairs = (b - abs(tau[0])) * (b - abs(tau[1]))
        t_q = _shift(basis, tau)
        for j, u in enumerate(lags):
            s_q = sym(u, basis)
            # tr(T_τ S_u): the pairs at lag τ, when S_u holds the reverse lag −τ (u = τ in the half-plane)
            direct = n_pairs if (u == tau) else 0
            left = np.einsum("kij,kij->", basis, sym(u, t_q))                # tr(Qᵀ S_u T_τ Q)
            right = np.einsum("kij,kij->", basis, _shift(s_q, tau))          # tr(Qᵀ T_τ S_u Q)
            m[i, j] = direct - left - right + np.trace(gram(t_q) @ gram(s_q))
    return m


def _lag_grid(acov: np.ndarray, lags, max_lag: int) -> np.ndarray:
    """Half-plane lag values (C, lags) -> the full point-symmetric grid (C, 2L+1, 2L+1)."""
    grid = np.zeros((acov.shape[0], 2 * max_lag + 1, 2 * max_lag + 1))
    for i, (dy, dx) in enumerate(lags):
        grid[:, max_lag + dy, max_lag + dx] = acov[:, i]
        grid[:, max_lag - dy, max_lag - dx] = acov[:, i]
    return grid
