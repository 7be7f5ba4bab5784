"""expression: move a face through an expression space (smile, brows, eyes, gaze, jaw) while keeping its identity.

Stages (one module each):
- coefficients.py: the 478-point mesh from the face service and its 52 expression coefficients from MediaPipe's
  blendshape network (core.models.blendshapes);
- controls.py: the user's controls as target coefficients (each control pulls its coefficients the fraction |v| of
  the way toward 1 or 0);
- prior.py: the deformation prior on the mesh (skull, face contour and nose bridge held; irises rigid; mobility
  around the features each control acts on; a membrane on the mesh's edges);
- solve.py: landmark displacements that reach the targets through the network (the action units alone by
  Gauss-Newton, with a free part by L-BFGS and autograd), the other coefficients held, under the prior;
- action_units.py: without the blendshape network, displacements from facial anatomy (FACS action units) under
  the same prior;
- deform.py: the dense fold-free field (thin-plate spline on a coarse grid, densified, Jacobian-clamped, tapered to
  zero at 1.5 × the face box) and its bicubic resampling at full resolution;
- verify.py: the landmark and blendshape models run again on each candidate (read from the region around the
  face: a candidate is warped in its ROI alone, the picture composed once); the info reports what was achieved.

Scale: F = the face's height in pixels (core.face.face_size); every length is a fraction of it, so 1 MP and 24 MP
shots of a face are edited alike.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ... import registry
from ...errors import UserError
from ...face import topology
from ...registry import Context, Input, Operator, Output, Param
from . import action_units, coefficients, controls, deform, prior, solve, verify

PATH_MODEL = "blendshape model"
PATH_FALLBACK = "action units (no blendshape model)"
UNITS_ENOUGH = 0.6    # the action units alone predicted at least this share of the request: no free part
FOLLOW_GOOD = 0.8     # the landmark model followed at least this share of the displacement: no correction
FOLLOW_FLOOR = 0.4    # a correction never scales the displacement by more than 1 / this
GENTLE_DET = 0.35     # nor squeezes any area below this share of its size
MIN_CORRECTION = 1.1  # a correction scaling the displacement by less than this is not worth its warp and passes


def _faces(image: np.ndarray, ctx: Context, index: int) -> List:
    from ... import face

    found = [f for f in face.detect_faces(image, device=ctx.device) if f.landmarks is not None]
    if not found:
        raise UserError("no face found in the picture: expression edits a face", "no-face")
    found.sort(key=lambda f: -face.face_size(f.landmarks))
    if index < 0:
        return found
    if index >= len(found):
        raise UserError(f"face {index} asked for but {len(found)} face(s) found (0 = the largest)", "bad-parameter")
    return [found[index]]


def _families(req: controls.Request) -> List[str]:
    return list(req.controls) + [prior.family(n) for n in req.named]


def _units(req: controls.Request) -> List[str]:
    """The action units the solve may use: each active control's units on its value's side, and all of them
    for neutralize or a named coefficient."""
    if "neutralize" in req.controls or req.named:
        return list(action_units.ALL_UNITS)
    out = []
    for c, v in req.controls.items():
        pos, neg = action_units.CONTROL_UNITS[c]
        out += [u for u in action_units.sided(pos if v > 0 else neg) if u not in out]
    return out


def _follow(mesh, measured, displacement) -> float:
    """How far the landmark model followed the warp: the least-squares ratio Σ Δ·d / Σ d·d of the measured
    landmark movement Δ to the displacement d, over the points that moved at least a quarter of the most."""
    d = np.asarray(displacement, np.float64)
    mag = np.linalg.norm(d, axis=1)
    if mag.max() <= 0:
        return 1.0
    on = mag >= 0.25 * mag.max()
    delta = (np.asarray(measured, np.float64) - np.asarray(mesh, np.float64))[:, :2]
    return float((delta[on] * d[on]).sum() / (d[on] * d[on]).sum())


def _predicted_fraction(before, predicted, req) -> float:
    asked = req.target - before
    ok = req.targeted & (np.abs(asked) >= 0.02)
    return float(np.mean((predicted - before)[ok] / asked[ok])) if ok.any() else 1.0


def _fraction(before, measured_mesh, req) -> float:
    """The measured share of the asked change (mean over the targeted coefficients asked to move by 0.02 or
    more; 0 when the landmarks could not be measured)."""
    if measured_mesh is None:
        return 0.0
    change = coefficients.measure(measured_mesh) - before
    asked = req.target - before
    ok = req.targeted & (np.abs(asked) >= 0.02)
    return float(np.mean(change[ok] / asked[ok])) if ok.any() else 1.0


def _model_path(base, f, mesh, size, p, ctx, job):
    """Measure, solve, warp, measure the result; then once more with the displacement scaled by how far the
    landmark model followed it (it follows a small warp only partly, typically half; what it measures is what
    the coefficients are), kept if the measured change comes closer to the request. Returns (result, field,
    displacement, facts, coefficients before, request, the result's measured mesh); `base` is written in place."""
    before = coefficients.measure(mesh)
    req = controls.request(before, p)
    pr = prior.build(mesh, size, _families(req))
    names = _units(req)
    units = np.stack([action_units.unit_field(mesh, size, pr, u) for u in names]) if names else np.zeros((0, 478, 2))
    if req.named:
        sol = solve.solve(mesh, req.target, req.targeted, pr, units, free_cost=solve.FREE_COST_NAMED)
    else:
        # The action units alone first; the free part only where they cannot reach the request (measured on the
        # astronaut: her lids with a free part moved so the network said "squint" and the landmark model on the
        # result said the opposite; her smile's corners cannot lift without the free part balancing mouthPress).
        sol = solve.solve(mesh, req.target, req.targeted, pr, units, free_cost=None)
        if _predicted_fraction(before, sol.predicted, req) < UNITS_ENOUGH:
            alt = solve.solve(mesh, req.target, req.targeted, pr, units, free_cost=solve.FREE_COST)
            if _predicted_fraction(before, alt.predicted, req) > _predicted_fraction(before, sol.predicted, req):
                sol = alt
    job.progress(0.35, "landmark displacements solved")
    d = sol.displacement
    # Candidates are warped in the ROI alone and measured on the region around the face (verify.remeasure_patch):
    # the picture is composed once, from the one kept.
    fld = deform.build_field(mesh, d, base.shape, size, p["warp"])
    patch = deform.warp_roi(base, fld)
    facts = {"solve_network_passes": sol.evaluations, "free_part": bool(np.abs(sol.free).max() > 0),
             "landmark_follow": None, "correction": 1.0,
             "action_units": dict(zip(names, np.round(sol.alpha, 3).tolist()))}
    job.progress(0.5, "warped")
    measured = verify.remeasure_patch(base, patch, fld.roi, f, mesh, ctx.device)
    if measured is not None and req.targeted.any():
        follow = _follow(mesh, measured, d * fld.scale)
        facts["landmark_follow"] = round(follow, 3)
        if follow < FOLLOW_GOOD:
            cap = prior.MAX_MOVE * size / max(float(np.linalg.norm(d, axis=1).max()), 1e-9)
            # ... and gently: no area squeezed below GENTLE_DET by the scaling (at 0.44 a lowered brow pressed
            # against the lid already showed as a drawn line)
            gentle = deform.max_scale(fld, min(GENTLE_DET, fld.min_det))
            k = min(1.0 / max(follow, FOLLOW_FLOOR), max(cap, 1.0), max(gentle, 1.0))
            if k >= MIN_CORRECTION:
                fld2 = deform.build_field(mesh, d * k, base.shape, size, p["warp"])
                patch2 = deform.warp_roi(base, fld2)
                job.progress(0.7, "corrected by the measured following")
                measured2 = verify.remeasure_patch(base, patch2, fld2.roi, f, mesh, ctx.device)
                if _fraction(before, measured2, req) > _fraction(before, measured, req):
                    patch, fld, d, measured = patch2, fld2, d * k, measured2
                    facts["correction"] = round(k, 3)
    return deform.paste(base, fld, patch), fld, d, facts, before, req, measured


def _one_face(out, f, p, ctx, use_model: bool, job):
    from ...face import face_size

    mesh = coefficients.mesh478(f.landmarks, f.irises)
    size = face_size(mesh)
    facts: Dict[str, Any] = {"face_px": round(size, 1), "box": [round(v, 1) for v in deform.face_box(mesh)]}
    if use_model:
        out, fld, displacement, more, before, req, measured = _model_path(out, f, mesh, size, p, ctx, job)
        facts.update(more)
    else:
        before, req, measured = None, None, None
        displacement = action_units.displacement(mesh, size, p)
        job.progress(0.4, "action-unit displacements built")
        fld = deform.build_field(mesh, displacement, out.shape, size, p["warp"])
        out = deform.paste(out, fld, deform.warp_roi(out, fld))
    facts.update({"max_landmark_move_px": round(float(np.linalg.norm(displacement, axis=1).max() * fld.scale), 3),
                  "min_jacobian": round(fld.min_det, 4), "fold_clamped": fld.scale < 1.0,
                  "clamp_factor": round(fld.scale, 4), "grid_step_px": fld.step})
    return out, facts, mesh, before, req, measured


def run(inputs: Dict[str, Any], p: Dict[str, Any], ctx: Context) -> Output:
    image = inputs["image"]
    job = ctx.job
    named = controls.parse_blendshapes(p["blendshape"])   # a bad item fails before any work
    if controls.is_identity(p):
        job.progress(0.5, "no change asked")
        return Output(np.array(image, np.float32, copy=True), info={"path": "none (every control is 0)"})
    use_model = coefficients.available()
    if not use_model and (p["neutralize"] or named):
        raise UserError("neutralize and --blendshape need the blendshape model: run 'python -m core models fetch "
                        "mediapipe-blendshapes'", "missing-model")
    faces = _faces(image, ctx, p["face"])
    job.progress(0.2, f"{len(faces)} face(s) to edit")
    out = np.array(image, np.float32, copy=True)
    per_face = []
    for k, f in enumerate(faces):
        sub = job.sub(0.2 + 0.6 * k / len(faces), 0.2 + 0.6 * (k + 1) / len(faces))
        out, facts, mesh, before, req, measured = _one_face(out, f, p, ctx, use_model, sub)
        sub.progress(1.0, "face edited")
        per_face.append((f, facts, mesh, before, req, measured))
    infos = []
    for f, facts, mesh, before, req, measured in per_face:
        # One face: its result was measured already; several: measure each on the final picture.
        after_mesh = measured if measured is not None and len(per_face) == 1 else verify.remeasure(out, f, ctx.device)
        if after_mesh is not None:
            moves = verify.landmark_moves(mesh, after_mesh)
            facts["measured_mouth_corner_moves_px"] = np.round(moves[list(topology.MOUTH_CORNERS)], 3).tolist()
            if use_model:
                after = coefficients.measure(after_mesh)
                facts.update(verify.report(before, after, req.targeted, req.requested(before)))
        infos.append(facts)
    job.progress(0.95, "verified")
    info = {"path": PATH_MODEL if use_model else PATH_FALLBACK, "faces": infos if len(infos) > 1 else infos[0]}
    return Output(out, info=info)


def demo(image: np.ndarray, seed: int):
    """Portrait demo: a little more smile and lifted brows on the astronaut."""
    return {"image": image}, {"smile": 0.5, "brows": 0.3}


def _control(name: str, help: str, title: str = "") -> Param:
    return Param(name, "float", 0.0, help, min=-1.0, max=1.0, step=0.05, title=title)


PARAMS = (
    _control("smile", "more (+) or less (-) smile: the fraction of the way to a full smile (mouthSmile = 1) or to "
             "none; - also brings in a frown"),
    _control("brows", "lift (+) or lower (-) the brows, as a fraction of the way to fully raised / lowered"),
    _control("eyes", "open the eyes wider (+) or relax them with a slight lid tightening (-)"),
    _control("gaze_x", "turn the eyes toward the image's right (+) or left (-)", "Gaze x"),
    _control("gaze_y", "turn the eyes up (+) or down (-)", "Gaze y"),
    _control("jaw", "open (+) or close (-) the mouth, within what a warp can show (no new teeth are drawn)"),
    _control("neutralize", "move every expression coefficient toward 0 (+, a neutral face) or exaggerate the "
             "present expression (-), by this fraction"),
    Param("blendshape", "string", [], "advanced: change one expression coefficient by name, NAME=VALUE with VALUE "
          "a change in -1..1 (e.g. mouthSmileLeft=0.2; names as MediaPipe's 52 blendshapes); repeatable",
          repeat=True, advanced=True),
    Param("face", "int", 0, "which face: 0 = the largest, 1 = the next largest, ...; -1 = every face", min=-1,
          max=1000, step=1),
    Param("warp", "choice", "tps", "the dense warp through the moved landmarks: thin-plate spline (smoothest) or "
          "moving least squares (rigid / similarity)", choices=("tps", "rigid", "similarity"), advanced=True),
)

registry.register(Operator(
    name="expression",
    title="Expression",
    help="edit a face's expression (smile, brows, eyes, gaze, jaw) with small warps that keep its identity",
    inputs=(Input("image", "image", "the portrait"),),
    params=PARAMS,
    run=run,
    demo=demo,
    models=("mediapipe-blazeface", "mediapipe-facemesh", "mediapipe-iris", "mediapipe-blendshapes"),
    order=90,
))
