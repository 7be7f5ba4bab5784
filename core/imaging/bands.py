"""Scale bands: Gaussian and Laplacian pyramids, and a split into low / mid / high bands at scales in pixels.

Pyramids (Burt & Adelson 1983). A Gaussian pyramid level is the previous one blurred by the 5-tap binomial
[1 4 6 4 1]/16 along both axes and decimated by 2 (OpenCV's pyrDown, mirrored borders): an H×W level gives
⌈H/2⌉×⌈W/2⌉. A Laplacian level is what that loses: L_k = G_k − up(G_{k+1}), with up = pyrUp (zero-stuffing
and the same kernel ×4) to G_k's exact size; the last entry is the coarsest Gaussian level itself. `collapse`
adds the levels back from the top, which reproduces the input up to float32 rounding.

Band split at one resolution. With G_σ a Gaussian blur of standard deviation σ px, sigmas σ_1 < … < σ_n give
n + 1 bands, finest first: x − G_σ1, G_σ1 − G_σ2, …, G_σn−1 − G_σn, G_σn. They telescope, so their sum is the
input up to float32 rounding. A sinusoid of period P px passes G_σ with amplitude gain exp(−2π²σ²/P²), so band k
keeps exp(−2π²σ_k²/P²) − exp(−2π²σ_{k+1}²/P²) of it (σ_0 = 0, σ_{n+1} = ∞). `sigma_for_period(P)` is the σ
whose gain is one half at period P (σ = P·sqrt(ln 2 / 2)/π ≈ P/5.34): the natural boundary between two bands.

Arrays: H×W or H×W×C float32 (any C), numpy in and out; borders mirrored (reflect-101) throughout.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence

import numpy as np

MIN_LEVEL_PX = 8     # default pyramids stop before the smaller side drops below this


def _cv2():
    import cv2
    return cv2


def _per_plane(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply an OpenCV image function to H×W or H×W×C float32, keeping the channel axis (OpenCV drops a
    single channel and takes at most 4 at once)."""
    x = np.ascontiguousarray(x, np.float32)
    if x.ndim == 2:
        return fn(x)
    c = x.shape[2]
    if c in (3, 4):
        return fn(x)
    planes = [fn(np.ascontiguousarray(x[:, :, k])) for k in range(c)]
    return np.stack(planes, axis=2)


def _check(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an H×W or H×W×C image, got shape {x.shape}")
    return x


def default_levels(shape: Sequence[int]) -> int:
    """Halvings until the smaller side would drop below MIN_LEVEL_PX (0 for a small image)."""
    side = min(shape[0], shape[1])
    n = 0
    while -(-side // 2) >= MIN_LEVEL_PX:
        side = -(-side // 2)
        n += 1
    return n


def pyr_down(image: np.ndarray) -> np.ndarray:
    """One Gaussian pyramid step: [1 4 6 4 1]/16 blur, then every other pixel; H×W -> ⌈H/2⌉×⌈W/2⌉."""
    cv2 = _cv2()
    x = _check(image)
    h, w = x.shape[:2]
    return _per_plane(x, lambda p: cv2.pyrDown(p, dstsize=((w + 1) // 2, (h + 1) // 2),
                                               borderType=cv2.BORDER_REFLECT_101))


def pyr_up(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The inverse step's prediction: zero-stuffed to `shape` (H, W) (each at most twice the input side) and
    blurred by the same kernel ×4, so that a constant stays that constant."""
    cv2 = _cv2()
    x = _check(image)
    h, w = int(shape[0]), int(shape[1])
    return _per_plane(x, lambda p: cv2.pyrUp(p, dstsize=(w, h), borderType=cv2.BORDER_REFLECT_101))


def gaussian_pyramid(image: np.ndarray, levels: Optional[int] = None) -> List[np.ndarray]:
    """[G_0 = the image, G_1, …, G_levels], each level half the size of the previous (rounded up)."""
    x = _check(image)
    n = default_levels(x.shape) if levels is None else int(levels)
    if n < 0:
        raise ValueError("levels must be at least 0")
    out = [x]
    for _ in range(n):
        if min(out[-1].shape[:2]) < 2:
            break
        out.append(pyr_down(out[-1]))
    return out


def laplacian_pyramid(image: np.ndarray, levels: Optional[int] = None) -> List[np.ndarray]:
    """[L_0, …, L_{n−1}, G_n]: band-pass levels L_k = G_k − up(G_{k+1}), finest first, then the coarsest
    Gaussian level (the low-pass residual). `collapse` inverts it."""
    g = gaussian_pyramid(image, levels)
    bands = [g[k] - pyr_up(g[k + 1], g[k].shape[:2]) for k in range(len(g) - 1)]
    return bands + [g[-1]]


def collapse(pyramid: Sequence[np.ndarray]) -> np.ndarray:
    """Rebuild the image from a Laplacian pyramid: G_k = L_k + up(G_{k+1}), from the top down."""
    x = np.asarray(pyramid[-1], np.float32)
    for band in reversed(pyramid[:-1]):
        x = band + pyr_up(x, band.shape[:2])
    return x


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of standard deviation `sigma_px` (kernel to ±4σ, mirrored borders); σ <= 0: a copy."""
    cv2 = _cv2()
    x = _check(image)
    if sigma_px <= 0:
        return x.copy()
    return _per_plane(x, lambda p: cv2.GaussianBlur(p, (0, 0), float(sigma_px), borderType=cv2.BORDER_REFLECT_101))


def sigma_for_period(period_px: float, gain: float = 0.5) -> float:
    """σ (px) of the Gaussian whose amplitude gain at a sinusoid of `period_px` is `gain`:
    exp(−2π²σ²/P²) = gain, σ = P·sqrt(−ln(gain)/2)/π."""
    if not 0.0 < gain < 1.0:
        raise ValueError("gain must lie strictly between 0 and 1")
    return float(period_px) * math.sqrt(-math.log(gain) / 2.0) / math.pi


def band_gain(period_px: float, sigmas_px: Sequence[float]) -> np.ndarray:
    """Amplitude gain of each band of `band_split(…, sigmas_px)` for a sinusoid of `period_px` (finest first)."""
    g = [1.0] + [math.exp(-2.0 * math.pi ** 2 * s * s / period_px ** 2) for s in sigmas_px] + [0.0]
    return np.array([g[k] - g[k + 1] for k in range(len(g) - 1)])


def band_split(image: np.ndarray, sigmas_px: Sequence[float]) -> List[np.ndarray]:
    """Split an image into len(sigmas_px) + 1 bands by differences of Gaussians, finest first:
    [x − G_σ1, G_σ1 − G_σ2, …, G_σn] (e.g. sigmas (2, 16): high, mid, low). Sum of the bands == the image
    up to float32 rounding. sigmas_px: increasing, > 0, in pixels of this image."""
    x = _check(image)
    s = [float(v) for v in sigmas_px]
    if not s or any(v <= 0 for v in s) or any(b <= a for a, b in zip(s, s[1:])):
        raise ValueError(f"sigmas must be positive and increasing, got {list(sigmas_px)}")
    blurred = [x] + [gaussian_blur(x, v) for v in s]
    return [blurred[k] - blurred[k + 1] for k in range(len(s))] + [blurred[-1]]
