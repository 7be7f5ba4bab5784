"""Colour of the light: the subject adapted to the plate's illuminant.

Both illuminants are estimated over their own regions in linear light (core.imaging.colorimetry,
shades of grey, p = 6, which leaves out clipped and near-black pixels): the subject's over the matte's core
(alpha ≥ CORE_ALPHA), the plate's over the whole placed plate. The subject is then adapted by a von Kries
transform in CAT16 cone space from its illuminant's chromaticity to a target between the two:

    xy_target = xy_subject + s · (xy_plate − xy_subject),     F' = A(xy_subject → xy_target) · F

with s = match_color in [0, 1]: 0 leaves the subject exactly as it is, 1 renders it as if lit by the plate's light
(a neutral surface of the subject then has the plate's white point). Luminance of the white is kept (A maps the
source white to the target white at the same Y), so exposure does not change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ...errors import UserError
from ...imaging import colorimetry

CORE_ALPHA = 0.98       # the subject's own pixels: the old plate's light does not mix into them
METHOD = "shades_of_grey"
ESTIMATE_PIXELS = 1_000_000   # the light is a statistic of the whole region: estimated on a copy this size


@dataclass
class Match:
    matrix: np.ndarray      # 3×3 on linear sRGB column vectors
    subject: colorimetry.Illuminant
    plate: colorimetry.Illuminant
    target_xy: np.ndarray

    def facts(self) -> dict:
        r = lambda v: [round(float(x), 4) for x in v]  # noqa: E731
        return {"subject_illuminant_K": round(self.subject.kelvin), "subject_illuminant_xy": r(self.subject.xy),
                "plate_illuminant_K": round(self.plate.kelvin), "plate_illuminant_xy": r(self.plate.xy),
                "color_target_xy": r(self.target_xy)}


def estimate(subject_lin: np.ndarray, alpha: np.ndarray, plate_lin: np.ndarray,
             strength: float) -> Tuple[Optional[Match], str]:
    """(the adaptation for `strength` (0..1) from the subject's and the plate's estimated illuminants, "") or
    (None, why not) when either light cannot be estimated (too few usable pixels)."""
    core = _reduced((alpha >= CORE_ALPHA).astype(np.float32))
    core = (core >= 0.999).astype(np.float32)    # a reduced pixel counts when all of it was core
    try:
        subj = colorimetry.estimate_illuminant(_reduced(subject_lin), core, METHOD)
    except UserError:
        return None, "too few usable pixels in the matte's core to estimate the light on the subject"
    try:
        plate = colorimetry.estimate_illuminant(_reduced(plate_lin), None, METHOD)
    except UserError:
        return None, "the background plate is clipped or black: its light cannot be estimated"
    target = subj.xy + float(strength) * (plate.xy - subj.xy)
    matrix = colorimetry.adaptation_matrix_xy(subj.xy, target, "CAT16")
    return Match(matrix.astype(np.float64), subj, plate, target), ""


def _reduced(x: np.ndarray) -> np.ndarray:
    """An area-averaged copy of at most ESTIMATE_PIXELS (the picture itself when smaller)."""
    import cv2
    h, w = x.shape[:2]
    k = min(1.0, float(np.sqrt(ESTIMATE_PIXELS / float(h * w))))
    if k >= 1.0:
        return x
    return cv2.resize(x, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


def apply(fg_lin: np.ndarray, match: Match) -> np.ndarray:
    """The subject's colours (H×W×3, or N×3, linear) under the target light."""
    if fg_lin.ndim == 2:
        if fg_lin.shape[0] == 0:
            return fg_lin.copy()
        return colorimetry.apply_matrix(fg_lin[:, None, :], match.matrix)[:, 0, :]
    return colorimetry.apply_matrix(fg_lin, match.matrix)
