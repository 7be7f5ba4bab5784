"""Depth of field of the new background: blurred as the portrait's lens, focused on the subject, would blur it.

Thin lens (core.optics.thin_lens): focal length f, f-number N, focused at the subject's distance S; a point at
distance d images to a disc of diameter c = f² / (N (S − f)) · |S/d − 1| on the sensor, times W / sensor width
in pixels of a frame W pixels wide. The plate is one plane at the background distance D (c the same
everywhere), or, with a depth map of the plate, each pixel at its own distance. The blur itself is the shared
layered renderer (core.optics.layered) with a round aperture kernel, in linear light: it slices the plate by
CoC, so a plate with depth gets its near parts less blurred than its far parts, with occlusion handled.

The subject is composited over the result in focus afterwards: the plate is rendered on its own, so its light
does not mix with the subject's.

Clipped highlights. A plate's clipped light (a glint, a lamp) stood for more light than it could record; before
the blur its linear pixels near clipping are scaled up, only where the CoC exceeds a pixel (g = highlight_boost;
1 = off): the boost refocus applies too, core.optics.highlights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ...errors import UserError
from ...imaging import depthmap
from ...imaging.color import linear_to_srgb
from ...optics import aperture, layered, thin_lens
from ...optics.highlights import KNEE, factor as highlight_factor

MAX_COC_FRACTION = 0.25   # the largest CoC rendered, as a fraction of the frame's longer side (as refocus)
REDUCED_COC_PX = 8.0      # smallest CoC (px) left after rendering the plate smaller: a well-sampled disc
MAX_REDUCTION = 16


@dataclass
class PlateDepth:
    distance_m: np.ndarray      # H×W metres (or a 1×1 array for a plane)
    source: str                 # "plane" or how the depth map was read


def plate_distances(depth: Optional[depthmap.DepthMap], background_m: float) -> PlateDepth:
    """Metres for every plate pixel. A distance map is used as it is; a relative disparity map (near = 1) is
    scaled so that its nearest point lies at the background distance (distance = D / disparity, with disparity 0,
    the sky, at a far 1e6 m); no map: one plane at D."""
    if depth is None:
        return PlateDepth(np.full((1, 1), background_m, np.float32), "plane")
    if depth.kind == "distance":
        return PlateDepth(depth.values.astype(np.float32), f"{depth.source} (metres)")
    disp = np.maximum(depth.values, background_m / 1e6)
    return PlateDepth((background_m / disp).astype(np.float32),
                      f"{depth.source} (disparity; nearest point at {background_m:g} m)")


def coc_px(distance_m: np.ndarray, lens: thin_lens.ThinLens, subject_m: float, width_px: int) -> np.ndarray:
    """Signed CoC diameter (px) of the plate, negative behind the subject (core.optics sign convention)."""
    return lens.coc_px(distance_m, subject_m, width_px)


def boost_highlights(plate_lin: np.ndarray, plate_srgb: np.ndarray, coc: np.ndarray, gain: float) -> np.ndarray:
    """The linear plate with its near-clipped pixels scaled up (see the module notes); the same array when
    nothing is boosted."""
    if gain <= 1.0:
        return plate_lin
    r, g, b = cv2.split(np.ascontiguousarray(plate_srgb[:, :, :3], np.float32))
    peak = cv2.max(cv2.max(r, g), b)   # numpy's max over the channel axis is 20× slower
    hot = peak > KNEE
    if not hot.any():
        return plate_lin
    coc_abs = np.abs(np.broadcast_to(coc, peak.shape)[hot])
    out = plate_lin.copy()
    out[hot] *= highlight_factor(peak[hot], coc_abs, gain)[:, None].astype(np.float32)
    return out


def reduction_for(coc_abs: np.ndarray) -> int:
    """The power-of-two factor the plate can be rendered smaller by: a blur of CoC c at full size is the blur of
    CoC c/k of the k× smaller plate, brought back up, as long as c/k stays a well-sampled disc (≥ REDUCED_COC_PX
    px) for nearly every pixel (the 1st percentile of |CoC|). Area-averaging down and interpolating back add a
    spread of about k/2 px per axis, under 2 % of the disc's diameter at c/k ≥ 12."""
    low = float(np.percentile(coc_abs, 1.0)) if coc_abs.size > 1 else float(coc_abs.reshape(-1)[0])
    k = 1
    while k * 2 <= MAX_REDUCTION and low / (k * 2) >= REDUCED_COC_PX:
        k *= 2
    return k


@dataclass
class Defocused:
    """The blurred plate in linear light at 1/k of the frame's size (pixel centres aligned as cv2.resize aligns
    them): a blurred plate holds no detail finer than its CoC, so it is rendered, and kept, small."""
    lin: np.ndarray         # (h_k)×(w_k)×3
    k: int
    frame_hw: tuple
    facts: dict

    def srgb_full(self, ceiling: float) -> np.ndarray:
        """The frame-sized plate, sRGB-encoded: encoded small, then interpolated (smooth at this scale, so the
        order makes no visible difference, and it saves a full-size encode)."""
        H, W = self.frame_hw
        small = np.clip(linear_to_srgb(self.lin), 0.0, ceiling).astype(np.float32)
        if small.shape[:2] == (H, W):
            return small
        return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)

    def lin_at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Linear plate colours (N×3) at frame pixels (ys, xs)."""
        from .upsample import sample
        if self.lin.shape[:2] == tuple(self.frame_hw):
            return self.lin[ys, xs]
        return sample(self.lin, ys, xs, self.frame_hw)


def defocus_plate(plate_lin: np.ndarray, plate_srgb: np.ndarray, where, frame_hw, distance_m: np.ndarray,
                  lens: thin_lens.ThinLens, subject_m: float, highlight_gain: float, device,
                  progress=None) -> Defocused:
    """The plate (its own resolution, linear and sRGB) placed in the frame and blurred by the lens focused at
    subject_m; distance_m: the plate's metres per plate pixel (or 1×1 for a plane)."""
    from . import plate as plate_geometry

    H, W = frame_hw
    limit = MAX_COC_FRACTION * max(H, W)
    coc_src = np.clip(coc_px(distance_m, lens, subject_m, W), -limit, limit).astype(np.float32)
    if coc_src.size > 1:
        rows, cols = plate_geometry.visible_window(where, plate_lin.shape[:2], frame_hw)
        k = reduction_for(np.abs(coc_src[rows, cols]))
    else:
        k = reduction_for(np.abs(coc_src))
    peak = float(np.abs(coc_src).max())
    facts = {"plate_coc_px": round(float(np.median(np.abs(coc_src))), 3), "plate_coc_max_px": round(peak, 3)}
    boosted = boost_highlights(plate_lin, plate_srgb, coc_src, highlight_gain)
    hk, wk = max(1, -(-H // k)), max(1, -(-W // k))
    low = plate_geometry.warp(boosted, where, frame_hw, (hk, wk))
    if peak <= layered.IN_FOCUS_PX:
        # Sharper than a pixel everywhere: the renderer would return the plate itself.
        return Defocused(low, k, (H, W), {**facts, "layers": 0, "render_reduction": k})
    if coc_src.size > 1:
        c_low = plate_geometry.warp(coc_src, where, frame_hw, (hk, wk)) * np.float32(wk / W)
    else:
        c_low = np.full((hk, wk), float(coc_src.reshape(-1)[0]) * wk / W, np.float32)
    out, stats = render(low, c_low, device, progress)
    return Defocused(out, k, (H, W), {**facts, "layers": stats.layers, "render_reduction": k})


def render(lin: np.ndarray, coc: np.ndarray, device, progress=None):
    """The shared layered renderer on an h×w×3 linear plate and its h×w signed CoC (px at this size), with a
    round aperture. Returns (h×w×3 linear, RenderStats)."""
    import torch

    def kernel_for(diameter: float, in_front: bool) -> np.ndarray:
        return aperture.aperture_kernel(diameter, 0, 0.0)

    dev = device if device is not None else torch.device("cpu")
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(lin.transpose(2, 0, 1))).to(dev)
        c = torch.from_numpy(np.ascontiguousarray(coc, dtype=np.float32)).to(dev)
        # The plate is already as small as its blur allows: the renderer is not to shrink it further.
        out, stats = layered.render(t, c, kernel_for, progress=progress, min_kernel_px=REDUCED_COC_PX)
        result = np.ascontiguousarray(out.clamp_min(0.0).permute(1, 2, 0).cpu().numpy(), dtype=np.float32)
    return result, stats


def check_distances(subject_m: float, background_m: float, focal_length_mm: float, planar: bool) -> None:
    if subject_m * 1000.0 <= focal_length_mm * 1.0001:
        raise UserError(f"the subject distance {subject_m:g} m is not beyond the focal length "
                        f"({focal_length_mm:g} mm): a lens cannot focus there", "bad-parameter")
    if planar and background_m <= subject_m:
        raise UserError(f"the background ({background_m:g} m) must be farther away than the subject "
                        f"({subject_m:g} m)", "bad-parameter")
