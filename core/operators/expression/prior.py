"""The deformation prior on the face mesh: which points may move, how stiffly, and how smoothly.

Points (478, MediaPipe's order). Displacements d_i are in image pixels; F is the face height (core.face.face_size).
- Held (d = 0, not variables): the skull — the face oval from ear to ear over the forehead, the forehead more
  than FOREHEAD_GAP·F above the brows (unless the brows move: then its skin follows them, stiffly), the nose
  bridge; and the lower face contour (the jaw line) unless the jaw is asked to move.
- Irises move rigidly: one translation per eye, free only when the gaze is edited, else held.
- Mobility: each active control names the features it acts on (DRIVERS: the smile the lips, cheeks, nasolabial
  folds and lower lids, the brows the brows and upper lids, ...). A point's mobility m_i = exp(-r²/2σ²), with r its
  distance to the nearest driver point and σ = REACH·F, is 1 on the features and falls off around them; its
  stiffness κ_i = STIFF·(1 - m_i) keeps the rest of the face where it is.
- Smoothness: a membrane on the mesh's edges (the Delaunay triangulation of the 468 points, without the triangles
  that span the mouth or an eye opening, so lips and lids part freely): the mean of (|d_a - d_b| / ℓ_ab)², the
  squared strain of each edge of rest length ℓ.
Energy (dimensionless):
    E = MEMBRANE · mean_edges (|d_a - d_b| / ℓ_ab)² + Σ_i κ_i |d_i / F|² / 478 + CAP · Σ_i relu(|d_i|/F - MAX_MOVE)²
with κ_i = STIFF·(1 - m_i) + FLOOR (each iris counted once, with FLOOR). Without the last term it is the quadratic
form Σ_c d_cᵀ Q d_c over the x and y columns (`quadratic`), which the solve uses to precondition.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterable, List

import numpy as np

from ...face import topology as T
from .coefficients import LEFT_IRIS, MESH_POINTS, RIGHT_IRIS

MEMBRANE = 2e-3        # weight of the mean squared edge strain
STIFF = 4.0            # stiffness of points far from every active feature (× |d/F|²)
REACH = 0.07           # × F: how far mobility reaches around a control's features
MAX_MOVE = 0.05        # × F: no landmark moves further than this (about 8 mm on an adult) without a steep cost
CAP = 1e3
FLOOR = 0.5          # × |d/F|²: the least stiffness of any variable (the irises' own), keeps Q positive definite
FOREHEAD_GAP = 0.06    # × F: mesh points this far above the brows are skull (held)
NOSE_BRIDGE = [168, 6, 197, 195, 5]

_LOWER_LIDS = T.RIGHT_LOWER_LID + T.LEFT_LOWER_LID
_UPPER_LIDS = T.RIGHT_UPPER_LID + T.LEFT_UPPER_LID
_LIPS = T.LIPS_OUTER + T.LIPS_INNER
_BROWS = T.RIGHT_BROW + T.LEFT_BROW
# The features each control (or family of named coefficients) acts on.
DRIVERS: Dict[str, List[int]] = {
    "smile": _LIPS + T.RIGHT_CHEEK + T.LEFT_CHEEK + T.RIGHT_NASOLABIAL + T.LEFT_NASOLABIAL + _LOWER_LIDS,
    "brows": _BROWS + _UPPER_LIDS,
    "eyes": _UPPER_LIDS + _LOWER_LIDS,
    "gaze_x": [], "gaze_y": [],
    "jaw": _LIPS + T.JAW_LINE,
    "mouth": _LIPS + T.RIGHT_CHEEK + T.LEFT_CHEEK + T.RIGHT_NASOLABIAL + T.LEFT_NASOLABIAL + T.NOSE_BASE,
    "neutralize": _LIPS + T.RIGHT_CHEEK + T.LEFT_CHEEK + T.RIGHT_NASOLABIAL + T.LEFT_NASOLABIAL + _BROWS
    + _UPPER_LIDS + _LOWER_LIDS + T.JAW_LINE,
}
GAZE = ("gaze_x", "gaze_y")


def family(coefficient: str) -> str:
    """The DRIVERS entry a named coefficient acts through."""
    if coefficient.startswith("brow"):
        return "brows"
    if coefficient.startswith("eyeLook"):
        return "gaze_x"
    if coefficient.startswith("eye"):
        return "eyes"
    if coefficient.startswith("jaw"):
        return "jaw"
    return "mouth"     # mouth*, cheek*, noseSneer*


@dataclass
class Prior:
    rest: np.ndarray          # 478×2 rest positions, px
    scale: float              # F, px
    variable: np.ndarray      # 478 bools: non-iris points that may move
    stiffness: np.ndarray     # 478 κ_i
    edges: np.ndarray         # E×2 indices into the 468 mesh points
    rest_length: np.ndarray   # E, px
    irises_free: bool         # the two iris translations are variables


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over pts (N×2)."""
    x, y = pts[:, 0:1], pts[:, 1:2]
    a, b = poly, np.roll(poly, -1, axis=0)
    cross = ((a[:, 1] > y) != (b[:, 1] > y))
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (cross & (x < xi)).sum(axis=1) % 2 == 1


def mesh_edges(rest: np.ndarray) -> np.ndarray:
    """Edges of the Delaunay triangulation of the 468 mesh points, minus triangles whose centroid lies in the
    mouth opening (inner lips) or an eye opening (sorted, unique index pairs)."""
    from scipy.spatial import Delaunay

    pts = np.asarray(rest, np.float64)[:468, :2]
    tri = Delaunay(pts).simplices
    centroids = pts[tri].mean(axis=1)
    gap = np.zeros(len(tri), bool)
    for hole in (T.LIPS_INNER, T.RIGHT_EYE, T.LEFT_EYE):
        gap |= _inside(pts[hole], centroids)
    tri = tri[~gap]
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def held_points(rest: np.ndarray, scale: float, jaw_free: bool, forehead_free: bool = False) -> np.ndarray:
    """478 bools: the skull (upper face oval, forehead, nose bridge) and, unless jaw_free, the jaw line. With
    forehead_free (the brows move) the forehead's skin above them is not held: it follows the brows, stiffly,
    up to the face oval (held 2 mm above the brows it was stretched into a visible line)."""
    pts = np.asarray(rest, np.float64)[:, :2]
    held = np.zeros(MESH_POINTS, bool)
    held[T.FACE_OVAL] = True
    if jaw_free:
        held[T.JAW_LINE] = False
    # "Above" along the face's own vertical (the eye line's normal), so a tilted head is treated alike.
    ex = pts[T.LEFT_EYE_CORNERS[0]] - pts[T.RIGHT_EYE_CORNERS[0]]
    ex /= np.linalg.norm(ex) + 1e-12
    ey = np.array([-ex[1], ex[0]])       # points down the face (y down)
    rel = (pts - pts[T.RIGHT_BROW + T.LEFT_BROW].mean(axis=0)) @ ey
    brow_rel = (pts[T.RIGHT_BROW + T.LEFT_BROW] - pts[T.RIGHT_BROW + T.LEFT_BROW].mean(axis=0)) @ ey
    if not forehead_free:
        held[:468] |= rel[:468] < brow_rel.min() - FOREHEAD_GAP * scale
    held[NOSE_BRIDGE] = True
    held[RIGHT_IRIS + LEFT_IRIS] = True     # irises: rigid translations, handled apart
    return held


def build(rest: np.ndarray, scale: float, families: Iterable[str]) -> Prior:
    """The prior for a face at rest (478×2 or ×3 px) whose active controls (or named-coefficient families)
    are `families`."""
    fams = list(dict.fromkeys(families))
    pts = np.asarray(rest, np.float64)[:, :2]
    held = held_points(pts, scale, jaw_free=any(f in ("jaw", "neutralize") for f in fams),
                       forehead_free=any(f in ("brows", "neutralize") for f in fams))
    drivers = sorted({i for f in fams for i in DRIVERS[f]})
    if drivers:
        d2 = ((pts[:, None, :] - pts[None, drivers, :]) ** 2).sum(axis=2).min(axis=1)
        mobility = np.exp(-d2 / (2.0 * (REACH * scale) ** 2))
    else:
        mobility = np.zeros(MESH_POINTS)
    edges = mesh_edges(pts)
    length = np.linalg.norm(pts[edges[:, 0]] - pts[edges[:, 1]], axis=1)
    return Prior(rest=pts, scale=float(scale), variable=~held, stiffness=STIFF * (1.0 - mobility) + FLOOR,
                 edges=edges, rest_length=np.maximum(length, 1e-3 * scale),
                 irises_free=any(f in GAZE for f in fams))


@contextmanager
def one_thread():
    """torch on one CPU thread for the small dense algebra here (a few hundred unknowns): more threads only spin
    against each other on a busy machine (numpy's own BLAS, two spinning threads, was 10-20× slower there)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def solve_dense(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a⁻¹ b for a symmetric positive definite `a` (float64, torch on one thread)."""
    import torch

    with one_thread():
        ta = torch.from_numpy(np.ascontiguousarray(a, np.float64))
        chol = torch.linalg.cholesky(ta)
        return torch.cholesky_solve(torch.from_numpy(np.ascontiguousarray(b, np.float64)), chol).numpy()


def cholesky_upper(a: np.ndarray) -> np.ndarray:
    """R with a = RᵀR (upper triangular; torch on one thread)."""
    import torch

    with one_thread():
        return torch.linalg.cholesky(torch.from_numpy(np.ascontiguousarray(a, np.float64))).T.contiguous().numpy()


def quadratic(prior: Prior) -> np.ndarray:
    """Q (n×n, n = the variable points, the two irises appended when free) with E_quadratic = Σ_c d_cᵀ Q d_c
    over the two coordinates c: the membrane and the stiffness terms of the energy on the variables (held points
    are 0). Positive definite: every stiffness is at least FLOOR, which bounds points without neighbours (the
    irises)."""
    idx = np.flatnonzero(prior.variable)
    n = len(idx) + (2 if prior.irises_free else 0)
    pos = -np.ones(MESH_POINTS, np.int64)
    pos[idx] = np.arange(len(idx))
    q = np.zeros((n, n))
    a, b = pos[prior.edges[:, 0]], pos[prior.edges[:, 1]]
    w = MEMBRANE / len(prior.edges) / prior.rest_length ** 2
    both, only_a, only_b = (a >= 0) & (b >= 0), (a >= 0) & (b < 0), (a < 0) & (b >= 0)
    np.add.at(q, (a[both], a[both]), w[both])
    np.add.at(q, (b[both], b[both]), w[both])
    np.add.at(q, (a[both], b[both]), -w[both])
    np.add.at(q, (b[both], a[both]), -w[both])
    np.add.at(q, (a[only_a], a[only_a]), w[only_a])     # an edge to a held point pulls toward 0
    np.add.at(q, (b[only_b], b[only_b]), w[only_b])
    diag = np.full(n, FLOOR)
    diag[:len(idx)] = prior.stiffness[idx]
    q[np.arange(n), np.arange(n)] += diag / (MESH_POINTS * prior.scale ** 2)
    return q


def cap_energy(prior: Prior, d):
    """The steep cost of moving any point further than MAX_MOVE·F (torch, d 478×2 px)."""
    import torch

    move = d.square().sum(1).clamp_min(1e-18).sqrt() / prior.scale
    return CAP * torch.relu(move - MAX_MOVE).square().sum()


def variables_of(prior: Prior, displacement: np.ndarray) -> np.ndarray:
    """The variables (n×2, `quadratic`'s order) of a 478×2 displacement: its variable points, then the irises'
    mean translations when they are free."""
    d = np.asarray(displacement, np.float64)
    parts = [d[prior.variable]]
    if prior.irises_free:
        parts.append(np.stack([d[RIGHT_IRIS].mean(axis=0), d[LEFT_IRIS].mean(axis=0)]))
    return np.concatenate(parts)


def assemble(prior: Prior, free, irises):
    """The 478×2 displacement from the variables: `free` (n_variable×2) and `irises` (2×2 or None)."""
    import torch

    d = torch.zeros((MESH_POINTS, 2), dtype=free.dtype)
    d = d.index_put((torch.as_tensor(np.flatnonzero(prior.variable)),), free)
    if irises is not None:
        d = d.index_put((torch.as_tensor(RIGHT_IRIS),), irises[0].expand(5, 2))
        d = d.index_put((torch.as_tensor(LEFT_IRIS),), irises[1].expand(5, 2))
    return d
