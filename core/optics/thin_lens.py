"""Thin-lens optics: the signed circle of confusion, in image pixels, of every pixel of a depth map.

For a thin lens of focal length f and f-number N focused at distance S, a point at distance d images to a disc
of diameter c = f^2 / (N (S - f)) * |S/d - 1| on the sensor. Written in disparity (1/d) this is
c = K |1/d - 1/S| with K = f^2 S / (N (S - f)): linear in disparity. That is why a relative disparity map
(phone portrait mode, monocular networks) needs only one constant, the blur per unit of disparity, instead of the
lens constants. Sign convention here: positive in front of the focal plane (nearer), negative behind it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class ThinLens:
    focal_length_mm: float
    f_number: float
    sensor_width_mm: float

    def px_per_mm(self, image_width_px: int) -> float:
        return image_width_px / self.sensor_width_mm

    def slope_px(self, focus_m: float, image_width_px: int) -> float:
        """K in pixels per (1/metre): CoC diameter = K * (1/d - 1/S)."""
        f = self.focal_length_mm
        s = focus_m * 1000.0
        if s <= f * 1.0001:
            raise UserError(f"focus distance {focus_m:g} m is not beyond the focal length "
                            f"({f:g} mm): a lens cannot focus there", "bad-parameter")
        k_mm_per_inv_mm = f * f * s / (self.f_number * (s - f))  # mm of CoC per (1/mm) of disparity
        return k_mm_per_inv_mm / 1000.0 * self.px_per_mm(image_width_px)  # 1/mm -> 1/m

    def coc_px(self, distance_m: np.ndarray, focus_m: float, image_width_px: int) -> np.ndarray:
        """Signed CoC diameter in pixels for per-pixel distances in metres (positive = nearer than focus)."""
        k = self.slope_px(focus_m, image_width_px)
        return (k * (1.0 / distance_m - 1.0 / focus_m)).astype(np.float32)

    def blur_at_infinity_px(self, focus_m: float, image_width_px: int) -> float:
        """The CoC diameter of a point at infinity, for information."""
        return self.slope_px(focus_m, image_width_px) / focus_m


def coc_from_disparity(disparity: np.ndarray, focus_disparity: float, blur_at_infinity_px: float) -> np.ndarray:
    """Signed CoC for relative disparity (0 = infinity, 1 = the nearest point of the map).

    `blur_at_infinity_px` is the CoC of a point at infinity when focused at disparity 1, i.e. the blur per unit
    of relative disparity: CoC = blur_at_infinity * (disparity - focus disparity).
    """
    return (blur_at_infinity_px * (disparity - focus_disparity)).astype(np.float32)
