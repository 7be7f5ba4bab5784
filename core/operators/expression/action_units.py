"""Displacement fields of the mesh from facial anatomy (FACS action units): the fallback without the blendshape
network, and with it the anatomical directions the solve prefers.

The face's own frame: e_x along the eye line (subject's right eye toward the left, image left to right when
upright), e_y its normal toward the chin. "Up" is -e_y; "out" points away from the midline on each side.
Each unit is defined at full strength by the points it drives and how far (fractions of F, the face height):

    unit            FACS                                 points driven                 movement
    corner_puller   AU12 lip corner puller               mouth corners (outer, inner)  0.035 F up-and-out, 33°
    cheek_raiser    AU6 cheek raiser (Duchenne)          cheeks / lower lids           0.012 F / 0.004 F up
    corner_depress  AU15 lip corner depressor            mouth corners                 0.03 F down (slightly in)
    brow_raiser     AU1 + AU2 inner and outer brow       brows / upper lids            0.03 F / 0.006 F up
                    raiser                               forehead                      the brows', fading upward
    brow_lowerer    AU4 brow lowerer                     brows / upper lids            0.02 F down, 0.015 F inward
                                                                                   at the inner end, half that
                                                                                   at the outer end /
                                                                                   0.004 F down
                                                         forehead                      the brows', fading upward
    lid_raiser      AU5 upper lid raiser                 upper / lower lids            0.008 F up / 0.002 F down
    lid_tightener   AU7 lid tightener                    lower / upper lids            0.006 F up / 0.003 F down
    gaze_x          eye movement                         irises (rigid)                0.09 × eye width along e_x
    gaze_y          eye movement (the lids follow)       irises / upper / lower lids   0.05 / 0.045 / 0.02 × eye
                                                                                   width up
    jaw_drop        AU26 jaw drop                        below the mouth, to the chin  0.04 F down, ramped
    lips_close      AU24-like, lips toward each other    lower lip and below           0.8 × the opening, up
Lid movements follow a sine profile along the lid (0 at the corners). Measured on the astronaut's smiling face: a
depressor pulling the corners slightly out (as AU15 alone does) widened her open mouth and showed more teeth, a
bigger grin; slightly in, toward the relaxed mouth, it reads as less smile. With the upper lid following a vertical
gaze by 0.6 of the iris's shift, the iris carried up crossed the lid margin and showed as a dark mark on the lid; at
0.9 (the lid follows vertical gaze nearly one to one in life) it stays under the lid. With the gaze, the lid margin
over the iris also follows the cornea's bulge: up to 0.7 of the iris's shift, fading out at 1.6 × the iris's radius.
Each unit's field meets its driven points with the least prior energy (prior.py's quadratic form plus a stiff
data term at the driven points): the neighbours follow smoothly, the skull stays.

Controls use them as:  smile + corner_puller, cheek_raiser | - corner_depress;  brows + brow_raiser |
- brow_lowerer;  eyes + lid_raiser | - lid_tightener;  gaze_x, gaze_y signed;  jaw + jaw_drop | - lips_close.
The bilateral units come as two, one per side of the face ("corner_puller:right" is the subject's right), so the
solve can balance an asymmetric face; the eyes turn together. The fallback applies |v| × each unit of the
control's side (summed over controls): both sides alike.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ...face import topology as T
from . import prior as P
from .coefficients import LEFT_IRIS, MESH_POINTS, RIGHT_IRIS

SMILE_CORNER, SMILE_CHEEK, SMILE_LID = 0.035, 0.012, 0.004
SMILE_ANGLE_DEG = 33.0
FROWN_CORNER = 0.03
BROW_RAISE, BROW_LID, BROW_LOWER, BROW_IN = 0.03, 0.006, 0.02, 0.015
LID_RAISE, LID_LOWER_OPEN, TIGHTEN_LOWER, TIGHTEN_UPPER = 0.008, 0.002, 0.006, 0.003
GAZE_X, GAZE_Y, GAZE_LID, GAZE_LOWER_LID = 0.09, 0.05, 0.045, 0.02
LID_ON_CORNEA, CORNEA_REACH = 0.7, 1.6
JAW_DROP, JAW_CLOSE = 0.04, 0.8
DATA_WEIGHT = 1e3     # × the largest diagonal entry of the prior's Q: the driven points are met

UNITS = ("corner_puller", "cheek_raiser", "corner_depress", "brow_raiser", "brow_lowerer", "lid_raiser",
         "lid_tightener", "gaze_x", "gaze_y", "jaw_drop", "lips_close")
# control -> (units for v > 0, units for v < 0); a signed unit (gaze) is the same both ways, scaled by v.
CONTROL_UNITS = {
    "smile": (("corner_puller", "cheek_raiser"), ("corner_depress",)),
    "brows": (("brow_raiser",), ("brow_lowerer",)),
    "eyes": (("lid_raiser",), ("lid_tightener",)),
    "gaze_x": (("gaze_x",), ("gaze_x",)),
    "gaze_y": (("gaze_y",), ("gaze_y",)),
    "jaw": (("jaw_drop",), ("lips_close",)),
}
SIGNED = ("gaze_x", "gaze_y")
BILATERAL = ("corner_puller", "cheek_raiser", "corner_depress", "brow_raiser", "brow_lowerer", "lid_raiser",
             "lid_tightener")
SIDES = ("right", "left")


def sided(units) -> List[str]:
    """Unit names with each bilateral unit split into its two sides."""
    out = []
    for u in units:
        out += [f"{u}:{s}" for s in SIDES] if u in BILATERAL else [u]
    return out


ALL_UNITS = sided(UNITS)


def frame(mesh: np.ndarray):
    """(e_x, e_y, midline point) of the face."""
    pts = np.asarray(mesh)[:, :2]
    ex = pts[T.LEFT_EYE_CORNERS[0]] - pts[T.RIGHT_EYE_CORNERS[0]]
    ex = ex / (np.linalg.norm(ex) + 1e-12)
    ey = np.array([-ex[1], ex[0]])
    mid = (pts[T.LEFT_EYE_CORNERS[0]] + pts[T.RIGHT_EYE_CORNERS[0]]) / 2
    return ex, ey, mid


def _lid(lid) -> List:
    return list(zip(lid, np.sin(np.linspace(0.0, np.pi, len(lid)))))


def _forehead(pts: np.ndarray, ey: np.ndarray) -> List:
    """[(index, weight)] for the mesh points between the brows and the top of the face oval: the frontalis
    carries the skin above the brows with them, less toward the hairline: weight 1 - h / H, h the point's height
    above the brows' top, H the oval top's (along the face's vertical)."""
    brows = T.RIGHT_BROW + T.LEFT_BROW
    height = -(pts - pts[brows].mean(axis=0)) @ ey
    base = float(height[brows].max())
    top = float(height[T.FOREHEAD_TOP])
    oval = set(T.FACE_OVAL)
    return [(i, 1.0 - (height[i] - base) / (top - base)) for i in range(468)
            if i not in oval and base < height[i] < top]


def driven(mesh: np.ndarray, face_px: float, unit: str) -> Dict[int, np.ndarray]:
    """{point index: displacement (px)} of one unit at full strength (positive direction for gaze: toward the
    image's right, up)."""
    pts = np.asarray(mesh, np.float64)[:, :2]
    ex, ey, mid = frame(pts)
    up, F = -ey, face_px
    out: Dict[int, np.ndarray] = {}

    def add(i, vec):
        out[i] = out.get(i, np.zeros(2)) + np.asarray(vec, np.float64)

    def outward(i):
        return ex if (pts[i] - mid) @ ex > 0 else -ex

    if unit == "corner_puller":
        a = np.radians(SMILE_ANGLE_DEG)
        for i in (61, 291, 78, 308):
            add(i, SMILE_CORNER * F * (np.cos(a) * outward(i) + np.sin(a) * up))
    elif unit == "cheek_raiser":
        for i in T.RIGHT_CHEEK + T.LEFT_CHEEK:
            add(i, SMILE_CHEEK * F * up)
        for lid in (T.RIGHT_LOWER_LID, T.LEFT_LOWER_LID):
            for i, w in _lid(lid):
                add(i, SMILE_LID * F * w * up)
    elif unit == "corner_depress":
        for i in (61, 291, 78, 308):
            add(i, FROWN_CORNER * F * (0.96 * -up - 0.28 * outward(i)))
    elif unit == "brow_raiser":
        for i in T.RIGHT_BROW + T.LEFT_BROW:
            add(i, BROW_RAISE * F * up)
        for lid in (T.RIGHT_UPPER_LID, T.LEFT_UPPER_LID):
            for i, w in _lid(lid):
                add(i, BROW_LID * F * w * up)
        for i, w in _forehead(pts, ey):
            add(i, w * BROW_RAISE * F * up)
    elif unit == "brow_lowerer":
        # The corrugator and procerus pull the inner brow down and together; the outer end follows less.
        for brow in (T.RIGHT_BROW, T.LEFT_BROW):
            reach = np.abs((pts[brow] - mid) @ ex)
            inner = 1.0 - (reach - reach.min()) / max(float(np.ptp(reach)), 1e-9)
            for i, w in zip(brow, inner):
                add(i, F * (0.5 + 0.5 * w) * (BROW_LOWER * -up - BROW_IN * outward(i)))
        for lid in (T.RIGHT_UPPER_LID, T.LEFT_UPPER_LID):     # the lowered brow pushes the lid's fold down
            for i, w in _lid(lid):
                add(i, BROW_LID * BROW_LOWER / BROW_RAISE * F * w * -up)
        for i, w in _forehead(pts, ey):
            add(i, w * BROW_LOWER * F * -up)
    elif unit in ("lid_raiser", "lid_tightener"):
        upper, lower = (LID_RAISE, -LID_LOWER_OPEN) if unit == "lid_raiser" else (-TIGHTEN_UPPER, TIGHTEN_LOWER)
        for lids, amp in (((T.RIGHT_UPPER_LID, T.LEFT_UPPER_LID), upper),
                          ((T.RIGHT_LOWER_LID, T.LEFT_LOWER_LID), lower)):
            for lid in lids:
                for i, w in _lid(lid):
                    add(i, amp * F * w * up)
    elif unit in ("gaze_x", "gaze_y"):
        for iris, corners, lid in ((RIGHT_IRIS, T.RIGHT_EYE_CORNERS, T.RIGHT_UPPER_LID),
                                   (LEFT_IRIS, T.LEFT_EYE_CORNERS, T.LEFT_UPPER_LID)):
            width = float(np.linalg.norm(pts[corners[0]] - pts[corners[1]]))
            shift = width * (GAZE_X * ex if unit == "gaze_x" else GAZE_Y * up)
            for i in iris:
                add(i, shift)
            # The lid margin lies on the cornea's bulge and follows it: lid points over the iris move with up to
            # LID_ON_CORNEA of its shift, fading out at CORNEA_REACH × the iris's radius.
            c = pts[iris[0]]
            rim = float(np.linalg.norm(pts[iris[1:]] - c, axis=1).mean())
            eye = T.RIGHT_EYE if iris is RIGHT_IRIS else T.LEFT_EYE
            for i in eye:
                w = 1.0 - float(np.linalg.norm(pts[i] - c)) / (CORNEA_REACH * rim)
                if w > 0:
                    add(i, LID_ON_CORNEA * w * shift)
            if unit == "gaze_y":
                lower = T.RIGHT_LOWER_LID if lid is T.RIGHT_UPPER_LID else T.LEFT_LOWER_LID
                for ring, follow in ((lid, GAZE_LID), (lower, GAZE_LOWER_LID)):
                    for i, w in _lid(ring):
                        add(i, width * follow * w * up)
    elif unit in ("jaw_drop", "lips_close"):
        mouth = pts[[13, 14]].mean(axis=0)
        depth = max(float((pts[T.CHIN] - mouth) @ ey), 1e-6)
        gap = float((pts[14] - pts[13]) @ ey)
        lower_lip = set(T.LIPS_INNER[1:10]) | {14, 17, 84, 314, 87, 317}
        for i in range(468):
            t = float((pts[i] - mouth) @ ey) / depth
            if t <= 0 and i not in lower_lip:
                continue
            t = float(np.clip(t, 0.0, 1.0))
            w = 0.8 + 0.2 * t if i in T.LIPS_OUTER + T.LIPS_INNER else t
            if unit == "jaw_drop":
                add(i, JAW_DROP * F * w * -up)
            elif gap > 0:
                add(i, JAW_CLOSE * gap * w * up)
    else:
        raise ValueError(f"unknown action unit {unit}")
    return out


def extend(pr: P.Prior, drive: Dict[int, np.ndarray]) -> np.ndarray:
    """478×2: the driven points met (where they are variables), the rest by the least prior energy."""
    q = P.quadratic(pr)
    idx = np.flatnonzero(pr.variable)
    pos = {int(i): k for k, i in enumerate(idx)}
    a = np.zeros(len(q))
    rhs = np.zeros((len(q), 2))
    weight = DATA_WEIGHT * float(np.diag(q).max())
    for i, g in drive.items():
        if i in pos:
            a[pos[i]] = weight
            rhs[pos[i]] = weight * g
    if pr.irises_free:
        for k, iris in enumerate((RIGHT_IRIS, LEFT_IRIS)):
            if iris[0] in drive:
                a[len(idx) + k] = weight
                rhs[len(idx) + k] = weight * drive[iris[0]]
    sol = P.solve_dense(q + np.diag(a), rhs)
    d = np.zeros((MESH_POINTS, 2))
    d[idx] = sol[:len(idx)]
    if pr.irises_free:
        d[RIGHT_IRIS] = sol[len(idx)]
        d[LEFT_IRIS] = sol[len(idx) + 1]
    return d


def unit_field(mesh: np.ndarray, face_px: float, pr: P.Prior, unit: str) -> np.ndarray:
    """The field of `unit` ('name' or 'name:right' / 'name:left' for one side of a bilateral unit)."""
    name, _, side = unit.partition(":")
    drive = driven(mesh, face_px, name)
    if side:
        ex, _, mid = frame(mesh)
        pts = np.asarray(mesh, np.float64)[:, :2]
        # The subject's right is the image's left: negative along e_x from the midline.
        drive = {i: g for i, g in drive.items() if ((pts[i] - mid) @ ex < 0) == (side == "right")}
    return extend(pr, drive)


def control_units(params) -> List[tuple]:
    """[(unit, strength)] for the active controls: |v| for the side's units, v for a signed unit."""
    out = []
    for control, (pos, neg) in CONTROL_UNITS.items():
        v = float(params.get(control) or 0.0)
        if v:
            for u in (pos if v > 0 else neg):
                out.append((u, v if u in SIGNED else abs(v)))
    return out


def displacement(mesh: np.ndarray, face_px: float, params) -> np.ndarray:
    """The fallback: 478×2 px, Σ strength × unit field over the active controls' units."""
    families = [c for c in CONTROL_UNITS if float(params.get(c) or 0.0)]
    pr = P.build(mesh, face_px, families)
    d = np.zeros((MESH_POINTS, 2))
    for unit, strength in control_units(params):
        d += strength * unit_field(mesh, face_px, pr, unit)
    return d
