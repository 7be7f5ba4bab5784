"""Soft region masks at the image's full resolution: face parts from the landmarks (face, eyes, brows, lips,
nostrils), skin (the face oval minus the features, kept where the colour agrees with the face's own skin) and
the person (Selfie Segmentation, edge-aware upsampled).

Masks are H×W float32 in [0, 1]; polygons are in continuous pixel coordinates (pixel centres at +0.5).
"""
from __future__ import annotations

from typing import List, Optional

import cv2
import numpy as np

from ..errors import UserError
from . import topology as T
from .detection import Face, detect_faces
from .landmarks import face_landmarks, face_size
from .networks import SELFIE, as_rgb, run

REGIONS = ("skin", "face", "eyes", "brows", "lips", "nostrils", "person")


def _polygon_mask(shape, polys, feather_px: float) -> np.ndarray:
    """Area coverage of filled polygons (continuous pixel coordinates, pixel centres at +0.5), from a
    supersampled raster averaged down, then feathered by a Gaussian of sigma feather_px."""
    h, w = shape
    ss = int(np.clip(round(2048 / max(h, w, 1)), 1, 4))  # small windows get 4×4 samples per pixel
    big = np.zeros((h * ss, w * ss), np.uint8)
    shift = 4
    for poly in polys:
        pts = np.round((np.asarray(poly, np.float64) * ss - 0.5) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(big, [pts], 255, lineType=cv2.LINE_8, shift=shift)
    m = big.astype(np.float32) / 255.0
    if ss > 1:
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA)
    if feather_px > 0.3:
        m = cv2.GaussianBlur(m, (0, 0), feather_px, borderType=cv2.BORDER_CONSTANT)
    return np.clip(m, 0.0, 1.0)


def _region_polys(lm: np.ndarray, region: str):
    p = lambda idx: lm[idx, :2]  # noqa: E731
    if region == "face":
        return [p(T.FACE_OVAL)], []
    if region == "eyes":
        return [p(T.RIGHT_EYE), p(T.LEFT_EYE)], []
    if region == "brows":
        return [p(T.RIGHT_BROW), p(T.LEFT_BROW)], []
    if region == "lips":
        return [p(T.LIPS_OUTER)], [p(T.LIPS_INNER)]
    if region == "nostrils":
        return [p(T.NOSE_BASE)], []
    raise UserError(f"unknown region '{region}': choose one of {', '.join(REGIONS)}", "bad-parameter")


def _nostrils(rgb: np.ndarray, lm: np.ndarray, feather: float) -> np.ndarray:
    """Dark openings inside the nose base: the nose-base polygon weighted by how much darker than the
    surrounding nose skin each pixel is."""
    h, w = rgb.shape[:2]
    base = _polygon_mask((h, w), [lm[T.NOSE_BASE, :2]], 0)
    inside = base > 0.5
    if inside.sum() < 4:
        return base * 0
    lum = rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    ref = float(np.percentile(lum[inside], 75))
    dark = np.clip((ref - lum) / max(ref * 0.35, 1e-3), 0.0, 1.0) * base
    return cv2.GaussianBlur(dark, (0, 0), max(feather, 0.5))


def skin_likelihood(rgb: np.ndarray, sure_mask: np.ndarray) -> np.ndarray:
    """Per-pixel agreement in [0, 1] with the colour of the skin sampled under `sure_mask`.

    rgb: H×W×3 float32 sRGB in [0, 1]; sure_mask: H×W, pixels > 0.5 are taken as (mostly) skin — the region
    masks pass the face oval minus the eyes, brows and lips. Colour model: the chroma (Cr, Cb of YCrCb on the
    sRGB values, each in [0, 1]) of the sure pixels; the 70 % nearest their median (hair and make-up outliers
    excluded) give a mean μ and covariance Σ. Each pixel's Mahalanobis distance d = √((c − μ)ᵀ Σ⁻¹ (c − μ))
    maps to likelihood clip((7 − d) / 3, 0, 1): 1 within 4 σ, 0 beyond 7 σ (freckles and creases are still
    skin). Luminance is left out on purpose, so shadowed and highlighted skin stay skin. With fewer than 50
    sure pixels there is nothing to learn from: all ones."""
    ycc = cv2.cvtColor(np.clip(rgb, 0, 1).astype(np.float32), cv2.COLOR_RGB2YCrCb)
    chroma = ycc[:, :, 1:3].reshape(-1, 2)
    sample = chroma[np.asarray(sure_mask).reshape(-1) > 0.5]
    if len(sample) < 50:
        return np.ones(rgb.shape[:2], np.float32)
    med = np.median(sample, 0)
    d0 = np.linalg.norm(sample - med, axis=1)
    core = sample[d0 <= np.percentile(d0, 70)]  # the central 70 %: hair and make-up outliers excluded
    cov = np.cov(core.T) + np.eye(2) * 1e-5
    diff = chroma - core.mean(0)
    d2 = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    like = np.clip((7.0 - np.sqrt(d2)) / 3.0, 0.0, 1.0)
    return like.reshape(rgb.shape[:2]).astype(np.float32)


def _one_face_mask(rgb: np.ndarray, lm: np.ndarray, region: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    feather = 0.01 * face_size(lm)
    if region == "skin":
        oval = _polygon_mask((h, w), [lm[T.FACE_OVAL, :2]], feather)
        # Holes a little larger than the features so lashes, brow hair and lip edges stay out of the skin.
        k = max(1, int(round(2.5 * feather)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        holes = np.zeros((h, w), np.float32)
        for part in ("eyes", "brows", "lips"):
            polys, _ = _region_polys(lm, part)
            holes = np.maximum(holes, cv2.dilate(_polygon_mask((h, w), polys, 0), kernel))
        m = oval * (1.0 - cv2.GaussianBlur(holes, (0, 0), feather))
        m = m * (1.0 - _nostrils(rgb, lm, feather))
        like = skin_likelihood(rgb, (m > 0.9).astype(np.float32))
        like = cv2.morphologyEx(like, cv2.MORPH_CLOSE, kernel)  # fill isolated specks (pores, freckles)
        return m * cv2.GaussianBlur(like, (0, 0), max(feather, 0.5))
    if region == "nostrils":
        return _nostrils(rgb, lm, feather * 0.5)
    polys, holes = _region_polys(lm, region)
    m = _polygon_mask((h, w), polys, feather * 0.5)
    if holes:
        m = m * (1.0 - _polygon_mask((h, w), holes, feather * 0.5))
    return m


def region_mask(image: np.ndarray, region: str, faces: Optional[List[Face]] = None, device=None) -> np.ndarray:
    """H×W float32 soft mask in [0, 1] of `region` over every face (skin, face, eyes, brows, lips, nostrils) or
    of the person ('person'). Edges are feathered by 1 % of `face_size`. Each face is worked on in a window
    around its landmarks, so the cost follows the face size, not the image size. `device` is where the networks
    run when faces (or their landmarks) must be found first."""
    if region == "person":
        return person_mask(image, device=device)
    if region not in REGIONS:
        raise UserError(f"unknown region '{region}': choose one of {', '.join(REGIONS)}", "bad-parameter")
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    if faces is None:
        faces = detect_faces(rgb, device=device)
    total = np.zeros((h, w), np.float32)
    for f in faces:
        if f.landmarks is None:
            face_landmarks(rgb, f, device=device)
        lm = f.landmarks
        margin = 0.08 * face_size(lm) + 4
        x0, y0 = np.floor(lm[:, :2].min(0) - margin).astype(int)
        x1, y1 = np.ceil(lm[:, :2].max(0) + margin).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        local = lm.copy()
        local[:, 0] -= x0
        local[:, 1] -= y0
        m = _one_face_mask(rgb[y0:y1, x0:x1], local, region)
        np.maximum(total[y0:y1, x0:x1], m, out=total[y0:y1, x0:x1])
    return total


PERSON_GUIDE_SIDE = 1024  # edge-aware upsampling up to this long side, plain bilinear beyond (see below)


def person_mask(image: np.ndarray, device=None) -> np.ndarray:
    """H×W float32 person probability at full resolution: Selfie Segmentation at 256×256 (the image stretched,
    as MediaPipe feeds it), upsampled with the edge-aware joint bilateral filter so its edges follow the image's
    edges. Beyond PERSON_GUIDE_SIDE pixels the edge-aware step runs at that size and the last factor is
    bilinear: on a 9 MP portrait that takes 0.3 s against 1.1 s at full resolution, for an edge transition of
    10 px instead of 9, and the mask edge stays within about long side / 1024 pixels of the image edge."""
    from ..imaging.resample import guided_upsample
    from ..models.selfie import INPUT_SIZE

    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    small = np.clip(cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA), 0.0, 1.0)
    (prob,) = run(SELFIE, small[None], device)
    low = prob[0, 0]
    k = min(1.0, PERSON_GUIDE_SIDE / max(h, w))
    if k < 1.0:
        gw, gh = max(1, round(w * k)), max(1, round(h * k))
        guide = np.clip(cv2.resize(rgb, (gw, gh), interpolation=cv2.INTER_AREA), 0.0, 1.0)
        mid = guided_upsample(low, guide)
        out = cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        out = guided_upsample(low, np.clip(rgb, 0.0, 1.0))
    out = np.asarray(out, np.float32)
    return np.clip(out, 0.0, 1.0, out=out)
