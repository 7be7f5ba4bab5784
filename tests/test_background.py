"""background: matte, foreground colour, depth of field, perspective, colour, light wrap and grain against exact
ground truth.

The matte scene: a synthetic head and shoulders with ~140 hair strands 0.5-1 px wide (supersampled coverage, so
their alpha is known and fractional), photographed over one plate (an out-of-focus green backdrop) and, for the
ground truth, over another (a blue sky), both in linear light, so that I = αF + (1 − α)A exactly. The rough mask
is what a segmentation or a quick brush gives: the subject's alpha blurred and thresholded, which misses the
strands and cuts the hair's outline roughly. (The scene lives here, not in tests/scenes.py, to keep this
operator's files together; it can move there.)
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from core import registry
from core.cli import main as cli_main
from core.errors import UserError
from core.imaging import colorimetry
from core.imaging.color import linear_to_srgb, srgb_to_linear
from core.imaging.io import write_image
from core.operators.background import demo_plate, plate, subject as subject_stage
from core.optics import thin_lens
from tests import scenes

OFF = {"match_color": 0.0, "light_wrap": 0.0, "match_grain": 0.0}
SHARP = {"f_number": 64.0, "subject_distance": 2.0, "background_distance": 10.0}  # CoC 0.3 px: no blur


# ------------------------------------------------------------------------------------------------ the scene

def smooth_plate(h: int, w: int, seed: int, base, spread: float, sigma_px: float) -> np.ndarray:
    """A linear-light plate: a colour with smooth variation (an out-of-focus backdrop), H×W×3 in (0, 1]."""
    t = cv2.GaussianBlur(scenes.texture(h, w, seed), (0, 0), sigma_px)
    t = (t - t.mean()) / (t.std() + 1e-6)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.clip(np.float32(base) * (1 + spread * t) * (0.8 + 0.4 * yy), 0.002, 1.0).astype(np.float32)


def strand_subject(h: int, w: int, seed: int = 0, n_strands: int = 140, ss: int = 4):
    """(alpha, foreground linear colour, body alpha): head, neck and shoulders with hair strands on top."""
    rng = np.random.default_rng(seed)
    H, W = h * ss, w * ss
    body = np.zeros((H, W), np.uint8)
    cx, cy, ax, ay = 0.5 * W, 0.42 * H, 0.2 * W, 0.26 * H
    cv2.ellipse(body, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, 1, -1)
    cv2.rectangle(body, (int(cx - 0.08 * W), int(cy)), (int(cx + 0.08 * W), int(0.85 * H)), 1, -1)
    cv2.ellipse(body, (int(cx), int(H * 1.05)), (int(0.42 * W), int(0.32 * H)), 0, 0, 360, 1, -1)
    strands = np.zeros((H, W), np.uint8)
    for _ in range(n_strands):
        t = rng.uniform(np.pi * 1.05, np.pi * 1.95)          # the upper half of the head
        x, y = cx + ax * np.cos(t) * 0.95, cy + ay * np.sin(t) * 0.95
        ang = t + rng.normal(0, 0.35)
        length = rng.uniform(0.03, 0.075) * W
        curl = rng.normal(0, 1.5) / length
        pts = []
        for _ in range(30):
            pts.append((x, y))
            ang += curl * length / 30
            x, y = x + np.cos(ang) * length / 30, y + np.sin(ang) * length / 30
        cv2.polylines(strands, [np.round(np.array(pts)).astype(np.int32)], False, 1,
                      thickness=int(rng.integers(2, 5)))

    def down(m):
        return m.reshape(h, ss, w, ss).astype(np.float32).mean(axis=(1, 3))
    a_body, a_str = down(body), down(strands) * 0.85      # strands let 15 % through where they cover a pixel
    alpha = 1 - (1 - a_body) * (1 - a_str)
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    tex = scenes.texture(h, w, seed + 7)
    f = np.empty((h, w, 3), np.float32)
    f[:] = (0.45, 0.26, 0.18)                               # skin
    f[yy > 0.72 * h] = (0.15, 0.2, 0.45)                    # shirt
    f = f * (0.85 + 0.3 * tex)
    hair = np.float32((0.09, 0.05, 0.025)) * (0.8 + 0.4 * tex)
    cap = (yy < 0.32 * h)[:, :, None]
    f = np.where(cap, hair, f)
    wh = np.clip(a_str / 0.85, 0, 1)[:, :, None]
    f = f * (1 - wh) + hair * wh
    return alpha.astype(np.float32), f.astype(np.float32), a_body.astype(np.float32)


def strand_scene(h: int = 256, w: int = 256, seed: int = 0):
    alpha, f, body = strand_subject(h, w, seed)
    old = smooth_plate(h, w, seed + 1, (0.18, 0.35, 0.08), 0.25, 12 * h / 256)
    new = smooth_plate(h, w, seed + 2, (0.35, 0.55, 0.9), 0.1, 10 * h / 256)
    a = alpha[:, :, None]
    photo = a * f + (1 - a) * old
    truth = a * f + (1 - a) * new
    rough = cv2.GaussianBlur(alpha, (0, 0), 4 * h / 256) > 0.3
    enc = lambda x: np.clip(linear_to_srgb(x), 0, 1).astype(np.float32)  # noqa: E731
    return {"alpha": alpha, "f": f, "body": body, "old": old, "new": new, "photo": enc(photo),
            "truth": enc(truth), "plate": enc(new), "rough": rough}


def leak_of_old_plate(result_srgb, sc, where):
    """Per pixel, the fraction k of the old plate left in the result: the residual against the truth, regressed
    on (old − new) and (F − new) together (the second soaks up plain alpha errors), k from the first."""
    res = srgb_to_linear(result_srgb)[where] - srgb_to_linear(sc["truth"])[where]
    d1 = (sc["old"] - sc["new"])[where]
    d2 = (sc["f"] - sc["new"])[where]
    m = np.stack([d1, d2], axis=2)
    mtm = np.einsum("nci,ncj->nij", m, m) + 1e-9 * np.eye(2)
    mtr = np.einsum("nci,nc->ni", m, res)
    return np.linalg.solve(mtm, mtr[:, :, None])[:, 0, 0]


def edge_band(sc, band_fraction: float = 0.04):
    h, w = sc["rough"].shape
    r = band_fraction * max(h, w)
    rough = sc["rough"].astype(np.uint8)
    d_in = cv2.distanceTransform(rough, cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform(1 - rough, cv2.DIST_L2, 5)
    return (np.where(rough > 0, d_in, d_out) <= r) | ((sc["alpha"] > 0) & (sc["alpha"] < 1))


def run_scene(sc, **params):
    inputs = {"image": sc["photo"], "background": sc["plate"], "subject_mask": sc["rough"].astype(np.float32)}
    return registry.run("background", inputs, {**SHARP, **OFF, **params})


# ------------------------------------------------------------------------------------------------ the matte

@pytest.fixture(scope="module", params=[256, 512], ids=["matte at full size", "matte upsampled"])
def matted(request):
    sc = strand_scene(request.param, request.param)
    comp = run_scene(sc)
    matte_only = run_scene(sc, result="matte")
    cut = run_scene(sc, result="cutout")
    return sc, comp, matte_only, cut


def test_soft_matte_beats_a_hard_mask_in_the_edge_band(matted):
    sc, comp, _, _ = matted
    band = edge_band(sc)
    hard = np.where(sc["rough"][:, :, None], sc["photo"], sc["plate"])
    ours_db = scenes.psnr(comp.image, sc["truth"], where=band)
    hard_db = scenes.psnr(hard, sc["truth"], where=band)
    print(f"edge band PSNR: ours {ours_db:.2f} dB, hard mask {hard_db:.2f} dB ({comp.info['matte_size']})")
    assert ours_db >= hard_db + 3.0


def test_matte_sad_at_most_half_the_hard_mask(matted):
    sc, _, matte_only, _ = matted
    est = matte_only.image[:, :, 0]
    sad, sad_hard = np.abs(est - sc["alpha"]).sum(), np.abs(sc["rough"] - sc["alpha"]).sum()
    print(f"alpha SAD: ours {sad:.0f}, hard mask {sad_hard:.0f} (ratio {sad / sad_hard:.3f})")
    assert sad <= 0.5 * sad_hard


def test_no_fringe_of_the_old_plate_on_the_strands(matted):
    sc, comp, matte_only, _ = matted
    strands = (sc["alpha"] > 0.05) & (sc["alpha"] < 0.95) & (sc["body"] < 0.5)
    hard = np.where(sc["rough"][:, :, None], sc["photo"], sc["plate"])
    # Pasting the photo itself with our own matte (no foreground colour estimated): the fringe to avoid.
    a = matte_only.image[:, :, :1]
    pasted = linear_to_srgb(a * srgb_to_linear(sc["photo"]) + (1 - a) * srgb_to_linear(sc["plate"]))
    ours = float(np.mean(leak_of_old_plate(comp.image, sc, strands)))
    naive = float(np.mean(leak_of_old_plate(pasted, sc, strands)))
    hard_k = float(np.mean(leak_of_old_plate(hard, sc, strands)))
    print(f"old plate left on the strands: ours {ours:.3f}, pasted photo {naive:.3f}, hard mask {hard_k:.3f}")
    assert hard_k > 0.2 and naive > 0.1          # the measure sees a fringe where there is one (α(1 − α) pasted)
    assert abs(ours) <= 0.05


def test_cutout_is_the_foreground_with_the_matte_as_alpha(matted):
    sc, _, matte_only, cut = matted
    assert cut.image.shape == sc["photo"].shape[:2] + (4,)
    assert np.array_equal(cut.image[:, :, 3], matte_only.image[:, :, 0])
    # Over the new plate, the cut-out gives the composite (linear "over").
    a = cut.image[:, :, 3:]
    over = linear_to_srgb(a * srgb_to_linear(cut.image[:, :, :3]) + (1 - a) * srgb_to_linear(sc["plate"]))
    band = edge_band(sc)
    assert scenes.psnr(over, sc["truth"], where=band) >= scenes.psnr(matted[1].image, sc["truth"], where=band) - 0.5
    core = matte_only.image[:, :, 0] >= 1.0
    # The subject's own pixels keep their colour (through the linear round trip of the cut-out's encoding).
    assert np.abs(cut.image[:, :, :3][core] - sc["photo"][core]).max() < 1e-5


# ------------------------------------------------------------------------------------------------ colour

def _lit(reflectance: np.ndarray, kelvin: float) -> np.ndarray:
    """Linear colours of reflectances under a light of `kelvin` (Planckian), its white at luminance 1."""
    light = colorimetry.xy_to_linear_srgb(colorimetry.cct_to_xy(kelvin), 1.0)
    return (reflectance * light.astype(np.float32)).astype(np.float32)


def test_match_color_moves_the_subjects_neutral_to_the_plates_white():
    h = w = 192
    yy, xx = np.mgrid[0:h, 0:w]
    subj = np.zeros((h, w), bool)
    subj[30:190, 40:152] = True
    refl = np.empty((h, w, 3), np.float32)
    # Exposed so that nothing clips under the warm light (its red is 1.68× its luminance).
    refl[:] = (0.3, 0.3, 0.3)                                    # a grey wall (the old background)
    refl[subj] = (0.5, 0.5, 0.5)                                 # a white-ish shirt: the brightest neutral
    refl[60:110, 60:132] = (0.45, 0.26, 0.2)                     # skin
    card = (yy >= 130) & (yy < 170) & (xx >= 70) & (xx < 122)
    refl[card] = (0.25, 0.25, 0.25)                              # a grey card on the subject
    photo = np.clip(linear_to_srgb(_lit(refl, 3200.0)), 0, 1)
    plate_refl = 0.4 + 0.15 * (scenes.texture(160, 240, 5) - 0.5)  # a neutral-on-average scene
    plate_refl = plate_refl.mean(axis=2, keepdims=True) * np.ones(3, np.float32)
    plate_srgb = np.clip(linear_to_srgb(_lit(plate_refl, 6500.0)), 0, 1)
    inputs = {"image": photo.astype(np.float32), "background": plate_srgb.astype(np.float32),
              "subject_mask": subj.astype(np.float32)}
    white = colorimetry.cct_to_xy(6500.0)
    for strength, expect in ((1.0, white), (0.0, None)):
        out = registry.run("background", inputs, {**SHARP, **OFF, "match_color": strength})
        card_lin = srgb_to_linear(out.image)[card].mean(axis=0)
        xy = colorimetry.linear_srgb_to_xy(card_lin)
        if expect is None:
            assert np.array_equal(out.image[card], photo[card].astype(np.float32))
            print(f"match 0: card unchanged (xy {xy[0]:.4f}, {xy[1]:.4f})")
        else:
            err = float(np.hypot(*(xy - expect)))
            print(f"match 1: card at xy {xy[0]:.4f}, {xy[1]:.4f}; plate white {expect[0]:.4f}, {expect[1]:.4f}; "
                  f"error {err:.4f}")
            assert err <= 0.01
            start = colorimetry.linear_srgb_to_xy(srgb_to_linear(photo)[card].mean(axis=0))
            assert float(np.hypot(*(start - expect))) > 0.05     # it had far to go


# ------------------------------------------------------------------------------------------------ depth of field

def _second_moment_diameter(img_lin: np.ndarray, cy: float, cx: float, r: int) -> float:
    """Diameter of a uniform disc with the same radial second moment as the light around (cy, cx):
    E[ρ²] = R²/2 for a disc of radius R."""
    y0, x0 = int(round(cy)) - r, int(round(cx)) - r
    patch = img_lin[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1].mean(axis=2)
    patch = patch - np.median(img_lin.mean(axis=2))
    patch = np.clip(patch, 0, None)
    yy, xx = np.mgrid[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1].astype(np.float64) + 0.5
    wsum = patch.sum()
    my, mx = (patch * yy).sum() / wsum, (patch * xx).sum() / wsum
    rho2 = (patch * ((yy - my) ** 2 + (xx - mx) ** 2)).sum() / wsum
    return 2.0 * math.sqrt(2.0 * rho2)


@pytest.mark.parametrize("f_number,background_m", [(2.0, 10.0), (4.0, 5.0), (1.4, 30.0)])
def test_background_blur_follows_the_thin_lens(f_number, background_m):
    h, w = 240, 360
    plate_img = np.full((h, w, 3), 0.05, np.float32)
    points = [(80.0, 120.0), (160.0, 250.0)]
    for y, x in points:
        plate_img[int(y), int(x)] = 1.0
    photo = np.full((h, w, 3), 0.5, np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[200:, :60] = 1.0                                       # a small subject in the corner
    params = {**OFF, "f_number": f_number, "background_distance": background_m, "subject_distance": 2.0,
              "focal_length": 85.0, "sensor_width": 36.0, "highlight_boost": 1.0}
    out = registry.run("background", {"image": photo, "background": plate_img, "subject_mask": mask}, params)
    expect = abs(float(thin_lens.ThinLens(85.0, f_number, 36.0).coc_px(np.float32(background_m), 2.0, w)))
    lin = srgb_to_linear(out.image)
    for y, x in points:
        got = _second_moment_diameter(lin, y + 0.5, x + 0.5, int(expect * 0.8) + 4)
        print(f"f/{f_number:g}, background {background_m:g} m: blur diameter {got:.2f} px, thin lens "
              f"{expect:.2f} px ({out.info['render_reduction']}x reduced)")
        assert abs(got - expect) <= 0.1 * expect


def test_a_plate_depth_map_blurs_near_parts_less():
    h, w = 200, 300
    plate_img = np.full((h, w, 3), 0.05, np.float32)
    plate_img[60, 75] = plate_img[60, 225] = 1.0
    depth = np.full((h, w), 40.0, np.float32)
    depth[:, :150] = 4.0                                          # left half near, right half far
    photo = np.full((h, w, 3), 0.5, np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[170:, :40] = 1.0
    params = {**OFF, "f_number": 2.0, "subject_distance": 2.0, "highlight_boost": 1.0}
    out = registry.run("background", {"image": photo, "background": plate_img, "subject_mask": mask,
                                      "depth": depth}, params, stored_as={"depth": "f32"})
    lens = thin_lens.ThinLens(85.0, 2.0, 36.0)
    lin = srgb_to_linear(out.image)
    for x, d in ((75, 4.0), (225, 40.0)):
        expect = abs(float(lens.coc_px(np.float32(d), 2.0, w)))
        got = _second_moment_diameter(lin, 60.5, x + 0.5, int(expect * 0.8) + 4)
        print(f"plate at {d:g} m: blur {got:.2f} px, thin lens {expect:.2f} px")
        assert abs(got - expect) <= 0.15 * expect
    assert out.info["plate_depth"].startswith("plate depth")


# ------------------------------------------------------------------------------------------------ perspective

def test_plate_covers_without_stretching_and_follows_the_focal_length():
    where = plate.placement((400, 600), (300, 300), 85.0, None, None)
    assert where.scale == pytest.approx(0.75) and where.ty == pytest.approx(0.0)   # height decides, centred
    assert where.tx == pytest.approx((300 - 600 * 0.75) / 2)
    tele = plate.placement((400, 600), (300, 300), 100.0, 50.0, None)
    assert tele.scale == pytest.approx(2 * 0.75) and tele.magnification == pytest.approx(2.0)
    wide = plate.placement((400, 600), (300, 300), 35.0, 50.0, None)
    assert wide.scale == pytest.approx(0.75) and "wider" in wide.note


@pytest.mark.parametrize("horizon", [0.3, 0.5, 0.72])
def test_the_plates_horizon_lands_at_the_asked_height(horizon):
    ph, pw, H, W = 300, 450, 200, 240
    plate_img = np.zeros((ph, pw, 3), np.float32)
    plate_img[: int(0.4 * ph)] = 1.0                              # sky above the plate's horizon at 0.4
    where = plate.placement((ph, pw), (H, W), 85.0, None, horizon, plate_horizon=0.4)
    placed = plate.warp(plate_img, where, (H, W))
    col = placed[:, W // 2, 0]
    edge = float(np.sum(col))                                     # rows of sky (partial rows count partly)
    print(f"horizon asked at {horizon * H:.1f} px, landed at {edge:.2f} px (scale {where.scale:.3f})")
    assert abs(edge - horizon * H) <= 1.0
    assert where.ty <= 1e-6 and where.ty + ph * where.scale >= H - 1e-6   # the frame stays covered
    assert where.tx <= 1e-6 and where.tx + pw * where.scale >= W - 1e-6


def test_subject_distance_from_the_face_follows_the_thin_lens():
    # An adult face (17 cm hairline to chin) 2 m from an 85 mm lens on full frame, 4000 px wide.
    f, s_m, w = 85.0, 2.0, 4000
    m = f / (s_m * 1000.0 - f)
    face_px = subject_stage.FACE_HEIGHT_M * 1000.0 * m * w / 36.0
    assert subject_stage.distance_for_face_px(face_px, w, f, 36.0) == pytest.approx(s_m, rel=1e-9)


# ------------------------------------------------------------------------------------------------ light and grain

def test_light_wrap_tints_only_the_edge_toward_the_plate():
    sc = strand_scene(192, 192)
    base = run_scene(sc)
    wrapped = run_scene(sc, light_wrap=1.0)
    alpha = run_scene(sc, result="matte").image[:, :, 0]
    inside = cv2.distanceTransform((alpha >= 1.0).astype(np.uint8), cv2.DIST_L2, 5)
    deep = inside > 0.2 * 192                                      # far from any edge
    near = (alpha >= 1.0) & (inside <= 3)
    assert np.array_equal(wrapped.image[deep], base.image[deep])
    lin_b, lin_w, plate_lin = (srgb_to_linear(x) for x in (base.image, wrapped.image, sc["plate"]))
    toward = ((lin_w - lin_b) * (plate_lin - lin_b)).sum(axis=2)[near]
    print(f"edge pixels moved toward the plate: {np.mean(toward > 0):.3f}")
    assert np.mean(toward > 0) > 0.95 and np.abs(lin_w - lin_b)[near].max() > 0.02


def test_match_grain_gives_the_plate_the_photos_noise():
    side = 192
    sc = strand_scene(side, side)
    sigma = 0.02
    rng = np.random.default_rng(3)
    noisy = np.clip(sc["photo"] + rng.normal(0, sigma, sc["photo"].shape).astype(np.float32), 0, 1)
    inputs = {"image": noisy, "background": sc["plate"], "subject_mask": sc["rough"].astype(np.float32)}
    alpha = sc["alpha"]
    far = cv2.distanceTransform((alpha < 0.01).astype(np.uint8), cv2.DIST_L2, 5) > 0.06 * side
    import torch
    from core.imaging.noise import immerkaer_sigma

    def measured(img):
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return immerkaer_sigma(t, far.astype(np.float32)).numpy()

    flat = registry.run("background", inputs, {**SHARP, **OFF})
    grainy = registry.run("background", inputs, {**SHARP, **OFF, "match_grain": 1.0})
    before, after = measured(flat.image), measured(grainy.image)
    print(f"plate noise: without {before.round(4)}, with {after.round(4)} (photo {sigma}; "
          f"{grainy.info.get('grain_model')})")
    assert before.max() < 0.2 * sigma
    assert np.all(np.abs(after - sigma) <= 0.15 * sigma)
    again = registry.run("background", inputs, {**SHARP, **OFF, "match_grain": 1.0}, seed=0)
    other = registry.run("background", inputs, {**SHARP, **OFF, "match_grain": 1.0}, seed=1)
    assert np.array_equal(again.image, grainy.image) and not np.array_equal(other.image, grainy.image)


def test_grain_profile_keeps_the_noises_correlation_and_level():
    from core.operators.background import grain
    h = w = 512
    rng = np.random.default_rng(4)
    k1 = np.float32([1, 2, 1]) / 4.0
    white = rng.standard_normal((h + 2, w + 2, 3)).astype(np.float32)
    corr = cv2.sepFilter2D(white, -1, k1, k1)[1:-1, 1:-1]
    corr /= corr.std()
    sigma = 0.015
    img = np.float32(0.45) + sigma * corr                      # a smooth grey subject with correlated grain
    plan = grain.plan(img, np.ones((h, w), bool), None)
    assert plan is not None and plan.method == "profile"
    n = grain.synthesise((1536, 1536), plan, seed=2)           # wider than a tile: blocks at random offsets
    rho_x = float(np.mean(n[:, 1:] * n[:, :-1]) / np.mean(n * n))
    rho_y = float(np.mean(n[1:] * n[:-1]) / np.mean(n * n))
    truth = (1 * 2 + 2 * 1) / (1 + 4 + 1)                    # the lag-1 correlation of [1 2 1]
    measured_sigma = float(np.sqrt(plan.subject_var(np.float32(0.45))))
    print(f"grain profile: sigma {measured_sigma:.4f} (truth {sigma}), lag-1 correlation of the synthesised "
          f"noise {rho_x:.3f} / {rho_y:.3f} (truth {truth:.3f}), unit variance {np.var(n):.3f}")
    assert abs(measured_sigma - sigma) <= 0.1 * sigma
    assert abs(rho_x - truth) <= 0.05 and abs(rho_y - truth) <= 0.05
    assert abs(float(np.var(n)) - 1.0) <= 0.05


# ------------------------------------------------------------------------------------------------ real portrait

def _faces_ready():
    from core import face
    return face.available((face.DETECTOR, face.MESH, face.SELFIE))


@pytest.mark.skipif(not _faces_ready(), reason="face and person networks not installed")
def test_astronaut_face_and_suit_unchanged_inside_the_matte_core():
    from core import face
    img = scenes.portrait()
    op = registry.get("background")
    inputs, params = op.demo(img, 0)
    out = registry.run("background", inputs, {**params, **OFF})
    alpha = registry.run("background", inputs, {**params, **OFF, "result": "matte"}).image[:, :, 0]
    core = alpha >= 1.0
    lm = face.detect_faces(img)[0].landmarks
    face_region = np.zeros(core.shape, np.uint8)
    cv2.fillConvexPoly(face_region, cv2.convexHull(lm[:, :2].astype(np.int32)), 1)
    suit = np.zeros(core.shape, bool)
    suit[330:480, 60:260] = True                                  # the orange suit, left of the helmet
    for name, region in (("face", face_region > 0), ("suit", suit)):
        inside = region & core
        print(f"{name}: {inside.sum() / region.sum():.3f} of it inside the matte's core, unchanged")
        assert inside.sum() >= 0.9 * region.sum(), f"{name}: only {inside.sum() / region.sum():.2f} in the core"
        assert np.array_equal(out.image[inside], img[inside]), name
    # The background did change, and the distance came from the face.
    assert np.abs(out.image[~(alpha > 0)] - img[~(alpha > 0)]).mean() > 0.05
    assert out.info["subject_distance_from"] == "from the face's size"
    assert 1.0 < out.info["subject_distance_m"] < 4.0


@pytest.mark.skipif(not _faces_ready(), reason="face and person networks not installed")
def test_demo_runs_with_every_match_on():
    img = scenes.portrait()
    op = registry.get("background")
    inputs, params = op.demo(img, 0)
    out = registry.run("background", inputs, params)
    assert out.image.shape == img.shape and np.isfinite(out.image).all()
    for key in ("plate_illuminant_K", "subject_illuminant_K", "grain_subject_sigma", "plate_coc_px"):
        assert key in out.info


# ------------------------------------------------------------------------------------------------ errors

def test_user_errors_are_clear():
    sc = strand_scene(96, 96)
    base = {"image": sc["photo"], "background": sc["plate"], "subject_mask": sc["rough"].astype(np.float32)}
    cases = [
        ({"image": sc["photo"], "subject_mask": base["subject_mask"]}, {}, "needs the new background"),
        ({**base, "subject_mask": base["subject_mask"][:50]}, {}, "subject mask is"),
        ({**base, "subject_mask": np.zeros((96, 96), np.float32)}, {}, "no subject"),
        ({**base, "depth": np.ones((10, 40), np.float32) * 5}, {}, "plate must have the plate's shape"),
        (base, {"subject_distance": 12.0}, "farther away than the subject"),
        ({**base, "image": sc["photo"][:20, :20], "subject_mask": None}, {}, "at least 32 px"),
    ]
    for inputs, params, words in cases:
        with pytest.raises(UserError) as err:
            registry.run("background", inputs, {**SHARP, **OFF, **params})
        assert words in str(err.value) and "\n" not in str(err.value)


def test_command_line_error_exits_2_and_writes_nothing(tmp_path):
    sc = strand_scene(96, 96)
    write_image(tmp_path / "photo.png", sc["photo"], "u8")
    write_image(tmp_path / "mask.png", np.zeros((96, 96, 1), np.float32), "u8")
    out = tmp_path / "out.png"
    code = cli_main(["background", str(tmp_path / "photo.png"), "--subject-mask", str(tmp_path / "mask.png"),
                     "-o", str(out), "-q"])
    assert code == 2 and not out.exists()
    write_image(tmp_path / "plate.png", sc["plate"], "u8")
    write_image(tmp_path / "mask.png", sc["rough"].astype(np.float32)[:, :, None], "u8")
    code = cli_main(["background", str(tmp_path / "photo.png"), "--background", str(tmp_path / "plate.png"),
                     "--subject-mask", str(tmp_path / "mask.png"), "--result", "cutout", "-o", str(out), "-q"])
    assert code == 0 and out.exists()


def test_bundled_plate_is_deterministic_and_outdoor():
    a, b = demo_plate.plate(128, 192, seed=3), demo_plate.plate(128, 192, seed=3)
    assert a.shape == (128, 192, 3) and np.array_equal(a, b)
    sky, ground = a[:20].mean(axis=(0, 1)), a[-20:].mean(axis=(0, 1))
    assert sky[2] > sky[1] > sky[0] and ground[1] > ground[0] and ground[1] > ground[2]
    assert a.max() >= 0.99                                          # glints to turn into bokeh
