"""The shared depth service: one call that every operator uses when the user gives no depth map.

Contract: `estimate(image_rgb, job=None, device=None) -> DepthResult` with `disparity` (H×W float32, relative,
near = large, normalised to [0, 1]) and `source` naming what produced it:

- the monocular network (Depth Anything V2 Small, `network.py`) when its weights are installed;
- else the portrait proxy (`proxy.py`): face surface from the face mesh, body from the person mask, background
  far — no weights beyond the face models;
- else a UserError asking for a depth map.

Results are cached per image (a hash of the pixels), so refocus, background and relight on the same picture
compute depth once (whichever device asked: devices agree to float rounding). `distance_m` gives metric
distances when the user knows the subject's distance.

`device` is the caller's choice (a torch.device, 'cpu', 'cuda', 'cuda:1', 'mps', or None for
`core.device.select_device`'s default), resolved once here and passed to the network or to the face service.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import UserError

METHODS = ("auto", "network", "proxy")
_CACHE_SIZE = 4                 # images ...
_CACHE_BYTES = 256 * 2 ** 20    # ... and at most this much disparity (a 24 MP map is 96 MB)


@dataclass
class DepthResult:
    disparity: np.ndarray
    source: str


_cache: "OrderedDict[Tuple, DepthResult]" = OrderedDict()
_cache_lock = threading.Lock()


def image_key(image_rgb: np.ndarray) -> str:
    """A digest of the pixels (and shape), so the same picture hits the cache whoever asks."""
    arr = np.ascontiguousarray(image_rgb[:, :, :3], dtype=np.float32)
    h = hashlib.blake2b(digest_size=16)
    h.update(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _check(image_rgb) -> np.ndarray:
    if isinstance(image_rgb, np.ndarray) and image_rgb.ndim == 2:
        image_rgb = image_rgb[:, :, None]
    if not isinstance(image_rgb, np.ndarray) or image_rgb.ndim != 3 or image_rgb.shape[2] < 1:
        raise UserError("depth needs an image (height x width x channels)", "bad-input")
    if image_rgb.shape[2] < 3:  # grey (+ alpha): the grey channel as RGB
        image_rgb = np.repeat(image_rgb[:, :, :1], 3, axis=2)
    if min(image_rgb.shape[:2]) < 16:
        raise UserError(f"the image is too small for depth estimation ({image_rgb.shape[1]}x"
                        f"{image_rgb.shape[0]} px; at least 16x16)", "bad-input")
    return np.ascontiguousarray(image_rgb[:, :, :3], dtype=np.float32)


def _compute(image: np.ndarray, method: str, job, device) -> DepthResult:
    from ..device import select_device
    from . import network, proxy

    dev = select_device(device)
    if method in ("auto", "network") and network.available():
        disp = network.estimate(image, job=job, device=dev)
        return DepthResult(disp, f"network:{network.MODEL_NAME}")
    if method == "network":
        raise UserError(f"the depth model {network.MODEL_NAME} is not installed: run 'python -m core models fetch "
                        f"{network.MODEL_NAME}', or use the portrait proxy (method auto or proxy)", "missing-model")
    disp, source = proxy.estimate(image, job=job, device=dev)
    return DepthResult(disp, source)


def estimate(image_rgb: np.ndarray, job=None, *, method: str = "auto", device: Optional[str] = None) -> DepthResult:
    """Relative disparity of `image_rgb` (float32 H×W×3 sRGB) in [0, 1], near = 1, and what produced it.

    method: 'auto' (network if installed, else the portrait proxy), 'network' or 'proxy'. device: where the
    networks run (see the module docstring).
    The caller gets its own copy of the array; the cache keeps the original.
    """
    if method not in METHODS:
        raise UserError(f"depth method must be one of {', '.join(METHODS)}, not '{method}'", "bad-parameter")
    image = _check(image_rgb)
    key = (image_key(image), method)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None:
        hit = _compute(image, method, job, device)
        hit.disparity.setflags(write=False)
        with _cache_lock:
            _cache[key] = hit
            while len(_cache) > 1 and (len(_cache) > _CACHE_SIZE or
                                       sum(r.disparity.nbytes for r in _cache.values()) > _CACHE_BYTES):
                _cache.popitem(last=False)
    if job is not None:
        job.progress(1.0, f"depth: {hit.source}")
    return DepthResult(hit.disparity.copy(), hit.source)


def distance_m(disparity: np.ndarray, subject_distance_m: float, subject_disparity: float,
               far_limit: float = 20.0) -> np.ndarray:
    """Metric distance (metres) from relative disparity, scaled so the subject is at `subject_distance_m`.

    Assumes disparity ∝ 1 / distance (the unknown shift of an affine-invariant map taken as zero), which is
    what a single known distance can pin down. Pixels further than `far_limit` × the subject distance (or with
    no disparity) are clamped there, so the background stays finite.
    """
    if not subject_distance_m > 0:
        raise UserError("the subject distance must be positive (metres)", "bad-parameter")
    if not subject_disparity > 0:
        raise UserError("the subject has no disparity (it lies on the far background): pick another point",
                        "bad-parameter")
    d = np.maximum(np.asarray(disparity, np.float32), subject_disparity / far_limit)
    return (subject_distance_m * subject_disparity / d).astype(np.float32)
