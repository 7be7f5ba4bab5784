"""Metric portrait depth: distances in metres for a given lens, so that a thin lens's f-number, focal length and
sensor width act as on a camera when the user has no depth map.

The face gives the scale (core.depth.proxy): its outline lies at D = r · scale_m metres, r = focal length /
sensor width. The background lies at a distance the caller states (default 10 m; never nearer than 1.25 × the
farthest person pixel, since a background in front of the subject is not one). Between them the soft person
coverage c blends in disparity, 1 / d = c / d_person + (1 − c) / d_background: a pixel half person, half
background images as the mix of the two depths' light, and disparity is what a thin lens's blur is linear in.

Two sources:
- the portrait proxy: d_person from `Portrait.person_distance(r)` (working resolution, smooth: bilinear to
  full size), c upsampled once, edge-aware (core.imaging.resample.guided_upsample, `full_coverage`), and kept for every
  lens;
- the depth network (relative disparity, near = large): scaled so the largest face's oval lies at its metric
  distance, assuming disparity ∝ 1 / distance, and clamped at the background distance (`distance_from_disparity`).

`MetricDepth.assumed` is the sentence an operator puts in its info: which distances were assumed and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ..errors import UserError
from . import proxy

DEFAULT_BACKGROUND_M = 10.0
BACKGROUND_BEHIND = 1.25      # the background at least this factor behind the farthest person pixel
EDGE_SIDE = 1536              # the coverage is upsampled edge-aware up to this long side, bilinear beyond


@dataclass
class MetricDepth:
    distance_m: np.ndarray                # H×W metres from the camera
    source: str
    subject_m: float                      # the largest face's outline (or the assumed subject distance)
    background_m: float                   # the background distance used
    assumed: str                          # which distances were assumed, in words
    landmarks: List[np.ndarray] = field(default_factory=list)      # faces, largest first, full resolution
    irises: List[Optional[np.ndarray]] = field(default_factory=list)
    measured: bool = True                 # whether the subject distance came from a face
    # The proxy's person coverage at full resolution (read-only, shared by the cache), None for a network map:
    # between 0 and 1 a pixel is a mix of the person and the background, not a thing at an in-between depth.
    matte: Optional[np.ndarray] = None


def full_coverage(p: proxy.Portrait, image_rgb: np.ndarray) -> np.ndarray:
    """The person coverage at the picture's resolution, edges snapped to the picture's edges (done once per
    picture): the joint bilateral upsampler up to EDGE_SIDE px on the long side, bilinear for any factor beyond
    (as core.face.person_mask). At 12 MP that costs 0.25 CPU-s instead of 1.1 for the whole frame; the edge
    lands within long side / EDGE_SIDE px of the picture's edge (tests/test_depth_metric.py, 3000 px: 90 % of
    the misplaced pixels within 1.9 px, corners within 3.8), a sliver 0.07 % of the frame wide at any size."""
    import cv2

    from ..imaging.resample import guided_upsample

    h, w = p.full_shape
    if p.coverage.shape == (h, w):
        return p.coverage.copy()
    k = min(1.0, EDGE_SIDE / max(h, w))
    if k < 1.0:
        gw, gh = max(1, round(w * k)), max(1, round(h * k))
        guide = np.clip(cv2.resize(image_rgb[:, :, :3], (gw, gh), interpolation=cv2.INTER_AREA), 0.0, 1.0)
        mid = guided_upsample(p.coverage, guide) if (gh, gw) != p.coverage.shape else p.coverage
        up = cv2.resize(np.ascontiguousarray(mid, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        up = guided_upsample(p.coverage, image_rgb[:, :, :3])
    return np.clip(up, 0.0, 1.0, out=up)


def _to_full(small: np.ndarray, shape) -> np.ndarray:
    import cv2

    h, w = shape
    if small.shape == (h, w):
        return small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def relative_disparity(p: proxy.Portrait, coverage: np.ndarray) -> np.ndarray:
    """The proxy's relative map (40° field of view, background 3 × the face distance), normalised to [0, 1]."""
    person = _to_full(p.person_distance(proxy.focal_ratio()), p.full_shape)
    return proxy.normalised_disparity(person, coverage, p.relative_far())


def _background(background_m: float, farthest_person_m: float):
    if not background_m > 0:
        raise UserError("the background distance must be positive (metres)", "bad-parameter")
    least = BACKGROUND_BEHIND * farthest_person_m
    if background_m >= least:
        return float(background_m), ""
    return float(least), f" (moved behind the subject from the {background_m:g} m asked)"


def _fov_words(ratio: float) -> str:
    return f"{proxy.field_of_view_deg(ratio):.1f}° horizontal field of view"


def from_portrait(p: proxy.Portrait, coverage: np.ndarray, ratio: float,
                  background_m: float = DEFAULT_BACKGROUND_M) -> MetricDepth:
    """Metric depth from the proxy's Portrait for focal length / sensor width = ratio."""
    person_small = p.person_distance(ratio)
    inside = p.coverage > 0.5
    farthest = float(person_small[inside].max()) if inside.any() else float(person_small.max())
    far, moved = _background(background_m, farthest)
    person = _to_full(person_small, p.full_shape)
    disparity = coverage / np.maximum(person, 1e-3)
    disparity += (1.0 - coverage) * np.float32(1.0 / far)
    distance = np.reciprocal(disparity, out=disparity)
    if p.faces:
        g = p.faces[0]
        subject = g.outline_at(ratio)
        assumed = (f"subject {subject:.2f} m away (its face taken as {proxy.FACE_WIDTH_M * 100:.0f} cm wide and "
                   f"{proxy.FACE_HEIGHT_M * 100:.2f} cm tall, {_fov_words(ratio)}); background {far:.3g} m{moved}")
        measured = True
    else:
        subject = proxy.DEFAULT_SUBJECT_M
        assumed = (f"no face to measure: the person assumed {subject:g} m away; background {far:.3g} m{moved}")
        measured = False
    if p.holes_filled_px:
        assumed += "; holes in the person mask filled"
    return MetricDepth(distance, f"proxy:{p.source.split(':', 1)[-1]}", float(subject), far, assumed,
                       list(p.landmarks), list(p.irises), measured, coverage)


def _oval_median(disparity: np.ndarray, landmarks: np.ndarray) -> float:
    import cv2

    h, w = disparity.shape
    pts = np.round(landmarks[list(proxy.FACE_OVAL), :2]).astype(np.int32)
    x0, y0 = np.clip(pts.min(0), 0, [w - 1, h - 1])
    x1, y1 = np.clip(pts.max(0) + 1, 1, [w, h])
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(m, [pts - np.array([x0, y0])], 1)
    vals = disparity[y0:y1, x0:x1][m > 0]
    return float(np.median(vals)) if vals.size else float(disparity[min(max(int(landmarks[1, 1]), 0), h - 1),
                                                                    min(max(int(landmarks[1, 0]), 0), w - 1)])


def distance_from_disparity(disparity: np.ndarray, landmarks: List[np.ndarray], ratio: float, image_width: int,
                            background_m: float = DEFAULT_BACKGROUND_M, source: str = "network",
                            irises: Optional[List] = None) -> MetricDepth:
    """Metric depth from relative disparity (near = large, e.g. the depth network's): the largest face's oval
    put at its distance from the face's size (as the proxy), disparity taken ∝ 1 / distance, nothing farther
    than the background. Without a face, the nearest tenth of the frame (90th percentile) is the subject at
    proxy.DEFAULT_SUBJECT_M."""
    from . import distance_m

    d = np.asarray(disparity, np.float32)
    if landmarks:
        g = proxy.face_geometry(landmarks[0], image_width)
        subject = g.outline_at(ratio)
        subject_disp = _oval_median(d, landmarks[0])
        how = (f"subject {subject:.2f} m away (its face taken as {proxy.FACE_WIDTH_M * 100:.0f} cm wide, "
               f"{_fov_words(ratio)})")
        measured = True
    else:
        subject = proxy.DEFAULT_SUBJECT_M
        subject_disp = float(np.percentile(d, 90))
        how = f"no face to measure: the nearest tenth of the frame assumed {subject:g} m away"
        measured = False
    if not subject_disp > 0:
        raise UserError("the depth map puts the subject at infinity: pass a depth map (--depth)", "bad-input")
    far, moved = _background(background_m, subject)
    dist = distance_m(d, subject, subject_disp, far_limit=far / subject)
    return MetricDepth(dist, source, float(subject), far, f"{how}; background at most {far:.3g} m{moved}",
                       list(landmarks), list(irises or [None] * len(landmarks)), measured)
