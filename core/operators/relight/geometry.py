"""The subject's geometry at the working resolution, in this order of preference:

1. a normal map the user gives (`core.imaging.normalmap`: 8/16-bit as (n + 1) / 2, float as raw vectors);
2. normals from a depth map the user gives (same conventions as refocus: float = distance in metres, 8/16-bit =
   relative disparity, near = bright), seen by a pinhole camera of focal length f pixels;
3. the face mesh (`mesh_surface`): 468 landmarks rasterised over the mesh's triangles, with a head/body proxy.

Each gives unit normals (camera space: x right, y up, z toward the camera), a height field in pixels toward the
camera (for cast shadows: from the depth, integrated from the normals, or the mesh's own), a confidence map
(how much the light estimate may trust each pixel's normal) and, where it can be known, the metric scale in
metres per working pixel at the subject: from a depth map in metres, else from the face's width (an adult face
is FACE_WIDTH_M wide between landmarks 234 and 454, as the depth proxy assumes).

Depth maps are smoothed before they are differentiated, by an amount chosen from their own noise: the noise σ
of the depth is measured robustly (Immerkær's Laplacian mask, median absolute response / (0.6745 · 6)) inside
the subject, and the Gaussian scale is the smallest of SMOOTH_SCALES whose derivative filter leaves a slope
noise below SLOPE_NOISE (the std of ∂Z/∂X in metres per metre, f · σ_n · ‖∂G‖ / Z). Smoothing is normalised
within the subject, so the background's depth never bleeds into the subject's edge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ...errors import UserError
from ...imaging import depthmap, normalmap
from . import mesh_surface, shadows

FACE_WIDTH_M = 0.15          # the depth proxy's adult face width (core.depth.proxy.FACE_WIDTH_M)
FIELD_OF_VIEW_DEG = 40.0     # the depth proxy's assumed horizontal field of view when nothing tells
SMOOTH_SCALES = (0.0, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0, 11.0, 16.0)
SLOPE_NOISE = 0.015          # target slope noise after smoothing: about 0.9° of normal direction
MAX_SMOOTH_FRACTION = 0.02   # never smooth a depth map by more than 2 % of the image's long side
MESH_PROXY_CONFIDENCE = 0.05  # the head/body proxy's normals are a guess (and hair and clothes are not skin):
                              # the face mesh dominates the light fit
ASPECT_TOLERANCE = 0.02


@dataclass
class Geometry:
    normals: np.ndarray          # h×w×3 float32
    height: np.ndarray           # h×w float32, pixels (of this resolution) toward the camera
    confidence: np.ndarray       # h×w float32 in [0, 1]
    source: str
    metres_per_px: Optional[float] = None
    face_weight: Optional[np.ndarray] = None
    facts: dict = None


def _check_aspect(name: str, got: Tuple[int, int], want: Tuple[int, int]) -> None:
    gh, gw = got
    h, w = want
    if abs(gw / gh - w / h) > ASPECT_TOLERANCE * (w / h):
        raise UserError(f"the {name} is {gw}x{gh} but the image is {w}x{h}: their shapes differ, so it cannot "
                        f"belong to this image", "size-mismatch")


def face_metres_per_px(landmarks: Sequence[np.ndarray]) -> Optional[float]:
    if not landmarks:
        return None
    return FACE_WIDTH_M / max(mesh_surface.face_width(landmarks[0]), 1.0)


def from_normals(arr: np.ndarray, stored_as: Optional[str], shape: Tuple[int, int], subject: np.ndarray,
                 landmarks: Sequence[np.ndarray]) -> Geometry:
    """Geometry from a user's normal map, brought to `shape` (h, w)."""
    nm = normalmap.interpret(arr, stored_as)
    _check_aspect("normal map", nm.normals.shape[:2], shape)
    if nm.normals.shape[:2] != tuple(shape):
        nm = normalmap.resize(nm, shape[1], shape[0])
    valid = nm.valid.astype(np.float32)
    height = shadows.height_from_normals(nm.normals, valid * (subject > 0.05))
    return Geometry(nm.normals, height, valid, "normal map", face_metres_per_px(landmarks),
                    facts={"valid_fraction": round(float(valid.mean()), 4)})


def depth_noise(z: np.ndarray, region: np.ndarray) -> float:
    """Robust noise σ of a depth map inside `region` (Immerkær 1996, with a median for robustness to edges)."""
    import cv2

    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    lap = cv2.filter2D(z.astype(np.float64), -1, k, borderType=cv2.BORDER_REFLECT)
    inner = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if inner.sum() < 16:
        return 0.0
    return float(np.median(np.abs(lap[inner])) / (0.6745 * 6.0))


def _derivative_gain(sigma: float) -> float:
    """‖k‖₂ of the central difference after a Gaussian of `sigma` (2-D): how much white noise of unit σ
    survives in one derivative."""
    import cv2

    if sigma <= 0:
        return math.sqrt(0.5)
    r = int(math.ceil(4 * sigma)) + 1
    g = cv2.getGaussianKernel(2 * r + 1, sigma).astype(np.float64).ravel()
    d = np.convolve(g, [0.5, 0.0, -0.5], mode="same")
    return float(np.sqrt((d * d).sum() * (g * g).sum()))


def choose_smoothing(noise: float, focal_px: float, distance: float, limit: float) -> float:
    for s in SMOOTH_SCALES:
        if s > limit:
            break
        if noise * _derivative_gain(s) * focal_px / max(distance, 1e-9) <= SLOPE_NOISE:
            return s
    return min(limit, SMOOTH_SCALES[-1])


def _normalised_blur(z: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    if sigma <= 0:
        return z
    num = cv2.GaussianBlur(z * weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return np.where(weight > 0, num / np.maximum(den, 1e-9), z)


def from_depth(arr: np.ndarray, kind: str, image_work: np.ndarray, subject: np.ndarray,
               landmarks: Sequence[np.ndarray], field_of_view_deg: Optional[float],
               full_width: int) -> Geometry:
    """Geometry from a user's depth map (`kind` already decided: 'distance', 'disparity' or 'auto')."""
    h, w = image_work.shape[:2]
    d = depthmap.interpret(arr, kind)
    _check_aspect("depth map", d.values.shape, (h, w))
    d = depthmap.fit_to_image(d, image_work)
    region = (subject > 0.5)
    if d.kind == "distance":
        z = d.values.astype(np.float64)
    else:
        disp = d.values.astype(np.float64)
        region &= disp > 0
        z = np.where(disp > 0, 1.0 / np.maximum(disp, 1e-6), 1e6)   # relative distance (unknown scale)
    if region.sum() < 16:
        raise UserError("the depth map holds no usable depth under the subject", "bad-input")
    z_ref = float(np.median(z[region]))
    scale = w / float(full_width)
    how = "given field of view"
    if field_of_view_deg is not None:
        focal = (w / 2.0) / math.tan(math.radians(field_of_view_deg) / 2.0)
    elif d.kind == "distance" and landmarks:
        # The face is FACE_WIDTH_M wide at the depth the map gives it: f = width_px · Z_face / width_m.
        lm = landmarks[0]
        xs, ys = np.clip(lm[:, 0].astype(int), 0, w - 1), np.clip(lm[:, 1].astype(int), 0, h - 1)
        z_face = float(np.median(z[ys, xs]))
        focal = mesh_surface.face_width(lm) * z_face / FACE_WIDTH_M
        how = "face width"
    else:
        focal = (w / 2.0) / math.tan(math.radians(FIELD_OF_VIEW_DEG) / 2.0)
        how = f"assumed {FIELD_OF_VIEW_DEG:g}° field of view"
    noise = depth_noise(z, region)
    sigma = choose_smoothing(noise, focal, z_ref, MAX_SMOOTH_FRACTION * max(h, w))
    wt = region.astype(np.float64)
    zs = _normalised_blur(z, wt, sigma)
    nm = normalmap.normals_from_depth(depthmap.DepthMap(zs.astype(np.float32), "distance"), focal)
    height = ((z_ref - zs) * focal / z_ref).astype(np.float32)
    conf = (nm.valid & region).astype(np.float32)
    metres = z_ref / focal if d.kind == "distance" else face_metres_per_px(landmarks)
    facts = {"depth_kind": d.kind, "focal_px": round(focal / scale, 1), "focal_from": how,
             "depth_noise": round(noise, 6), "depth_smoothing_px": round(sigma / scale, 2)}
    return Geometry(nm.normals, height, conf, f"depth map ({d.kind})", metres, facts=facts)


def from_mesh(landmarks: Sequence[np.ndarray], person: np.ndarray) -> Geometry:
    surf = mesh_surface.surface(landmarks, person)
    inside = (person > 0.5).astype(np.float32)
    conf = inside * (surf.face_weight + MESH_PROXY_CONFIDENCE * (1.0 - surf.face_weight))
    return Geometry(surf.normals, surf.height, conf.astype(np.float32), f"face mesh ({surf.source})",
                    face_metres_per_px(landmarks), surf.face_weight,
                    facts={"faces": len(landmarks)})
