"""Verification on the result: the landmark and blendshape models run again on the edited picture.

The face service's landmark passes start from the same detection box as on the input, so input and output are
measured by one and the same pipeline; the coefficients' changes are then what a viewer of the two pictures
would be told by the model, not what the solve predicted.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional

import numpy as np

from .coefficients import NAMES, mesh478


def remeasure(image: np.ndarray, face, device=None) -> Optional[np.ndarray]:
    """The 478-point mesh of `face` (a core.face.Face from the input) measured again on `image`."""
    from ... import face as face_service

    probe = copy.copy(face)
    probe.landmarks = probe.irises = probe.presence = None
    face_service.face_landmarks(image, probe, device=device)
    if probe.landmarks is None:
        return None
    return mesh478(probe.landmarks, probe.irises)


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
