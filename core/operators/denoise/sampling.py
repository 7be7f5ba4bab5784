"""Motion-compensated strips of burst frames in linear light, for the merge.

The merge asks for one strip of reference pixels at a time from every frame: the frame's pixels that the
alignment says sit under those reference pixels, mirrored outside the image, decoded to linear light and resampled
bicubically. Two implementations give the same pixels:
- `OpenCVSampler` (CPU): OpenCV's SIMD remap, about 7× faster than torch's grid_sample on a CPU, and a decoded
  window of rows per frame that slides down with the strips, so each row is decoded about once.
- `TorchSampler` (CUDA, MPS): grid_sample on the device.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ...imaging.color import srgb_to_linear
from .align import FrameMotion

CUBIC_MARGIN = 2   # rows a bicubic tap reaches beyond its sample position
OPENCV_MAX_SIDE = 32000  # OpenCV's remap addresses pixels with 16-bit integers


def reflect(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror coordinates into [-0.5, size - 0.5] (edge-symmetric: pixel -1 is pixel 0, as OpenCV's REFLECT)."""
    period = 2.0 * size
    t = torch.remainder(coord + 0.5, period)
    return torch.where(t < size, t, period - t) - 0.5


def _interp_matrix(pos: torch.Tensor, tile: int, n: int) -> torch.Tensor:
    """(len(pos), n) linear-interpolation weights from tile centres (k·tile + tile/2 - ½) to pixel positions,
    constant beyond the first and last centre."""
    u = ((pos + 0.5) / tile - 0.5).clamp(0, n - 1)
    lo = u.floor().long().clamp(max=max(n - 2, 0))
    f = (u - lo).clamp(0, 1)
    m = torch.zeros((pos.numel(), n), device=pos.device, dtype=pos.dtype)
    rows = torch.arange(pos.numel(), device=pos.device)
    m[rows, lo] = 1 - f
    if n > 1:
        m[rows, lo + 1] += f
    return m


def dense_flow(motion: FrameMotion, ys: torch.Tensor, xs: torch.Tensor, shape) -> torch.Tensor:
    """Bilinear interpolation of the tile-centre motions at reference pixels (ys × xs); (2, len(ys), len(xs)).
    Bilinear is separable, so it is two small matrix products instead of a per-pixel resampling."""
    h, w = shape
    ny, nx = motion.flow.shape[1:]
    wy = _interp_matrix(ys.clamp(0, h - 1).to(motion.flow), motion.tile, ny)
    wx = _interp_matrix(xs.clamp(0, w - 1).to(motion.flow), motion.tile, nx)
    return wy @ motion.flow @ wx.T


def _source_coords(motion: Optional[FrameMotion], y0: int, rows: int, x0: int, cols: int, shape, device):
    """Mirrored source coordinates (sy (rows, cols) or (rows,), sx (rows, cols) or (cols,)) of the strip."""
    h, w = shape
    ys = torch.arange(y0, y0 + rows, device=device, dtype=torch.float32)
    xs = torch.arange(x0, x0 + cols, device=device, dtype=torch.float32)
    if motion is None:
        return reflect(ys, h), reflect(xs, w)
    flow = dense_flow(motion, ys, xs, shape)
    return reflect(ys[:, None] + flow[1], h), reflect(xs[None, :] + flow[0], w)


def _reference_indices(y0: int, rows: int, x0: int, cols: int, shape, device):
    """Whole-pixel rows (rows,) and columns (cols,) of the unmoved reference strip, mirrored at the borders."""
    sy, sx = _source_coords(None, y0, rows, x0, cols, shape, device)
    return sy.round().long().clamp(0, shape[0] - 1), sx.round().long().clamp(0, shape[1] - 1)


def _source_rows(top: float, bottom: float, h: int) -> Tuple[int, int]:
    """Rows [r0, r1) that bicubic samples between rows `top` and `bottom` read, mirrored at the image's edges."""
    if bottom > h - 1:
        top = min(top, 2 * h - 1 - bottom)
    if top < 0:
        bottom = max(bottom, -top - 1)
    r0 = min(max(int(math.floor(top)) - CUBIC_MARGIN, 0), h - 1)
    return r0, max(min(int(math.ceil(bottom)) + CUBIC_MARGIN + 1, h), r0 + 1)


class _LinearRows:
    """A frame's rows decoded to linear light on demand. Strips move down the frame and overlap, so the decoded
    window slides: rows still inside it are kept, only new ones are decoded."""

    def __init__(self, frame: np.ndarray):
        self.frame = frame
        self.lo = 0
        self.rows = np.empty((0,) + frame.shape[1:2] + (3,), np.float32)

    def get(self, r0: int, r1: int) -> np.ndarray:
        hi = self.lo + len(self.rows)
        if not self.lo <= r0 <= hi:
            self.lo, self.rows = r0, self._decode(r0, r1)
        elif r1 > hi:
            self.rows = np.concatenate([self.rows[r0 - self.lo:], self._decode(hi, r1)])
            self.lo = r0
        return self.rows[r0 - self.lo:r1 - self.lo]

    def _decode(self, r0: int, r1: int) -> np.ndarray:
        return srgb_to_linear(np.ascontiguousarray(self.frame[r0:r1, :, :3], dtype=np.float32))


class OpenCVSampler:
    """CPU sampler: OpenCV remap (bicubic) from per-frame sliding windows of decoded rows; remap mirrors at the
    image's borders itself. The dense motion is bilinear between tile centres, which is separable: a small
    product for the strip's rows, then OpenCV's linear resize along the columns. A strip comes back as a
    (3, rows, cols) view of the sampled (rows, cols, 3) pixels: the merge's first operation on it (a difference
    with the reference) makes it contiguous at no extra pass."""

    def __init__(self, frames: Sequence[np.ndarray], motions: List[Optional[FrameMotion]], x0: int, cols: int):
        import cv2
        self.cv2 = cv2
        self.motions = motions
        self.shape = frames[0].shape[:2]
        self.x0, self.cols = x0, cols
        self.rows = [_LinearRows(f) for f in frames]
        self.xs = torch.arange(x0, x0 + cols, dtype=torch.float32)
        # Strip column -> image column, clamped: the motion outside the image is that of its edge.
        self.columns = np.clip(np.arange(x0, x0 + cols), 0, self.shape[1] - 1)

    def _dense(self, coarse: np.ndarray, tile: int) -> np.ndarray:
        """(rows, nx) motions at tile-centre columns -> (rows, cols) at the strip's pixel columns. OpenCV's
        linear resize to nx·tile columns samples exactly at ((x + ½)/tile − ½) for x = 0, 1, ..., i.e. at every
        image column, constant beyond the outer centres; then the strip's columns are picked."""
        fine = self.cv2.resize(coarse, (coarse.shape[1] * tile, coarse.shape[0]), interpolation=self.cv2.INTER_LINEAR)
        return np.take(fine, self.columns, axis=1)

    def strip(self, k: int, y0: int, rows: int) -> torch.Tensor:
        cv2, h = self.cv2, self.shape[0]
        motion = self.motions[k]
        if motion is None:  # the reference: whole pixels, mirrored at the borders
            iy, ix = (i.numpy() for i in _reference_indices(y0, rows, self.x0, self.cols, self.shape, "cpu"))
            r0, r1 = int(iy.min()), int(iy.max()) + 1
            out = np.take(np.take(self.rows[k].get(r0, r1), iy - r0, axis=0), ix, axis=1)
        else:
            ys = torch.arange(y0, y0 + rows, dtype=torch.float32)
            flow = motion.flow.cpu()
            row_w = _interp_matrix(ys.clamp(0, h - 1), motion.tile, flow.shape[1])    # (rows, ny)
            fx, fy = (row_w @ flow[0]).numpy(), (row_w @ flow[1]).numpy()             # (rows, nx)
            # Bilinear values stay within their tile values: the strip's reach in source rows.
            r0, r1 = _source_rows(y0 + float(fy.min()), y0 + rows - 1 + float(fy.max()), h)
            map_x = self._dense(fx, motion.tile)
            map_y = self._dense(fy, motion.tile)
            np.add(map_x, self.xs.numpy()[None, :], out=map_x)
            np.add(map_y, (ys - r0).numpy()[:, None], out=map_y)
            # REFLECT mirrors about the crop's edges; they are the image's wherever a tap can reach them.
            out = cv2.remap(self.rows[k].get(r0, r1), map_x, map_y, cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REFLECT)
        return torch.from_numpy(out).permute(2, 0, 1)


class TorchSampler:
    """Device sampler: grid_sample (bicubic) from the frame's rows decoded on the device."""

    def __init__(self, frames: Sequence[np.ndarray], motions: List[Optional[FrameMotion]], x0: int, cols: int,
                 device):
        self.frames, self.motions, self.device = frames, motions, device
        self.shape = frames[0].shape[:2]
        self.x0, self.cols = x0, cols

    def _rows(self, k: int, r0: int, r1: int) -> torch.Tensor:
        crop = torch.from_numpy(np.ascontiguousarray(self.frames[k][r0:r1, :, :3], dtype=np.float32))
        return srgb_to_linear(crop.to(self.device).permute(2, 0, 1))

    def strip(self, k: int, y0: int, rows: int) -> torch.Tensor:
        h, w = self.shape
        if self.motions[k] is None:
            iy, ix = _reference_indices(y0, rows, self.x0, self.cols, self.shape, self.device)
            r0, r1 = int(iy.min()), int(iy.max()) + 1
            return self._rows(k, r0, r1)[:, iy - r0][:, :, ix]
        sy, sx = _source_coords(self.motions[k], y0, rows, self.x0, self.cols, self.shape, self.device)
        r0 = max(int(math.floor(float(sy.min()))) - CUBIC_MARGIN, 0)
        r1 = min(int(math.ceil(float(sy.max()))) + CUBIC_MARGIN + 1, h)
        src = self._rows(k, r0, r1)
        grid = torch.stack([(sx + 0.5) * (2.0 / w) - 1.0, (sy - r0 + 0.5) * (2.0 / (r1 - r0)) - 1.0], dim=-1)
        return F.grid_sample(src[None], grid[None], mode="bicubic", padding_mode="border", align_corners=False)[0]


def make_sampler(frames: Sequence[np.ndarray], motions: List[Optional[FrameMotion]], x0: int, cols: int, device):
    """Strips of `cols` pixels from column x0 (which may start or end outside the image: mirrored)."""
    device = torch.device(device or "cpu")
    if device.type == "cpu" and max(frames[0].shape[:2]) < OPENCV_MAX_SIDE:
        try:
            return OpenCVSampler(frames, motions, x0, cols)
        except ImportError:
            pass
    return TorchSampler(frames, motions, x0, cols, device)
