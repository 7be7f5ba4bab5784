"""Normal maps: read, write, resize, and normals from a depth map.

Convention (ARCHITECTURE.md): camera space, x right, y up, z toward the camera; a surface facing the camera has
n = (0, 0, 1). Image rows go down, so "up" in a normal map is toward row 0. Storage:
- 8/16-bit: each component as (n + 1) / 2 (flat = (0.5, 0.5, 1.0), the familiar lilac; green = up, the
  "OpenGL" convention — a "DirectX" map has y down: pass flip_y=True);
- float (16/32-bit): the raw unit vectors, components in [-1, 1].
Pixels a map marks as holding no normal are kept out of everything: alpha < 0.5, stored black (0, 0, 0) in an
encoded map, or a zero vector in a raw one. They come back as (0, 0, 1) with `valid` False.

A map is accepted only if it holds unit vectors: within UNIT_TOLERANCE of length 1 (8-bit rounding costs at most
0.007; a paint program's blur or resize shortens vectors by a few per cent) on all but MAX_OFF_FRACTION of its
pixels (anti-aliased silhouettes). A colour photograph fails by far (for the astronaut portrait, 81 % of its
pixels are off by more than 0.1), so it is refused with a UserError instead of being lit as if it were geometry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .depthmap import DepthMap, interpret as interpret_depth

ENCODINGS = ("auto", "offset", "raw")   # offset: (n + 1) / 2; raw: n itself
UNIT_TOLERANCE = 0.1
MAX_OFF_FRACTION = 0.01
# Depth step between neighbours, relative to the depth, above which it is a discontinuity (an object's edge)
# and not a steep surface: a surface at 85° to the view of a 1000 px-focal camera changes by 1.1 % per pixel.
JUMP_RELATIVE = 0.05
FACING = np.array([0.0, 0.0, 1.0], np.float32)


@dataclass
class NormalMap:
    normals: np.ndarray   # H×W×3 float32 unit vectors, camera space (x right, y up, z toward the camera)
    valid: np.ndarray     # H×W bool: False where the map held no normal (those pixels hold (0, 0, 1))


def encoding_for(stored_as: str | None) -> str:
    """'offset' for 8/16-bit storage, 'raw' for float, 'auto' when the storage is unknown."""
    if stored_as in ("u8", "u16"):
        return "offset"
    if stored_as in ("f16", "f32"):
        return "raw"
    return "auto"


def interpret(arr: np.ndarray, stored_as: str | None = None, encoding: str = "auto", flip_y: bool = False,
              name: str = "normal map") -> NormalMap:
    """Decode and validate a normal map given as float32 pixels (H×W×3 or H×W×4), as io.read_image or a host
    layer gives them. `stored_as` ('u8' | 'u16' | 'f16' | 'f32') decides the encoding when it is 'auto'; with
    neither, values below 0 mean raw, otherwise offset. A float map whose raw reading is not unit length but
    whose (n + 1) / 2 reading is gets the latter (the data settles it). Raises UserError for anything else."""
    if encoding not in ENCODINGS:
        raise UserError(f"normal map encoding must be one of {', '.join(ENCODINGS)}, not '{encoding}'",
                        "bad-parameter")
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise UserError(f"the {name} has shape {a.shape}; a normal map needs three channels (x, y, z as R, G, B)",
                        "bad-input")
    if a.size == 0 or not np.isfinite(a).all():
        raise UserError(f"the {name} is empty or contains NaN or infinite values", "bad-input")
    rgb = a[:, :, :3]
    opaque = a[:, :, 3] >= 0.5 if a.shape[2] == 4 else np.ones(a.shape[:2], bool)
    fallback = None
    if encoding == "auto":
        encoding = encoding_for(stored_as)
        if encoding == "raw" and rgb.min() >= 0:
            fallback = "offset"   # a float layer painted as colour (GIMP's normal-map filter in a float image)
        elif encoding == "auto":
            encoding = "raw" if rgb.min() < 0 else "offset"
    result, report = _decode(rgb, opaque, encoding)
    if result is None and fallback is not None:
        result, _ = _decode(rgb, opaque, fallback)
    if result is None:
        raise UserError(f"the {name} does not hold unit normal vectors: {report}. A normal map stores x, y, z "
                        f"as (n + 1) / 2 in 8/16-bit files (a flat surface is lilac, 128,128,255) or as raw "
                        f"unit vectors in float files; a colour picture is not a normal map", "bad-input")
    n, valid = result
    if flip_y:
        n[:, :, 1] *= -1
    return NormalMap(n, valid)


def _decode(rgb: np.ndarray, opaque: np.ndarray, encoding: str):
    """(normals, valid) or (None, why not)."""
    if encoding == "offset":
        n = rgb * 2.0 - 1.0
        empty = np.all(rgb == 0, axis=2)               # stored black: (-1, -1, -1) is no direction at all
    else:
        n = rgb.copy()
        empty = np.all(n == 0, axis=2)
    length = np.sqrt(np.einsum("hwc,hwc->hw", n, n))
    considered = opaque & ~empty
    count = int(considered.sum())
    if count == 0:
        return None, "every pixel is transparent or empty"
    off = np.abs(length - 1.0) > UNIT_TOLERANCE
    off_fraction = float(np.count_nonzero(off & considered)) / count
    if off_fraction > MAX_OFF_FRACTION:
        median = float(np.median(length[considered]))
        read_as = "(n + 1) / 2" if encoding == "offset" else "raw vectors"
        return None, (f"{100 * off_fraction:.0f} % of its pixels have a length more than {UNIT_TOLERANCE:g} "
                      f"from 1 (median length {median:.2f}, read as {read_as})")
    valid = considered & ~off
    out = np.empty_like(n)
    out[:] = FACING
    out[valid] = n[valid] / length[valid][:, None]
    return (out, valid), ""


def read_normal_file(path: str | Path, encoding: str = "auto", flip_y: bool = False) -> NormalMap:
    """Read a normal map file (8/16-bit PNG or TIFF as (n + 1) / 2, float TIFF or .npy as raw vectors)."""
    from .io import read_image

    f = read_image(path)
    return interpret(f.pixels, f.depth, encoding, flip_y, name=f"normal map {Path(path).name}")


def encode(normals: np.ndarray, depth: str) -> np.ndarray:
    """Pixels to store unit normals at `depth` ('u8' | 'u16' | 'f16' | 'f32'): (n + 1) / 2 for integers (the
    writer rounds to the nearest code), the raw vectors for float."""
    n = np.asarray(normals, np.float32)[..., :3]
    if depth in ("u8", "u16"):
        return np.clip((n + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)
    if depth in ("f16", "f32"):
        return n.astype(np.float32)
    raise ValueError(f"unknown depth {depth!r}")


def write_normal_file(path: str | Path, normals: np.ndarray, depth: str = "u16") -> str:
    """Write unit normals (H×W×3) atomically; returns the depth actually written (PNG holds no float)."""
    from .io import output_depth, write_image

    final = output_depth(path, depth)
    return write_image(path, encode(normals, final), final)


def renormalise(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors and a mask of those that had a length to normalise (the rest become (0, 0, 1))."""
    n = np.asarray(n, np.float32)
    length = np.sqrt(np.einsum("...c,...c->...", n, n))
    ok = length > 1e-6
    out = np.empty_like(n)
    out[:] = FACING
    out[ok] = n[ok] / length[ok][:, None]
    return out, ok


def resize(normal_map: NormalMap | np.ndarray, width: int, height: int) -> NormalMap:
    """Resample a normal map to width×height: components averaged over the footprint when shrinking
    (INTER_AREA), bicubic when enlarging, then renormalised (an average of unit vectors is shorter than 1).
    Pixels without a normal do not leak in: components are weighted by validity and divided by it."""
    import cv2

    if isinstance(normal_map, NormalMap):
        n, valid = normal_map.normals, normal_map.valid
    else:
        n, valid = renormalise(normal_map)
    h, w = n.shape[:2]
    if (w, h) == (width, height):
        return NormalMap(n.copy(), valid.copy())
    interp = cv2.INTER_AREA if (width <= w and height <= h) else cv2.INTER_CUBIC
    weight = valid.astype(np.float32)
    stack = np.concatenate([n * weight[:, :, None], weight[:, :, None]], axis=2)
    out = cv2.resize(stack, (width, height), interpolation=interp)
    wsum = out[:, :, 3]
    keep = wsum > 0.5
    normals, ok = renormalise(out[:, :, :3])
    return NormalMap(normals, keep & ok)


def focal_px(focal_length_mm: float, sensor_width_mm: float, image_width_px: int) -> float:
    """The focal length in pixels of a lens on a sensor: f_px = f_mm · width_px / sensor_width_mm."""
    return focal_length_mm * image_width_px / sensor_width_mm


def normals_from_depth(depth: DepthMap | np.ndarray, focal_length_px: float, kind: str = "auto",
                       principal_point: tuple[float, float] | None = None) -> NormalMap:
    """Surface normals of a depth map seen by a pinhole camera of focal length `focal_length_px` (pixels).

    The depth is the distance along the optical axis Z > 0, in metres ('distance') or as relative disparity
    ∝ 1/Z ('disparity'; a common scale is irrelevant to normals, but an unknown offset — some networks give
    affine-invariant disparity — is not, and is taken as zero). Pixel (u, v) (centre at u + 0.5, v + 0.5 from the
    top-left corner; principal point (cx, cy), default the image centre) sees the point
        P = Z · ((u + 0.5 - cx) / f, -(v + 0.5 - cy) / f, -1)       (x right, y up, z toward the camera),
    and the normal is the cross product of P's derivatives along v and u, which works out as
        n ∝ (f Z_u, -f Z_v, Z + (u + 0.5 - cx) Z_u + (v + 0.5 - cy) Z_v),  oriented toward the camera (n_z > 0
    for a visible surface). Z_u, Z_v are central differences (second-order one-sided ones at the image border),
    except across a depth discontinuity (the two one-sided differences disagree by more than JUMP_RELATIVE · Z),
    where the smaller one-sided difference keeps the pixel on its own surface. Points at infinity (disparity 0)
    and their neighbours get no normal (valid False, (0, 0, 1)).
    """
    if isinstance(depth, DepthMap):
        dm = depth
    else:
        dm = interpret_depth(depth, kind)
    if not (focal_length_px > 0 and np.isfinite(focal_length_px)):
        raise UserError(f"the focal length must be a positive number of pixels, not {focal_length_px!r}",
                        "bad-parameter")
    if dm.kind == "distance":
        z = dm.values.astype(np.float64)
        finite = np.ones(z.shape, bool)
    else:
        d = dm.values.astype(np.float64)
        finite = d > 0
        z = np.where(finite, 1.0 / np.where(finite, d, 1.0), 1.0)
    h, w = z.shape
    cx, cy = principal_point if principal_point is not None else (w / 2.0, h / 2.0)
    f = float(focal_length_px)
    z_u = _derivative(z, axis=1)
    z_v = _derivative(z, axis=0)
    uu = np.arange(w, dtype=np.float64)[None, :] + 0.5 - cx
    vv = np.arange(h, dtype=np.float64)[:, None] + 0.5 - cy
    n = np.stack([f * z_u, -f * z_v, z + uu * z_u + vv * z_v], axis=2)
    normals, ok = renormalise(n.astype(np.float32))
    # a pixel next to infinity has no trustworthy derivative
    import cv2
    near_inf = cv2.dilate((~finite).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    valid = ok & ~near_inf
    normals[~valid] = FACING
    return NormalMap(normals, valid)


def _derivative(z: np.ndarray, axis: int) -> np.ndarray:
    """dZ per pixel along `axis`: central (second order), or the smaller one-sided difference across a
    discontinuity; at the border the second-order one-sided difference (-3 z0 + 4 z1 - z2) / 2."""
    zt = np.moveaxis(z, axis, 0)
    n = zt.shape[0]
    if n < 3:   # too small for centred differences: one difference (or none) for the whole line
        step = zt[1] - zt[0] if n == 2 else np.zeros_like(zt[0])
        return np.moveaxis(np.broadcast_to(step, zt.shape).copy(), 0, axis)
    fwd = np.empty_like(zt)
    bwd = np.empty_like(zt)
    fwd[:-1] = zt[1:] - zt[:-1]
    bwd[1:] = fwd[:-1]
    out = 0.5 * (fwd + bwd)
    inner = out[1:-1]
    jump = np.abs(fwd[1:-1] - bwd[1:-1]) > JUMP_RELATIVE * zt[1:-1]
    smaller = np.where(np.abs(fwd[1:-1]) < np.abs(bwd[1:-1]), fwd[1:-1], bwd[1:-1])
    out[1:-1] = np.where(jump, smaller, inner)
    for edge, a, b, c, sign in ((0, 0, 1, 2, 1.0), (n - 1, n - 1, n - 2, n - 3, -1.0)):
        one_sided = sign * (-3.0 * zt[a] + 4.0 * zt[b] - zt[c]) * 0.5
        step = zt[b] - zt[a]
        # across a discontinuity at the border, the plain first difference stays on this pixel's surface
        broken = np.abs((zt[c] - zt[b]) - step) > JUMP_RELATIVE * zt[a]
        out[edge] = np.where(broken, sign * step, one_sided)
    return np.moveaxis(out, 0, axis)
