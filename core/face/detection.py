"""Face detection: BlazeFace (short range) on a 128×128 letterbox of the whole image and of overlapping
half-size windows, MediaPipe's weighted non-maximum suppression, then (by default) the landmark passes.

Coordinates are image pixels, origin top-left, x right, y down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import cv2
import numpy as np

from .networks import DETECTOR, as_rgb, run

MIN_SCORE = 0.5          # MediaPipe's min_score_thresh for the short-range detector
MIN_PRESENCE = 0.5       # FaceMesh face-presence probability below which a detection is dropped
NMS_IOU = 0.3            # MediaPipe's min_suppression_threshold


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
                 tile_levels: int = 1, device=None) -> List[Face]:
    """All faces in `image`, best first; with the 468-point mesh (and irises) unless landmarks=False.

    The short-range detector sees a 128×128 view and finds faces wider than about a sixth of it, so besides the
    whole image it also looks at `tile_levels` levels of overlapping half-size windows (1 level: faces down to
    about 1/12 of the image's long side; each further level halves that, at 4× the detector runs).
    `device`: where the networks run (None: the default choice, see `core.face.networks`)."""
    from ..models.blazeface import INPUT_SIZE, anchors
    from .landmarks import face_landmarks

    rgb = as_rgb(image)
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
    reg, cls = run(DETECTOR, np.stack(patches) * 2.0 - 1.0, device)
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
            face_landmarks(rgb, f, device=device)
        # The mesh's own face-presence output vetoes detector false positives (as MediaPipe's tracker does).
        faces = [f for f in faces if f.presence is None or f.presence >= MIN_PRESENCE]
    return faces
