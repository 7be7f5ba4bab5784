"""Depth maps shared by the operators that need one (refocus, background, relight).

Two kinds (see ARCHITECTURE.md): "distance" in metres (`.npy` or float TIFF), or "disparity", relative with
near = large (8/16-bit PNG, near = bright; the depth service's output). Integer files read as [0, 1], so a map
whose values all lie in [0, 1] is taken for disparity unless the caller says otherwise; anything above 1 can only
be metres. Disparity is scaled so that the nearest point of the map is 1 (0 stays infinity). A map of another size than the image is resized edge-aware, guided by the image, so depth edges land
on the image's edges rather than on a blurred band.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

KINDS = ("auto", "distance", "disparity")


@dataclass
class DepthMap:
    values: np.ndarray  # H×W float32: metres (distance) or relative disparity (near = large)
    kind: str           # "distance" or "disparity"
    source: str = "input"

    def disparity(self) -> np.ndarray:
        """Disparity-like values, near = large: 1/metres for distance maps, unchanged for disparity maps."""
        if self.kind == "distance":
            return (1.0 / self.values).astype(np.float32)
        return self.values

    def at(self, x: float, y: float, radius: int = 1) -> float:
        """The depth value at pixel (x, y): the median over a small window, robust to one stray pixel."""
        h, w = self.values.shape
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"the focus point ({x:g}, {y:g}) is outside the {w}x{h} image", "bad-parameter")
        xi, yi = int(x), int(y)
        win = self.values[max(yi - radius, 0):yi + radius + 1, max(xi - radius, 0):xi + radius + 1]
        return float(np.median(win))


def single_channel(arr: np.ndarray, name: str = "depth") -> np.ndarray:
    """H×W from H×W, H×W×1, grey-as-RGB(A) or grey+alpha; a colour picture is refused (wrong kind of input)."""
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim == 2:
        return a
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"the {name} map has shape {a.shape}; expected a single-channel image", "bad-input")
    if a.shape[2] in (1, 2):
        return a[:, :, 0]
    rgb = a[:, :, :3]
    if np.abs(rgb[:, :, 0] - rgb[:, :, 1]).max() > 1e-3 or np.abs(rgb[:, :, 0] - rgb[:, :, 2]).max() > 1e-3:
        raise UserError(f"the {name} map is a colour picture; a depth map must be single-channel grey "
                        f"(distance in metres or disparity, near = bright)", "bad-input")
    return rgb[:, :, 0]


def interpret(arr: np.ndarray, kind: str = "auto", source: str = "input") -> DepthMap:
    """Validate a depth array and decide its kind. kind: 'auto' | 'distance' | 'disparity'."""
    if kind not in KINDS:
        raise UserError(f"depth kind must be one of {', '.join(KINDS)}, not '{kind}'", "bad-parameter")
    d = single_channel(arr)
    if d.size == 0 or not np.isfinite(d).all():
        raise UserError("the depth map contains NaN or infinite values", "bad-input")
    lo, hi = float(d.min()), float(d.max())
    if kind == "auto":
        kind = "disparity" if (lo >= 0.0 and hi <= 1.0) else "distance"
    if kind == "distance":
        if lo <= 0.0:
            raise UserError("the depth map holds zero or negative distances; a distance map must be in metres "
                            "(> 0). If it is a disparity map (near = bright), say depth kind 'disparity'",
                            "bad-input")
    else:
        if lo < 0.0:
            raise UserError("the disparity map holds negative values; disparity must be >= 0 (near = large). "
                            "If it is a distance map in metres, say depth kind 'distance'", "bad-input")
        if hi <= 0.0:
            raise UserError("the disparity map is all zero (everything at infinity): it holds no depth",
                            "bad-input")
        # Relative disparity has no unit: scale it so that the nearest point of the map is 1 (0 = infinity).
        d = d / hi
    return DepthMap(np.ascontiguousarray(d, dtype=np.float32), kind, source)


def kind_from_storage(kind: str, stored_as: str | None) -> str:
    """The kind a depth input holds when the user said 'auto': its storage decides where it is known (float =
    distance in metres, 8/16-bit = disparity, as files and layers are made); 'auto' (decide from the values)
    when it is not."""
    if kind != "auto" or stored_as is None:
        return kind
    return "distance" if stored_as in ("f32", "f16") else "disparity"


def read_depth_file(path: str | Path, kind: str = "auto") -> DepthMap:
    """Read a depth file: float TIFF/.npy = metres, 8/16-bit PNG = disparity (near = bright), unless `kind`."""
    from .io import read_image

    f = read_image(path)
    return interpret(f.pixels, kind_from_storage(kind, f.depth), source=Path(path).name)


def fit_to_image(depth: DepthMap, image_rgb: np.ndarray) -> DepthMap:
    """Resize the map to the image (edge-aware, guided by the image); refuse a different aspect ratio."""
    h, w = image_rgb.shape[:2]
    dh, dw = depth.values.shape
    if (dh, dw) == (h, w):
        return depth
    if abs(dw / dh - w / h) > 0.02 * (w / h):
        raise UserError(f"the depth map is {dw}x{dh} but the image is {w}x{h}: their shapes differ, so the map "
                        f"cannot belong to this image", "size-mismatch")
    from .resample import guided_upsample

    # Interpolate in disparity: depth edges are where disparity jumps, and it stays finite at infinity.
    disp = depth.disparity()
    if dh > h:  # shrinking: average first so the guided step only has to align edges
        import cv2
        disp = cv2.resize(disp, (w, h), interpolation=cv2.INTER_AREA)
    up = guided_upsample(disp, image_rgb[:, :, :3])
    up = np.clip(up, float(disp.min()), float(disp.max())).astype(np.float32)
    if depth.kind == "distance":
        return DepthMap((1.0 / np.maximum(up, 1e-12)).astype(np.float32), "distance", depth.source)
    return DepthMap(up, "disparity", depth.source)
