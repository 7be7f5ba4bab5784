"""A dense surface from the face mesh: the 468 3-D landmarks rasterised over the mesh's own triangles, smooth
normals, and a smooth head / hair / neck / body proxy under the person mask, blended without seams.

Units: image pixels (x right, y down) and, for heights, pixels toward the camera (the landmarks' z scale), so
H(x, y) is a height field in the pixel units of x and y. Normals are camera space (x right, y up, z toward the
camera): a vertex (x, y, z) of the mesh is the point (x, −y, z).

- Triangles: MediaPipe's canonical face-mesh tessellation, read from the mediapipe wheel the model store already
  keeps (`mediapipe/python/solutions/face_mesh_connections.py`, whose FACEMESH_TESSELATION lists each triangle
  as its three edges in order; the file's sha256 is pinned). It leaves the eyes and the mouth open; those holes
  are closed with the landmarks' Delaunay triangles. Without the wheel, the Delaunay triangulation of the
  landmarks' x, y stands in for the whole mesh, and `source` says so.
- Face: per pixel the triangle that covers it (nearest drawn last), barycentric weights λ at the pixel centre;
  height Σ λ z_i; normal normalise(Σ λ N_i) with N_i the area-weighted vertex normals (Phong interpolation:
  smooth across the triangles' edges).
- Mouth: the mesh's lips, mouth corners and teeth (its least reliable part: the inner lip contour rides on the
  teeth of an open smile, the corners fold) are replaced by a smooth patch through the surrounding surface
  (normals: their Gaussian average; height: a membrane), so its creases print no dark lines or spots.
- Head: an ellipsoid around the face (the skull is wider than the face oval and reaches higher), its depth
  axis as long as its half-width; neck: a column under the chin along the face's axis, behind the chin, facing
  the camera; body: the person mask rounded off at its outline over BODY_ROUNDING face widths
  (h = R √(1 − (1 − d/R)²) of the distance d to the outline, vertical steps counting BODY_VERTICAL times:
  a body is rounded across). Body, neck and head join by a smooth maximum.
- Blend: the face surface is shifted in z to sit on the head proxy along the face oval, and weighted by a ramp
  from the mesh's outline inward (FACE_RAMP of the face width), so the normals turn from the mesh's to the
  proxy's without a seam.
"""
from __future__ import annotations

import functools
import hashlib
import re
import zipfile
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

TESSELLATION_MEMBER = "mediapipe/python/solutions/face_mesh_connections.py"
TESSELLATION_SHA256 = "cc7171e44d0612db38720cb2fd2516c395992cdd7457efe341543be6f3c22d87"
TESSELLATION_TRIANGLES = 852

FACE_EDGE_RIGHT, FACE_EDGE_LEFT = 234, 454       # the face's outer edges at the ears (subject's right, left)
FOREHEAD_TOP, CHIN = 10, 152
HEAD_WIDTH = 1.15        # head proxy half-width / half the face width (the skull is wider than the oval)
HEAD_HEIGHT = 1.30       # head proxy half-height / half the face height (it reaches over the hair)
HEAD_RAISE = 0.12        # the skull's centre lies this fraction of the face height above the oval's centre
BODY_ROUNDING = 0.6      # the body's outline rounds off over this many face widths
BODY_VERTICAL = 3        # a vertical step toward the outline counts this many horizontal ones (body_distance)
BODY_BEHIND = 0.3        # the body's surface lies this many face widths behind the head's silhouette plane
FACE_RAMP = 0.08         # blend ramp from the mesh's outline inward, in face widths
NECK_RADIUS = 0.38       # neck half-width / face width
NECK_DEPTH = 0.35        # the neck's front above the head's silhouette plane, in face widths (behind the chin)
NECK_LENGTH = 0.45       # the neck column reaches this many face heights below the chin (fading out)
SMOOTH_MAX = 0.04        # softness of the head/body union, in face widths
MOUTH_MARGIN = 0.04      # the mouth's smooth patch reaches this many face widths beyond the outer lip contour
MOUTH_FEATHER = 0.03     # and fades in over this many
MEMBRANE_ITERATIONS = 400  # Jacobi sweeps of the mouth's height membrane (it starts from a smooth guess)
MOUTH_FILL = 0.08        # Gaussian σ of the patch's average of the surrounding surface, in face widths
NORMAL_SMOOTHING = 0.02  # Gaussian σ of the face normals, in face widths (3 mm on an adult face)


@dataclass
class Surface:
    normals: np.ndarray      # H×W×3 float32 unit normals (background: (0, 0, 1))
    height: np.ndarray       # H×W float32, pixels toward the camera
    face_weight: np.ndarray  # H×W float32 in [0, 1]: how much of the normal is the face mesh's
    source: str


@functools.lru_cache(maxsize=1)
def tessellation() -> Tuple[Optional[np.ndarray], str]:
    """(T×3 int32 triangles of the canonical mesh, where they came from), or (None, why not)."""
    try:
        from ...models import mediapipe, store
        path = store.downloads_dir() / mediapipe.WHEEL
        if not path.is_file():
            return None, "no mediapipe wheel in the model store"
        with zipfile.ZipFile(path) as zf:
            raw = zf.read(TESSELLATION_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        return None, f"mediapipe wheel unreadable ({exc.__class__.__name__})"
    if hashlib.sha256(raw).hexdigest() != TESSELLATION_SHA256:
        return None, "unexpected face_mesh_connections.py in the wheel"
    text = raw.decode("utf-8")
    start = text.index("FACEMESH_TESSELATION")
    end = text.index("])", start)
    edges = [(int(a), int(b)) for a, b in re.findall(r"\((\d+),\s*(\d+)\)", text[start:end])]
    tris = []
    for k in range(0, len(edges) - 2, 3):
        (a, b), (b2, c), (c2, a2) = edges[k:k + 3]
        if b == b2 and c == c2 and a == a2:
            tris.append((a, b, c))
    if len(tris) != TESSELLATION_TRIANGLES:
        return None, f"the tessellation holds {len(tris)} triangles, expected {TESSELLATION_TRIANGLES}"
    return np.asarray(tris, np.int32), "mediapipe canonical tessellation"


def delaunay(landmarks: np.ndarray) -> np.ndarray:
    from scipy.spatial import Delaunay
    return Delaunay(np.asarray(landmarks, np.float64)[:, :2]).simplices.astype(np.int32)


def triangles_for(landmarks: np.ndarray) -> Tuple[np.ndarray, str]:
    tris, source = tessellation()
    if tris is None:
        return delaunay(landmarks), f"Delaunay triangulation of the landmarks ({source})"
    return tris, source


def face_width(lm: np.ndarray) -> float:
    return max(float(np.linalg.norm(lm[FACE_EDGE_LEFT, :2] - lm[FACE_EDGE_RIGHT, :2])), 1.0)


def vertex_normals(lm: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """468×3 area-weighted vertex normals, camera space, oriented toward the camera on the whole."""
    v = np.stack([lm[:, 0], -lm[:, 1], lm[:, 2]], axis=1).astype(np.float64)
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])   # length = 2 × area
    if fn[:, 2].sum() < 0:   # the tessellation's winding faces away: turn every triangle round
        fn = -fn
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, tris[:, k], fn)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(norm > 0, out / np.maximum(norm, 1e-12), np.array([0.0, 0.0, 1.0]))
    return out


def rasterise(lm: np.ndarray, tris: np.ndarray, shape: Tuple[int, int], normals_from: Optional[np.ndarray] = None):
    """The mesh over an image of `shape`: (height, normals, coverage, box) inside the mesh's bounding box
    `box` = (x0, y0, x1, y1); height and normals are zero where nothing covers. Vertex normals come from the
    triangles `normals_from` (default: `tris` themselves)."""
    import cv2

    h, w = shape
    x0 = max(int(np.floor(lm[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(lm[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(lm[:, 0].max())) + 2, w)
    y1 = min(int(np.ceil(lm[:, 1].max())) + 2, h)
    bw, bh = x1 - x0, y1 - y0
    if bw < 2 or bh < 2:
        return None
    local = lm[:, :2] - np.array([x0, y0], np.float64)
    index = np.full((bh, bw), -1, np.int32)
    shift = 4
    order = np.argsort(lm[tris, 2].mean(axis=1))      # far first: the nearer triangle wins where they overlap
    pts = np.round((local * (1 << shift)) - 0.5 * (1 << shift)).astype(np.int32)
    for t in order:
        cv2.fillPoly(index, [pts[tris[t]]], int(t), lineType=cv2.LINE_8, shift=shift)
    covered = index >= 0
    yy, xx = np.nonzero(covered)
    tri = tris[index[yy, xx]]
    px = np.stack([xx + 0.5, yy + 0.5], axis=1)
    a, b, c = local[tri[:, 0]], local[tri[:, 1]], local[tri[:, 2]]
    v0, v1, v2 = b - a, c - a, px - a
    d00 = (v0 * v0).sum(1)
    d01 = (v0 * v1).sum(1)
    d11 = (v1 * v1).sum(1)
    d20 = (v2 * v0).sum(1)
    d21 = (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) > 1e-12, den, 1e-12)
    l1 = (d11 * d20 - d01 * d21) / den
    l2 = (d00 * d21 - d01 * d20) / den
    lam = np.clip(np.stack([1.0 - l1 - l2, l1, l2], axis=1), 0.0, 1.0)   # edge pixels: clamp onto the triangle
    lam /= lam.sum(1, keepdims=True)
    vn = vertex_normals(lm, tris if normals_from is None else normals_from)
    z = (lam * lm[tri, 2]).sum(1)
    n = (lam[:, :, None] * vn[tri]).sum(1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    height = np.zeros((bh, bw), np.float32)
    normals = np.zeros((bh, bw, 3), np.float32)
    height[yy, xx] = z
    normals[yy, xx] = n
    return height, normals, covered, (x0, y0, x1, y1)


def mouth_weight(lm: np.ndarray, shape: Tuple[int, int], origin: Tuple[int, int], fw: float) -> np.ndarray:
    """How much of the mouth a pixel is (H×W float32 in [0, 1]; origin = the array's (x, y) in the image):
    the outer lip contour filled, grown by MOUTH_MARGIN face widths (the corners and the lips' shadow lines),
    feathered over MOUTH_FEATHER."""
    import cv2

    from ...face.topology import LIPS_OUTER

    h, w = shape
    pts = np.round((lm[LIPS_OUTER, :2] - np.asarray(origin, np.float64)) * 16 - 8).astype(np.int32)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=4)
    k = max(1, int(round(MOUTH_MARGIN * fw)))
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return np.clip(cv2.GaussianBlur(m.astype(np.float32), (0, 0), max(MOUTH_FEATHER * fw, 0.5)) * 1.5, 0.0, 1.0)


def quiet_mouth(lm: np.ndarray, z: np.ndarray, n: np.ndarray, covered: np.ndarray, origin: Tuple[int, int],
                fw: float) -> Tuple[np.ndarray, np.ndarray]:
    """The mesh's mouth replaced by a smooth surface through its surroundings. The lips, their corners and the
    teeth are the mesh's least reliable part (its inner lip contour rides on the teeth of an open smile, the
    holes are closed by Delaunay triangles, the corners fold): their normals would print the mesh's creases
    into the ratio image as dark lines and spots. Inside mouth_weight the normals become the normalised
    Gaussian average (σ = MOUTH_FILL face widths) of the covered pixels outside the mouth, the height the
    membrane through them (`_membrane`)."""
    import cv2

    m = mouth_weight(lm, z.shape, origin, fw)
    if not (m > 0).any():
        return z, n
    data = (covered & (m <= 0.0)).astype(np.float32)
    sigma = max(MOUTH_FILL * fw, 1.0)
    den = cv2.GaussianBlur(data, (0, 0), sigma)
    ok = den > 1e-4
    fz = cv2.GaussianBlur(z.astype(np.float32) * data, (0, 0), sigma) / np.maximum(den, 1e-4)
    fn = cv2.GaussianBlur(n.astype(np.float32) * data[:, :, None], (0, 0), sigma) / np.maximum(den, 1e-4)[:, :, None]
    fn /= np.maximum(np.linalg.norm(fn, axis=2, keepdims=True), 1e-12)
    wgt = np.where(ok & covered, m, 0.0).astype(np.float32)
    fz = _membrane(np.where(data > 0, z, fz).astype(np.float32), (wgt > 0) & (data <= 0))
    z_out = z + wgt * (fz - z)
    n_out = n + wgt[:, :, None] * (fn - n)
    n_out /= np.maximum(np.linalg.norm(n_out, axis=2, keepdims=True), 1e-12)
    return z_out.astype(np.float32), np.where(covered[:, :, None], n_out, n).astype(np.float32)


def _membrane(z: np.ndarray, free: np.ndarray, iterations: int = MEMBRANE_ITERATIONS) -> np.ndarray:
    """z with its `free` pixels replaced by the membrane (Laplace's equation, ∇²z = 0) through the others:
    Jacobi sweeps over the free pixels' bounding box, started from z itself. A Gaussian average of the
    surroundings would sag below the lips and the chin's higher ring: a trench that the cheeks shadow."""
    ys, xs = np.nonzero(free)
    if ys.size == 0:
        return z
    y0, y1 = max(int(ys.min()) - 1, 0), min(int(ys.max()) + 2, z.shape[0])
    x0, x1 = max(int(xs.min()) - 1, 0), min(int(xs.max()) + 2, z.shape[1])
    sub = z[y0:y1, x0:x1].astype(np.float64).copy()
    f = free[y0:y1, x0:x1]
    for _ in range(iterations):
        p = np.pad(sub, 1, mode="edge")
        avg = 0.25 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
        sub[f] = avg[f]
    out = z.copy()
    out[y0:y1, x0:x1] = sub.astype(z.dtype)
    return out


def _smooth_max(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return 0.5 * (a + b + np.sqrt((a - b) ** 2 + k * k))


def _ellipsoid(lm: np.ndarray, shape) -> Tuple[np.ndarray, np.ndarray, float]:
    """(height above the ellipsoid's silhouette plane, inside mask, depth semi-axis) of the head proxy."""
    h, w = shape
    width = face_width(lm)
    top, chin = lm[FOREHEAD_TOP, :2], lm[CHIN, :2]
    up = (top - chin) / max(np.linalg.norm(top - chin), 1e-6)           # image direction chin -> forehead
    height = float(np.linalg.norm(top - chin))
    centre = 0.5 * (top + chin) + up * HEAD_RAISE * height
    ax, ay = 0.5 * width * HEAD_WIDTH, 0.5 * height * HEAD_HEIGHT
    cz = ax
    out = np.zeros(shape, np.float32)
    inside = np.zeros(shape, bool)
    # Only the ellipse's bounding box (its largest semi-axis around the centre) is computed.
    r = max(ax, ay) + 1.0
    x0, x1 = max(int(centre[0] - r), 0), min(int(np.ceil(centre[0] + r)), w)
    y0, y1 = max(int(centre[1] - r), 0), min(int(np.ceil(centre[1] + r)), h)
    if x1 <= x0 or y1 <= y0:
        return out, inside, cz
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - centre[0], yy + 0.5 - centre[1]
    across = np.array([-up[1], up[0]])                                   # perpendicular to `up`
    u = (dx * across[0] + dy * across[1]) / ax
    v = (dx * up[0] + dy * up[1]) / ay
    rr = u * u + v * v
    out[y0:y1, x0:x1] = cz * np.sqrt(np.clip(1.0 - rr, 0.0, 1.0))
    inside[y0:y1, x0:x1] = rr < 1.0
    return out, inside, cz


def _neck(lm: np.ndarray, shape, floor: float) -> np.ndarray:
    """Height of the neck proxy: a column below the chin along the face's axis (chin -> forehead reversed),
    NECK_RADIUS face widths across, its front NECK_DEPTH face widths above the head's silhouette plane (so
    behind the chin), h = NECK_DEPTH · w · √(1 − u²) of the lateral offset u (in radii); it fades into `floor`
    over the lower half of its NECK_LENGTH (face heights below the chin). Under the chin the person mask's
    body is no guide (its outline there is the shoulders, the collar, a helmet ring), and a body rising toward
    the chest faces up into a light from above: a bright band under a dark jaw."""
    h, w = shape
    width = face_width(lm)
    top, chin = lm[FOREHEAD_TOP, :2], lm[CHIN, :2]
    up = (top - chin) / max(np.linalg.norm(top - chin), 1e-6)
    face_h = float(np.linalg.norm(top - chin))
    across = np.array([-up[1], up[0]])
    radius = NECK_RADIUS * width
    length = NECK_LENGTH * face_h
    out = np.full(shape, floor, np.float32)
    ends = [chin + 0.3 * face_h * up, chin - length * up]
    pts = np.array([e + s * radius * across for e in ends for s in (-1, 1)])
    x0, y0 = np.floor(pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - chin[0], yy + 0.5 - chin[1]
    u = (dx * across[0] + dy * across[1]) / radius
    below = -(dx * up[0] + dy * up[1])                       # pixels below the chin along the axis
    col = NECK_DEPTH * width * np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    t = np.clip((below - 0.5 * length) / (0.5 * length), 0.0, 1.0)
    fade = 1.0 - t * t * (3.0 - 2.0 * t)
    inside = (np.abs(u) < 1.0) & (below > -0.3 * face_h)
    val = floor + (col - floor) * fade
    out[y0:y1, x0:x1] = np.where(inside, np.maximum(val, floor), floor)
    return out


def _gradient_normals(height: np.ndarray) -> np.ndarray:
    """Normals of a height field (pixels toward the camera, x right, y down): n ∝ (−H_x, H_y, 1)."""
    hx = np.gradient(height, axis=1)
    hy = np.gradient(height, axis=0)
    n = np.stack([-hx, hy, np.ones_like(height)], axis=2)
    return (n / np.linalg.norm(n, axis=2, keepdims=True)).astype(np.float32)


def body_distance(inside: np.ndarray) -> np.ndarray:
    """Distance (pixels) from each pixel of the person to the person's outline, with vertical steps counting
    BODY_VERTICAL times as much as horizontal ones: a body is rounded across (its cross-sections are about
    horizontal), so the neck is a column whose surface faces the camera, not a saddle that rises toward the
    wider chest and faces up into a light from above. Computed on the mask stretched vertically."""
    import cv2

    h, w = inside.shape
    k = int(BODY_VERTICAL)
    if k <= 1:
        return cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    tall = np.repeat(inside, k, axis=0)
    dist = cv2.distanceTransform(np.ascontiguousarray(tall), cv2.DIST_L2, 5)
    # The centre row of each stretched pixel: distances stay in horizontal pixels.
    return dist[k // 2::k][:h]


def surface(landmarks: Sequence[np.ndarray], person: np.ndarray) -> Surface:
    """The subject's surface from the faces' landmarks (each 468×3, pixels of this image) and the person mask
    (H×W in [0, 1])."""
    import cv2

    shape = person.shape
    inside = (person > 0.5).astype(np.uint8)
    faces = [np.asarray(lm, np.float64) for lm in landmarks]
    width = max(face_width(lm) for lm in faces) if faces else 0.25 * min(shape)
    # Body: rounded at its outline.
    r = BODY_ROUNDING * width
    dist = body_distance(inside)
    t = np.clip(dist / r, 0.0, 1.0)
    body = r * np.sqrt(np.clip(1.0 - (1.0 - t) ** 2, 0.0, 1.0))
    body = cv2.GaussianBlur(body.astype(np.float32), (0, 0), max(r / 4.0, 0.8))
    # The neck and shoulders sit behind the face: the chin can shadow the neck under a light from above.
    proxy = body - np.float32(BODY_BEHIND * width)
    face_parts = []
    sources = set()
    for lm in faces:
        proxy = _smooth_max(proxy, _neck(lm, shape, -BODY_BEHIND * width), SMOOTH_MAX * width)
        head, in_head, cz = _ellipsoid(lm, shape)
        # The head's silhouette plane sits on the body's base plane; the head rises cz above it.
        proxy = _smooth_max(proxy, np.where(in_head, head, -BODY_BEHIND * width).astype(np.float32),
                            SMOOTH_MAX * width)
        tris, source = triangles_for(lm)
        sources.add(source)
        face_parts.append((lm, tris))
    proxy = np.where(inside > 0, proxy, -BODY_BEHIND * width).astype(np.float32)
    proxy = cv2.GaussianBlur(proxy, (0, 0), max(0.02 * width, 0.7))
    height = proxy.copy()
    normals = _gradient_normals(proxy)
    face_weight = np.zeros(shape, np.float32)
    for lm, tris in face_parts:
        got = rasterise(lm, tris, shape)
        if got is None:
            continue
        z, n_face, covered, (x0, y0, x1, y1) = got
        # The canonical mesh leaves the eyes and the mouth open: close them with the landmarks' Delaunay
        # triangles (same vertex normals, so the surface stays smooth across the hole's rim).
        holes = rasterise(lm, delaunay(lm), shape, normals_from=tris)
        if holes is not None:
            zd, nd, cd, _ = holes
            fill = cd & ~covered
            z = np.where(fill, zd, z)
            n_face = np.where(fill[:, :, None], nd, n_face)
            covered = covered | cd
        fw = face_width(lm)
        z, n_face = quiet_mouth(lm, z, n_face, covered, (x0, y0), fw)
        # The mesh's depth is least sure at its smallest features (nostril wings, the lips' inner contour),
        # where neighbouring landmarks fold against each other: smooth the normals at a scale below the
        # nose's, normalised by coverage so the hole edges and the outline do not pull in zeros.
        sigma = NORMAL_SMOOTHING * fw
        if sigma > 0.5:
            cov = covered.astype(np.float32)
            num = cv2.GaussianBlur(n_face * cov[:, :, None], (0, 0), sigma)
            den = cv2.GaussianBlur(cov, (0, 0), sigma)
            sm = num / np.maximum(den, 1e-6)[:, :, None]
            sm /= np.maximum(np.linalg.norm(sm, axis=2, keepdims=True), 1e-12)
            n_face = np.where(covered[:, :, None], sm, n_face).astype(np.float32)
        ramp = max(FACE_RAMP * fw, 1.0)
        cov8 = np.pad(covered.astype(np.uint8), 1)
        inner = cv2.distanceTransform(cov8, cv2.DIST_L2, 5)[1:-1, 1:-1]
        wgt = np.clip(inner / ramp, 0.0, 1.0)
        wgt = (wgt * wgt * (3.0 - 2.0 * wgt)).astype(np.float32)         # smoothstep: no kink at either end
        sub_proxy = proxy[y0:y1, x0:x1]
        # Sit the mesh on the proxy where it hands over (its outer ring), so heights join without a step.
        ring = covered & (wgt < 0.5)
        offset = float(np.median(sub_proxy[ring] - z[ring])) if ring.any() else 0.0
        z_al = z + offset
        sub_w = face_weight[y0:y1, x0:x1]
        take = wgt > sub_w
        blend_h = wgt * z_al + (1.0 - wgt) * sub_proxy
        blend_n = wgt[:, :, None] * n_face + (1.0 - wgt[:, :, None]) * normals[y0:y1, x0:x1]
        blend_n /= np.maximum(np.linalg.norm(blend_n, axis=2, keepdims=True), 1e-12)
        height[y0:y1, x0:x1] = np.where(take, blend_h, height[y0:y1, x0:x1])
        normals[y0:y1, x0:x1] = np.where(take[:, :, None], blend_n, normals[y0:y1, x0:x1])
        face_weight[y0:y1, x0:x1] = np.maximum(sub_w, wgt)
    outside = inside == 0
    normals[outside] = (0.0, 0.0, 1.0)
    return Surface(normals.astype(np.float32), height.astype(np.float32), face_weight,
                   "; ".join(sorted(sources)) or "no face")
