"""The face API: faces, landmarks, region masks and the person mask, at the image's full resolution.

Images are H×W×3 (or ×4, alpha ignored) float32 sRGB in [0, 1]. Coordinates are pixels, origin top-left, x right,
y down. Landmark z is in the same pixel scale as x and y, positive toward the camera (MediaPipe's sign flipped),
origin near the head's centre depth as the network places it.

Pipeline (as MediaPipe's face mesh graph): BlazeFace on a 128×128 letterbox → weighted NMS → for each face a
square crop around the box, rotated so the eye line is horizontal → FaceMesh at 192×192 → a second, tighter crop
from the first landmarks → FaceMesh again → each eye cropped by its corners → Iris network at 64×64.
The networks are built once per process and kept (the worker stays warm).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional

import cv2
import numpy as np

from ..errors import UserError
from . import topology as T

DETECTOR, MESH, IRIS, SELFIE = "mediapipe-blazeface", "mediapipe-facemesh", "mediapipe-iris", "mediapipe-selfie"
REGIONS = ("skin", "face", "eyes", "brows", "lips", "nostrils", "person")

MIN_SCORE = 0.5          # MediaPipe's min_score_thresh for the short-range detector
MIN_PRESENCE = 0.5       # FaceMesh face-presence probability below which a detection is dropped
NMS_IOU = 0.3            # MediaPipe's min_suppression_threshold
ROI_SCALE = 1.5          # detection box -> mesh crop (MediaPipe: face_detection_front_detection_to_roi)
EYE_ROI_SCALE = 2.3      # eye corners -> iris crop (MediaPipe: iris_landmark_landmarks_to_roi)


@dataclass
class Face:
    box: tuple                        # (x0, y0, x1, y1) pixels, from the detector
    score: float                      # detector confidence in [0, 1]
    keypoints: np.ndarray             # 6×2: right eye, left eye, nose tip, mouth, right ear, left ear (subject's)
    landmarks: Optional[np.ndarray] = None   # 468×3 (x, y, z) pixels, z toward the camera
    presence: Optional[float] = None         # mesh's face-presence probability
    irises: Optional[np.ndarray] = None      # 2×5×3 (subject's right, left): centre then 4 rim points

    def as_json(self, with_landmarks: bool = True) -> dict:
        r = lambda a: np.round(np.asarray(a, np.float64), 2).tolist()  # noqa: E731
        out = {"box": r(self.box), "score": round(float(self.score), 4), "keypoints": r(self.keypoints)}
        if self.presence is not None:
            out["presence"] = round(float(self.presence), 4)
        if with_landmarks and self.landmarks is not None:
            out["landmarks"] = r(self.landmarks)
        if self.irises is not None:
            out["irises"] = r(self.irises)
        return out


# ----------------------------------------------------------------------------------------------------------
# Networks, cached per process

_NETS: Dict[str, object] = {}
_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()


def _net(name: str):
    with _LOCK:
        if name not in _NETS:
            import torch  # noqa: F401

            from ..device import select_device
            from . import store
            from .blazeface import BlazeFace
            from .facemesh import FaceMesh, IrisLandmark
            from .selfie import SelfieSegmentation

            cls = {DETECTOR: BlazeFace, MESH: FaceMesh, IRIS: IrisLandmark, SELFIE: SelfieSegmentation}[name]
            module = store.load_module(cls(), name)
            _NETS[name] = module.to(select_device())
        return _NETS[name]


def clear_cache() -> None:
    with _LOCK:
        _NETS.clear()


def available(names=(DETECTOR, MESH)) -> bool:
    """True when the networks for faces (default) are installed and intact."""
    from . import store

    try:
        return all(store.model_state(store.entry(n)) == "present" for n in names)
    except UserError:
        return False


def _run(name: str, batch: np.ndarray):
    """batch: N×H×W×3 float32 → the network's outputs as numpy arrays."""
    import torch

    net = _net(name)
    dev = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(dev)
    # These networks are tiny (30-120 ms on one core): extra CPU threads gain little and, on a busy machine,
    # OpenMP threads spinning against each other made them 20-50× slower. One thread, restored afterwards;
    # the lock keeps concurrent worker threads from restoring each other's setting.
    with _RUN_LOCK:
        threads = torch.get_num_threads()
        if dev.type == "cpu" and threads > 1:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                out = net(x)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
    out = out if isinstance(out, tuple) else (out,)
    return [o.float().cpu().numpy() for o in out]


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] < 1 or min(image.shape[:2]) < 8:
        raise UserError(f"expected an image of at least 8×8 pixels (H×W×C), got shape {tuple(image.shape)}",
                        "bad-input")
    rgb = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, axis=2)  # grey(+alpha)
    # No clip here: a full-resolution copy costs more than the networks on 12 MP; patches are clipped instead.
    return rgb.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------------------
# Detection


def _letterbox(rgb: np.ndarray, size: int):
    """Fit into size×size keeping aspect (black bars); returns the patch and (scale, pad_x, pad_y)."""
    h, w = rgb.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), np.float32)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = np.clip(small, 0.0, 1.0)
    return out, (np.array([nw / w, nh / h], np.float32), px, py)  # continuous coords: x' = x * s + pad


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """MediaPipe's WEIGHTED non-maximum suppression: each cluster of overlapping detections is replaced by the
    score-weighted mean of its boxes and key points, keeping the best score."""
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        overlap = _iou(boxes[i], boxes) > iou
        members = overlap & alive
        alive &= ~members
        wts = scores[members][:, None]
        box = (boxes[members] * wts).sum(0) / wts.sum()
        pts = (points[members].reshape(int(members.sum()), -1) * wts).sum(0) / wts.sum()
        out.append((box, pts.reshape(-1, 2), float(scores[i])))
    return out


def _tiles(h: int, w: int, levels: int):
    """Square windows (x0, y0, size): the whole image, then per level k windows of max(h, w) / 2^k with 50 %
    overlap, so a face up to half a window wide lies wholly inside at least one of them."""
    out = [(0, 0, max(h, w), True)]
    for k in range(1, levels + 1):
        t = int(math.ceil(max(h, w) / 2 ** k))
        if t < 96:
            break
        step = t // 2
        ys = sorted({min(y, max(h - t, 0)) for y in range(0, max(h - step, 1), step)})
        xs = sorted({min(x, max(w - t, 0)) for x in range(0, max(w - step, 1), step)})
        out += [(x, y, t, False) for y in ys for x in xs]
    return out


def detect_faces(image: np.ndarray, min_score: float = MIN_SCORE, landmarks: bool = True,
                 tile_levels: int = 1) -> List[Face]:
    """All faces in `image`, best first; with the 468-point mesh (and irises) unless landmarks=False.

    The short-range detector sees a 128×128 view and finds faces wider than about a sixth of it, so besides the
    whole image it also looks at `tile_levels` levels of overlapping half-size windows (1 level: faces down to
    about 1/12 of the image's long side; each further level halves that, at 4× the detector runs)."""
    from .blazeface import INPUT_SIZE, anchors

    rgb = _rgb(image)
    levels = max(0, int(tile_levels))
    # Detection never needs more than 2 pixels of source per detector pixel at the finest level: shrink once.
    base_side = 2 * INPUT_SIZE * 2 ** levels
    shrink = min(1.0, base_side / max(rgb.shape[:2]))
    if shrink < 1.0:
        size = (max(1, round(rgb.shape[1] * shrink)), max(1, round(rgb.shape[0] * shrink)))
        base = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        to_full = np.array([rgb.shape[1] / size[0], rgb.shape[0] / size[1]], np.float32)
    else:
        base, to_full = rgb, np.ones(2, np.float32)
    h, w = base.shape[:2]
    windows = _tiles(h, w, levels)
    patches, maps = [], []
    for x0, y0, t, whole in windows:
        view = base if whole else base[y0:y0 + t, x0:x0 + t]
        patch, (s, px, py) = _letterbox(view, INPUT_SIZE)
        patches.append(patch)
        maps.append((x0, y0, t, whole, s, px, py, view.shape[1], view.shape[0]))
    reg, cls = _run(DETECTOR, np.stack(patches) * 2.0 - 1.0)
    scores = 1.0 / (1.0 + np.exp(-np.clip(cls[:, :, 0].astype(np.float64), -80, 80)))
    anc = anchors() * INPUT_SIZE
    all_boxes, all_pts, all_scores = [], [], []
    for i, (x0, y0, t, whole, s, px, py, vw, vh) in enumerate(maps):
        keep = scores[i] >= min_score
        if not keep.any():
            continue
        a, r = anc[keep], reg[i][keep]
        cx, cy = a[:, 0] + r[:, 0], a[:, 1] + r[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
        pts = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
        off = np.array([px, py], np.float32)
        boxes = ((boxes.reshape(-1, 2, 2) - off) / s + np.array([x0, y0], np.float32)).reshape(-1, 4)
        pts = (pts - off) / s + np.array([x0, y0], np.float32)
        if not whole:
            # A window only vouches for faces it holds whole and that are small for it; others belong to a
            # neighbour window or to the coarser level.
            m = 0.02 * t
            inner = ((boxes[:, 0] > x0 + m) | (x0 <= 0)) & ((boxes[:, 1] > y0 + m) | (y0 <= 0)) & \
                    ((boxes[:, 2] < x0 + vw - m) | (x0 + vw >= w)) & ((boxes[:, 3] < y0 + vh - m) | (y0 + vh >= h))
            small = (boxes[:, 2] - boxes[:, 0]) < 0.5 * t
            ok = inner & small
            boxes, pts, sc = boxes[ok], pts[ok], scores[i][keep][ok]
        else:
            sc = scores[i][keep]
        all_boxes.append((boxes.reshape(-1, 2, 2) * to_full).reshape(-1, 4))
        all_pts.append(pts * to_full)
        all_scores.append(sc)
    faces: List[Face] = []
    if all_scores:
        merged = weighted_nms(np.concatenate(all_boxes), np.concatenate(all_pts), np.concatenate(all_scores))
        for box, kp, score in merged:
            faces.append(Face(box=tuple(float(v) for v in box), score=score, keypoints=kp.astype(np.float32)))
    if landmarks:
        for f in faces:
            face_landmarks(rgb, f)
        # The mesh's own face-presence output vetoes detector false positives (as MediaPipe's tracker does).
        faces = [f for f in faces if f.presence is None or f.presence >= MIN_PRESENCE]
    return faces


# ----------------------------------------------------------------------------------------------------------
# Rotated crops


@dataclass
class Roi:
    """A rotated rectangle centred at (cx, cy), width × height pixels, its x axis at `angle` radians from the
    image's x axis (image coordinates, y down, so a positive angle turns clockwise on screen)."""
    cx: float
    cy: float
    width: float
    height: float
    angle: float

    def forward(self) -> np.ndarray:
        """2×3 affine map from crop-unit coordinates (u, v in [0, 1]) to image pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        ex = np.array([c, s]) * self.width
        ey = np.array([-s, c]) * self.height
        origin = np.array([self.cx, self.cy]) - 0.5 * ex - 0.5 * ey
        return np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]]])


def crop(rgb: np.ndarray, roi: Roi, out: int) -> np.ndarray:
    """Sample `roi` into an out×out patch (bilinear, pre-shrunk with area averaging to avoid aliasing)."""
    h, w = rgb.shape[:2]
    fwd = roi.forward()
    shrink = max(1.0, min(roi.width, roi.height) / (2.0 * out))
    src = rgb
    if shrink > 1.0:
        # Only the ROI's bounding box is shrunk: cheap on 12 MP images.
        corners = fwd @ np.array([[0, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]], np.float64)
        x0, y0 = np.floor(corners.min(1)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(1)).astype(int) + 2
        x0c, y0c, x1c, y1c = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1c <= x0c or y1c <= y0c:
            return np.zeros((out, out, 3), np.float32)
        part = rgb[y0c:y1c, x0c:x1c]
        pw, ph = max(1, round(part.shape[1] / shrink)), max(1, round(part.shape[0] / shrink))
        src = cv2.resize(part, (pw, ph), interpolation=cv2.INTER_AREA)
        sx, sy = pw / part.shape[1], ph / part.shape[0]
        fwd = np.array([[sx, 0, -x0c * sx], [0, sy, -y0c * sy]]) @ np.vstack([fwd, [0, 0, 1]])
    # Pixel centres: crop pixel (i + 0.5) / out in unit coordinates; image pixel centres at integer + 0.5.
    unit = np.array([[1.0 / out, 0, 0.5 / out], [0, 1.0 / out, 0.5 / out], [0, 0, 1]])
    m = np.vstack([fwd, [0, 0, 1]]) @ unit
    m[:2, 2] -= 0.5
    patch = cv2.warpAffine(src, m[:2], (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return np.clip(patch, 0.0, 1.0)


def _to_image(roi: Roi, pts: np.ndarray, out: int) -> np.ndarray:
    """Crop pixels (N×2, pixel-edge coordinates as the networks emit them) → image pixels."""
    fwd = roi.forward()
    u = pts[:, :2] / out
    return u @ fwd[:, :2].T + fwd[:, 2]


def _eye_angle(p_right: np.ndarray, p_left: np.ndarray) -> float:
    """Angle of the line from the subject's right eye to the left eye (image-left to image-right if upright)."""
    d = p_left - p_right
    return math.atan2(d[1], d[0])


def roi_from_detection(face: Face) -> Roi:
    x0, y0, x1, y1 = face.box
    size = max(x1 - x0, y1 - y0) * ROI_SCALE
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, size, size, _eye_angle(face.keypoints[0], face.keypoints[1]))


def roi_from_landmarks(lm: np.ndarray) -> Roi:
    """Tighter crop from a previous mesh (MediaPipe's landmarks-to-ROI: rotated bounding box × 1.5)."""
    angle = _eye_angle(lm[T.RIGHT_EYE_CORNERS[0], :2], lm[T.LEFT_EYE_CORNERS[0], :2])
    c, s = math.cos(angle), math.sin(angle)
    rot = lm[:, :2] @ np.array([[c, -s], [s, c]])  # coordinates along the eye line and across it
    lo, hi = rot.min(0), rot.max(0)
    mid = (lo + hi) / 2
    centre = mid @ np.array([[c, s], [-s, c]])
    size = float(max(hi - lo)) * ROI_SCALE
    return Roi(float(centre[0]), float(centre[1]), size, size, angle)


def _mesh_pass(rgb: np.ndarray, roi: Roi):
    from .facemesh import MESH_INPUT

    patch = crop(rgb, roi, MESH_INPUT)
    pts, flag = _run(MESH, patch[None])
    pts = pts[0]
    xy = _to_image(roi, pts, MESH_INPUT)
    z = -pts[:, 2] * roi.width / MESH_INPUT      # MediaPipe: smaller z = nearer; ours: larger = nearer
    presence = float(1.0 / (1.0 + math.exp(-float(np.clip(flag[0, 0], -100, 100)))))
    return np.concatenate([xy, z[:, None]], 1).astype(np.float32), presence


def face_landmarks(image: np.ndarray, face: Face, refine: bool = True, irises: bool = True) -> Face:
    """Fill `face.landmarks` (468×3), `face.presence` and, when the iris model is present, `face.irises`."""
    rgb = _rgb(image)
    lm, presence = _mesh_pass(rgb, roi_from_detection(face))
    if refine:
        lm, presence = _mesh_pass(rgb, roi_from_landmarks(lm))
    face.landmarks, face.presence = lm, presence
    if irises and available((IRIS,)):
        face.irises = iris_landmarks(rgb, lm)
    return face


def iris_landmarks(rgb: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """2×5×3 iris points (subject's right eye, then left), from eye crops around the mesh's eye corners.
    The network sees the subject's right eye as is and the left eye mirrored (how it was trained)."""
    from .facemesh import IRIS_INPUT

    out = []
    for (outer, inner), mirror in ((T.RIGHT_EYE_CORNERS, False), (T.LEFT_EYE_CORNERS, True)):
        a, b = lm[outer, :2], lm[inner, :2]
        if mirror:
            a, b = b, a  # image-left corner first, so the crop's x axis runs left to right
        size = float(np.linalg.norm(b - a)) * EYE_ROI_SCALE
        roi = Roi(float((a[0] + b[0]) / 2), float((a[1] + b[1]) / 2), size, size, _eye_angle(a, b))
        patch = crop(rgb, roi, IRIS_INPUT)
        if mirror:
            patch = patch[:, ::-1]
        _, iris = _run(IRIS, np.ascontiguousarray(patch)[None])
        pts = iris[0].copy()
        if mirror:
            pts[:, 0] = IRIS_INPUT - pts[:, 0]
        xy = _to_image(roi, pts, IRIS_INPUT)
        z = -pts[:, 2] * size / IRIS_INPUT
        out.append(np.concatenate([xy, z[:, None]], 1))
    return np.asarray(out, np.float32)


# ----------------------------------------------------------------------------------------------------------
# Masks


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


def _face_size(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[T.FOREHEAD_TOP, :2] - lm[T.CHIN, :2]))


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


def _skin_likelihood(rgb: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """Per-pixel 0..1 agreement with the face's own skin colour, so hair over the forehead, glasses or a hand
    inside the face oval drop out of the skin mask. Colour model: robust mean and covariance of the chroma
    (YCrCb's Cr, Cb) of the `sure` pixels (the oval minus the features), which are mostly skin; luminance is left
    out on purpose so shadowed skin stays skin."""
    ycc = cv2.cvtColor(np.clip(rgb, 0, 1).astype(np.float32), cv2.COLOR_RGB2YCrCb)
    chroma = ycc[:, :, 1:3].reshape(-1, 2)
    sample = chroma[sure.reshape(-1) > 0.5]
    if len(sample) < 50:
        return np.ones(rgb.shape[:2], np.float32)
    med = np.median(sample, 0)
    d0 = np.linalg.norm(sample - med, axis=1)
    core = sample[d0 <= np.percentile(d0, 70)]  # the central 70 %: hair and make-up outliers excluded
    cov = np.cov(core.T) + np.eye(2) * 1e-5
    diff = chroma - core.mean(0)
    d2 = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    # Fully skin within 4 sigma, fading out by 7 sigma (freckles and creases are still skin).
    like = np.clip((7.0 - np.sqrt(d2)) / 3.0, 0.0, 1.0)
    return like.reshape(rgb.shape[:2]).astype(np.float32)


def _one_face_mask(rgb: np.ndarray, lm: np.ndarray, region: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    feather = 0.01 * _face_size(lm)
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
        like = _skin_likelihood(rgb, (m > 0.9).astype(np.float32))
        like = cv2.morphologyEx(like, cv2.MORPH_CLOSE, kernel)  # fill isolated specks (pores, freckles)
        return m * cv2.GaussianBlur(like, (0, 0), max(feather, 0.5))
    if region == "nostrils":
        return _nostrils(rgb, lm, feather * 0.5)
    polys, holes = _region_polys(lm, region)
    m = _polygon_mask((h, w), polys, feather * 0.5)
    if holes:
        m = m * (1.0 - _polygon_mask((h, w), holes, feather * 0.5))
    return m


def region_mask(image: np.ndarray, region: str, faces: Optional[List[Face]] = None) -> np.ndarray:
    """H×W float32 soft mask in [0, 1] of `region` over every face (skin, face, eyes, brows, lips, nostrils) or
    of the person ('person'). Edges are feathered by about 1 % of the face height. Each face is worked on in a
    window around its landmarks, so the cost follows the face size, not the image size."""
    if region == "person":
        return person_mask(image)
    if region not in REGIONS:
        raise UserError(f"unknown region '{region}': choose one of {', '.join(REGIONS)}", "bad-parameter")
    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    if faces is None:
        faces = detect_faces(rgb)
    total = np.zeros((h, w), np.float32)
    for f in faces:
        if f.landmarks is None:
            face_landmarks(rgb, f)
        lm = f.landmarks
        margin = 0.08 * _face_size(lm) + 4
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


def person_mask(image: np.ndarray) -> np.ndarray:
    """H×W float32 person probability at full resolution: Selfie Segmentation at 256×256 (the image stretched,
    as MediaPipe feeds it), upsampled with the edge-aware joint bilateral filter so its edges follow the image's
    edges. Beyond PERSON_GUIDE_SIDE pixels the edge-aware step runs at that size and the last factor is
    bilinear: on a 9 MP portrait that takes 0.3 s against 1.1 s at full resolution, for an edge transition of
    10 px instead of 9, and the mask edge stays within about long side / 1024 pixels of the image edge."""
    from ..imaging.resample import guided_upsample
    from .selfie import INPUT_SIZE

    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    small = np.clip(cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA), 0.0, 1.0)
    (prob,) = _run(SELFIE, small[None])
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
