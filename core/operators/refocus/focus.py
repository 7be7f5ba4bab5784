"""Where the new focal plane lies: a distance the user gives, the depth under a point the user picks, or, by
default, the nearer eye of the largest face (what a portrait photographer focuses on), else the frame's centre.

An eye's centre is its iris centre when the iris model ran, else the mean of the eye's contour (core.face.topology
RIGHT_EYE / LEFT_EYE). Of the two eyes the nearer is the one the depth map puts nearer (larger disparity, smaller
distance), read as the median over a window of 1 % of the face's height (inside the iris at any resolution).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import UserError
from ...imaging import depthmap

EYE_WINDOW = 0.01   # window half-size for reading the depth at an eye, as a fraction of the face's height


def eye_centres(landmarks: np.ndarray, irises: Optional[np.ndarray]) -> List[Tuple[str, float, float]]:
    """[(name, x, y)] for the subject's right and left eye, in image pixels."""
    from ...face import topology as T

    out = []
    for k, (name, contour) in enumerate((("right", T.RIGHT_EYE), ("left", T.LEFT_EYE))):
        if irises is not None:
            x, y = float(irises[k][0][0]), float(irises[k][0][1])
        else:
            x, y = (float(v) for v in np.asarray(landmarks)[contour, :2].mean(axis=0))
        out.append((name, x, y))
    return out


def nearer_eye(depth: depthmap.DepthMap, landmarks: np.ndarray,
               irises: Optional[np.ndarray]) -> Tuple[float, str, Tuple[float, float]]:
    """(depth value at the nearer eye, its name, (x, y))."""
    from ...face import face_size

    h, w = depth.values.shape
    radius = max(1, int(round(EYE_WINDOW * face_size(landmarks))))
    best = None
    for name, x, y in eye_centres(landmarks, irises):
        if not (0 <= x < w and 0 <= y < h):
            continue
        v = depth.at(x, y, radius=radius)
        nearness = -v if depth.kind == "distance" else v
        if best is None or nearness > best[0]:
            best = (nearness, v, name, (x, y))
    if best is None:
        raise LookupError("both eyes lie outside the frame")
    return best[1], best[2], best[3]


FacesFn = Callable[[], Sequence[Tuple[np.ndarray, Optional[np.ndarray]]]]


def choose(depth: depthmap.DepthMap, params, faces: FacesFn):
    """(focal plane in the map's own kind, how it was chosen, {extra info}). `faces` gives [(landmarks,
    irises)], largest first, and is only called when nothing was asked for."""
    if params["focus_distance"] is not None and params["focus_at"] is not None:
        raise UserError("give either a focus distance or a focus point, not both", "bad-parameter")
    if params["focus_distance"] is not None:
        if depth.kind != "distance":
            raise UserError("a focus distance in metres needs a distance depth map (metres); with a disparity "
                            "map, pick the focus with a focus point (x,y)", "bad-parameter")
        return float(params["focus_distance"]), "distance", {}
    if params["focus_at"] is not None:
        x, y = params["focus_at"]
        return depth.at(x, y, radius=1), f"point {x:g},{y:g}", {}
    for k, (landmarks, irises) in enumerate(faces()):
        try:
            value, eye, (x, y) = nearer_eye(depth, landmarks, irises)
        except LookupError:
            continue  # a face cut by the frame's edge: the next largest
        which = "the largest face" if k == 0 else f"face {k + 1} by size (larger ones have no eye in the frame)"
        return value, f"nearer eye of {which} (the subject's {eye} eye at {x:.0f},{y:.0f})", \
            {"focus_point": [round(x, 1), round(y, 1)]}
    # No face: the subject assumed near the centre of the frame (median of the central third).
    h, w = depth.values.shape
    centre = depth.values[h // 3:max(2 * h // 3, h // 3 + 1), w // 3:max(2 * w // 3, w // 3 + 1)]
    return float(np.median(centre)), "centre of the frame (no face found)", {}
