"""Face landmarks: rotated crops around a face and the FaceMesh and Iris passes, as MediaPipe's face mesh graph.

For each detected face: a square crop around the detector's box, rotated so the eye line is horizontal →
FaceMesh at 192×192 → a second, tighter crop from the first landmarks → FaceMesh again → each eye cropped by
its corners → Iris network at 64×64.

Landmarks are 468×3 float32: x, y in image pixels (origin top-left, y down); z in the same pixel scale,
positive toward the camera (MediaPipe's sign flipped), origin near the head's centre depth as the network
places it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import topology as T
from .networks import IRIS, MESH, as_rgb, available, run

if TYPE_CHECKING:
    from .detection import Face

ROI_SCALE = 1.5          # detection box -> mesh crop (MediaPipe: face_detection_front_detection_to_roi)
EYE_ROI_SCALE = 2.3      # eye corners -> iris crop (MediaPipe: iris_landmark_landmarks_to_roi)


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


def roi_from_detection(face: "Face") -> Roi:
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


def _mesh_pass(rgb: np.ndarray, roi: Roi, device=None):
    from ..models.facemesh import MESH_INPUT

    patch = crop(rgb, roi, MESH_INPUT)
    pts, flag = run(MESH, patch[None], device)
    pts = pts[0]
    xy = _to_image(roi, pts, MESH_INPUT)
    z = -pts[:, 2] * roi.width / MESH_INPUT      # MediaPipe: smaller z = nearer; ours: larger = nearer
    presence = float(1.0 / (1.0 + math.exp(-float(np.clip(flag[0, 0], -100, 100)))))
    return np.concatenate([xy, z[:, None]], 1).astype(np.float32), presence


def face_landmarks(image: np.ndarray, face: "Face", refine: bool = True, irises: bool = True,
                   device=None) -> "Face":
    """Fill `face.landmarks` (468×3), `face.presence` and, when the iris model is present, `face.irises`."""
    rgb = as_rgb(image)
    lm, presence = _mesh_pass(rgb, roi_from_detection(face), device)
    if refine:
        lm, presence = _mesh_pass(rgb, roi_from_landmarks(lm), device)
    face.landmarks, face.presence = lm, presence
    if irises and available((IRIS,)):
        face.irises = iris_landmarks(rgb, lm, device=device)
    return face


def iris_landmarks(rgb: np.ndarray, lm: np.ndarray, device=None) -> np.ndarray:
    """2×5×3 iris points (subject's right eye, then left), from eye crops around the mesh's eye corners.
    The network sees the subject's right eye as is and the left eye mirrored (how it was trained)."""
    from ..models.facemesh import IRIS_INPUT

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
        _, iris = run(IRIS, np.ascontiguousarray(patch)[None], device)
        pts = iris[0].copy()
        if mirror:
            pts[:, 0] = IRIS_INPUT - pts[:, 0]
        xy = _to_image(roi, pts, IRIS_INPUT)
        z = -pts[:, 2] * size / IRIS_INPUT
        out.append(np.concatenate([xy, z[:, None]], 1))
    return np.asarray(out, np.float32)


def face_size(landmarks: np.ndarray) -> float:
    """The face's height in image pixels: the distance from the top of the face oval on the midline (landmark
    10, about the hairline) to the bottom of the chin (landmark 152), in the image plane (x, y; z ignored).

    In-plane rotation does not change it; pitch shortens it by about cos(pitch). It is about 1.15 × the face's
    width between the ears (landmarks 234-454; 1.16 on the astronaut), so on an adult roughly 17 cm. The region
    masks feather by 1 % of it."""
    lm = np.asarray(landmarks)
    return float(np.linalg.norm(lm[T.FOREHEAD_TOP, :2] - lm[T.CHIN, :2]))
