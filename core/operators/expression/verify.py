"""Verification on the result: the landmark and blendshape models run again on the edited picture.

The face service's landmark passes start from the same detection box as on the input, so input and output are
measured by one and the same pipeline; the coefficients' changes are then what a viewer of the two pictures
would be told by the model, not what the solve predicted.

A candidate result is measured without composing the whole picture: the landmark passes only read the region
their crops cover (the detection's crop, the mesh's tighter one, the eyes'), so that region is copied, the warped
ROI pasted into it, and the passes run there (the same pixels, whatever the picture's size).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional

import numpy as np

from .coefficients import NAMES, mesh478

REGION_SLACK = 1.25    # the tighter crop of the result may drift from the input's: its box is taken this much larger


def remeasure(image: np.ndarray, face, device=None) -> Optional[np.ndarray]:
    """The 478-point mesh of `face` (a core.face.Face from the input) measured again on `image`."""
    from ... import face as face_service

    probe = copy.copy(face)
    probe.landmarks = probe.irises = probe.presence = None
    face_service.face_landmarks(image, probe, device=device)
    if probe.landmarks is None:
        return None
    return mesh478(probe.landmarks, probe.irises)


def region(face, mesh: np.ndarray, roi, shape):
    """(x0, y0, x1, y1): the pixels the landmark passes on `face` may read (both crops' bounding boxes, the tighter
    one REGION_SLACK × larger, and the ROI), with a margin for the resampling, clipped to the picture."""
    from ...face.landmarks import roi_from_detection, roi_from_landmarks

    boxes = [(roi.x0, roi.y0, roi.x1, roi.y1)]
    tight = roi_from_landmarks(np.asarray(mesh)[:468])
    tight.width *= REGION_SLACK
    tight.height *= REGION_SLACK
    for r in (roi_from_detection(face), tight):
        corners = r.forward() @ np.array([[0, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]], np.float64)
        boxes.append((*corners.min(axis=1), *corners.max(axis=1)))
    b = np.asarray(boxes, np.float64)
    h, w = shape[:2]
    x0, y0 = max(0, int(np.floor(b[:, 0].min())) - 4), max(0, int(np.floor(b[:, 1].min())) - 4)
    x1, y1 = min(w, int(np.ceil(b[:, 2].max())) + 4), min(h, int(np.ceil(b[:, 3].max())) + 4)
    return x0, y0, x1, y1


def remeasure_patch(image: np.ndarray, patch: np.ndarray, roi, face, mesh: np.ndarray,
                    device=None) -> Optional[np.ndarray]:
    """remeasure() of `image` with its ROI `roi` (a deform.Roi) replaced by `patch`, read from the region around the
    face alone (`mesh`: the input's 478 points)."""
    x0, y0, x1, y1 = region(face, mesh, roi, image.shape)
    local = np.array(image[y0:y1, x0:x1, :3], np.float32, copy=True)
    local[roi.y0 - y0:roi.y1 - y0, roi.x0 - x0:roi.x1 - x0] = patch[:, :, :3]
    shift = np.array([x0, y0], np.float32)
    probe = copy.copy(face)
    bx0, by0, bx1, by1 = face.box
    probe.box = (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)
    probe.keypoints = np.asarray(face.keypoints, np.float32) - shift
    found = remeasure(local, probe, device)
    if found is None:
        return None
    found[:, :2] += shift
    return found


def report(before: np.ndarray, after: np.ndarray, targeted: np.ndarray, requested: Dict[str, float]) -> dict:
    """Achieved change of each targeted coefficient, and the largest change of any other one."""
    change = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    achieved = {n: round(float(change[NAMES.index(n)]), 4) for n in requested}
    others = np.where(np.asarray(targeted, bool), 0.0, np.abs(change))
    others[0] = 0.0
    k = int(others.argmax())
    fractions = [change[NAMES.index(n)] / v for n, v in requested.items() if abs(v) >= 0.02]
    return {"requested": {n: round(v, 4) for n, v in requested.items()}, "achieved": achieved,
            "achieved_fraction": round(float(np.mean(fractions)), 3) if fractions else None,
            "largest_unintended": {"name": NAMES[k], "change": round(float(change[k]), 4)}}


def landmark_moves(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """478×2 measured landmark displacement (px), output minus input."""
    return np.asarray(after, np.float64)[:, :2] - np.asarray(before, np.float64)[:, :2]
