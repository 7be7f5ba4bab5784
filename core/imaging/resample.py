"""Edge-aware resampling: upsample a low-resolution map (depth, mask) guided by the full-resolution image.

Joint bilateral upsampling (Kopf et al. 2007): each output pixel is a weighted mean of the 4×4 nearest
low-resolution samples, weighted by spatial distance and by how similar the guide's luminance at the output pixel
is to the guide's (area-averaged) luminance at each sample. Map edges therefore snap to image edges instead of
being smeared over the upsampling factor, as bilinear interpolation does. Output rows go in blocks small
enough for a core's cache, blocks in parallel: a 12 MP map in 0.6-0.9 s on two cores (whole-image: 3-5 s).

`guided_filter` (He et al.) is kept for edge-preserving smoothing at one resolution; it does not sharpen a map.
"""
from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
UPSAMPLE_BLOCK_ROWS = 32   # output rows per block: 16 taps of a 12 MP row block stay within a core's cache


def _box(x: np.ndarray, r: int) -> np.ndarray:
    import cv2
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Grey-guide guided filter (edge-preserving smoothing). guide, src: H×W float32. Returns H×W float32."""
    g = guide.astype(np.float32)
    s = src.astype(np.float32)
    mean_g, mean_s = _box(g, radius), _box(s, radius)
    cov = _box(g * s, radius) - mean_g * mean_s
    var = _box(g * g, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return (_box(a, radius) * g + _box(b, radius)).astype(np.float32)


def guide_luminance(guide: np.ndarray) -> np.ndarray:
    if guide.ndim == 3 and guide.shape[2] >= 3 and guide.shape[2] <= 4:
        import cv2
        # One OpenCV pass, alpha weighted 0: no float copy of the whole picture first (12 MP: 30 ms, was 0.65 s).
        weights = np.zeros((1, guide.shape[2]), np.float32)
        weights[0, :3] = _LUMA
        src = np.ascontiguousarray(guide, dtype=np.float32)
        return cv2.transform(src, weights).reshape(guide.shape[:2])
    if guide.ndim == 3 and guide.shape[2] > 4:
        return guide[:, :, :3].astype(np.float32) @ _LUMA
    return guide.reshape(guide.shape[:2]).astype(np.float32)


def guided_upsample(low: np.ndarray, guide_rgb: np.ndarray, sigma_spatial: float = 1.0,
                    sigma_range: float = 0.08) -> np.ndarray:
    """Upsample an h×w (or h×w×1) map to the guide's H×W with edges aligned to the guide.

    sigma_spatial is in low-resolution pixels; sigma_range in guide luminance units (0..1 scale).
    A map already at the guide's size is returned unchanged.
    """
    import cv2

    low2 = (low[:, :, 0] if low.ndim == 3 else low).astype(np.float32)
    H, W = guide_rgb.shape[:2]
    h, w = low2.shape
    if (h, w) == (H, W):
        return low2.copy()
    import torch

    from ..parallel import cpu_map

    g_hi = guide_luminance(guide_rgb)
    g_lo = cv2.resize(g_hi, (w, h), interpolation=cv2.INTER_AREA)
    gh, gl, lv = torch.from_numpy(g_hi), torch.from_numpy(g_lo), torch.from_numpy(low2)
    # Position of each output pixel centre in low-resolution pixel coordinates.
    y_lo = (torch.arange(H, dtype=torch.float32) + 0.5) * (h / H) - 0.5
    x_lo = (torch.arange(W, dtype=torch.float32) + 0.5) * (w / W) - 0.5
    y0, x0 = torch.floor(y_lo).long(), torch.floor(x_lo).long()
    inv_s = 1.0 / (2.0 * sigma_spatial ** 2)
    inv_r = 1.0 / (2.0 * sigma_range ** 2)
    taps = (-1, 0, 1, 2)
    columns = [((x0 + d).clamp(0, w - 1), torch.exp(-((x0 + d) - x_lo) ** 2 * inv_s)) for d in taps]
    out = np.empty((H, W), np.float32)

    def rows(r0: int) -> None:
        # A block of output rows at a time: its 16 weighted taps stay in cache, and blocks run in parallel.
        r1 = min(r0 + UPSAMPLE_BLOCK_ROWS, H)
        with torch.no_grad():
            num = torch.zeros((r1 - r0, W))
            den = torch.zeros((r1 - r0, W))
            g_out = gh[r0:r1]
            for dy in taps:
                iy = (y0[r0:r1] + dy).clamp(0, h - 1)
                wy = torch.exp(-((y0[r0:r1] + dy) - y_lo[r0:r1]) ** 2 * inv_s)
                rows_v, rows_g = lv.index_select(0, iy), gl.index_select(0, iy)
                for ix, wx in columns:
                    diff = g_out - rows_g.index_select(1, ix)
                    weight = torch.exp(diff.square_().mul_(-inv_r)).mul_(wy[:, None]).mul_(wx[None, :])
                    num.addcmul_(weight, rows_v.index_select(1, ix))
                    den.add_(weight)
            out[r0:r1] = (num / den.clamp_min(1e-12)).numpy()

    cpu_map(rows, range(0, H, UPSAMPLE_BLOCK_ROWS), "cpu")
    return out
