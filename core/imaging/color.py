"""Colour transfer functions and luminance.

Host pixels are sRGB-encoded ("R'G'B'"); physics (blur, light, noise) happens in linear light. The sRGB curve is
the exact IEC 61966-2-1 piecewise function, extended to values above 1 and mirrored below 0 so that HDR and
slightly negative float data survive a round trip.
"""
from __future__ import annotations

import numpy as np

# Rec. 709 / sRGB primaries, D65: relative luminance weights of linear RGB.
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_to_linear(x):
    """sRGB-encoded values -> linear light. Works on numpy arrays and torch tensors."""
    if _is_torch(x):
        import torch
        # exp/log instead of a general power and copysign instead of a sign product: about twice as fast on
        # CPU, and burst denoise decodes every frame's pixels on its hot path.
        a = x.abs()
        curve = torch.exp(2.4 * torch.log((a + 0.055) * (1.0 / 1.055)))
        return torch.copysign(torch.where(a <= 0.04045, a * (1.0 / 12.92), curve), x)
    fast = _with_opencv(np.asarray(x), _DECODE_KNEE, _decode_curve)
    if fast is not None:
        return fast
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    return (np.sign(x) * lin).astype(np.float32)


def linear_to_srgb(x):
    """Linear light -> sRGB-encoded values. Works on numpy arrays and torch tensors."""
    if _is_torch(x):
        import torch
        a = x.abs()
        enc = torch.where(a <= 0.0031308, a * 12.92, 1.055 * a.clamp_min(1e-12) ** (1 / 2.4) - 0.055)
        return torch.sign(x) * enc
    fast = _with_opencv(np.asarray(x), _ENCODE_KNEE, _encode_curve)
    if fast is not None:
        return fast
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    enc = np.where(a <= 0.0031308, a * 12.92, 1.055 * np.power(np.maximum(a, 1e-12), 1 / 2.4) - 0.055)
    return (np.sign(x) * enc).astype(np.float32)


def luminance(rgb_linear):
    """Relative luminance Y of linear RGB (H×W×3 -> H×W)."""
    if _is_torch(rgb_linear):
        w = rgb_linear.new_tensor(LUMA_709)
        return (rgb_linear * w.view(-1, 1, 1)).sum(dim=-3)
    return np.asarray(rgb_linear, dtype=np.float32)[..., :3] @ LUMA_709


# The sRGB curve is continuous where its two pieces meet, so for x above the negative knee
#   f(x) = linear(min(x, knee)) + (power(max(x, knee)) - power(knee))
# picks the right piece without a per-pixel branch: a few SIMD passes in OpenCV, several times faster than
# numpy's power and where (burst denoise decodes every pixel of every frame). Data reaching below -knee (float
# images) goes through |x| with the sign put back, as the mirrored curve wants. Large images go in chunks whose
# passes stay in cache (a 12 MP frame in one piece took 4× longer, bound by memory).
_DECODE_KNEE, _ENCODE_KNEE = 0.04045, 0.0031308
_FAST_MIN_SIZE = 4096  # below this the general path is as quick
_CHUNK = 1 << 17       # values per pass: each chunk's passes stay in the core's cache


def _with_opencv(x: np.ndarray, knee: float, curve):
    if x.size < _FAST_MIN_SIZE or x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] > 4):
        return None
    try:
        import cv2
    except ImportError:  # the host side has no OpenCV: numpy alone is fine
        return None
    # One channel of H×(W·C): OpenCV would apply a scalar to the first channel only of a multi-channel array.
    # Chunks of rows are made contiguous one at a time, so a strided view (a transposed canvas) costs no extra
    # pass over memory.
    width = x.size // x.shape[0]
    out = np.empty((x.shape[0], width), np.float32)
    step = max(1, _CHUNK // width)
    scratch = np.empty((step, width), np.float32)
    for r in range(0, x.shape[0], step):
        src = np.ascontiguousarray(x[r:r + step], dtype=np.float32).reshape(-1, width)
        dst, tmp = out[r:r + step], scratch[:len(src)]
        if cv2.minMaxLoc(src)[0] >= -knee:
            curve(cv2, src, dst, tmp)
        else:
            curve(cv2, np.abs(src), dst, tmp)
            np.copysign(dst, src, out=dst)
    return out.reshape(x.shape)


def _decode_curve(cv2, x: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
    cv2.min(x, _DECODE_KNEE, dst=out)
    cv2.max(x, _DECODE_KNEE, dst=tmp)
    cv2.addWeighted(tmp, 1 / 1.055, tmp, 0.0, 0.055 / 1.055, dst=tmp)
    cv2.pow(tmp, 2.4, dst=tmp)
    knee = ((_DECODE_KNEE + 0.055) / 1.055) ** 2.4
    cv2.addWeighted(out, 1 / 12.92, tmp, 1.0, -knee, dst=out)


def _encode_curve(cv2, x: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
    cv2.min(x, _ENCODE_KNEE, dst=out)
    cv2.max(x, _ENCODE_KNEE, dst=tmp)
    cv2.pow(tmp, 1 / 2.4, dst=tmp)
    knee = 1.055 * _ENCODE_KNEE ** (1 / 2.4)
    cv2.addWeighted(out, 12.92, tmp, 1.055, -knee, dst=out)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")
