"""The subject: its rough mask (the user's, or the person segmentation) and its distance from the camera.

Distance from the face's size (thin lens). The face's height in the picture, hairline to chin
(core.face.face_size), is about FACE_HEIGHT_M on an adult. On the sensor it is h = face_px · sensor_width / W
(mm), a magnification m = h / FACE_HEIGHT; a thin lens of focal length f images at that magnification an object at
S = f (1 + 1/m). With no face (and no distance given) the subject is taken at DEFAULT_DISTANCE_M, and the info
says so.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ...errors import UserError

FACE_HEIGHT_M = 0.17        # hairline to chin on an adult (core.face.face_size: "roughly 17 cm")
DEFAULT_DISTANCE_M = 2.0    # a head-and-shoulders portrait's usual distance, when nothing says otherwise


def rough_mask(image: np.ndarray, given: Optional[np.ndarray], device) -> Tuple[np.ndarray, str]:
    """H×W bool subject mask and where it came from. `given`: the user's mask (H×W or H×W×C, > 0.5 = subject)."""
    h, w = image.shape[:2]
    if given is not None:
        m = np.asarray(given, np.float32)
        if m.ndim == 3:
            m = m[:, :, 0]
        if m.shape != (h, w):
            raise UserError(f"the subject mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}",
                            "size-mismatch")
        return m > 0.5, "subject mask"
    from ... import face
    prob = face.person_mask(image, device=device)
    return prob > 0.5, "person segmentation"


def distance_from_face(image: np.ndarray, focal_length_mm: float, sensor_width_mm: float,
                       device) -> Tuple[float, str, Optional[float]]:
    """(metres, how it was found, face height in px or None)."""
    from ... import face
    faces = face.detect_faces(image, device=device)
    sizes = [face.face_size(f.landmarks) for f in faces if f.landmarks is not None]
    if not sizes:
        return DEFAULT_DISTANCE_M, f"no face found: {DEFAULT_DISTANCE_M:g} m assumed", None
    face_px = max(sizes)
    return distance_for_face_px(face_px, image.shape[1], focal_length_mm, sensor_width_mm), \
        "from the face's size", face_px


def distance_for_face_px(face_px: float, width_px: int, focal_length_mm: float, sensor_width_mm: float) -> float:
    """S = f (1 + 1/m), m = face_px · sensor_width / (W · FACE_HEIGHT), in metres."""
    m = face_px * sensor_width_mm / (width_px * FACE_HEIGHT_M * 1000.0)
    return focal_length_mm * (1.0 + 1.0 / max(m, 1e-9)) / 1000.0
