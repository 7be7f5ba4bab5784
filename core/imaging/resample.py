"""Edge-aware resampling: upsample a low-resolution map (depth, mask) guided by the full-resolution image.

Fast guided filter (He & Sun 2015): the map is first resized bilinearly, then a local linear model of the map
in terms of the guide's luminance is fitted in windows of radius r at low resolution and applied at full
resolution, so map edges snap to image edges instead of staying blurry or blocky.
"""
from __future__ import annotations

import numpy as np


def _box(x: np.ndarray, r: int) -> np.ndarray:
    import cv2
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Grey-guide guided filter. guide, src: H×W float32. Returns H×W float32."""
    g = guide.astype(np.float32)
    s = src.astype(np.float32)
    mean_g, mean_s = _box(g, radius), _box(s, radius)
    cov = _box(g * s, radius) - mean_g * mean_s
    var = _box(g * g, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return (_box(a, radius) * g + _box(b, radius)).astype(np.float32)


def guided_upsample(low: np.ndarray, guide_rgb: np.ndarray, radius: int | None = None,
                    eps: float = 1e-4) -> np.ndarray:
    """Upsample a H'×W' (or H'×W'×1) map to the guide's H×W, edges aligned to the guide.

    guide_rgb: H×W×3 float32 (any encoding; luminance is taken as the guide).
    """
    import cv2

    h, w = guide_rgb.shape[:2]
    low2 = low[:, :, 0] if low.ndim == 3 else low
    up = cv2.resize(low2.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if guide_rgb.ndim == 3 and guide_rgb.shape[2] >= 3:
        grey = guide_rgb[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    else:
        grey = guide_rgb.reshape(h, w).astype(np.float32)
    if radius is None:
        scale = max(h / max(low2.shape[0], 1), w / max(low2.shape[1], 1), 1.0)
        radius = int(max(2, round(2 * scale)))
    # Fit the linear model at a reduced resolution (the "fast" variant) for large images.
    sub = max(1, radius // 4)
    if sub > 1:
        small = (max(w // sub, 1), max(h // sub, 1))
        g_s = cv2.resize(grey, small, interpolation=cv2.INTER_AREA)
        p_s = cv2.resize(up, small, interpolation=cv2.INTER_AREA)
        r_s = max(radius // sub, 1)
        mean_g, mean_p = _box(g_s, r_s), _box(p_s, r_s)
        cov = _box(g_s * p_s, r_s) - mean_g * mean_p
        var = _box(g_s * g_s, r_s) - mean_g * mean_g
        a = cov / (var + eps)
        b = mean_p - a * mean_g
        a = cv2.resize(_box(a, r_s), (w, h), interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(_box(b, r_s), (w, h), interpolation=cv2.INTER_LINEAR)
        out = a * grey + b
    else:
        out = guided_filter(grey, up, radius, eps)
    lo, hi = float(low2.min()), float(low2.max())
    return np.clip(out, lo, hi).astype(np.float32)
