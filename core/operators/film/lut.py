"""Table lookups per pixel: 1-D curves and the 3-D LUT, trilinear.

CPU: OpenCV's remap does bilinear interpolation in one SIMD pass. A 1-D table is a 1×N image read at
x = (value − x0) / step. The 3-D LUT (S×S×S×3 over dye amounts c_r, c_g, c_b) is laid out as an S × S² image,
row = g index, column = b index · S + r index; trilinear interpolation is the bilinear (r, g) read in the two
b slices around the pixel's b, blended by b's fraction. r never crosses a slice (at r = S−1 the next column's
weight is 0). remap interpolates at 1/32 of a table step (OpenCV's fixed-point maps): on a 65-point LUT over
about 3 density units that is 0.0015 density, far below one 8-bit level of the output.

Devices: `lut3d_torch` is the same trilinear lookup through torch's grid_sample (align_corners: the first and
last samples sit on the box's faces), used when the operator runs on a GPU.
"""
from __future__ import annotations

import numpy as np


def curve(values: np.ndarray, table: np.ndarray, x0: float, step: float) -> np.ndarray:
    """table interpolated at `values` (H×W float32), held at both ends."""
    import cv2

    v = np.ascontiguousarray(values, np.float32)
    map_x = (v - np.float32(x0)) * np.float32(1.0 / step)
    map_y = np.zeros_like(map_x)
    img = np.ascontiguousarray(np.asarray(table, np.float32)[None, :])
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def layout(lut: np.ndarray) -> np.ndarray:
    """(S, S, S, 3) [r, g, b] -> the S × S² × 3 image that `lut3d` reads."""
    s = lut.shape[0]
    return np.ascontiguousarray(np.transpose(lut, (1, 2, 0, 3)).reshape(s, s * s, 3), np.float32)


def lut3d(c, image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Trilinear lookup of the laid-out LUT `image` (S × S² × 3) at dye amounts c: three H×W planes
    (r, g, b; overwritten). Returns H×W×3."""
    import cv2

    s = image.shape[0]
    scale = (s - 1) / np.maximum(np.asarray(hi, np.float64) - np.asarray(lo, np.float64), 1e-12)
    u = []
    for i in range(3):
        p = c[i]
        cv2.addWeighted(p, float(scale[i]), p, 0.0, float(-lo[i] * scale[i]), dst=p)
        if i != 1:   # g is a row index: remap's replicated border holds it; r and b index slices
            cv2.max(p, 0.0, dst=p)
            cv2.min(p, float(s - 1), dst=p)
        u.append(p)
    b0 = np.floor(u[2])
    np.minimum(b0, s - 2, out=b0)
    fb = u[2] - b0
    x0 = cv2.scaleAdd(b0, float(s), u[0])
    lower = cv2.remap(image, x0, u[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x0 += np.float32(s)
    upper = cv2.remap(image, x0, u[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    upper -= lower
    upper *= fb[:, :, None]
    upper += lower
    return upper


def lut1d(c: np.ndarray, lut: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear lookup of an (S, 3) LUT at dye amounts c (H×W): H×W×3."""
    import cv2

    s = lut.shape[0]
    map_x = np.clip((np.asarray(c, np.float32) - np.float32(lo)) * np.float32((s - 1) / max(hi - lo, 1e-12)),
                    0.0, s - 1).astype(np.float32)
    img = np.ascontiguousarray(np.asarray(lut, np.float32)[None, :, :])
    return cv2.remap(img, map_x, np.zeros_like(map_x), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def lut3d_torch(c: np.ndarray, lut: np.ndarray, lo: np.ndarray, hi: np.ndarray, device) -> np.ndarray:
    """The same lookup on a torch device: (S, S, S, 3) LUT, c H×W×3 -> H×W×3 float32 (numpy)."""
    import torch
    import torch.nn.functional as F

    vol = torch.from_numpy(np.ascontiguousarray(np.transpose(lut, (3, 0, 1, 2)))).to(device)[None]
    t = torch.from_numpy(np.ascontiguousarray(c, np.float32)).to(device)
    lo_t = torch.as_tensor(np.asarray(lo, np.float32), device=device)
    hi_t = torch.as_tensor(np.asarray(hi, np.float32), device=device)
    g = ((t - lo_t) / (hi_t - lo_t).clamp_min(1e-12) * 2.0 - 1.0).clamp(-1.0, 1.0)
    grid = g.flip(-1)[None, None]                     # grid_sample's (x, y, z) index (W, H, D) = (b, g, r)
    out = F.grid_sample(vol, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0, :, 0].permute(1, 2, 0).contiguous().cpu().numpy()
