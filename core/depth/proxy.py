"""Portrait depth without a depth network: a geometric proxy built from the face mesh and the person mask.

- Scale: an adult face is about 15 cm wide (landmarks 234 to 454) and 17.25 cm tall (landmark 10 to 152,
  `core.face.face_size`, about 1.15 × the width). Metres per pixel at the face, s = min(0.15 / width px,
  0.1725 / height px): the less foreshortened of the two (turning the head narrows the width, nodding shortens
  the height). A pinhole of focal length f (px) then puts the face's outline at D = f · s metres. Written with
  the lens's focal ratio r = focal length / sensor width = f / image width (px), D = r · (W · s): the second
  factor is the face's "scale" in metres per unit of focal ratio, fixed by the picture alone.
- Face: the mesh's 468 landmarks carry a relative depth (z, pixel scale, toward the camera); their relief in
  metres, (z − z_outline) · s, is spread over the face by pull-push from the landmarks (core.imaging.fill):
  nose nearer than cheeks, cheeks nearer than ears.
- Body: the person mask at the face's outline distance, rounding away toward its outline by BODY_ROUNDING_M
  (a torso is a rounded solid, not a cut-out card).
- Person: mask islands smaller than a face with no face in them are dropped (segmenter false positives), and
  holes inside the person smaller than a face are filled (a badge or a name tag the segmenter was unsure of):
  small isolated regions take the side of what surrounds them, so everything on the body is at its distance.
- Background: a distance the caller states (`core.depth.metric`), or, for the relative map, 3 × the face
  distance and at least 2 m behind it, with the 40° horizontal field of view of a portrait lens.

Every person distance is linear in the focal ratio: distance = r · scale_m + offset_m (scale from the faces'
outlines, offset from the body's rounding and the face's relief). So the maps are computed once per picture
(`analyse`, at a working resolution of WORK_SIDE px on the long side: the proxy is smooth by construction) and a
lens only costs their composition. Only the person's coverage has edges that need the full resolution; the
depth service upsamples it once, edge-aware, guided by the picture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError

FACE_WIDTH_M = 0.15          # landmark 234 (right face edge) to 454 (left face edge) on an adult
FACE_HEIGHT_M = 0.1725       # landmark 10 to 152 (core.face.face_size): about 1.15 × the width
FIELD_OF_VIEW_DEG = 40.0     # horizontal; a portrait lens (about 50 mm on full frame), for the relative map
BODY_ROUNDING_M = 0.08       # how far the body's outline lies behind its middle
BACKGROUND_FACTOR = 3.0      # relative map: background distance / face distance ...
BACKGROUND_MIN_GAP_M = 2.0   # ... and at least this far behind the face
DEFAULT_SUBJECT_M = 2.0      # a person whose face was not found: a half-length portrait's distance (stated)
WORK_SIDE = 768              # working resolution (long side, px): the selfie mask is 256 px, the maps are smooth
HOLE_LEVEL = 0.9             # person probability below which a pixel is not surely on the person

NOSE_TIP = 1
FACE_EDGE_RIGHT, FACE_EDGE_LEFT = 234, 454
CHIN, FOREHEAD = 152, 10
# The face oval (MediaPipe's silhouette ring): its mean depth is the plane the head's outline lies in.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def focal_ratio(fov_deg: float = FIELD_OF_VIEW_DEG) -> float:
    """Focal length / sensor width of a lens with this horizontal field of view: 1 / (2 tan(fov / 2))."""
    return 0.5 / math.tan(math.radians(fov_deg) / 2.0)


def field_of_view_deg(ratio: float) -> float:
    """Horizontal field of view (degrees) of focal length / sensor width = ratio."""
    return math.degrees(2.0 * math.atan(0.5 / ratio))


def focal_px(width: int, fov_deg: float = FIELD_OF_VIEW_DEG) -> float:
    return width * focal_ratio(fov_deg)


@dataclass
class FaceGeometry:
    """One face mapped to metres: landmark distances from the camera and where its outline lies.

    `distance_m` and `outline_m` are for the relative map's 40° field of view; for another lens the outline lies
    at focal_ratio · scale_m and each landmark at that minus its `relief_m` (metres toward the camera)."""
    points_xy: np.ndarray        # 468×2 image pixels
    distance_m: np.ndarray       # 468 distances from the camera (40° field of view)
    outline_m: float             # distance of the face's silhouette plane (40° field of view)
    width_px: float
    centre_xy: Tuple[float, float]
    scale_m: float = 0.0         # outline distance per unit of focal ratio: image width (px) × metres per px
    relief_m: Optional[np.ndarray] = None   # 468: metres in front of the outline plane
    height_px: float = 0.0       # landmark 10 to 152 (core.face.face_size)
    m_per_px: float = 0.0

    def outline_at(self, ratio: float) -> float:
        """The outline's distance (m) through a lens of focal length / sensor width = ratio."""
        return ratio * self.scale_m


def face_geometry(landmarks: np.ndarray, image_width: int) -> FaceGeometry:
    """Landmarks (468×3: x, y in image pixels, z in pixel scale, larger = nearer, as core.face gives
    them) -> metric geometry."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 3:
        raise ValueError(f"expected 468×3 face landmarks, got {lm.shape}")
    xy = lm[:, :2]
    width_px = max(float(np.linalg.norm(xy[FACE_EDGE_LEFT] - xy[FACE_EDGE_RIGHT])), 1.0)
    height_px = max(float(np.linalg.norm(xy[FOREHEAD] - xy[CHIN])), 1.0)
    # Foreshortening only shrinks a dimension (raising its metres per pixel): the smaller figure is the truer one.
    m_per_px = min(FACE_WIDTH_M / width_px, FACE_HEIGHT_M / height_px)
    scale_m = image_width * m_per_px
    outline_m = focal_ratio() * scale_m
    z = lm[:, 2]
    z_outline = float(z[list(FACE_OVAL)].mean())
    relief = (z - z_outline) * m_per_px
    centre = xy[list(FACE_OVAL)].mean(axis=0)
    return FaceGeometry(xy.astype(np.float32), (outline_m - relief).astype(np.float32), float(outline_m), width_px,
                        (float(centre[0]), float(centre[1])), float(scale_m), relief.astype(np.float32),
                        height_px, float(m_per_px))


def _face_relief(g: FaceGeometry, shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(relief in metres toward the camera, weight) over the image: the landmarks' relief spread over the face's
    hull by pull-push, weight fading to 0 at the hull's outline over a tenth of the face width."""
    import cv2

    from ..imaging.fill import fill_holes

    h, w = shape
    relief = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    x0, y0 = np.floor(g.points_xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(g.points_xy.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return relief, weight
    bh, bw = y1 - y0, x1 - x0
    # Each landmark lands on its nearest pixel (pixel centres at integer coordinates); shared pixels average.
    ix = np.clip(np.round(g.points_xy[:, 0]).astype(int) - x0, 0, bw - 1)
    iy = np.clip(np.round(g.points_xy[:, 1]).astype(int) - y0, 0, bh - 1)
    num = np.zeros((bh, bw), np.float64)
    cnt = np.zeros((bh, bw), np.float64)
    np.add.at(num, (iy, ix), g.relief_m.astype(np.float64))
    np.add.at(cnt, (iy, ix), 1.0)
    known = cnt > 0
    values = np.where(known, num / np.maximum(cnt, 1.0), 0.0).astype(np.float32)
    surf = fill_holes(values, known.astype(np.float32))
    inside = np.zeros((bh, bw), np.uint8)
    hull = cv2.convexHull(np.round(g.points_xy - np.array([x0, y0], np.float32)).astype(np.int32))
    cv2.fillConvexPoly(inside, hull, 1)
    # Weight: distance inside the hull, smoothed over a tenth of the face width, so the face melts into the body.
    feather = max(2.0, 0.1 * g.width_px)
    inner = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    wgt = np.clip(inner / feather, 0.0, 1.0)
    relief[y0:y1, x0:x1] = np.where(inside > 0, surf, 0.0)
    weight[y0:y1, x0:x1] = wgt * wgt * (3.0 - 2.0 * wgt)
    return relief, weight


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


def fill_person_holes(person: np.ndarray, faces: Sequence[FaceGeometry]) -> Tuple[np.ndarray, int]:
    """Holes inside the person filled: (mask, pixels filled).

    A hole is a 4-connected region where the person probability is below HOLE_LEVEL, not touching the frame's
    edge (the background around the person always reaches it, or is larger than a face) and smaller than the
    smallest face (width × height; without a face, 2 % of the person). The segmenter's doubt about a badge or
    a name tag on a suit makes such a dip; a real gap in a body (an arm on a hip) is larger than a face in a
    portrait. Filled holes, grown by a pixel so their rim joins the body, count as person."""
    import cv2

    h, w = person.shape
    unsure = (person < HOLE_LEVEL).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(unsure, connectivity=4)
    if n <= 1:
        return person, 0
    if faces:
        limit = min(g.width_px * g.height_px for g in faces)
    else:
        limit = 0.02 * float((person >= HOLE_LEVEL).sum())
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    ids = np.nonzero(inner & (area <= limit) & (np.arange(n) > 0))[0]
    if len(ids) == 0:
        return person, 0
    holes = np.isin(labels, ids)
    grown = cv2.dilate(holes.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    return np.maximum(person, grown).astype(np.float32), int(holes.sum())


def portrait_maps(shape: Tuple[int, int], faces: Sequence[FaceGeometry], person: Optional[np.ndarray]):
    """The lens-independent maps (scale_m, offset_m, coverage, holes filled in px), all H×W float32: a person
    pixel lies at distance focal_ratio · scale_m + offset_m metres; coverage (0..1) says how much of the pixel is
    person. faces: geometry in this resolution's pixels (may be empty); person: soft mask in [0, 1] or None (then
    the outline is guessed from the faces)."""
    import cv2

    h, w = shape
    if not faces and person is None:
        raise ValueError("the proxy needs a face or a person mask")
    if person is None:
        person = guessed_person(faces, shape)
    person = np.clip(np.asarray(person, np.float32).reshape(h, w), 0.0, 1.0)
    if faces:
        person = _drop_stray_blobs(person, faces)
    person, filled = fill_person_holes(person, faces)

    if faces:
        # Each person pixel belongs to the nearest face (in face widths), whose outline sets the body distance.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        best = np.full((h, w), np.inf, np.float32)
        scale = np.zeros((h, w), np.float32)
        for g in faces:
            d = np.hypot(xx - g.centre_xy[0], yy - g.centre_xy[1]) / g.width_px
            closer = d < best
            best = np.where(closer, d, best)
            scale = np.where(closer, g.scale_m, scale)
        # Soften the hand-over between people so no seam runs through a body.
        scale = cv2.GaussianBlur(scale, (0, 0), max(1.0, 0.25 * min(g.width_px for g in faces)))
        rounding_px = 0.6 * max(g.width_px for g in faces)
        base = np.zeros((h, w), np.float32)
    else:
        scale = np.zeros((h, w), np.float32)  # no face to measure: the person at the stated default distance
        rounding_px = 0.1 * min(h, w)
        base = np.full((h, w), DEFAULT_SUBJECT_M, np.float32)
    hard = (person > 0.5).astype(np.uint8)
    for g in faces:
        hard = np.maximum(hard, _hull_mask(g, shape).astype(np.uint8))
    inner = cv2.distanceTransform(hard, cv2.DIST_L2, 5)
    t = np.clip(inner / max(rounding_px, 1.0), 0.0, 1.0)
    # Quarter-circle profile: the outline lies BODY_ROUNDING_M behind the middle, tangent-flat inside.
    rounding = BODY_ROUNDING_M * (1.0 - np.sqrt(np.clip(1.0 - (1.0 - t) ** 2, 0.0, 1.0)))
    offset = cv2.GaussianBlur((base + rounding).astype(np.float32), (0, 0), max(1.0, 0.05 * rounding_px))

    coverage = person.copy()
    for g in faces:
        relief, wgt = _face_relief(g, shape)
        # Inside the face: its own outline distance, minus its relief (linear in the focal ratio, as the body).
        scale = scale * (1.0 - wgt) + g.scale_m * wgt
        offset = offset * (1.0 - wgt) - relief * wgt
        coverage = np.maximum(coverage, _hull_mask(g, shape))
    return scale.astype(np.float32), offset.astype(np.float32), coverage.astype(np.float32), filled


def relative_background(scale_m: float, ratio: float) -> float:
    """The relative map's background distance (m) for a face whose outline lies at ratio · scale_m."""
    face_z = ratio * scale_m
    return max(face_z * BACKGROUND_FACTOR, face_z + BACKGROUND_MIN_GAP_M)


def normalised_disparity(person_dist: np.ndarray, coverage: np.ndarray, far: float) -> np.ndarray:
    """Disparity 1 / distance, blended across the soft coverage, normalised to [0, 1] (near = 1, the background
    at `far` = 0)."""
    c = coverage.astype(np.float64)  # float64, so the nearest pixel normalises to exactly 1
    disparity = c / np.maximum(person_dist, 1e-3) + (1.0 - c) / far
    lo, hi = 1.0 / far, float(disparity.max())
    if hi - lo < 1e-9:
        return np.zeros(coverage.shape, np.float32)
    return np.clip((disparity - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _relative_far(faces: Sequence[FaceGeometry]) -> float:
    ratio = focal_ratio()
    if faces:
        return relative_background(min(g.scale_m for g in faces), ratio)
    return BACKGROUND_FACTOR * DEFAULT_SUBJECT_M


def portrait_disparity(shape: Tuple[int, int], landmarks: Sequence[np.ndarray],
                       person: Optional[np.ndarray]) -> np.ndarray:
    """The relative proxy at this resolution, from geometry alone. landmarks: one 468×3 array per face (may be
    empty); person: soft H×W mask in [0, 1] or None (then the outline is guessed from the faces).

    Returns disparity normalised to [0, 1], near = 1, for a 40° field of view.
    """
    h, w = shape
    faces = [face_geometry(lm, w) for lm in landmarks]
    scale, offset, coverage, _ = portrait_maps(shape, faces, person)
    return normalised_disparity(focal_ratio() * scale + offset, coverage, _relative_far(faces))


@dataclass
class Portrait:
    """What the proxy knows about one picture, whatever the lens: the maps of `portrait_maps` at the working
    resolution, and the faces found (landmarks and irises in full-resolution pixels, largest first)."""
    full_shape: Tuple[int, int]
    scale_m: np.ndarray
    offset_m: np.ndarray
    coverage: np.ndarray
    faces: List[FaceGeometry]                 # at the working resolution
    landmarks: List[np.ndarray] = field(default_factory=list)      # 468×3, full resolution
    irises: List[Optional[np.ndarray]] = field(default_factory=list)  # 2×5×3 or None, full resolution
    source: str = ""
    holes_filled_px: int = 0

    @property
    def nbytes(self) -> int:
        return self.scale_m.nbytes + self.offset_m.nbytes + self.coverage.nbytes

    def person_distance(self, ratio: float) -> np.ndarray:
        """Person distance (m) at the working resolution for focal length / sensor width = ratio."""
        return (ratio * self.scale_m + self.offset_m).astype(np.float32)

    def relative_far(self) -> float:
        return _relative_far(self.faces)


def _face_api():
    try:
        from .. import face
    except ImportError:
        return None
    return face


def _working(image_rgb: np.ndarray) -> Tuple[np.ndarray, float]:
    import cv2

    h, w = image_rgb.shape[:2]
    k = min(1.0, WORK_SIDE / max(h, w))
    if k >= 1.0:
        return image_rgb, 1.0
    size = (max(1, round(w * k)), max(1, round(h * k)))
    small = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
    return np.clip(small, 0.0, 1.0), size[0] / w


def analyse(image_rgb: np.ndarray, job=None, device=None) -> Portrait:
    """Faces (full resolution: the face service shrinks for detection itself) and the person mask (at the
    working resolution) -> the lens-independent Portrait. UserError when there is nothing to build on."""
    h, w = image_rgb.shape[:2]
    face = _face_api()
    if face is None or not face.available():
        raise UserError("no depth map was given, the depth network is not installed and the face models are not "
                        "available for the portrait depth proxy: pass --depth or install the models "
                        "(python -m core models)", "missing-input")
    if job is not None:
        job.progress(0.1, "depth proxy: finding faces")
    found = [f for f in face.detect_faces(image_rgb, device=device) if getattr(f, "landmarks", None) is not None]
    small, k = _working(image_rgb)
    sh, sw = small.shape[:2]
    if job is not None:
        job.progress(0.5, "depth proxy: person mask")
    person = None
    try:
        person = np.asarray(face.person_mask(small, device=device), np.float32).reshape(sh, sw)
    except UserError:
        person = None  # the person segmenter is missing: the outline is guessed from the faces instead
    has_person = person is not None and float(person.max()) > 0.5
    if not found and not has_person:
        raise UserError("no depth map was given, the depth network is not installed and no person was found "
                        "for the portrait depth proxy: pass --depth", "missing-input")
    if found and has_person:
        source = f"proxy:face-mesh+person-mask ({len(found)} face{'s' if len(found) != 1 else ''})"
    elif found:
        source = "proxy:face-mesh (no person mask: body outline guessed)"
    else:
        source = "proxy:person-mask (no face found)"
    full_lm = [np.asarray(f.landmarks, np.float32) for f in found]
    irises = [None if getattr(f, "irises", None) is None else np.asarray(f.irises, np.float32) for f in found]
    # Largest face first (the subject; the default focus is on it).
    order = sorted(range(len(full_lm)), key=lambda i: -float(np.linalg.norm(full_lm[i][FOREHEAD, :2]
                                                                           - full_lm[i][CHIN, :2])))
    full_lm, irises = [full_lm[i] for i in order], [irises[i] for i in order]
    faces = [face_geometry(lm * np.float32(k), sw) for lm in full_lm]
    if job is not None:
        job.progress(0.7, "depth proxy: surfaces")
    scale, offset, coverage, filled = portrait_maps((sh, sw), faces, person if has_person or not found else None)
    return Portrait((h, w), scale, offset, coverage, faces, full_lm, irises, source, filled)


def estimate(image_rgb: np.ndarray, job=None, device=None) -> Tuple[np.ndarray, str]:
    """(disparity, source) for a portrait from the face models (run on `device`: a torch.device, a name or None
    for the default); UserError when there is nothing to build on. The relative map (40° field of view),
    normalised to [0, 1], near = 1; the depth service caches the Portrait and its full-resolution coverage."""
    from . import metric

    p = analyse(image_rgb, job, device)
    coverage = metric.full_coverage(p, image_rgb)
    return metric.relative_disparity(p, coverage), p.source
