"""The shared depth service: one call that every operator uses when the user gives no depth map.

Contract: `estimate(image_rgb, job=None, device=None) -> DepthResult` with `disparity` (H×W float32, relative,
near = large, normalised to [0, 1]) and `source` naming what produced it:

- the monocular network (Depth Anything V2 Small, `network.py`) when its weights are installed;
- else the portrait proxy (`proxy.py`): face surface from the face mesh, body from the person mask, background
  far — no weights beyond the face models;
- else a UserError asking for a depth map.

`estimate_distance(image_rgb, focal_ratio, background_m=10, ...) -> metric.MetricDepth` gives metres for a
lens (focal length / sensor width = focal_ratio): the subject's distance from its face's size, the background
at the stated distance, and which distances were assumed, in words (core.depth.metric). It is what an operator
needs for a thin lens when the user has no depth map.

Results are cached per image (a hash of the pixels), so refocus, background and relight on the same picture
compute depth once (whichever device asked: devices agree to float rounding); the proxy's lens-independent maps
and its full-resolution person coverage are cached too, so another lens on the same picture costs only their
composition. `distance_m` gives metric distances when the user knows the subject's distance.

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
_CACHE_SIZE = 8                 # entries (a picture has up to three: its map, the proxy's scene, its faces) ...
_CACHE_BYTES = 256 * 2 ** 20    # ... and at most this much (a 24 MP map is 96 MB, its proxy scene about as much)


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


def _cached(key, make):
    """The cached value for `key`, made (outside the lock) and stored when missing. Values have `nbytes`."""
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    value = make()
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > 1 and (len(_cache) > _CACHE_SIZE or
                                   sum(_nbytes(v) for v in _cache.values()) > _CACHE_BYTES):
            _cache.popitem(last=False)
    return value


def _nbytes(v) -> int:
    if isinstance(v, DepthResult):
        return v.disparity.nbytes
    return int(getattr(v, "nbytes", 0))


@dataclass
class _Scene:
    """The proxy's Portrait and its full-resolution coverage: what every lens on this picture shares."""
    portrait: object
    coverage: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.portrait.nbytes + self.coverage.nbytes


def _use_network(method: str) -> bool:
    from . import network

    if method in ("auto", "network") and network.available():
        return True
    if method == "network":
        raise UserError(f"the depth model {network.MODEL_NAME} is not installed: run 'python -m core models fetch "
                        f"{network.MODEL_NAME}', or use the portrait proxy (method auto or proxy)", "missing-model")
    return False


def _scene(image: np.ndarray, key: str, job, dev) -> _Scene:
    from . import metric, proxy

    def make():
        p = proxy.analyse(image, job=job, device=dev)
        if job is not None:
            job.progress(0.8, "depth proxy: person edges at full resolution")
        coverage = metric.full_coverage(p, image)
        coverage.setflags(write=False)  # shared by every lens (and handed out as MetricDepth.matte)
        return _Scene(p, coverage)

    return _cached((key, "proxy-scene"), make)


def _compute(image: np.ndarray, key: str, method: str, job, device) -> DepthResult:
    from ..device import select_device
    from . import metric, network

    dev = select_device(device)
    if _use_network(method):
        disp = network.estimate(image, job=job, device=dev)
        return DepthResult(disp, f"network:{network.MODEL_NAME}")
    s = _scene(image, key, job, dev)
    return DepthResult(metric.relative_disparity(s.portrait, s.coverage), s.portrait.source)


def estimate(image_rgb: np.ndarray, job=None, *, method: str = "auto", device: Optional[str] = None) -> DepthResult:
    """Relative disparity of `image_rgb` (float32 H×W×3 sRGB) in [0, 1], near = 1, and what produced it.

    method: 'auto' (network if installed, else the portrait proxy), 'network' or 'proxy'. device: where the
    networks run (see the module docstring).
    The caller gets its own copy of the array; the cache keeps the original.
    """
    if method not in METHODS:
        raise UserError(f"depth method must be one of {', '.join(METHODS)}, not '{method}'", "bad-parameter")
    image = _check(image_rgb)
    key = image_key(image)

    def make():
        r = _compute(image, key, method, job, device)
        r.disparity.setflags(write=False)
        return r

    hit = _cached((key, method), make)
    if job is not None:
        job.progress(1.0, f"depth: {hit.source}")
    return DepthResult(hit.disparity.copy(), hit.source)


def estimate_distance(image_rgb: np.ndarray, focal_ratio: float, background_m: float = 10.0, job=None, *,
                      method: str = "auto", device: Optional[str] = None):
    """Metric depth (core.depth.metric.MetricDepth: distance_m H×W metres, the subject's and the background's
    distance, which were assumed, the faces found) of `image_rgb` through a lens whose focal length / sensor width
    is `focal_ratio` (= focal length in px / image width), the background at `background_m` metres.

    The proxy measures the subject by its face's size; the depth network's relative map is scaled by it. Each
    call gets its own array; the lens-independent parts are cached per picture."""
    from ..device import select_device
    from . import metric

    if method not in METHODS:
        raise UserError(f"depth method must be one of {', '.join(METHODS)}, not '{method}'", "bad-parameter")
    if not focal_ratio > 0:
        raise UserError("the focal length and the sensor width must be positive", "bad-parameter")
    image = _check(image_rgb)
    key = image_key(image)
    dev = select_device(device)
    if _use_network(method):
        rel = estimate(image, job, method=method, device=dev)
        faces = _cached((key, "faces"), lambda: _Faces(_detect(image, dev)))
        return metric.distance_from_disparity(rel.disparity, [f[0] for f in faces.items], focal_ratio,
                                              image.shape[1], background_m, source=rel.source,
                                              irises=[f[1] for f in faces.items])
    s = _scene(image, key, job, dev)
    out = metric.from_portrait(s.portrait, s.coverage, focal_ratio, background_m)
    if job is not None:
        job.progress(1.0, f"depth: {out.source}")
    return out


@dataclass
class _Faces:
    items: list

    nbytes = 0


def _detect(image: np.ndarray, dev) -> list:
    """(landmarks, irises) of the faces in `image`, largest first; none when the face models are missing."""
    try:
        from .. import face
    except ImportError:
        return []
    if not face.available():
        return []
    found = [f for f in face.detect_faces(image, device=dev) if f.landmarks is not None]
    found.sort(key=lambda f: -face.face_size(f.landmarks))
    return [(np.asarray(f.landmarks, np.float32), None if f.irises is None else np.asarray(f.irises, np.float32))
            for f in found]


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
