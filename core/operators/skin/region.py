"""Where the skin is, and how large the face is: the region and the scale every other stage works at.

Region. The user's mask (in the hosts, the selection) is the skin region as given. Without one, the skin is
- the face's skin from the face mesh (`core.face.region_mask(…, "skin")`: the face oval minus eyes, brows, lips
  and nostrils, kept where the colour agrees with the face's own skin), at full resolution, plus
- the neck, ears and other visible skin outside the face oval, found on a small view (the face EXT_FACE_PX
  tall) by a colour model seeded from the face: a Gaussian in CIELAB chroma (a*, b*) fitted to the central
  70 % of the sure face skin, Mahalanobis distance d → clip((EXT_D1 − d)/(EXT_D1 − EXT_D0), 0, 1); times a
  texture gate (skin is smooth at that scale, hair and fabric are not: local RMS of the L* detail over the face
  skin's median, r → clip((TEX_R1 − r)/(TEX_R1 − TEX_R0), 0, 1)); times the person mask; never above the brows
  outside the face oval (that is hair, whatever its colour: the astronaut's light brown hair has the skin's
  chroma); kept only where connected to the face's skin; feathered by FEATHER × face height.

Scale. F = the largest face's height in pixels (`core.face.face_size`, forehead top to chin, about 17 cm on an
adult). The largest spot healed is blemish_size × F. Without a face (a mask was given) the blemish size is a
fraction of the picture's shorter side, and F is what the default fraction would make of it:
F = blemish_px / DEFAULT_BLEMISH, so that the band scales follow the one length the user set.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ...errors import UserError

DEFAULT_BLEMISH = 0.05   # × face height: 26 px on a 512 px face, enough for the 20 px spots
EXT_FACE_PX = 160.0      # the extension is found on a view where the face is this tall (0.1 MP for a portrait)
EXT_D0, EXT_D1 = 2.5, 4.0   # chroma Mahalanobis distances: sure skin up to 2.5 σ, none beyond 4 σ
TEX_R0, TEX_R1 = 1.6, 2.6   # texture ratio to the face skin's median: skin up to 1.6×, none beyond 2.6×
FEATHER = 0.01           # × face height: the extension's edge (as the face service feathers its masks)
MASK_FACE_PX = 256.0     # the face's skin mask is found on a view where the face is at most this tall
CACHE_MAX_PIXELS = 4_000_000   # pictures up to this size keep their faces and mask for the next run
SURE = 0.9               # face-skin mask above this seeds the colour model and the connectivity


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class Scale:
    face_px: float      # F, the face height in pixels the band scales follow
    blemish_px: float   # the largest spot healed, in pixels
    source: str         # 'face' or 'blemish size' (no face: F follows the blemish size)


def picture_key(image: np.ndarray, device) -> Optional[str]:
    """A digest of the picture's exact bytes (and the device), for the one-picture cache; None above
    CACHE_MAX_PIXELS, where hashing would cost more than a preview saves."""
    if image.shape[0] * image.shape[1] > CACHE_MAX_PIXELS:
        return None
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((image.shape, str(image.dtype), str(device))).encode())
    h.update(memoryview(np.ascontiguousarray(image)).cast("B"))
    return h.hexdigest()


def _cached(key: Optional[str], what: str, make):
    """The last picture's faces and skin mask: a dialog's preview re-runs the same picture with new settings,
    and its faces and skin do not change with them (0.2-0.5 s of a 1 MP preview)."""
    if key is None:
        return make()
    with _CACHE_LOCK:
        if _CACHE.get("key") == key and what in _CACHE:
            return _CACHE[what]
    value = make()
    with _CACHE_LOCK:
        if _CACHE.get("key") != key:
            _CACHE.clear()
            _CACHE["key"] = key
        _CACHE[what] = value
    return value


def find_faces(image: np.ndarray, device, needed: bool, key: Optional[str] = None) -> List:
    """Faces with landmarks. When a mask is given (needed=False) the faces only set the scale: a missing face
    model then means 'no face', not an error."""
    from ... import face

    if not needed and not face.available():
        return []
    return _cached(key, "faces", lambda: [f for f in face.detect_faces(image, device=device)
                                          if f.landmarks is not None])


def scale(faces: List, blemish_fraction: float, shape) -> Scale:
    from ...face import face_size

    if faces:
        f = max(face_size(x.landmarks) for x in faces)
        return Scale(f, blemish_fraction * f, "face")
    b = blemish_fraction * min(shape[0], shape[1])
    return Scale(b / DEFAULT_BLEMISH, b, "blemish size")


def no_face_error() -> UserError:
    return UserError("skin: no face found in the picture; select the skin to retouch (a mask) or use a portrait "
                     "with a visible face", "no-face")


def auto_mask(rgb: np.ndarray, faces: List, device=None, key: Optional[str] = None) -> np.ndarray:
    """H×W float32 skin weight in [0, 1] from the faces (see the module docstring); read-only."""
    if not faces:
        raise no_face_error()

    def make():
        m = _auto_mask(rgb, faces, device)
        m.setflags(write=False)
        return m
    return _cached(key, "mask", make)


def _auto_mask(rgb: np.ndarray, faces: List, device) -> np.ndarray:
    import copy

    import cv2

    from ... import face
    from ...face import face_size

    h, w = rgb.shape[:2]
    k = min(1.0, MASK_FACE_PX / max(face_size(f.landmarks) for f in faces))
    if k < 1.0:
        # The face's skin mask is smooth (feathered by 1 % of the face): found on a view where the face is
        # MASK_FACE_PX tall and scaled up, its cost no longer grows with the picture.
        size = (max(8, round(w * k)), max(8, round(h * k)))
        small = cv2.resize(np.ascontiguousarray(rgb[:, :, :3]), size, interpolation=cv2.INTER_AREA)
        scaled = []
        for f in faces:
            g = copy.copy(f)
            g.landmarks = f.landmarks * np.float32([size[0] / w, size[1] / h, size[0] / w])
            scaled.append(g)
        low = face.region_mask(small, "skin", faces=scaled, device=device)
        skin = np.zeros((h, w), np.float32)
        _paste_up(skin, low)
    else:
        small, scaled = np.ascontiguousarray(rgb[:, :, :3]), faces
        skin = low = face.region_mask(rgb, "skin", faces=faces, device=device)
    _extension(small, scaled, low, device, out=skin)
    return skin


def _paste_up(full: np.ndarray, low: np.ndarray) -> None:
    """max(full, bilinear upsampling of `low`) in place, over the part of `low` that is not zero only."""
    import cv2

    rows = np.flatnonzero(low.max(axis=1) > 0)
    cols = np.flatnonzero(low.max(axis=0) > 0)
    if not len(rows):
        return
    h, w = full.shape
    lh, lw = low.shape
    sy, sx = h / lh, w / lw
    r0, r1 = max(0, rows[0] - 2), min(lh, rows[-1] + 3)
    c0, c1 = max(0, cols[0] - 2), min(lw, cols[-1] + 3)
    y0, y1 = int(np.floor(r0 * sy)), min(h, int(np.ceil(r1 * sy)))
    x0, x1 = int(np.floor(c0 * sx)), min(w, int(np.ceil(c1 * sx)))
    # Sample the low-resolution mask at the full-resolution pixel centres of the window (cv2.resize's mapping).
    ys = ((np.arange(y0, y1) + 0.5) / sy - 0.5).astype(np.float32)
    xs = ((np.arange(x0, x1) + 0.5) / sx - 0.5).astype(np.float32)
    mx, my = np.meshgrid(xs, ys)
    up = cv2.remap(low, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    np.maximum(full[y0:y1, x0:x1], np.clip(up, 0.0, 1.0), out=full[y0:y1, x0:x1])


def _resize(x: np.ndarray, size, interpolation) -> np.ndarray:
    import cv2
    return cv2.resize(x, size, interpolation=interpolation)


def _person(rgb: np.ndarray, device) -> np.ndarray:
    """Person probability on the small view: Selfie Segmentation at its 256×256 input, scaled up bilinearly.
    The face service's `person_mask` adds an edge-aware upsampling (0.1-0.2 s on a busy CPU) that the
    extension does not need: its edge comes from the colour and texture terms and is feathered anyway."""
    import cv2

    from ...face.networks import SELFIE, run
    from ...models.selfie import INPUT_SIZE

    view = cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    (prob,) = run(SELFIE, np.clip(view, 0.0, 1.0).astype(np.float32)[None], device)
    return cv2.resize(prob[0, 0], (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)


def _extension(rgb: np.ndarray, faces: List, skin: np.ndarray, device, out: np.ndarray) -> None:
    """The skin outside the face ovals (neck, ears, hands) found on the view `rgb` (faces and face-skin mask
    `skin` in its pixels), added into `out` (max, any larger size: scaled up)."""
    import cv2

    from ... import face
    from ...face import face_size, topology as T
    from . import space

    h, w = rgb.shape[:2]
    big = max(face_size(f.landmarks) for f in faces)
    k = min(1.0, EXT_FACE_PX / big)
    size = (max(8, round(w * k)), max(8, round(h * k)))
    sx, sy = size[0] / w, size[1] / h
    small = np.clip(_resize(np.ascontiguousarray(rgb[:, :, :3]), size, cv2.INTER_AREA), 0.0, 1.0)
    sure = _resize(skin, size, cv2.INTER_AREA) > SURE
    if sure.sum() < 50:
        return
    lab = space.srgb_to_lab(small)

    # Colour: a Gaussian in (a*, b*) over the central 70 % of the sure skin.
    sample = lab[:, :, 1:][sure]
    d0 = np.linalg.norm(sample - np.median(sample, 0), axis=1)
    core = sample[d0 <= np.percentile(d0, 70)].astype(np.float64)
    cov = np.cov(core.T) + np.eye(2) * 0.25   # a floor of 0.5 a*/b* units: a flat synthetic skin stays finite
    inv = np.linalg.inv(cov).astype(np.float32)
    da = lab[:, :, 1] - np.float32(core[:, 0].mean())
    db = lab[:, :, 2] - np.float32(core[:, 1].mean())
    d = np.sqrt(np.maximum(inv[0, 0] * da * da + 2.0 * inv[0, 1] * da * db + inv[1, 1] * db * db, 0.0))
    colour = np.clip((EXT_D1 - d) / (EXT_D1 - EXT_D0), 0.0, 1.0)

    # Texture: RMS of L*'s finest detail over a few pixels, relative to the face skin's own.
    lum = lab[:, :, 0]
    detail = lum - cv2.GaussianBlur(lum, (0, 0), 1.0)
    rms = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 2.0))
    ref = max(float(np.median(rms[sure])), 0.05)
    smooth = np.clip((TEX_R1 - rms / ref) / (TEX_R1 - TEX_R0), 0.0, 1.0)

    person = _person(small, device)
    like = (colour * smooth * person).astype(np.float32)

    # Geometry: nothing inside the face ovals (the face mask's job), nothing above the brows outside them.
    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    allowed = np.ones((size[1], size[0]), np.float32)
    for f in faces:
        lm = f.landmarks[:, :2] * np.float32([sx, sy])
        oval = np.zeros((size[1], size[0]), np.uint8)
        cv2.fillPoly(oval, [np.round(lm[T.FACE_OVAL] - 0.5).astype(np.int32)], 1)
        up = lm[T.FOREHEAD_TOP] - lm[T.CHIN]
        up = up / max(float(np.linalg.norm(up)), 1e-6)
        height = (xx - lm[T.CHIN, 0]) * up[0] + (yy - lm[T.CHIN, 1]) * up[1]
        brows = lm[T.RIGHT_BROW + T.LEFT_BROW]
        brow_height = float(np.mean((brows - lm[T.CHIN]) @ up))
        allowed[oval > 0] = 0.0
        allowed[(height > brow_height) & (oval == 0)] = 0.0
    like *= allowed

    # Connected to the face's skin: components of the likely skin that touch the sure face skin.
    seeds = cv2.dilate(sure.astype(np.uint8), np.ones((5, 5), np.uint8))
    cand = ((like > 0.5) | (seeds > 0)).astype(np.uint8)
    n, labels = cv2.connectedComponents(cand, connectivity=8)
    touching = np.unique(labels[seeds > 0])
    keep = np.isin(labels, touching[touching > 0])
    like = like * keep
    if float(like.max()) <= 0.0:
        return
    like = cv2.GaussianBlur(like, (0, 0), max(FEATHER * big * k, 0.5))
    like[like < 1e-3] = 0.0   # the blur's far tail: nothing, so the mask keeps a bounded extent
    _paste_up(out, like)
