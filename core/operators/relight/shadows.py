"""Cast shadows by marching a height field toward each light.

The surface is a height field H(x, y) in pixels toward the camera (the same pixel scale as x and y: the face
mesh's z, or depth converted to pixels at the subject's distance), seen orthographically. For a light whose unit
vector is l = (lx, ly, lz), a ray from the surface point p climbs, per pixel travelled in the image along
d = (lx, −ly) / |l_xy| (rows go down), by tan β = lz / |l_xy|, β being the light's elevation above the image
plane. The horizon toward the light is

    tan β_h(p) = max over s in (0, s_max] of (H(p + s d) − H(p) − bias) / s,

and the point sees the part of the light above that horizon. A source of angular radius α is a disc spanning
β ± α in that vertical plane, so the visible fraction is clamp((β − β_h) / 2α + 1/2, 0, 1): the shadow's edge
softens in proportion to the light's size (a penumbra that widens with the distance to the occluder, as a real
one does). Hard lights get a minimum α of MIN_HALF_ANGLE so the edge is anti-aliased, not stair-stepped.

Steps grow geometrically (1 px at first, STEP_GROWTH after), and the march stops where no blocker can be: a ray
rising at tan(β − α) has cleared the height field's whole relief. A light straight from the camera's axis
(|l_xy| ≈ 0) casts no shadow a height field can show. Pixels outside the subject are lowered to the
subject's floor, so a background never shadows the subject.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

MIN_HALF_ANGLE = math.radians(0.75)
STEP_GROWTH = 1.04        # each step 4 % longer than the last (after the first pixels)
MAX_STEPS = 160
BIAS_PX = 0.35            # a surface does not shadow itself through its own rounding error
VERTICAL_EPS = 1e-3


def visibility(height: np.ndarray, direction, half_angle_rad: float = 0.0, subject: Optional[np.ndarray] = None,
               check: Callable[[], None] = lambda: None) -> np.ndarray:
    """Fraction of the light visible from each pixel (H×W float32 in [0, 1]); see the module docstring.
    `subject` (H×W weights) marks the surface; elsewhere the height is lowered out of the way."""
    import cv2

    h = np.asarray(height, np.float32)
    lx, ly, lz = (float(v) for v in direction)
    horiz = math.hypot(lx, ly)
    if horiz < VERTICAL_EPS:
        return np.ones(h.shape, np.float32)
    if subject is not None:
        inside = np.asarray(subject) > 0.5
        if not inside.any():
            return np.ones(h.shape, np.float32)
        floor = float(h[inside].min())
        h = np.where(inside, h, floor).astype(np.float32)
    relief = float(h.max() - h.min())
    if relief < 0.5:
        return np.ones(h.shape, np.float32)
    beta = math.atan2(lz, horiz)
    alpha = max(half_angle_rad, MIN_HALF_ANGLE)
    diag = math.hypot(*h.shape)
    low = beta - alpha
    reach = diag if low <= math.atan(relief / diag) else min(diag, relief / math.tan(low))
    dx, dy = lx / horiz, -ly / horiz
    below = float(h.min()) - 10.0 * relief - 1.0      # outside the image: nothing there
    horizon = np.full(h.shape, -np.inf, np.float32)
    s, k = 1.0, 0
    while s <= reach and k < MAX_STEPS:
        m = np.float32([[1, 0, s * dx], [0, 1, s * dy]])
        ahead = cv2.warpAffine(h, m, (h.shape[1], h.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=below)
        rise = (ahead - h - BIAS_PX) * np.float32(1.0 / s)
        np.maximum(horizon, rise, out=horizon)
        k += 1
        s = s + 1.0 if s < 8.0 else s * STEP_GROWTH
        if k % 16 == 0:
            check()
    beta_h = np.arctan(horizon)
    vis = np.clip((beta - beta_h) / (2.0 * alpha) + 0.5, 0.0, 1.0)
    return vis.astype(np.float32)


def height_from_normals(normals: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A height field (pixels toward the camera) whose normals are `normals`, by least-squares integration of
    the gradients (Frankot & Chellappa 1988, in the Fourier domain).

    n ∝ (−H_x, H_y, 1) with x right and y down (camera y is up), so H_x = −n_x / n_z and H_y = n_y / n_z;
    n_z is floored at 0.1 (slopes of at most 10 : 1, the silhouette) and gradients outside `weight` are 0, so
    the background is flat. The image is mirror-padded to twice its size so the periodic solution has no
    wrap-around seam; the mean height is 0."""
    n = np.asarray(normals, np.float32)
    w = np.clip(np.asarray(weight, np.float32), 0.0, 1.0)
    nz = np.maximum(n[..., 2], 0.1)
    gx = -n[..., 0] / nz * w
    gy = n[..., 1] / nz * w
    rows, cols = gx.shape
    # Mirror-extend: the x-gradient changes sign under a left-right mirror, the y-gradient under up-down.
    gx2 = np.block([[gx, -gx[:, ::-1]], [gx[::-1, :], -gx[::-1, ::-1]]])
    gy2 = np.block([[gy, gy[:, ::-1]], [-gy[::-1, :], -gy[::-1, ::-1]]])
    fy = np.fft.fftfreq(2 * rows)[:, None]
    fx = np.fft.fftfreq(2 * cols)[None, :]
    # Least squares in the Fourier domain: H_x <-> i 2π fx Ĥ, so Ĥ = −i (fx Ĝx + fy Ĝy) / (2π (fx² + fy²)).
    denom = 2.0 * np.pi * (fx * fx + fy * fy)
    denom[0, 0] = 1.0
    hf = -1j * (fx * np.fft.fft2(gx2) + fy * np.fft.fft2(gy2)) / denom
    hf[0, 0] = 0.0
    out = np.real(np.fft.ifft2(hf))[:rows, :cols]
    return out.astype(np.float32)
