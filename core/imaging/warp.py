"""Dense warps from control points: moving least squares and thin-plate splines, evaluated on a coarse grid and
densified, with the Jacobian determinant to find folds, applied by high-quality resampling.

Coordinates: pixels, x right, y down, the centre of pixel (column i, row j) at (i, j) (cv2.remap's convention).

Backward mapping. A warp moves image content from `source` positions to `target` positions. It is stored the
way resampling needs it, backward: for every output pixel x, the input position s(x) it takes its colour from,
as a displacement field D (H×W×2 float32, D[..., 0] = dx, D[..., 1] = dy):
    out(x) = in(s(x)),   s(x) = x + D(x),   s(target_i) = source_i.
So the models below are fitted from the target points (where content ends up) to the source points.

Models, for an output position v with control points p_i (targets) and q_i (sources):
- Moving least squares (Schaefer, McPhail & Warren 2006): weights w_i = 1 / |p_i - v|^(2α) (α = 1), weighted
  centroids p* = Σ w_i p_i / Σ w_i and q*, p̂_i = p_i - p*, q̂_i = q_i - q*; then s(v) = M (v - p*) + q* with
  M the best map in the weighted least-squares sense, Σ w_i |M p̂_i - q̂_i|² -> min, among
    'affine':      M = (Σ w q̂ p̂ᵀ)(Σ w p̂ p̂ᵀ)^-1                 (shears too; needs 3 points not on a line)
    'similarity':  as complex numbers, M = Σ w conj(p̂) q̂ / Σ w |p̂|²  (rotation and uniform scale)
    'rigid':       M = c / |c| with c = Σ w conj(p̂) q̂                 (rotation only: Schaefer's rigid MLS)
  Each reproduces exactly any global transform of its own kind, and s(p_i) = q_i.
- Thin-plate spline ('tps', Bookstein 1989): s(v) = a0 + A v + Σ c_i U(|v - p_i|), U(r) = r² log r², with
  s(p_i) = q_i and Σ c_i = Σ c_i p_i = 0: the interpolant of least bending energy. `smoothing` λ > 0 relaxes
  the interpolation (K + λ I): the points are then approached, not met.
Fewer points than a model needs fall back gracefully: none = identity, one = translation, two = similarity.

The model is evaluated exactly on grid nodes every `grid_step` px (8 by default) and densified by separable
Catmull-Rom bicubic interpolation (cubic convolution with a = -1/2, exact for fields up to quadratic), so a
12 MP field costs about 200 k model evaluations; within 2 grid steps of each target point the exact model is
blended in, so the control points are met to float rounding. `grid_step=1` evaluates every pixel.

Cost at 12 MP with 30 control points, one thread on the loaded 2-core project machine: the field 1.5-3 s
(TPS fastest), its Jacobian 0.3-1 s, a bicubic remap of 3 channels 0.5-0.9 s, Lanczos-4 about 3 s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError

METHODS = ("affine", "similarity", "rigid", "tps")
DEFAULT_GRID_STEP = 8
INTERPOLATIONS = ("cubic", "lanczos", "linear")
_CHUNK = 1 << 20          # (grid nodes × control points) per evaluation block: bounded memory


@dataclass
class Warp:
    """The backward map s: output (target) positions -> input (source) positions, from control points."""
    target: np.ndarray      # n×2 float64: where content ends up (p_i)
    source: np.ndarray      # n×2 float64: where it comes from (q_i)
    method: str
    alpha: float = 1.0
    _tps: tuple | None = None   # (nodes, coefficients n×2, affine 3×2, centre, scale) once solved

    def __call__(self, xy) -> np.ndarray:
        """s(xy) for positions xy (..., 2) in pixels: float64 of the same shape."""
        v = np.asarray(xy, np.float64)
        flat = v.reshape(-1, 2)
        n = len(self.target)
        out = np.empty_like(flat)
        step = max(1, _CHUNK // max(n, 1))
        for s in range(0, len(flat), step):
            out[s:s + step] = self._evaluate(flat[s:s + step])
        return out.reshape(v.shape)

    def _evaluate(self, v: np.ndarray) -> np.ndarray:
        n = len(self.target)
        if n == 0:
            return v.copy()
        if n == 1:
            return v + (self.source[0] - self.target[0])
        if self.method == "tps":
            return self._evaluate_tps(v)
        return self._evaluate_mls(v)

    def _evaluate_mls(self, v: np.ndarray) -> np.ndarray:
        # Coordinates relative to the targets' mean keep the expanded sums below well conditioned.
        origin = self.target.mean(axis=0)
        p, q, v = self.target - origin, self.source - origin, v - origin
        dx = v[:, 0:1] - p[None, :, 0]
        dy = v[:, 1:2] - p[None, :, 1]
        d2 = dx * dx + dy * dy                                                 # V×n
        # At a control point the weight is infinite and s = q_i: those positions are set at the end. The floor
        # keeps weights near one finite; an error it causes in M is multiplied by |v - p*|, which is then tiny.
        w = 1.0 / np.maximum(d2, 1e-8)
        if self.alpha != 1.0:
            w **= self.alpha
        wsum = w.sum(axis=1)
        p_star = (w @ p) / wsum[:, None]
        q_star = (w @ q) / wsum[:, None]
        x = v - p_star
        # Weighted sums over the centred points, expanded so that each is one matrix product:
        # Σ w p̂ p̂ᵀ = Σ w p pᵀ - W p* p*ᵀ, and likewise for the others (W = Σ w).
        if self.method == "affine":
            pp = w @ (p[:, :, None] * p[:, None, :]).reshape(-1, 4)
            qp = w @ (q[:, :, None] * p[:, None, :]).reshape(-1, 4)
            a = pp.reshape(-1, 2, 2) - wsum[:, None, None] * p_star[:, :, None] * p_star[:, None, :]
            b = qp.reshape(-1, 2, 2) - wsum[:, None, None] * q_star[:, :, None] * p_star[:, None, :]
            det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
            inv = np.stack([a[:, 1, 1], -a[:, 0, 1], -a[:, 1, 0], a[:, 0, 0]], axis=1).reshape(-1, 2, 2)
            with np.errstate(divide="ignore", invalid="ignore"):   # det = 0 only on a control point
                m = b @ (inv / det[:, None, None])
            return self._at_points(np.einsum("vij,vj->vi", m, x) + q_star + origin, d2)
        pc, qc = p[:, 0] + 1j * p[:, 1], q[:, 0] + 1j * q[:, 1]
        ps, qs = p_star[:, 0] + 1j * p_star[:, 1], q_star[:, 0] + 1j * q_star[:, 1]
        c = w @ (np.conj(pc) * qc) - wsum * np.conj(ps) * qs                  # Σ w conj(p̂) q̂
        with np.errstate(divide="ignore", invalid="ignore"):   # 0 / 0 only on a control point
            if self.method == "similarity":
                m = c / (w @ (pc.real ** 2 + pc.imag ** 2) - wsum * (ps.real ** 2 + ps.imag ** 2))
            else:   # rigid: the rotation alone (c = 0 only where every p̂ is 0: no rotation to speak of)
                mag = np.abs(c)
                m = np.where(mag > 0, c / np.where(mag > 0, mag, 1.0), 1.0)
        y = m * (x[:, 0] + 1j * x[:, 1])
        return self._at_points(np.stack([y.real, y.imag], axis=1) + q_star + origin, d2)

    def _at_points(self, s: np.ndarray, d2: np.ndarray) -> np.ndarray:
        """s with the positions that coincide with a control point set to its source exactly."""
        nearest = d2.argmin(axis=1)
        on = d2[np.arange(len(d2)), nearest] < 1e-12
        s[on] = self.source[nearest[on]]
        return s

    def _evaluate_tps(self, v: np.ndarray) -> np.ndarray:
        nodes, coef, affine, centre, scale = self._tps
        u = (v - centre) / scale
        # In place, two V×n temporaries (the same values as dx² + dy² and U(d2), 2.5× faster than fresh arrays)
        d2 = np.subtract.outer(u[:, 0], nodes[:, 0])
        d2 *= d2
        dy = np.subtract.outer(u[:, 1], nodes[:, 1])
        dy *= dy
        d2 += dy
        k = np.log(np.maximum(d2, 1e-300, out=dy), out=dy)
        k *= d2                                   # U(0) = 0 · log(1e-300) = 0
        out = k @ coef + affine[0] + u @ affine[1:]
        return out * scale + centre


def _tps_kernel(d2: np.ndarray) -> np.ndarray:
    """U = r² log r², with U(0) = 0 (its limit)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d2 > 0, d2 * np.log(np.where(d2 > 0, d2, 1.0)), 0.0)


def fit(source_xy, target_xy, method: str = "rigid", alpha: float = 1.0, smoothing: float = 0.0) -> Warp:
    """The warp that moves content at each source point to its target point (n×2 pixel positions each).
    Returns the backward map (see the module docstring). `smoothing` is the TPS regulariser λ, in units of the
    points' spread squared (0 = interpolate exactly)."""
    if method not in METHODS:
        raise UserError(f"warp method must be one of {', '.join(METHODS)}, not '{method}'", "bad-parameter")
    q = np.asarray(source_xy, np.float64).reshape(-1, 2)
    p = np.asarray(target_xy, np.float64).reshape(-1, 2)
    if p.shape != q.shape:
        raise UserError(f"{len(q)} source points but {len(p)} target points: they come in pairs", "bad-parameter")
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise UserError("a control point is not a finite position", "bad-parameter")
    if len(np.unique(p, axis=0)) != len(p):
        raise UserError("two control points share one target position: a warp cannot send one place to two",
                        "bad-parameter")
    if alpha <= 0:
        raise UserError(f"the MLS weight exponent must be positive, not {alpha:g}", "bad-parameter")
    n = len(p)
    spread = np.linalg.matrix_rank(p - p.mean(axis=0), tol=1e-6 * max(1.0, float(np.abs(p).max()))) if n else 0
    if method in ("affine", "tps") and (n < 3 or spread < 2):
        method = "similarity"   # an affine map (or a TPS's affine part) is undetermined by points on a line
    warp = Warp(p, q, method, float(alpha))
    if method == "tps" and n >= 3:
        warp._tps = _solve_tps(p, q, smoothing)
    return warp


def _solve_tps(p: np.ndarray, q: np.ndarray, smoothing: float):
    # Centred and scaled to unit spread: the system's condition then does not depend on the image size.
    centre = p.mean(axis=0)
    scale = float(np.sqrt(((p - centre) ** 2).sum(axis=1).mean())) or 1.0
    u = (p - centre) / scale
    t = (q - centre) / scale
    n = len(u)
    k = _tps_kernel(((u[:, None, :] - u[None, :, :]) ** 2).sum(axis=2)) + smoothing * np.eye(n)
    pm = np.hstack([np.ones((n, 1)), u])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n], system[:n, n:], system[n:, :n] = k, pm, pm.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = t
    sol = np.linalg.solve(system, rhs)
    return u, sol[:n], sol[n:], centre, scale


# ------------------------------------------------------------------------------------------ dense field

def displacement_field(warp: Warp, height: int, width: int, grid_step: int = DEFAULT_GRID_STEP) -> np.ndarray:
    """D (H×W×2 float32) with s(x) = x + D(x): the model evaluated on grid nodes every `grid_step` px (one
    node beyond each edge, so the bicubic taps never run out) and densified by Catmull-Rom interpolation."""
    if grid_step < 1:
        raise ValueError("grid_step must be at least 1")
    if grid_step == 1:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        pos = np.stack([xs, ys], axis=2)
        return (warp(pos) - pos).astype(np.float32)
    nx = (width - 1) // grid_step + 4
    ny = (height - 1) // grid_step + 4
    gx = (np.arange(nx) - 1.0) * grid_step
    gy = (np.arange(ny) - 1.0) * grid_step
    nodes = np.stack(np.meshgrid(gx, gy), axis=2)                   # ny×nx×2 as (x, y)
    coarse = warp(nodes) - nodes
    field = densify(coarse, height, width, grid_step)
    _refine_at_points(field, warp, 2.0 * grid_step)
    return field


def _refine_at_points(field: np.ndarray, warp: Warp, radius: float) -> None:
    """Blend in the exact model near each target point, in place: D += b (D_exact - D), b = (1 - (r/R)²)² of the
    distance r to the nearest point (1 at the point, 0 with zero slope at R = 2 grid steps).

    Why: the field is least smooth right at the control points (MLS weights 1/r² are singular there, the TPS
    kernel r² log r² has an unbounded second derivative), so that is where bicubic densification errs most —
    0.05 px at 8 px steps — while it is exactly there that s(p_i) = q_i must hold. A few thousand exact
    evaluations per point fix it; the correction is smooth and under 0.1 px, so the Jacobian is not disturbed.
    """
    h, w = field.shape[:2]
    r = int(np.ceil(radius))
    index, weight = [], []
    for px, py in warp.target:
        x0, x1 = max(int(np.floor(px)) - r, 0), min(int(np.ceil(px)) + r + 1, w)
        y0, y1 = max(int(np.floor(py)) - r, 0), min(int(np.ceil(py)) + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue   # a point outside the image: nothing of it to refine
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rr = ((xx - px) ** 2 + (yy - py) ** 2) / radius ** 2
        inside = rr < 1.0
        index.append((yy * w + xx)[inside])
        weight.append((1.0 - rr[inside]) ** 2)
    if not index:
        return
    # where two points' discs overlap, the nearer point's (larger) weight wins
    index, weight = np.concatenate(index), np.concatenate(weight)
    order = np.lexsort((-weight, index))
    index, weight = index[order], weight[order]
    first = np.r_[True, index[1:] != index[:-1]]
    index, weight = index[first], weight[first, None]
    ys, xs = np.divmod(index, w)
    pos = np.stack([xs, ys], axis=1).astype(np.float64)
    flat = field.reshape(-1, field.shape[2])
    dense = flat[index].astype(np.float64)
    flat[index] = (dense + weight * (warp(pos) - pos - dense)).astype(np.float32)


def densify(coarse: np.ndarray, height: int, width: int, grid_step: int) -> np.ndarray:
    """Catmull-Rom interpolation of node values (ny×nx×C, node (i, j) at pixel ((j - 1)·step, (i - 1)·step))
    to every pixel: H×W×C float32."""
    wy, iy = _cubic_taps(height, grid_step)                 # H×4 weights and first-tap indices
    wx, ix = _cubic_taps(width, grid_step)
    ny, nx, c = coarse.shape
    # along x on the node rows: one small dense product (W×nx weights); then along y, four gathers of whole
    # rows per output row block (contiguous copies, where gathering columns would stride through memory)
    cols = np.zeros((width, nx))
    for k in range(4):
        np.add.at(cols, (np.arange(width), ix + k), wx[:, k])
    mid = np.einsum("wx,yxc->ywc", cols, coarse, optimize=True)     # ny×W×C
    out = np.empty((height, width, c), np.float32)
    for r in range(0, height, _DENSIFY_ROWS):                # row blocks: float64 temporaries stay small
        sl = slice(r, min(r + _DENSIFY_ROWS, height))
        block = mid[iy[sl]] * wy[sl, 0, None, None]
        for k in range(1, 4):
            block += mid[iy[sl] + k] * wy[sl, k, None, None]
        out[sl] = block
    return out


_DENSIFY_ROWS = 128


def _cubic_taps(n: int, step: int):
    """Catmull-Rom weights for pixels 0..n-1 on nodes at (k - 1)·step: (n×4 weights, n first indices)."""
    u = np.arange(n, dtype=np.float64) / step + 1.0
    i = np.floor(u).astype(np.int64)
    t = u - i
    t2, t3 = t * t, t * t * t
    w = np.stack([(-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2],
                 axis=1)
    return w, i - 1


def jacobian_determinant(field: np.ndarray) -> np.ndarray:
    """det ∂s/∂x of the backward map s(x) = x + D(x), per pixel (H×W float32; central differences, one-sided at
    the border). 1 = area kept; the input area an output pixel samples is det times its own, so content is
    magnified by 1/det. det <= 0 is a fold: the output shows the input mirrored or several times."""
    d = np.asarray(field, np.float32)
    jxx, jxy = 1.0 + _gradient(d[..., 0], 1), _gradient(d[..., 0], 0)
    jyx, jyy = _gradient(d[..., 1], 1), 1.0 + _gradient(d[..., 1], 0)
    return (jxx * jyy - jxy * jyx).astype(np.float32)


def _gradient(a: np.ndarray, axis: int) -> np.ndarray:
    """Central differences along `axis` (one-sided at the ends), float32, like np.gradient without its float64
    passes."""
    a = np.moveaxis(a, axis, 0)
    g = np.empty_like(a)
    if a.shape[0] < 2:
        g[:] = 0
    else:
        np.subtract(a[2:], a[:-2], out=g[1:-1])
        g[1:-1] *= 0.5
        g[0], g[-1] = a[1] - a[0], a[-1] - a[-2]
    return np.moveaxis(g, 0, axis)


def folds(field: np.ndarray) -> np.ndarray:
    """H×W bool: where the warp folds (Jacobian determinant <= 0)."""
    return jacobian_determinant(field) <= 0


# -------------------------------------------------------------------------------------------- resampling

def remap(image: np.ndarray, field: np.ndarray, interpolation: str = "cubic", border: str = "reflect") -> np.ndarray:
    """out(x) = image(x + D(x)) for H×W×C float32 (any C; H×W too), by cv2.remap with bicubic (a = -0.75) or
    Lanczos-4 interpolation. Positions outside the image read it mirrored (border 'reflect', BORDER_REFLECT: the
    edge pixel repeats, as a mirror at the image's edge would show it) or its edge pixel ('replicate', for
    fields and maps). The field must have the output's H×W."""
    import cv2

    borders = {"reflect": cv2.BORDER_REFLECT, "replicate": cv2.BORDER_REPLICATE}

    flags = {"cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4, "linear": cv2.INTER_LINEAR}
    if interpolation not in flags:
        raise UserError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not '{interpolation}'",
                        "bad-parameter")
    if border not in borders:
        raise UserError(f"border must be one of {', '.join(borders)}, not '{border}'", "bad-parameter")
    img = np.asarray(image, np.float32)
    h, w = field.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + field[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + field[..., 1]
    map_x, map_y = np.ascontiguousarray(xs, np.float32), np.ascontiguousarray(ys, np.float32)
    if img.ndim == 2:
        return cv2.remap(img, map_x, map_y, flags[interpolation], borderMode=borders[border])
    # OpenCV resamples at most 4 channels at once
    parts = [cv2.remap(np.ascontiguousarray(img[:, :, c:c + 4]), map_x, map_y, flags[interpolation],
                       borderMode=borders[border]).reshape(h, w, -1) for c in range(0, img.shape[2], 4)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def invert_field(field: np.ndarray, iterations: int = 30, tolerance_px: float = 1e-4) -> np.ndarray:
    """The displacement field of the inverse map: E with (x + E(x)) + D(x + E(x)) = x, so that
    remap(remap(img, D), E) = img. Fixed-point iteration E <- -D(x + E(x)) (D sampled bicubically), which
    converges where the deformation is small and smooth (|∂D| < 1: no folds); it stops once no pixel moves by
    more than `tolerance_px`. Outside the image D is taken from its edge."""
    d = np.asarray(field, np.float32)
    e = -d.copy()
    for _ in range(iterations):
        nxt = -remap(d, e, "cubic", border="replicate")
        done = float(np.abs(nxt - e).max()) <= tolerance_px
        e = nxt
        if done:
            break
    return e


def warp_image(image: np.ndarray, source_xy, target_xy, method: str = "rigid", grid_step: int = DEFAULT_GRID_STEP,
               interpolation: str = "cubic") -> tuple[np.ndarray, np.ndarray]:
    """Move the content at source points to target points: (warped image, displacement field)."""
    h, w = image.shape[:2]
    field = displacement_field(fit(source_xy, target_xy, method), h, w, grid_step)
    return remap(image, field, interpolation), field
