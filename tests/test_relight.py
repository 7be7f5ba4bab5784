"""relight against exact ground truth: the synthetic head (tests/scenes.head: ellipsoid, nose, brow ridge, eye
sockets, textured skin albedo, analytic normals and height) rendered under light A; the truth is the same head
under light B. Figures are scale-invariant PSNR in linear light over the face (relighting cannot know the
subject's absolute albedo, so one global gain is not an error).

Each test prints its figure (`pytest -s` shows them); the README's relight row quotes them."""
import math

import numpy as np
import pytest

from core import cli, registry
from core.errors import UserError
from core.imaging import colorimetry as C
from core.imaging.color import linear_to_srgb, srgb_to_linear
from core.operators.relight import lights as L
from core.operators.relight import mesh_surface, shading, shadows, sh
from tests import scenes

WHITE = np.ones(3)
# Light A: the "flat" shot: a key a little left and above, with its attached shadow reaching into the face, a
# fill from the far right and ambient. Light B: a loop-like key from the right, a weak fill, less ambient.
LIGHT_A = [(L.direction(-35, 20), 0.75, WHITE), (L.direction(65, 0), 0.2, WHITE)]
AMBIENT_A = 0.25
LIGHT_B = [(L.direction(50, 25), 1.0, WHITE), (L.direction(-40, 5), 0.15, WHITE)]
AMBIENT_B = 0.15
LIGHT_B_PARAMS = {"preset": "none", "light": [[50, 25, 1.0, 6504, 0], [-40, 5, 0.15, 6504, 0]],
                  "ambient": AMBIENT_B}


@pytest.fixture(scope="module")
def hd():
    return scenes.head(256, 256, seed=3)


def _encode(lin):
    return linear_to_srgb(np.clip(lin, 0.0, 1.0)).astype(np.float32)


def _relit(image_lin, params, mask, **inputs):
    stored = {k: "f32" for k in inputs}
    out = registry.run("relight", {"image": _encode(image_lin), **inputs}, params, mask=mask, stored_as=stored)
    return srgb_to_linear(out.image), out


def test_sh_light_exact_normals_over_50_db(hd):
    """Old and new light both second-order SH; the new one read from a reference (the head under B with its
    exact normals): the ratio image is then exact up to the fits."""
    c_a = sh.from_lights([L.direction(-30, 20)], [0.6 * WHITE], 0.4).coeffs
    c_b = sh.from_lights([L.direction(45, 30), L.direction(-60, -10)], [0.8 * WHITE, 0.2 * WHITE], 0.3).coeffs
    img_a, truth = scenes.render_sh(hd, c_a), scenes.render_sh(hd, c_b)
    mask = hd.mask.astype(np.float32)
    res, out = _relit(img_a, {"preset": "none"}, mask, normals=hd.normals, light_from=_encode(truth),
                      light_from_normals=hd.normals)
    got = scenes.scale_invariant_psnr(res, truth, hd.face)
    print(f"SH ground truth, exact normals: {got:.1f} dB")
    assert got > 50.0


def test_sh_fit_recovers_the_light_direction_through_texture_brows_and_lips(hd):
    c = sh.from_lights([L.direction(30, 25)], [WHITE], 0.3).coeffs
    img = scenes.render_sh(hd, c)
    fitted = sh.fit(img, hd.normals, hd.mask.astype(np.float32))
    d = fitted.dominant_direction()
    truth = sh.SHLight(c).dominant_direction()
    angle = math.degrees(math.acos(float(np.clip(d @ truth, -1, 1))))
    assert angle < 3.0, angle
    assert fitted.rejected_fraction > 0.02   # the brows were recognised as outliers
    # The shading itself (its luminance: the fit holds the skin's mean colour too), up to one gain, over the
    # skin:
    s_true = sh.SHLight(c).shading(hd.normals) @ sh.LUMA
    got = scenes.scale_invariant_psnr(fitted.shading(hd.normals) @ sh.LUMA, s_true, hd.skin)
    assert got > 45.0, got


def test_lambert_point_lights_exact_normals(hd):
    img_a = scenes.render_lambert(hd, LIGHT_A, AMBIENT_A)
    truth = scenes.render_lambert(hd, LIGHT_B, AMBIENT_B)
    res, _ = _relit(img_a, LIGHT_B_PARAMS, hd.mask.astype(np.float32), normals=hd.normals)
    got = scenes.scale_invariant_psnr(res, truth, hd.face)
    none = scenes.scale_invariant_psnr(img_a, truth, hd.face)
    print(f"Lambert point lights + ambient, exact normals: {got:.1f} dB (no relight {none:.1f} dB)")
    assert got >= 32.0
    assert got >= none + 10.0


def test_the_ratio_keeps_every_pore(hd):
    """Albedo detail survives by construction: the relit picture divided by the true new shading is the albedo
    (up to one gain), pores included."""
    img_a = scenes.render_lambert(hd, LIGHT_A, AMBIENT_A)
    res, _ = _relit(img_a, LIGHT_B_PARAMS, hd.mask.astype(np.float32), normals=hd.normals)
    s_b = scenes.render_lambert(scenes.Head(**{**hd.__dict__, "albedo": np.ones_like(hd.albedo)}), LIGHT_B,
                                AMBIENT_B)
    albedo = res / np.maximum(s_b, 1e-4)
    got = scenes.scale_invariant_psnr(albedo, hd.albedo, hd.skin)
    assert got > 35.0, got


def _depth_scene(hd, noise_fraction, seed=0):
    """The head seen by a pinhole camera: depth Z = Z0 − m·h (metres), focal f = Z0 / m pixels. Exact normals
    of that surface, n ∝ (f Z_u, −f Z_v, Z + u Z_u + v Z_v), with the analytic derivatives of h."""
    h, w = hd.height.shape
    a = hd.axes[0]
    m = 0.18 / (2 * a)                    # an 18 cm wide head
    z0 = 1.0
    f = z0 / m
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xx + 0.5, yy + 0.5
    eps = 1e-3
    hx = (hd.height_at(px + eps, py) - hd.height_at(px - eps, py)) / (2 * eps)
    hy = (hd.height_at(px, py + eps) - hd.height_at(px, py - eps)) / (2 * eps)
    z = z0 - m * hd.height
    zu, zv = -m * hx, -m * hy
    n = np.stack([f * zu, -f * zv, z + (px - w / 2) * zu + (py - h / 2) * zv], axis=2)
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    n[~hd.mask] = (0.0, 0.0, 1.0)
    relief = float(z[hd.mask].max() - z[hd.mask].min())
    rng = np.random.default_rng(seed)
    noisy = z + rng.normal(0.0, noise_fraction * relief, z.shape)
    noisy[~hd.mask] = 2.0                 # a wall behind
    fov = math.degrees(2 * math.atan(w / 2 / f))
    return noisy.astype(np.float32), n.astype(np.float32), fov


def test_normals_from_a_depth_map_with_2_percent_noise(hd):
    depth, normals, fov = _depth_scene(hd, 0.02)
    geom = scenes.Head(**{**hd.__dict__, "normals": normals})
    img_a = scenes.render_lambert(geom, LIGHT_A, AMBIENT_A)
    truth = scenes.render_lambert(geom, LIGHT_B, AMBIENT_B)
    res, out = _relit(img_a, {**LIGHT_B_PARAMS, "field_of_view": fov}, hd.mask.astype(np.float32), depth=depth)
    got = scenes.scale_invariant_psnr(res, truth, hd.face)
    print(f"normals from depth, 2 % noise: {got:.1f} dB (smoothing {out.info['depth_smoothing_px']} px)")
    assert out.info["geometry"].startswith("depth map")
    assert got >= 26.0


def test_nose_casts_its_shadow_on_the_cheek(hd):
    """Light at (60°, 10°): the marched height field's shadow against the ray-cast shadow of the analytic
    surface, over the face around the nose."""
    d = L.direction(60, 10)
    cx, cy = hd.nose_tip
    a, b = hd.axes[0], hd.axes[1]
    window = np.zeros(hd.mask.shape, bool)
    window[int(cy - 0.6 * b):int(cy + 0.3 * b), int(cx - 0.6 * a):int(cx + 0.1 * a)] = True
    where = window & hd.face
    truth = scenes.cast_shadow(hd, d, where)
    vis = shadows.visibility(hd.height.astype(np.float32), d, 0.0, hd.mask.astype(np.float32))
    lit = (hd.normals @ d.astype(np.float32)) > 0
    ours = (vis < 0.5) & lit & where
    iou = (ours & truth).sum() / max((ours | truth).sum(), 1)
    print(f"nose shadow IoU: {iou:.3f} ({truth.sum()} px of true shadow)")
    assert truth.sum() > 150          # the scene does have a nose shadow on the cheek
    assert iou >= 0.8


def test_shadows_darken_the_true_shadow_through_the_operator(hd):
    d = L.direction(60, 10)
    truth = scenes.cast_shadow(hd, d, hd.face)
    img = scenes.render_lambert(hd, LIGHT_A, AMBIENT_A)
    params = {"preset": "none", "light": [[60, 10, 1.0, 6504, 0]], "ambient": 0.4, "keep_exposure": False}
    mask = hd.mask.astype(np.float32)
    off, _ = _relit(img, params, mask, normals=hd.normals)
    on, _ = _relit(img, {**params, "shadows": 1.0}, mask, normals=hd.normals)
    # In the true shadow the key is gone: S drops from ambient + n·l to the ambient alone.
    cos = np.clip(hd.normals @ d.astype(np.float32), 0.0, None)
    expected = 0.4 / (0.4 + cos)
    drop = on / np.maximum(off, 1e-6) / expected[:, :, None]
    lit = hd.face & ~truth & (cos > 0.3)
    keep = float(np.median(on[lit] / np.maximum(off[lit], 1e-6)))
    assert abs(float(np.median(drop[truth])) - 1.0) < 0.08, float(np.median(drop[truth]))
    assert keep > 0.97, keep


def test_soft_shadow_edges_widen_with_the_light_size(hd):
    d = L.direction(60, 10)
    h = hd.height.astype(np.float32)
    m = hd.mask.astype(np.float32)
    hard = shadows.visibility(h, d, 0.0, m)
    soft = shadows.visibility(h, d, math.radians(10.0), m)
    partial = lambda v: int(((v > 0.05) & (v < 0.95) & hd.face).sum())  # noqa: E731
    assert partial(soft) > 3 * partial(hard)


def test_sphere_light_irradiance_matches_quadrature():
    """The area-light formula against brute-force integration of a uniform disc of directions."""
    alpha = math.radians(20.0)
    rng = np.random.default_rng(0)
    # Directions uniformly inside the cap around +z (the light), then n at angle theta from it.
    u = rng.random(400_000)
    cos_t = 1.0 - u * (1.0 - math.cos(alpha))
    phi = rng.random(400_000) * 2 * math.pi
    sin_t = np.sqrt(1 - cos_t ** 2)
    dirs = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], 1)
    # The formula is normalised so that a fully visible light gives cos θ: divide the cap's mean cosine by
    # its value facing the light, (1 + cos α) / 2.
    facing = 0.5 * (1.0 + math.cos(alpha))
    for theta_deg in (0, 40, 70, 80, 90, 100, 108):
        th = math.radians(theta_deg)
        n = np.array([math.sin(th), 0.0, math.cos(th)])
        exact = float(np.clip(dirs @ n, 0, None).mean()) / facing    # mean of max(n·ω, 0) over the cap
        ours = float(shading.diffuse(np.float32([math.cos(th)]), alpha)[0])
        assert abs(ours - exact) < 3e-3, (theta_deg, ours, exact)
    assert float(shading.diffuse(np.float32([0.5]), 0.0)[0]) == 0.5


def test_3200_kelvin_turns_grey_to_the_planckian_chromaticity():
    grey = np.full((48, 48, 3), 0.5, np.float32)
    flat = np.zeros((48, 48, 3), np.float32)
    flat[..., 2] = 1.0
    out = registry.run("relight", {"image": grey, "normals": flat},
                       {"preset": "none", "light": [[0, 0, 1, 3200, 0]], "ambient": 0.0},
                       stored_as={"normals": "f32"}, mask=np.ones((48, 48), np.float32))
    xy = C.linear_srgb_to_xy(srgb_to_linear(out.image).reshape(-1, 3).mean(0))
    err = float(np.linalg.norm(xy - C.cct_to_xy(3200.0)))
    print(f"3200 K on grey: xy {xy.round(4)}, {err:.4f} from the Planckian locus")
    assert err < 0.005
    neutral = registry.run("relight", {"image": grey, "normals": flat},
                           {"preset": "none", "light": [[0, 0, 1, 6504, 0]], "ambient": 0.0},
                           stored_as={"normals": "f32"}, mask=np.ones((48, 48), np.float32))
    assert np.abs(neutral.image - grey).max() < 1e-4     # 6504 K is neutral: nothing changes


def _tinted(hd):
    """The head with an albedo whose colour changes smoothly across the face (redder toward the right, yellower
    low, bluer top left): colour that follows the normals, which a per-channel light fit takes for coloured
    light."""
    h, w = hd.mask.shape
    yy, xx = np.mgrid[0:h, 0:w] / float(max(h, w))
    tint = np.stack([1 + 0.25 * np.sin(6 * xx), 1 + 0.2 * np.cos(5 * yy), 1 - 0.25 * np.sin(4 * (xx + yy))], -1)
    return scenes.Head(**{**hd.__dict__, "albedo": np.clip(hd.albedo * tint, 0, 1).astype(np.float32)})


def _measurable(*images):
    """Pixels whose colour can be measured in all `images` (linear): no channel near black or clipped."""
    ok = np.ones(images[0].shape[:2], bool)
    for im in images:
        ok &= (im.min(axis=2) > 2e-3) & (im.max(axis=2) < 0.99)
    return ok


def test_neutral_lights_keep_every_pixels_chromaticity(hd):
    """A rendered picture (a linear camera, no skin scattering: the colour law reads κ = 0) relit by neutral
    lights: the ratio is one number per pixel, so each pixel keeps its chromaticity, even where the albedo's
    colour follows the shape of the face. The per-channel light fit used to put that colour into the old
    light and divide it out: 0.017 in xy at the 99th percentile, 0.025 at worst, R, G and B ratios up to 26 %
    apart."""
    tinted = _tinted(hd)
    img_a = scenes.render_lambert(tinted, LIGHT_A, AMBIENT_A)
    mask = hd.mask.astype(np.float32)
    for params in (LIGHT_B_PARAMS, {"preset": "loop", "shadows": 0.8}):
        res, out = _relit(img_a, params, mask, normals=hd.normals)
        before = srgb_to_linear(_encode(img_a))
        where = hd.face & _measurable(before, res)
        shift = np.linalg.norm(C.linear_srgb_to_xy(res[where].astype(np.float64)) -
                               C.linear_srgb_to_xy(before[where].astype(np.float64)), axis=1)
        ratio = res[where].astype(np.float64) / before[where]
        spread = (ratio.max(axis=1) - ratio.min(axis=1)) / ratio.mean(axis=1)
        print(f"neutral lights on a tinted albedo ({params.get('preset')}): xy shift p99 "
              f"{np.percentile(shift, 99):.5f}, max {shift.max():.5f}; RGB ratio spread p99 "
              f"{np.percentile(spread, 99):.5f}; colour law κ {out.info.get('colour_law_kappa')}")
        assert out.info["colour_law_kappa"] == 0.0
        assert np.percentile(shift, 99) < 0.003 and shift.max() < 0.005
        assert np.percentile(spread, 99) < 0.01


def test_3200_kelvin_warms_every_lit_pixel_and_none_toward_green(hd):
    """The same key at 3200 K and at 6504 K: every pixel of the face moves toward the warm end of the
    Planckian chord (the lit ones by at least 0.02 in xy), and none off it toward green."""
    img = _encode(scenes.render_lambert(_tinted(hd), LIGHT_A, AMBIENT_A))
    mask = hd.mask.astype(np.float32)
    run = lambda k: srgb_to_linear(registry.run(  # noqa: E731
        "relight", {"image": img, "normals": hd.normals},
        {"preset": "none", "light": [[50, 25, 1, k, 0]], "ambient": 0.15}, mask=mask,
        stored_as={"normals": "f32"}).image)
    neutral, warm = run(6504), run(3200)
    where = hd.face & _measurable(neutral, warm)
    d = C.linear_srgb_to_xy(warm[where].astype(np.float64)) - C.linear_srgb_to_xy(neutral[where].astype(np.float64))
    chord = C.cct_to_xy(3200.0) - C.cct_to_xy(6504.0)
    chord /= np.linalg.norm(chord)
    green = np.array([-chord[1], chord[0]])
    green = green if green[1] > 0 else -green          # off the chord toward +y: green
    along, off = d @ chord, d @ green
    lit = (hd.normals[where] @ L.direction(50, 25)) > 0.1
    print(f"3200 K against 6504 K: toward warm min {along.min():.4f} (lit {along[lit].min():.4f}), "
          f"toward green max {off.max():.4f}")
    assert along.min() > -1e-4 and along[lit].min() > 0.02
    assert (off <= 0.2 * along + 1e-4).all()


def test_colour_law_is_read_from_the_picture(hd):
    """A picture whose colours follow the light as a photograph's skin does (log-chromaticity a_c relative to
    the luminance, da_c / d ln s = −κ a_c: darker is more saturated): the law's κ is recovered from the
    picture and its normals; a rendered picture, and one whose albedo colour follows the normals, read κ = 0."""
    from core.operators.relight import response
    mask = hd.mask.astype(np.float32)
    grey = scenes.Head(**{**hd.__dict__, "albedo": np.ones_like(hd.albedo)})
    s = scenes.render_lambert(grey, LIGHT_A, AMBIENT_A)[..., 0].astype(np.float64)
    rho = hd.albedo.astype(np.float64)
    y = rho @ sh.LUMA
    a = np.log(rho / y[..., None])
    got = {}
    for kappa in (0.3, 0.6):
        q = np.exp(a * np.maximum(s, 1e-3)[..., None] ** (-kappa))   # a(s) = a(1) · s^−κ
        q /= (q @ sh.LUMA)[..., None]
        img = ((y * s)[..., None] * q).astype(np.float32)
        got[kappa] = response.estimate(img, hd.normals, sh.fit(img, hd.normals, mask).grey(), hd.mask)["kappa"]
    for name, scene in (("rendered", hd), ("tinted", _tinted(hd))):
        img = scenes.render_lambert(scene, LIGHT_A, AMBIENT_A)
        got[name] = response.estimate(img, hd.normals, sh.fit(img, hd.normals, mask).grey(), hd.mask)["kappa"]
    print("colour law κ read:", {k: round(v, 3) for k, v in got.items()})
    assert abs(got[0.3] - 0.3) < 0.06 and abs(got[0.6] - 0.6) < 0.08
    assert got["rendered"] == 0.0 and got["tinted"] == 0.0


def test_light_from_a_reference_within_2_db_of_the_exact_lights(hd):
    img_a = scenes.render_lambert(hd, LIGHT_A, AMBIENT_A)
    truth = scenes.render_lambert(hd, LIGHT_B, AMBIENT_B)
    mask = hd.mask.astype(np.float32)
    exact, _ = _relit(img_a, LIGHT_B_PARAMS, mask, normals=hd.normals)
    # The reference: another person (other skin texture and colour) under light B.
    other = scenes.head(256, 256, seed=11)
    other.albedo[:] = other.albedo * np.array([0.9, 1.0, 1.1], np.float32)
    ref = scenes.render_lambert(other, LIGHT_B, AMBIENT_B)
    res, out = _relit(img_a, {"preset": "none"}, mask, normals=hd.normals, light_from=_encode(ref),
                      light_from_normals=other.normals)
    got = scenes.scale_invariant_psnr(res, truth, hd.face)
    want = scenes.scale_invariant_psnr(exact, truth, hd.face)
    print(f"light from a reference: {got:.1f} dB against {want:.1f} dB with the exact lights")
    assert got >= want - 2.0
    assert abs(out.info["reference_dominant_azimuth_deg"] - 50) < 15


def test_robust_fit_ignores_highlights_and_dark_hair(hd):
    img_a = scenes.render_lambert(hd, LIGHT_A, AMBIENT_A)
    truth = scenes.render_lambert(hd, LIGHT_B, AMBIENT_B)
    spoilt = img_a.copy()
    u = (np.arange(256)[None, :] + 0.5 - hd.centre[0]) / hd.axes[0]
    v = (np.arange(256)[:, None] + 0.5 - hd.centre[1]) / hd.axes[1]
    hair = hd.mask & (v < -0.45)                       # a dark fringe over the forehead
    spoilt[hair] = 0.03
    shine = hd.mask & ((u - 0.15) ** 2 + (v + 0.05) ** 2 < 0.12 ** 2)   # an oily highlight
    spoilt[shine] = np.minimum(spoilt[shine] + 0.35, 1.0)
    where = hd.face & ~hair & ~shine
    mask = hd.mask.astype(np.float32)
    clean, _ = _relit(img_a, LIGHT_B_PARAMS, mask, normals=hd.normals)
    robust, _ = _relit(spoilt, LIGHT_B_PARAMS, mask, normals=hd.normals)
    base = scenes.scale_invariant_psnr(clean, truth, where)
    got = scenes.scale_invariant_psnr(robust, truth, where)
    # The same fit without the robust weights, for comparison: hair and highlight drag it off.
    lin = srgb_to_linear(_encode(spoilt))
    plain = sh.fit_normalised(lin, hd.normals, mask, robust=False)
    rob = sh.fit_normalised(lin, hd.normals, mask)
    s_true = scenes.render_lambert(scenes.Head(**{**hd.__dict__, "albedo": np.ones_like(hd.albedo)}), LIGHT_A,
                                   AMBIENT_A)
    err = lambda fit: scenes.scale_invariant_psnr(fit.shading(hd.normals), s_true, where)  # noqa: E731
    print(f"with hair and a highlight: {got:.1f} dB (clean {base:.1f}); old light {err(rob):.1f} dB robust, "
          f"{err(plain):.1f} dB plain least squares")
    assert got >= base - 1.5
    assert err(rob) > err(plain) + 6.0


def test_height_integrated_from_normals_matches_the_surface(hd):
    est = shadows.height_from_normals(hd.normals, hd.mask.astype(np.float32))
    inner = hd.face
    diff = (est - hd.height)[inner]
    diff -= diff.mean()
    rel = float(np.sqrt((diff ** 2).mean())) / float(np.ptp(hd.height[inner]))
    assert rel < 0.03, rel


def test_strength_zero_and_outside_mask_unchanged(hd):
    img = _encode(scenes.render_lambert(hd, LIGHT_A, AMBIENT_A))
    mask = np.zeros(hd.mask.shape, np.float32)
    mask[40:200, 60:200] = hd.mask[40:200, 60:200]
    out = registry.run("relight", {"image": img, "normals": hd.normals}, {**LIGHT_B_PARAMS, "strength": 0.0},
                       mask=mask, stored_as={"normals": "f32"})
    assert np.abs(out.image - img).max() < 2e-4
    out = registry.run("relight", {"image": img, "normals": hd.normals}, LIGHT_B_PARAMS, mask=mask,
                       stored_as={"normals": "f32"})
    assert np.array_equal(out.image[mask == 0], img[mask == 0])
    assert np.abs(out.image - img)[mask > 0.5].mean() > 0.02


def test_presets_are_documented_sets_of_lights():
    assert set(L.PRESET_NAMES) == {"rembrandt", "loop", "butterfly", "split", "rim", "clamshell"}
    help_text = registry.get("relight").param("preset").help
    for name, lights in L.PRESETS.items():
        assert name in help_text and lights
        assert all(l.intensity > 0 for l in lights)
    rim = L.PRESETS["rim"]
    assert any(abs(l.azimuth_deg) > 90 and l.kelvin < 4000 for l in rim)   # a warm light from behind


def test_the_light_table_names_its_columns():
    light = registry.get("relight").param("light")
    assert light.components == ("azimuth", "elevation", "intensity", "kelvin", "size") == L.LIGHT_COMPONENTS
    assert len(light.components) == light.size == len(L.LIGHT_FIELDS)


def test_light_direction_convention():
    assert np.allclose(L.direction(0, 0), (0, 0, 1))
    assert np.allclose(L.direction(90, 0), (1, 0, 0))      # from the image's right
    assert np.allclose(L.direction(0, 90), (0, 1, 0))      # from above


@pytest.mark.parametrize("params,inputs,code", [
    ({"preset": "none", "ambient": 0.0}, {}, "bad-parameter"),
    ({"light": [[0, 0, 1, 500, 0]]}, {}, "bad-parameter"),
    ({"light": [[0, 100, 1, 6504, 0]]}, {}, "bad-parameter"),
    ({}, {"normals": "photo"}, "bad-input"),
    ({}, {"normals": "wrong_size"}, "size-mismatch"),
    ({}, {"light_from_normals": "flat"}, "missing-input"),
])
def test_user_errors_are_one_clear_line(hd, params, inputs, code):
    img = _encode(scenes.render_lambert(hd, LIGHT_A, AMBIENT_A))
    flat = np.zeros((64, 64, 3), np.float32)
    flat[..., 2] = 1
    choices = {"photo": np.random.default_rng(0).random((256, 256, 3)).astype(np.float32) * 0.5 + 0.5,
               "wrong_size": np.dstack([np.zeros((100, 300)), np.zeros((100, 300)), np.ones((100, 300))])
               .astype(np.float32), "flat": flat}
    given = {k: choices[v] for k, v in inputs.items()}
    given.setdefault("normals", hd.normals)
    with pytest.raises(UserError) as exc:
        registry.run("relight", {"image": img, **given}, params, mask=hd.mask.astype(np.float32),
                     stored_as={"normals": "f32"})
    assert exc.value.code == code and "\n" not in str(exc.value)


def test_point_lights_need_a_scale():
    """No face and no metric depth: a light distance in metres has nothing to be measured against."""
    grey = np.full((48, 48, 3), 0.5, np.float32)
    flat = np.zeros((48, 48, 3), np.float32)
    flat[..., 2] = 1.0
    with pytest.raises(UserError) as exc:
        registry.run("relight", {"image": grey, "normals": flat}, {"light_distance": 2.0},
                     mask=np.ones((48, 48), np.float32), stored_as={"normals": "f32"})
    assert exc.value.code == "bad-parameter"


def test_point_light_falls_off_with_distance(hd):
    """A near light lights the near side of the face more than a distant one from the same direction."""
    img = _encode(scenes.render_lambert(hd, LIGHT_A, AMBIENT_A))
    depth, _, fov = _depth_scene(hd, 0.0)
    params = {"preset": "none", "light": [[60, 0, 1.0, 6504, 0]], "ambient": 0.5, "field_of_view": fov,
              "keep_exposure": False}
    run = lambda **k: srgb_to_linear(registry.run("relight", {"image": img, "depth": depth}, {**params, **k},  # noqa
                                                  mask=hd.mask.astype(np.float32),
                                                  stored_as={"depth": "f32"}).image)
    far, near = run(), run(light_distance=0.3)
    cx = int(hd.centre[0])
    right = hd.face.copy()
    right[:, :cx + 20] = False          # the side toward the light
    left = hd.face.copy()
    left[:, cx - 20:] = False
    gain_right = float(np.median(near[right] / np.maximum(far[right], 1e-6)))
    gain_left = float(np.median(near[left] / np.maximum(far[left], 1e-6)))
    assert gain_right > gain_left * 1.1, (gain_right, gain_left)


def test_command_line_error_exits_2_and_writes_nothing(hd, tmp_path):
    from core.imaging import io
    img = tmp_path / "in.png"
    io.write_image(img, _encode(scenes.render_lambert(hd, LIGHT_A, AMBIENT_A)), "u8")
    out = tmp_path / "out.png"
    code = cli.main(["relight", str(img), "-o", str(out), "-q", "--light", "0,0,1,99999,0"])
    assert code == 2 and not out.exists()


def test_tessellation_from_the_wheel_or_delaunay():
    tris, source = mesh_surface.tessellation()
    if tris is None:
        pytest.skip(f"no mediapipe wheel in the store: {source}")
    assert tris.shape == (852, 3) and tris.min() == 0 and tris.max() == 467
    lm = np.random.default_rng(0).random((468, 3)) * 100
    fallback = mesh_surface.delaunay(lm)
    assert fallback.shape[1] == 3 and len(fallback) > 800
