"""The shared depth service: one call that every operator uses when the user gives no depth map.

Contract: `estimate(image_rgb, job=None) -> DepthResult` with `disparity` (H×W float32, relative, near = large,
normalised to [0, 1]) and `source` naming what produced it. The depth issue fills this in (a monocular network
when its weights are present, else a portrait proxy from the face mesh and person mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError


@dataclass
class DepthResult:
    disparity: np.ndarray
    source: str


def estimate(image_rgb: np.ndarray, job=None) -> DepthResult:
    raise UserError("no depth map was given and the depth service is not available yet: pass --depth",
                    "missing-input")
