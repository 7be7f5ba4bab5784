"""From landmark displacements to the edited picture: control points, a dense fold-free field, the resampling.

Coordinates: the face service gives landmarks in pixel-edge coordinates (the centre of pixel (i, j) at
(i + 0.5, j + 0.5)); core.imaging.warp works with centres at integers, so control points are the landmarks - 0.5.

Region. Everything happens in the ROI: the face box (the bounding box of the 478 landmarks) scaled by
ROI_FACTOR = 1.5 about its centre, clipped to the picture. Pixels outside it are never written. Inside, the
field is multiplied by a taper τ = smoothstep((ROI_FACTOR - ρ) / (ROI_FACTOR - TAPER_FROM)), ρ = the larger of
|x - cx| / half-width and |y - cy| / half-height of the face box, so τ = 1 within TAPER_FROM × the box and 0 at
the ROI's edge: the warp ends smoothly where the region does.

Control points (source = where content is, target = where it goes):
- the 468 mesh points and their displacements (of the still ones far from any movement, every third);
- each iris as a rigid core: its centre and rings at 0.3 and 0.6 × its visible radius, with the iris's
  translation;
- an anchor ring on the ROI's edge and one at 1.25 × the box, every ANCHOR_SPACING·F, held (displacement 0);
- teeth, when the mouth is open by more than TEETH_GAP·F: points across the opening, held (the upper teeth belong
  to the skull), and when the jaw moves a second row moving with the chin (the lower teeth belong to the jaw), so
  teeth move rigidly instead of stretching with the lips.
The model (core.imaging.warp: thin-plate spline by default, or MLS rigid/similarity/affine) is evaluated on grid
nodes every `grid_step(F)` px and densified by Catmull-Rom interpolation; around the mouth and the eyes, where
lips slide past held teeth and irises past held lids, on a grid FINE_DIVISOR times finer, blended in.

Folds. det ∂s/∂x of the backward map must stay above JACOBIAN_MIN (0.2; 1 = area kept, ≤ 0 = a fold). When it
does not, every displacement is scaled by a factor s in (0, 1]: the largest for which the scaled field (about s·D)
keeps the nodes' determinant at CLAMP_AT (a margin for the field between them), refitted there and stepped down
while it still dips, then backed off further if the dense field dips below JACOBIAN_MIN; the clamp is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ...face import topology as T
from ...imaging import warp as W

ROI_FACTOR = 1.5
TAPER_FROM = 1.15
ANCHOR_SPACING = 0.12       # × F
TEETH_GAP = 0.03            # × F: a smaller opening shows no teeth worth holding
JACOBIAN_MIN = 0.2
CLAMP_AT = 0.3              # the clamp aims the nodes' determinant at this: a margin for the field between them
CLAMP_TRIES = 6
STILL_REACH = 0.1           # × F: still mesh points this near a moving one are all kept
STILL_KEEP = 3              # of the farther still ones, every third
IRIS_RING = 8               # points on each iris's rigid core
IRIS_CORE = 0.6             # its radius, × the iris's visible radius
FINE_DIVISOR = 4            # the mouth's and eyes' grid is this many times finer
FINE_MARGIN = 0.03          # × F around the lips and the eyes
CHIN = [152, 148, 176, 377, 400]
UPPER_INNER_LIP = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_INNER_LIP = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]


def grid_step(face_px: float) -> int:
    """Node spacing: about F/32 (12 px for a 400 px face; the mesh's points are about F/30 apart), at least 2,
    at most 24 px."""
    return int(np.clip(round(face_px / 32.0), 2, 24))


@dataclass
class Roi:
    x0: int
    y0: int
    x1: int
    y1: int
    box: Tuple[float, float, float, float]   # the face box (edge coordinates)

    @property
    def shape(self):
        return (self.y1 - self.y0, self.x1 - self.x0)


def face_box(mesh: np.ndarray) -> Tuple[float, float, float, float]:
    pts = np.asarray(mesh)[:, :2]
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def roi(mesh: np.ndarray, shape, factor: float = ROI_FACTOR) -> Roi:
    """The ROI_FACTOR × face box about its centre, as integer pixel bounds clipped to an image of `shape`."""
    bx0, by0, bx1, by1 = face_box(mesh)
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    hw, hh = factor * (bx1 - bx0) / 2, factor * (by1 - by0) / 2
    h, w = shape[:2]
    x0, y0 = max(0, int(np.floor(cx - hw))), max(0, int(np.floor(cy - hh)))
    x1, y1 = min(w, int(np.ceil(cx + hw))), min(h, int(np.ceil(cy + hh)))
    return Roi(x0, y0, x1, y1, (bx0, by0, bx1, by1))


def _ring(box, factor: float, spacing: float) -> np.ndarray:
    bx0, by0, bx1, by1 = box
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    hw, hh = factor * (bx1 - bx0) / 2, factor * (by1 - by0) / 2
    nx = max(2, int(np.ceil(2 * hw / spacing)) + 1)
    ny = max(2, int(np.ceil(2 * hh / spacing)) + 1)
    xs, ys = np.linspace(cx - hw, cx + hw, nx), np.linspace(cy - hh, cy + hh, ny)
    pts = [np.stack([xs, np.full(nx, cy - hh)], 1), np.stack([xs, np.full(nx, cy + hh)], 1),
           np.stack([np.full(ny - 2, cx - hw), ys[1:-1]], 1), np.stack([np.full(ny - 2, cx + hw), ys[1:-1]], 1)]
    return np.concatenate(pts)


def teeth_points(mesh: np.ndarray, displacement: np.ndarray, face_px: float):
    """(positions, displacements) of teeth control points (edge coordinates), or empty arrays when the mouth is
    closed. At five places across the opening (between the inner corners) where it is open by at least
    TEETH_GAP·F: one point in the middle of the opening, held (the upper teeth belong to the skull); when the
    chin moves (the jaw), two instead, at 35 % (held) and 65 % of the opening (moving with the chin: the lower
    teeth belong to the jaw)."""
    pts = np.asarray(mesh)[:, :2]
    up, lo = pts[UPPER_INNER_LIP], pts[LOWER_INNER_LIP]
    chin = np.asarray(displacement)[CHIN].mean(axis=0)
    jaw = float(np.linalg.norm(chin)) > 0.002 * face_px
    out_p, out_d = [], []
    for f in (0.2, 0.35, 0.5, 0.65, 0.8):
        k = f * (len(UPPER_INNER_LIP) - 1)
        i, t = int(np.floor(k)), k - np.floor(k)
        a = up[i] * (1 - t) + up[min(i + 1, len(up) - 1)] * t
        b = lo[i] * (1 - t) + lo[min(i + 1, len(lo) - 1)] * t
        if float(np.linalg.norm(b - a)) < TEETH_GAP * face_px:
            continue
        if jaw:
            out_p += [a + 0.35 * (b - a), a + 0.65 * (b - a)]
            out_d += [np.zeros(2), chin]
        else:
            out_p.append(a + 0.5 * (b - a))
            out_d.append(np.zeros(2))
    if not out_p:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return np.asarray(out_p), np.asarray(out_d)


def iris_points(mesh: np.ndarray, displacement: np.ndarray):
    """(positions, displacements) that carry each iris rigidly: its centre and two rings of IRIS_RING points at
    0.5 and 1 × IRIS_CORE × its visible radius (the iris radius, or the distance to the nearest eye-contour point
    where the lids cover it), all with the iris's translation. They replace the four rim points, which on an iris partly
    under the lids lie beyond the held lid points and would tear the eye opening."""
    pts = np.asarray(mesh, np.float64)[:, :2]
    d = np.asarray(displacement, np.float64)
    ang = np.linspace(0.0, 2.0 * np.pi, IRIS_RING, endpoint=False)
    out_p, out_d = [], []
    for iris, eye in ((list(range(468, 473)), T.RIGHT_EYE), (list(range(473, 478)), T.LEFT_EYE)):
        c = pts[iris[0]]
        rim = float(np.linalg.norm(pts[iris[1:]] - c, axis=1).mean())
        visible = min(rim, float(np.linalg.norm(pts[eye] - c, axis=1).min()))
        ring = [c + f * IRIS_CORE * visible * np.array([np.cos(a), np.sin(a)]) for f in (0.5, 1.0) for a in ang]
        out_p += [c] + ring
        out_d += [d[iris[0]]] * (len(ring) + 1)
    return np.asarray(out_p), np.asarray(out_d)


def _thin_still(pts: np.ndarray, d: np.ndarray, face_px: float) -> np.ndarray:
    """Which mesh points to use: all that move or lie within STILL_REACH·F of one that moves; of the others (held
    and far from any movement, where the field is 0 anyway) every STILL_KEEP-th, which pin it there as well at a
    fraction of the cost (the model's cost grows with the number of points)."""
    moving = np.linalg.norm(d, axis=1) > 1e-3
    if not moving.any():
        return np.ones(len(pts), bool)
    near = ((pts[:, None, :] - pts[None, moving, :]) ** 2).sum(axis=2).min(axis=1) <= (STILL_REACH * face_px) ** 2
    return near | (np.arange(len(pts)) % STILL_KEEP == 0)


def control_points(mesh: np.ndarray, displacement: np.ndarray, r: Roi, face_px: float):
    """(source, target) n×2 in warp coordinates (pixel centres at integers)."""
    pts = np.asarray(mesh, np.float64)[:, :2]
    d = np.asarray(displacement, np.float64)
    spacing = ANCHOR_SPACING * face_px
    anchors = np.concatenate([_ring(r.box, ROI_FACTOR, spacing), _ring(r.box, 1.25, spacing)])
    tp, td = teeth_points(pts, d, face_px)
    ip, idp = iris_points(pts, d)
    keep = _thin_still(pts[:468], d[:468], face_px)
    src = np.concatenate([pts[:468][keep], ip, tp, anchors]) - 0.5
    dst = src + np.concatenate([d[:468][keep], idp, td, np.zeros_like(anchors)])
    # Points that would land on one target (a degenerate mesh) would make the fit singular: keep the first.
    _, keep = np.unique(np.round(dst, 6), axis=0, return_index=True)
    keep = np.sort(keep)
    return src[keep], dst[keep]


def _taper(r: Roi, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    bx0, by0, bx1, by1 = r.box
    cx, cy = (bx0 + bx1) / 2 - 0.5, (by0 + by1) / 2 - 0.5
    hw, hh = max((bx1 - bx0) / 2, 1e-6), max((by1 - by0) / 2, 1e-6)
    rho = np.maximum(np.abs(xs[None, :] - cx) / hw, np.abs(ys[:, None] - cy) / hh)
    u = np.clip((ROI_FACTOR - rho) / (ROI_FACTOR - TAPER_FROM), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _nodes(r: Roi, step: int):
    h, w = r.shape
    nx, ny = int((w - 1) // step) + 4, int((h - 1) // step) + 4
    gx = r.x0 + (np.arange(nx) - 1.0) * step
    gy = r.y0 + (np.arange(ny) - 1.0) * step
    return gx, gy


def node_field(source, target, r: Roi, step: int, method: str):
    """(the tapered displacement D = s(x) - x on the grid nodes (ny×nx×2, float64), the fitted model)."""
    model = W.fit(source, target, method)
    gx, gy = _nodes(r, step)
    nodes = np.stack(np.meshgrid(gx, gy), axis=2)
    return (model(nodes) - nodes) * _taper(r, gx, gy)[:, :, None], model


def fine_boxes(mesh: np.ndarray, r: Roi, face_px: float, step: int):
    """ROI-local boxes (x0, y0, x1, y1) around the mouth and the eyes, where lips slide past held teeth and irises
    past held lids: the field is steep there, so it is evaluated again on a grid FINE_DIVISOR times finer."""
    pts = np.asarray(mesh)[:, :2] - 0.5
    margin = FINE_MARGIN * face_px + 2 * step
    out = []
    for group in (T.LIPS_OUTER, T.RIGHT_EYE + list(range(468, 473)), T.LEFT_EYE + list(range(473, 478))):
        g = pts[group]
        x0 = max(0, int(np.floor(g[:, 0].min() - margin)) - r.x0)
        y0 = max(0, int(np.floor(g[:, 1].min() - margin)) - r.y0)
        x1 = min(r.shape[1], int(np.ceil(g[:, 0].max() + margin)) - r.x0)
        y1 = min(r.shape[0], int(np.ceil(g[:, 1].max() + margin)) - r.y0)
        if x1 - x0 > 4 and y1 - y0 > 4:
            out.append((x0, y0, x1, y1))
    return out


def _refine(dense: np.ndarray, model, r: Roi, boxes, step: int) -> None:
    """In place: inside each box the field from a FINE_DIVISOR× finer grid, blended into the coarse one over a
    ramp of `step` px at the box's edge (so no seam where the two meet)."""
    fine = max(1.0, step / FINE_DIVISOR)     # px, not rounded down: on small faces 1 px was twice the nodes
    if fine >= step:
        return
    for x0, y0, x1, y1 in boxes:
        sub = Roi(r.x0 + x0, r.y0 + y0, r.x0 + x1, r.y0 + y1, r.box)
        gx, gy = _nodes(sub, fine)
        nodes = np.stack(np.meshgrid(gx, gy), axis=2)
        coarse = (model(nodes) - nodes) * _taper(r, gx, gy)[:, :, None]
        patch = W.densify(coarse, y1 - y0, x1 - x0, fine)
        wy = np.minimum(np.arange(y1 - y0) + 1, np.arange(y1 - y0)[::-1] + 1) / float(step)
        wx = np.minimum(np.arange(x1 - x0) + 1, np.arange(x1 - x0)[::-1] + 1) / float(step)
        w = np.clip(np.minimum(wy[:, None], wx[None, :]), 0.0, 1.0)[:, :, None]
        dense[y0:y1, x0:x1] = w * patch + (1.0 - w) * dense[y0:y1, x0:x1]


def _node_jacobian(coarse: np.ndarray, step: int):
    d = coarse / step
    return (np.gradient(d[..., 0], axis=1), np.gradient(d[..., 0], axis=0),
            np.gradient(d[..., 1], axis=1), np.gradient(d[..., 1], axis=0))


def _det_root(coarse: np.ndarray, step: int, level: float, top: float = 1.0) -> float:
    """The largest s in (0, top] with det(I + s J) >= level at every node (J = ∂D/∂x of the node field)."""
    gxx, gxy, gyx, gyy = _node_jacobian(coarse, step)
    a = gxx * gyy - gxy * gyx                  # det J
    b = gxx + gyy                              # tr J
    c = 1.0 - level
    lin = np.abs(a) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        s_lin = np.where(b < 0, -c / b, top)
        disc = b * b - 4 * a * c
        r1 = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        r2 = (-b + np.sqrt(np.maximum(disc, 0))) / (2 * a)
    roots = np.where((r1 > 0) & (disc >= 0), r1, np.inf)
    roots = np.minimum(roots, np.where((r2 > 0) & (disc >= 0), r2, np.inf))
    s = np.where(lin, s_lin, roots)
    return float(np.clip(np.nan_to_num(s, nan=top, posinf=top).min(), 0.0, top))


def max_scale(f: "Field", level: float, top: float = 10.0) -> float:
    """About how far the displacement behind field `f` could be scaled (≤ top) with det ∂s/∂x ≥ level everywhere
    (the field of the scaled displacement taken as the scaled field). Read every `stride` px, half the fine grid's
    spacing: the field is a Catmull-Rom blend of nodes no closer than that (a 12 MP face: 4× fewer pixels)."""
    stride = max(1, int(f.step / FINE_DIVISOR / 2))
    return _det_root(f.field[::stride, ::stride].astype(np.float64), stride, level, top)


def node_min_det(coarse: np.ndarray, step: int) -> float:
    """The Jacobian determinant's minimum on the grid nodes (central differences over the node spacing)."""
    gxx, gxy, gyx, gyy = _node_jacobian(coarse, step)
    return float(((1 + gxx) * (1 + gyy) - gxy * gyx).min())


@dataclass
class Field:
    roi: Roi
    field: np.ndarray            # ROI h×w×2 float32: s(x) = x + D(x) over the ROI
    scale: float                 # the displacement factor kept by the fold clamp (1 = none)
    min_det: float               # min det ∂s/∂x over the ROI, after any clamp
    step: int


def build_field(mesh: np.ndarray, displacement: np.ndarray, image_shape, face_px: float,
                method: str = "tps", r: Optional[Roi] = None) -> Field:
    """The dense, fold-free backward field over the ROI for these landmark displacements (478×2 px)."""
    r = r or roi(mesh, image_shape)
    step = grid_step(face_px)
    d = np.asarray(displacement, np.float64)

    def coarse_for(s):
        src, dst = control_points(mesh, s * d, r, face_px)
        return node_field(src, dst, r, step, method)

    scale = 1.0
    coarse, model = coarse_for(1.0)
    tries = 0
    while node_min_det(coarse, step) < CLAMP_AT and tries < CLAMP_TRIES:
        # Where it folds, the field of the scaled displacement is about s·D, whose determinant 1 + s tr J + s² det J
        # (J = ∂D/∂x) first reaches CLAMP_AT at the smallest positive root over the nodes: one refit there (a
        # little below), then 0.9× steps if the refitted field still dips.
        guess = _det_root(coarse, step, CLAMP_AT) if tries == 0 else 0.9
        scale = max(0.0, scale * min(guess * (0.95 if tries == 0 else 1.0), 1.0))
        coarse, model = coarse_for(scale)
        tries += 1
    h, w = r.shape
    boxes = fine_boxes(mesh, r, face_px, step)
    while True:
        dense = W.densify(coarse, h, w, step)
        _refine(dense, model, r, boxes, step)
        det = float(W.jacobian_determinant(dense).min()) if dense.size else 1.0
        if det > JACOBIAN_MIN or scale == 0.0:
            break
        # Between the nodes the dense field folded more than the nodes showed: back off further.
        scale = 0.0 if scale < 0.05 else scale * 0.8
        coarse, model = coarse_for(scale)
    return Field(r, dense, scale, det, step)


def warp_roi(image: np.ndarray, f: Field, interpolation: str = "cubic") -> np.ndarray:
    """The ROI's pixels resampled through the field (ROI h×w×C float32; the picture itself is not copied). They are
    kept within the ROI's own per-channel range, so cubic overshoot makes no new extremes; where the field is 0 the
    input's pixels come back unchanged."""
    r = f.roi
    if r.x1 <= r.x0 or r.y1 <= r.y0:
        return np.zeros((0, 0) + image.shape[2:], np.float32)
    pad = int(np.ceil(float(np.abs(f.field).max()))) + 3
    h, w = image.shape[:2]
    px0, py0 = max(0, r.x0 - pad), max(0, r.y0 - pad)
    px1, py1 = min(w, r.x1 + pad), min(h, r.y1 + pad)
    crop = np.asarray(image[py0:py1, px0:px1], np.float32)
    full = np.zeros(crop.shape[:2] + (2,), np.float32)
    full[r.y0 - py0:r.y1 - py0, r.x0 - px0:r.x1 - px0] = f.field
    warped = W.remap(crop, full, interpolation)[r.y0 - py0:r.y1 - py0, r.x0 - px0:r.x1 - px0]
    src = crop[r.y0 - py0:r.y1 - py0, r.x0 - px0:r.x1 - px0]
    if warped.ndim == 2:
        warped, src = warped[:, :, None], src[:, :, None]
    lo = src.reshape(-1, src.shape[2]).min(axis=0)
    hi = src.reshape(-1, src.shape[2]).max(axis=0)
    warped = np.clip(warped, lo, hi, out=np.ascontiguousarray(warped))
    still = (f.field == 0).all(axis=2)
    warped[still] = src[still]
    return warped.reshape(src.shape[:2] + np.shape(image)[2:])


def paste(out: np.ndarray, f: Field, patch: np.ndarray) -> np.ndarray:
    """`out` with the ROI replaced by `patch` (in place; returned)."""
    r = f.roi
    if patch.size:
        out[r.y0:r.y1, r.x0:r.x1] = patch
    return out


def apply(image: np.ndarray, f: Field, interpolation: str = "cubic") -> np.ndarray:
    """The picture with the ROI resampled through the field (a copy; pixels outside the ROI untouched)."""
    out = np.array(image, dtype=np.float32, copy=True)
    return paste(out, f, warp_roi(image, f, interpolation))
