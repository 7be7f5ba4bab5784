"""Portrait depth without a depth network: a geometric proxy built from the face mesh and the person mask.

- Face: the mesh's 468 landmarks carry a relative depth (z, pixel scale, toward the camera), so the face
  surface is the landmarks' depth interpolated linearly over their triangulation: nose nearer than cheeks,
  cheeks nearer than ears.
- Scale: an adult face is about 15 cm wide (landmarks 234 to 454), which turns pixels into metres and, with an
  assumed 40° horizontal field of view (a portrait lens), gives the face's distance from the camera.
- Body: the person mask, as a smooth surface at the face's silhouette distance that rounds away toward its
  outline (a torso is a rounded solid, not a cut-out card).
- Background: far (3 times the face distance, at least 2 m behind it).

Disparity is 1 / distance, blended across the soft person mask and normalised to [0, 1] (near = 1). It is good
enough to decide what is in focus and what is background in a portrait; it knows nothing about the scene
behind the person.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError

FACE_WIDTH_M = 0.15          # landmark 234 (right face edge) to 454 (left face edge) on an adult
FIELD_OF_VIEW_DEG = 40.0     # horizontal; a portrait lens (about 50 mm on full frame)
BODY_ROUNDING_M = 0.08       # how far the body's outline lies behind its middle
BACKGROUND_FACTOR = 3.0      # background distance / face distance ...
BACKGROUND_MIN_GAP_M = 2.0   # ... and at least this far behind the face

NOSE_TIP = 1
FACE_EDGE_RIGHT, FACE_EDGE_LEFT = 234, 454
CHIN, FOREHEAD = 152, 10
# The face oval (MediaPipe's silhouette ring): its mean depth is the plane the head's outline lies in.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass
class FaceGeometry:
    """One face mapped to metres: landmark distances from the camera and where its outline lies."""
    points_xy: np.ndarray        # 468×2 image pixels
    distance_m: np.ndarray       # 468 distances from the camera
    outline_m: float             # distance of the face's silhouette plane
    width_px: float
    centre_xy: Tuple[float, float]


def focal_px(width: int, fov_deg: float = FIELD_OF_VIEW_DEG) -> float:
    return (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def face_geometry(landmarks: np.ndarray, image_width: int) -> FaceGeometry:
    """Landmarks (468×3: x, y in image pixels, z in pixel scale, larger = nearer, as core.face gives
    them) -> metric geometry."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 3:
        raise ValueError(f"expected 468×3 face landmarks, got {lm.shape}")
    xy = lm[:, :2]
    width_px = float(np.linalg.norm(xy[FACE_EDGE_LEFT] - xy[FACE_EDGE_RIGHT]))
    width_px = max(width_px, 1.0)
    m_per_px = FACE_WIDTH_M / width_px
    outline_m = focal_px(image_width) * m_per_px
    z = lm[:, 2]
    z_outline = float(z[list(FACE_OVAL)].mean())
    distance = outline_m - (z - z_outline) * m_per_px
    centre = xy[list(FACE_OVAL)].mean(axis=0)
    return FaceGeometry(xy.astype(np.float32), distance.astype(np.float32), float(outline_m), width_px,
                        (float(centre[0]), float(centre[1])))


def _face_surface(g: FaceGeometry, shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(distance, weight) over the image: the mesh surface inside the face, weight fading to 0 at its outline."""
    import cv2
    from scipy.interpolate import LinearNDInterpolator

    h, w = shape
    dist = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    x0, y0 = np.floor(g.points_xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(g.points_xy.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return dist, weight
    interp = LinearNDInterpolator(g.points_xy.astype(np.float64), g.distance_m.astype(np.float64))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    surf = interp(xx, yy)
    inside = np.isfinite(surf)
    # Weight: distance inside the hull, smoothed over a tenth of the face width, so the face melts into the body.
    feather = max(2.0, 0.1 * g.width_px)
    inner = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    wgt = np.clip(inner / feather, 0.0, 1.0)
    wgt = wgt * wgt * (3.0 - 2.0 * wgt)
    dist[y0:y1, x0:x1] = np.where(inside, surf, 0.0)
    weight[y0:y1, x0:x1] = wgt
    return dist, weight


def _hull_mask(g: FaceGeometry, shape: Tuple[int, int]) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(g.points_xy).astype(np.int32))
    cv2.fillConvexPoly(m, hull, 1)
    return m.astype(np.float32)


def guessed_person(faces: Sequence[FaceGeometry], shape: Tuple[int, int]) -> np.ndarray:
    """A person outline when no person mask is available: the head (face hull grown for hair) and a torso
    widening from the neck to shoulders three face-widths across. A rough stand-in, named so in the source."""
    import cv2

    h, w = shape
    m = np.zeros(shape, np.uint8)
    for g in faces:
        fw = g.width_px
        head = cv2.convexHull(np.round(g.points_xy).astype(np.int32))
        cv2.fillConvexPoly(m, head, 1)
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(0.4 * fw) | 1,) * 2))
        cx = g.centre_xy[0]
        chin_y = float(g.points_xy[CHIN, 1])
        neck = [(cx - 0.3 * fw, chin_y - 0.2 * fw), (cx + 0.3 * fw, chin_y - 0.2 * fw)]
        shoulders_y = chin_y + 0.6 * fw
        torso = np.array(neck + [(cx + 1.5 * fw, shoulders_y), (cx + 1.6 * fw, h), (cx - 1.6 * fw, h),
                                 (cx - 1.5 * fw, shoulders_y)], np.float32)
        cv2.fillPoly(m, [np.round(torso).astype(np.int32)], 1)
    return cv2.GaussianBlur(m.astype(np.float32), (0, 0), max(1.0, 0.03 * max(h, w)))


def _drop_stray_blobs(person: np.ndarray, faces: Sequence[FaceGeometry]) -> np.ndarray:
    """Remove mask islands smaller than a face that hold no face: segmenter false positives (a flag's stripe,
    a red object) that would otherwise be brought into focus with the subject. A person whose face was not
    found is still larger than a face, so kept."""
    import cv2

    hard = (person > 0.15).astype(np.uint8)  # low, so faint islands are caught whole
    n, labels, stats, _ = cv2.connectedComponentsWithStats(hard, connectivity=8)
    if n <= 2:
        return person
    face_area = min(g.width_px for g in faces) ** 2
    keep = np.zeros(n, bool)
    for i in range(1, n):
        keep[i] = stats[i, cv2.CC_STAT_AREA] >= face_area
    for g in faces:
        x, y = int(round(g.centre_xy[0])), int(round(g.centre_xy[1]))
        if 0 <= y < labels.shape[0] and 0 <= x < labels.shape[1]:
            keep[labels[y, x]] = labels[y, x] != 0 or keep[0]
    stray = (~keep[labels]) & (labels != 0)
    if not stray.any():
        return person
    # Grow the removal a little so the islands' soft rims go too.
    grow = cv2.dilate(stray.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    near_kept = cv2.dilate(((labels != 0) & ~stray).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return np.where(grow & ~near_kept, 0.0, person).astype(np.float32)


def portrait_disparity(shape: Tuple[int, int], landmarks: Sequence[np.ndarray],
                       person: Optional[np.ndarray]) -> np.ndarray:
    """The proxy itself, from geometry alone. landmarks: one 468×3 array per face (may be empty);
    person: soft H×W mask in [0, 1] or None (then the outline is guessed from the faces).

    Returns disparity normalised to [0, 1], near = 1.
    """
    import cv2

    h, w = shape
    faces = [face_geometry(lm, w) for lm in landmarks]
    if not faces and person is None:
        raise ValueError("the proxy needs a face or a person mask")
    if person is None:
        person = guessed_person(faces, shape)
    person = np.clip(np.asarray(person, np.float32).reshape(h, w), 0.0, 1.0)
    if faces:
        person = _drop_stray_blobs(person, faces)

    if faces:
        # Each person pixel belongs to the nearest face (in face widths), whose outline sets the body distance.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        best = np.full((h, w), np.inf, np.float32)
        outline = np.zeros((h, w), np.float32)
        for g in faces:
            d = np.hypot(xx - g.centre_xy[0], yy - g.centre_xy[1]) / g.width_px
            closer = d < best
            best = np.where(closer, d, best)
            outline = np.where(closer, g.outline_m, outline)
        # Soften the hand-over between people so no seam runs through a body.
        outline = cv2.GaussianBlur(outline, (0, 0), max(1.0, 0.25 * min(g.width_px for g in faces)))
        rounding_px = 0.6 * max(g.width_px for g in faces)
        face_z = min(g.outline_m for g in faces)
    else:
        outline = np.ones((h, w), np.float32)  # no face: unit distance, only the ratios matter
        rounding_px = 0.1 * min(h, w)
        face_z = 1.0
    hard = (person > 0.5).astype(np.uint8)
    for g in faces:
        hard = np.maximum(hard, _hull_mask(g, shape).astype(np.uint8))
    inner = cv2.distanceTransform(hard, cv2.DIST_L2, 5)
    t = np.clip(inner / max(rounding_px, 1.0), 0.0, 1.0)
    # Quarter-circle profile: the outline lies BODY_ROUNDING_M behind the middle, tangent-flat inside.
    rounding = BODY_ROUNDING_M * (1.0 - np.sqrt(np.clip(1.0 - (1.0 - t) ** 2, 0.0, 1.0)))
    body = outline + rounding
    body = cv2.GaussianBlur(body.astype(np.float32), (0, 0), max(1.0, 0.05 * rounding_px))

    person_dist = body
    coverage = person.copy()
    for g in faces:
        surf, wgt = _face_surface(g, shape)
        person_dist = person_dist * (1.0 - wgt) + surf * wgt
        coverage = np.maximum(coverage, _hull_mask(g, shape))
    far = max(face_z * BACKGROUND_FACTOR, face_z + BACKGROUND_MIN_GAP_M) if faces else BACKGROUND_FACTOR
    person_dist = np.maximum(person_dist, 1e-3)
    disparity = coverage / person_dist + (1.0 - coverage) / far
    lo, hi = 1.0 / far, float(disparity.max())
    if hi - lo < 1e-9:
        return np.zeros((h, w), np.float32)
    return np.clip((disparity - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _face_api():
    try:
        from .. import face
    except ImportError:
        return None
    return face


def estimate(image_rgb: np.ndarray, job=None, device=None) -> Tuple[np.ndarray, str]:
    """(disparity, source) for a portrait from the face models (run on `device`: a torch.device, a name or None
    for the default); UserError when there is nothing to build on."""
    h, w = image_rgb.shape[:2]
    face = _face_api()
    if face is None or not face.available():
        raise UserError("no depth map was given, the depth network is not installed and the face models are not "
                        "available for the portrait depth proxy: pass --depth or install the models "
                        "(python -m core models)", "missing-input")
    if job is not None:
        job.progress(0.1, "depth proxy: finding faces")
    faces = face.detect_faces(image_rgb, device=device)
    landmarks: List[np.ndarray] = [np.asarray(f.landmarks, np.float32) for f in faces
                                   if getattr(f, "landmarks", None) is not None]
    if job is not None:
        job.progress(0.5, "depth proxy: person mask")
    person = None
    try:
        person = np.asarray(face.person_mask(image_rgb, device=device), np.float32).reshape(h, w)
    except UserError:
        person = None  # the person segmenter is missing: the outline is guessed from the faces instead
    has_person = person is not None and float(person.max()) > 0.5
    if not landmarks and not has_person:
        raise UserError("no depth map was given, the depth network is not installed and no person was found "
                        "for the portrait depth proxy: pass --depth", "missing-input")
    if landmarks and has_person:
        source = f"proxy:face-mesh+person-mask ({len(landmarks)} face{'s' if len(landmarks) != 1 else ''})"
    elif landmarks:
        source = "proxy:face-mesh (no person mask: body outline guessed)"
    else:
        source = "proxy:person-mask (no face found)"
    disparity = portrait_disparity((h, w), landmarks, person if has_person or not landmarks else None)
    return disparity, source
