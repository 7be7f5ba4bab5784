"""Plate geometry: the new background scaled to cover the frame, framed as the portrait's lens would frame it,
with its horizon where the portrait's camera height puts it.

Cover. A plate of another size or aspect ratio is scaled uniformly (never stretched) by s₀ = max(H/h, W/w)
so that it covers the H×W frame, and centred.

Perspective. With the same sensor format, the field of view scales as 1/f: a portrait taken at focal length f
sees the central f_plate/f of what a plate taken at f_plate sees. The plate is therefore magnified by
m = f / f_plate about its centre (m > 1: a longer portrait lens crops into the plate). A plate shot wider than
the portrait cannot be widened (m < 1 would leave the frame uncovered); it is then used as it covers, and the
info says so.

Horizon. For a level camera the horizon crosses the image at the height of its optical centre; a camera higher
or lower than the plate's, or a shifted lens, moves it. `horizon` places the plate's horizon (at fraction h_p of
the plate's height, 0.5 for a level, unshifted plate camera) at fraction h_t of the frame's height, measured from
the top: a vertical shift, like a shift lens, so that verticals stay vertical. If the shift would uncover the
frame's top or bottom, the plate is magnified further, just enough:
s ≥ h_t·H / (h_p·h) and s ≥ (1 − h_t)·H / ((1 − h_p)·h).

Mapping (pixel centres): frame x = s·(u + ½) + t_x − ½, y = s·(v + ½) + t_y − ½ for plate pixel (u, v).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ...errors import UserError


@dataclass(frozen=True)
class Placement:
    scale: float          # frame pixels per plate pixel
    tx: float             # frame x of the plate's left edge
    ty: float             # frame y of the plate's top edge
    magnification: float  # perspective magnification applied (1 = none)
    note: str = ""        # what the user should know (a plate too wide to match, ...)

    def is_identity(self, plate_shape, frame_shape) -> bool:
        return (tuple(plate_shape[:2]) == tuple(frame_shape[:2]) and abs(self.scale - 1.0) < 1e-9
                and abs(self.tx) < 1e-9 and abs(self.ty) < 1e-9)


def placement(plate_hw, frame_hw, focal_length_mm: float, plate_focal_length_mm: Optional[float],
              horizon: Optional[float], plate_horizon: float = 0.5) -> Placement:
    """Where the plate goes in the frame (see the module notes). plate_hw, frame_hw: (height, width)."""
    ph, pw = plate_hw
    H, W = frame_hw
    s0 = max(H / ph, W / pw)
    note = ""
    m = 1.0
    if plate_focal_length_mm is not None:
        m = focal_length_mm / plate_focal_length_mm
        if m < 1.0:
            note = (f"the plate was shot wider ({plate_focal_length_mm:g} mm) than it can be matched to the "
                    f"portrait's {focal_length_mm:g} mm by cropping only; it is used as it covers the frame")
            m = 1.0
    s = s0 * m
    if horizon is None:
        return Placement(s, (W - pw * s) / 2.0, (H - ph * s) / 2.0, m, note)
    if not 0.0 < plate_horizon < 1.0:
        raise UserError("the plate's horizon must lie inside the plate (a fraction between 0 and 1)",
                        "bad-parameter")
    y_t = horizon * H
    y_h = plate_horizon * ph
    s = max(s, y_t / y_h, (H - y_t) / (ph - y_h))
    ty = y_t - y_h * s
    # Rounding can leave a sliver of a pixel uncovered: clamp the shift to the covering range.
    ty = min(0.0, max(ty, H - ph * s))
    return Placement(s, (W - pw * s) / 2.0, ty, m, note)


def visible_window(where: Placement, plate_hw, frame_hw):
    """(rows, cols) slices of the plate that land inside the frame."""
    ph, pw = plate_hw
    H, W = frame_hw
    u0 = int(np.floor(max(0.0, -where.tx / where.scale)))
    u1 = int(np.ceil(min(pw, (W - where.tx) / where.scale)))
    v0 = int(np.floor(max(0.0, -where.ty / where.scale)))
    v1 = int(np.ceil(min(ph, (H - where.ty) / where.scale)))
    return slice(v0, max(v1, v0 + 1)), slice(u0, max(u1, u0 + 1))


def warp(plate: np.ndarray, where: Placement, frame_hw, out_hw=None) -> np.ndarray:
    """The plate (h×w×C float32, C ≤ 4) resampled into the H×W frame, or into an out_hw copy of the frame
    (reduced: pixel centres aligned as cv2.resize aligns them, x_out + ½ = (x + ½)·W_out/W). Shrinking
    pre-filters by area averaging (no aliasing of fine texture); enlarging is bilinear."""
    H, W = frame_hw
    oh, ow = out_hw if out_hw is not None else (H, W)
    if (oh, ow) == (H, W) and where.is_identity(plate.shape, frame_hw):
        return np.ascontiguousarray(plate, np.float32)
    fx, fy = ow / W, oh / H
    sx, sy = where.scale * fx, where.scale * fy
    tx, ty = where.tx * fx, where.ty * fy
    src = np.ascontiguousarray(plate, np.float32)
    channels = 1 if plate.ndim == 2 else plate.shape[2]
    k = max(1, int(np.floor(1.0 / max(sx, sy))))
    if k > 1:
        # Area-average down to about the target scale first; the affine warp then only interpolates.
        small = cv2.resize(src, (max(1, src.shape[1] // k), max(1, src.shape[0] // k)), interpolation=cv2.INTER_AREA)
        kx, ky = src.shape[1] / small.shape[1], src.shape[0] / small.shape[0]
        src, sx, sy = small, sx * kx, sy * ky
    # output (x + ½) = s (u + ½) + t  ->  x = s·u + (s/2 + t − ½)
    m = np.float32([[sx, 0.0, sx / 2.0 + tx - 0.5], [0.0, sy, sy / 2.0 + ty - 0.5]])
    out = cv2.warpAffine(src, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape((oh, ow) + ((channels,) if plate.ndim == 3 else ())).astype(np.float32, copy=False)
