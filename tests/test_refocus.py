"""refocus: thin-lens optics, aperture kernels, layered occlusion-aware bokeh against exact ground truth.

Ground truth comes from the hidden full layers of a synthetic scene (tests.scenes.bokeh_scene): each layer
blurred in linear light by its own thin-lens disc and composited back to front, which is the exact aperture
integral when one of the two layers is in focus, as in both edge tests here.
"""
import math

import cv2
import numpy as np
import pytest

from core import registry
from core.cli import main as cli_main
from core.errors import UserError
from core.imaging import depthmap
from core.imaging.color import srgb_to_linear
from core.imaging.io import write_image
from core.optics import aperture, thin_lens as lens
from tests import scenes

PAD, H, W = 40, 240, 320
LENS = lens.ThinLens(85.0, 1.4, 36.0)
OPTICS = {"f_number": 1.4, "focal_length": 85.0, "sensor_width": 36.0, "highlight_boost": 1.0, "grain": False}


def crop(a):
    return a[PAD:-PAD, PAD:-PAD]


@pytest.fixture(scope="module")
def scene():
    sc = scenes.bokeh_scene(H, W, PAD)
    img, dist = crop(sc.composite()), crop(sc.distance())
    inside = crop(sc.layers[1].alpha) > 0.5
    d_out = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    d_in = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    band = (d_out <= 12) & (d_in <= 12)
    return {"scene": sc, "image": img, "distance": dist, "inside": inside, "d_out": d_out, "band": band}


def coc_of(d_m, focus_m):
    return float(LENS.coc_px(np.array([d_m], np.float32), focus_m, W)[0])


# ---------------------------------------------------------------------------------------------------------------
# Optics and kernels


def test_thin_lens_matches_hand_computation():
    # 50 mm f/2 focused at 2 m: a point at infinity images to f^2 / (N (S - f)) = 2500 / 3900 mm = 0.641 mm.
    t = lens.ThinLens(50.0, 2.0, 36.0)
    px = 0.6410256 / 36.0 * 6000
    assert t.blur_at_infinity_px(2.0, 6000) == pytest.approx(px, rel=1e-4)
    c = t.coc_px(np.array([1e9, 2.0, 1.0], np.float32), 2.0, 6000)
    assert c[0] == pytest.approx(-px, rel=1e-3) and abs(c[1]) < 1e-4
    # 1 m (half the focus distance): |S/d - 1| = 1, the same diameter as infinity, in front (positive).
    assert c[2] == pytest.approx(px, rel=1e-3)


def test_disparity_mode_is_linear_and_matches_distance_mode():
    d = np.array([1.5, 2.0, 4.0, 100.0], np.float32)
    k = LENS.slope_px(2.0, W)
    disp = (1 / d) / (1 / d.min())  # relative disparity, nearest = 1
    via_disp = lens.coc_from_disparity(disp, disp[1], k / d.min())
    np.testing.assert_allclose(via_disp, LENS.coc_px(d, 2.0, W), rtol=1e-4, atol=1e-4)


def test_focus_closer_than_focal_length_is_refused():
    with pytest.raises(UserError):
        LENS.coc_px(np.ones((2, 2), np.float32), 0.05, W)


@pytest.mark.parametrize("blades", [0, 5, 6, 9])
def test_aperture_kernel_sums_to_one_and_has_the_right_area(blades):
    d = 31.0
    k = aperture.aperture_kernel(d, blades, 10.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-5) and k.shape[0] % 2 == 1
    r = d / 2
    area = math.pi * r * r if blades == 0 else blades / 2 * r * r * math.sin(2 * math.pi / blades)
    # Coverage fractions sum to the shape's area: total / peak tap.
    assert k.sum() / k.max() == pytest.approx(area, rel=0.01)


def test_aperture_rotation_and_identity():
    a = aperture.aperture_kernel(21.0, 5, 0.0)
    b = aperture.aperture_kernel(21.0, 5, 36.0)
    assert np.abs(a - b).max() > 1e-3  # a pentagon turned by half its period differs
    np.testing.assert_allclose(a, aperture.aperture_kernel(21.0, 5, 72.0), atol=2e-3)  # a full period: same
    assert aperture.aperture_kernel(0.8).shape == (1, 1)


# ---------------------------------------------------------------------------------------------------------------
# Bokeh size and shape


def _point_light(blades, width):
    h = w = width
    img = np.full((h, w, 3), 0.05, np.float32)
    img = scenes.add_point_lights(img, [(w / 2, h / 2)], radius=1.0, value=1.0)
    depth = np.full((h, w), 10.0, np.float32)
    out = registry.run("refocus", {"image": img, "depth": depth},
                       {**OPTICS, "focus_distance": 2.0, "blades": blades}).image
    floor = float(srgb_to_linear(np.float32(0.05)))
    lin = srgb_to_linear(out)[:, :, 1] - floor
    c = abs(float(lens.ThinLens(85, 1.4, 36).coc_px(np.array([10.0], np.float32), 2.0, w)[0]))
    plateau = np.median(lin[lin > 0.2 * lin.max()])
    energy_in = float((srgb_to_linear(img)[:, :, 1] - floor).sum())
    return lin, plateau, c, energy_in


@pytest.mark.parametrize("width", [160, 480])
def test_point_light_bokeh_has_the_thin_lens_diameter(width):
    lin, plateau, c, energy_in = _point_light(0, width)
    diameter = 2 * math.sqrt((lin > 0.5 * plateau).sum() / math.pi)
    assert diameter == pytest.approx(c, rel=0.10), (diameter, c)
    # Light is conserved: the disc holds the point's energy.
    assert lin.sum() == pytest.approx(energy_in, rel=0.02)


def test_hexagonal_aperture_gives_hexagonal_bokeh():
    lin, plateau, c, _ = _point_light(6, 480)
    area = (lin > 0.5 * plateau).sum()
    r = c / 2
    assert area == pytest.approx(3 * r * r * math.sin(math.pi / 3), rel=0.10)


# ---------------------------------------------------------------------------------------------------------------
# Edges: occlusion-aware compositing against the exact thin-lens image and the per-pixel gather


def _edge_case(scene, focus_m):
    sc = scene["scene"]
    cocs = [coc_of(sc.layers[0].distance_m, focus_m), coc_of(sc.layers[1].distance_m, focus_m)]
    truth = crop(scenes.thin_lens_layers(sc, cocs))
    params = {**OPTICS, "focus_distance": focus_m}
    out = registry.run("refocus", {"image": scene["image"], "depth": scene["distance"]}, params)
    coc_map = np.abs(LENS.coc_px(scene["distance"], focus_m, W))
    gather = scenes.gather_blur(scene["image"], coc_map)
    band = scene["band"]
    return out, truth, scenes.psnr(out.image, truth, where=band), scenes.psnr(gather, truth, where=band), cocs


def test_subject_in_focus_background_blurred(scene):
    out, truth, ours, gather, cocs = _edge_case(scene, 2.0)
    assert abs(cocs[0]) > 15 and cocs[1] == 0.0
    assert ours >= 38.0, ours
    assert ours >= gather + 3.0, (ours, gather)
    # The in-focus subject keeps its pixels.
    assert np.abs(out.image - scene["image"])[scene["inside"]].max() <= 0.5 / 255
    assert out.info["coc_max_px"] == pytest.approx(abs(cocs[0]), rel=1e-3)


def test_background_in_focus_subject_blurred(scene):
    out, truth, ours, gather, cocs = _edge_case(scene, 8.0)
    assert cocs[0] == 0.0 and cocs[1] > 15
    assert ours >= 34.0, ours
    assert ours >= gather + 3.0, (ours, gather)
    # The in-focus background is untouched wherever the blurred subject's disc does not reach.
    far = scene["d_out"] > cocs[1] / 2 + 2
    assert np.abs(out.image - scene["image"])[far].max() <= 0.5 / 255


def test_disparity_png_gives_the_same_render(scene, tmp_path):
    dist = scene["distance"]
    disp = (1 / dist) / (1 / dist).max()
    k = LENS.slope_px(2.0, W)
    by_distance = registry.run("refocus", {"image": scene["image"], "depth": dist}, {**OPTICS, "focus_distance": 2.0})
    # Issue 19: the blur at infinity is a fraction of the image width (was pixels), so the same setting looks the
    # same at any resolution.
    params = {**OPTICS, "depth_kind": "disparity", "blur_at_infinity": k * (1 / dist).max() / W,
              "focus_at": (120, 120)}
    by_disparity = registry.run("refocus", {"image": scene["image"], "depth": disp}, params)
    assert by_disparity.info["depth_kind"] == "disparity"
    assert scenes.psnr(by_disparity.image, by_distance.image) > 50


# ---------------------------------------------------------------------------------------------------------------
# Layer plan: cells at least 0.1 % of the frame wide, mixed pixels of a matte split between its two sides


def test_layer_plan_in_fractions_of_the_frame():
    import torch

    from core.operators.refocus import layers

    # Discrete planes: one layer each, at exactly their CoC, whatever the size.
    coc = torch.tensor([[-30.0, -30.0, 0.0, 0.2], [2.5, 2.5, 12.0, 12.0]])
    assert layers.plan(coc, None, 4000) == pytest.approx([-30.0, 0.0, 2.5, 12.0])
    # A continuum from 0 to 10 px: cells 4 px wide at 4000 px (0.1 %); at 500 px 0.5 px wide, then 25 % apart.
    ramp = torch.linspace(0.0, 10.0, 10001).reshape(1, -1)
    assert len(layers.plan(ramp, None, 4000)) == 4          # 0, [1, 5), [5, 9), [9, 13)
    assert len(layers.plan(ramp, None, 500)) == 11          # 0, [1, 1.5), [1.5, 2), [2, 2.5), [2.5, 3.125) ...
    edges = layers.cell_edges(200.0, 4000)
    assert edges[:3] == [1.0, 5.0, 9.0] and all(b / a >= 1.25 - 1e-9 for a, b in zip(edges, edges[1:]))


def test_mixed_pixels_of_a_matte_split_between_its_two_sides(monkeypatch):
    """A subject whose edge is a soft matte (alpha blurred by 2 px) in focus at 2 m over a background at 8 m, its
    depth blended in disparity by the matte as the depth proxy does. With the matte the in-between CoCs place
    no layers: 2 layers instead of 14, the edge band as close to the exact thin-lens image (within 1.5 dB)."""
    import core.depth as service
    from core.depth.metric import MetricDepth

    sc = scenes.bokeh_scene(H, W, PAD, lights=False)
    bg, fg = sc.layers
    soft = cv2.GaussianBlur(fg.alpha, (0, 0), 2.0)
    scene = scenes.LayeredScene([bg, scenes.Layer(fg.rgb, soft, fg.distance_m)])
    img, a = crop(scene.composite()), crop(soft)
    dist = (1.0 / (a / 2.0 + (1 - a) / 8.0)).astype(np.float32)
    truth = crop(scenes.thin_lens_layers(scene, [coc_of(8.0, 2.0), 0.0]))
    band = cv2.dilate(((a > 0.001) & (a < 0.999)).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    got = {}
    for name, matte in (("matte", a), ("none", None)):
        monkeypatch.setattr(service, "estimate_distance", lambda image, focal_ratio, background_m=10.0, job=None,
                            device=None, matte=matte: MetricDepth(dist.copy(), "stub", 2.0, 8.0, "", matte=matte))
        out = registry.run("refocus", {"image": img}, {**OPTICS, "focus_distance": 2.0})
        got[name] = (scenes.psnr(out.image, truth, where=band), out.info["layers"])
    assert got["matte"][1] == 2 and got["none"][1] > 10, got      # measured 2 and 14
    assert got["matte"][0] >= 39.5 and got["matte"][0] >= got["none"][0] - 1.5, got   # measured 40.6 and 41.4


# ---------------------------------------------------------------------------------------------------------------
# Highlights, grain, sharpening


def test_highlight_boost_restores_clipped_light_energy():
    from core.imaging.color import linear_to_srgb

    n, true_radiance = 240, 6.0
    alpha = np.zeros((n, n), np.float32)
    alpha[118:123, 118:123] = 1.0  # a lamp covering whole pixels: every one of them is clipped
    lin_bg = float(srgb_to_linear(np.float32(0.02)))
    truth_lin = lin_bg * (1 - alpha) + true_radiance * alpha  # a lamp six times brighter than white
    truth_energy = float((truth_lin - lin_bg).sum())
    img = np.repeat(linear_to_srgb(np.minimum(truth_lin, 1.0))[:, :, None], 3, axis=2)  # the sensor clipped it
    depth = np.full((n, n), 10.0, np.float32)
    energies = {}
    for gain in (1.0, true_radiance):
        out = registry.run("refocus", {"image": img, "depth": depth},
                           {**OPTICS, "focus_distance": 2.0, "highlight_boost": gain}).image
        assert out.max() < 1.0  # the disc (CoC 14 px) stays below white, so no clipping hides energy
        energies[gain] = float((srgb_to_linear(out)[:, :, 1] - lin_bg).sum())
    assert energies[1.0] < 0.3 * truth_energy
    assert energies[true_radiance] == pytest.approx(truth_energy, rel=0.05)


def test_grain_is_measured_and_readded_in_blurred_areas(scene):
    rng = np.random.default_rng(3)
    sigma = 0.02
    noisy = np.clip(scene["image"] + rng.normal(0, sigma, scene["image"].shape).astype(np.float32), 0, 1)
    params = {**OPTICS, "focus_distance": 2.0}
    with_grain = registry.run("refocus", {"image": noisy, "depth": scene["distance"]}, {**params, "grain": True},
                              seed=5)
    without = registry.run("refocus", {"image": noisy, "depth": scene["distance"]}, params, seed=5)
    assert with_grain.info["grain_sigma"][1] == pytest.approx(sigma, rel=0.25)
    added = with_grain.image - without.image
    bg = scene["d_out"] > 20
    # Blurred background: the blur removed the noise, grain puts back the measured amount ...
    assert float(added[bg].std()) == pytest.approx(sigma, rel=0.2)
    residual = without.image - cv2.GaussianBlur(without.image, (0, 0), 1.0)
    assert float(residual[bg].std()) < 0.3 * sigma
    # ... and the in-focus subject, which kept its own noise, gets none.
    assert np.abs(added[scene["inside"]]).max() <= 0.5 / 255
    again = registry.run("refocus", {"image": noisy, "depth": scene["distance"]}, {**params, "grain": True}, seed=5)
    assert np.array_equal(again.image, with_grain.image)  # same seed, same bytes


def test_bounded_sharpening_by_the_known_original_blur(scene):
    sc = scene["scene"]
    # The photo was taken at f/2.8 focused on the subject: its background already carries a disc blur.
    lens0 = lens.ThinLens(85.0, 2.8, 36.0)
    c0 = [float(lens0.coc_px(np.array([layer.distance_m], np.float32), 2.0, W)[0]) for layer in sc.layers]
    photo = crop(scenes.thin_lens_layers(sc, c0))
    # New focus: the background, at f/8, where the background must be sharper than in the photo.
    new = lens.ThinLens(85.0, 8.0, 36.0)
    c1 = [float(new.coc_px(np.array([layer.distance_m], np.float32), 8.0, W)[0]) for layer in sc.layers]
    truth = crop(scenes.thin_lens_layers(sc, c1))
    params = {**OPTICS, "f_number": 8.0, "focus_distance": 8.0, "original_f_number": 2.8,
              "original_focus_distance": 2.0}
    sharp = registry.run("refocus", {"image": photo, "depth": scene["distance"]}, params)
    plain = registry.run("refocus", {"image": photo, "depth": scene["distance"]}, {**params, "sharpen": False})
    bg = scene["d_out"] > 15
    bg[:20], bg[-20:], bg[:, :20], bg[:, -20:] = False, False, False, False
    gain = scenes.psnr(sharp.image, truth, where=bg) - scenes.psnr(plain.image, truth, where=bg)
    assert sharp.info["sharpened_fraction"] > 0.3
    assert gain >= 1.0, gain
    assert 0.0 <= sharp.image.min() and sharp.image.max() <= 1.0


# ---------------------------------------------------------------------------------------------------------------
# Depth files and the depth service


def test_depth_files_by_type(tmp_path):
    dist = np.linspace(1.0, 10.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    np.save(tmp_path / "d.npy", dist)
    write_image(tmp_path / "d.tif", dist[:, :, None], "f32")
    disp = (1 / dist) / (1 / dist).max()
    write_image(tmp_path / "d.png", disp[:, :, None], "u16")
    a = depthmap.read_depth_file(tmp_path / "d.npy")
    b = depthmap.read_depth_file(tmp_path / "d.tif")
    c = depthmap.read_depth_file(tmp_path / "d.png")
    assert a.kind == b.kind == "distance" and c.kind == "disparity"
    np.testing.assert_allclose(b.values, dist, rtol=1e-6)
    np.testing.assert_allclose(c.values, disp, atol=1 / 65535)
    # Arrays without a file type: values within 0..1 are disparity, anything beyond is metres.
    assert depthmap.interpret(disp).kind == "disparity" and depthmap.interpret(dist).kind == "distance"


def test_low_resolution_depth_is_upsampled_along_image_edges(scene):
    dist = scene["distance"]
    sc = scene["scene"]
    a = crop(sc.layers[1].alpha)[:, :, None]
    # A subject that stands out from the background in brightness, as in most portraits.
    guide = crop(sc.layers[0].rgb) * 0.4 * (1 - a) + a * (0.55 + 0.4 * crop(sc.layers[1].rgb))
    low = cv2.resize(dist, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
    fitted = depthmap.fit_to_image(depthmap.interpret(low, "distance"), guide)
    wrong = np.abs(fitted.values - dist) > 1.0  # assigned to the wrong plane (2 m vs 8 m)
    bilinear = cv2.resize(low, (W, H), interpolation=cv2.INTER_LINEAR)
    assert wrong.mean() < 0.5 * (np.abs(bilinear - dist) > 1.0).mean()
    assert wrong.mean() < 0.01


def test_without_depth_the_depth_service_is_used(scene, monkeypatch):
    # Issue 19: without a depth map refocus asks the depth service for metres through this lens (it used to take
    # relative disparity and ignore the lens), so the stub stands in for estimate_distance.
    import core.depth as service
    from core.depth.metric import MetricDepth

    asked = {}

    def metric(image, focal_ratio, background_m=10.0, job=None, device=None):
        asked.update(ratio=focal_ratio, background=background_m)
        return MetricDepth(scene["distance"].copy(), "test stub", 2.0, 8.0, "stub distances")

    monkeypatch.setattr(service, "estimate_distance", metric)
    out = registry.run("refocus", {"image": scene["image"]}, {**OPTICS, "focus_at": (120, 120),
                                                            "background_distance": 12.0})
    assert asked == {"ratio": pytest.approx(85.0 / 36.0), "background": 12.0}
    assert out.info["depth_source"] == "depth service: test stub" and out.info["depth_kind"] == "distance"
    assert out.info["depth_assumed"] == "stub distances" and out.info["subject_distance_m"] == 2.0
    assert np.abs(out.image - scene["image"])[scene["inside"]].max() <= 0.5 / 255
    # The thin lens of the given depth: the same render as with that map passed in.
    given = registry.run("refocus", {"image": scene["image"], "depth": scene["distance"]},
                         {**OPTICS, "focus_at": (120, 120)})
    assert scenes.psnr(out.image, given.image) > 60

    def unavailable(image, focal_ratio, background_m=10.0, job=None, device=None):
        raise UserError("no depth map was given and the depth service is not available yet: pass --depth",
                        "missing-input")

    monkeypatch.setattr(service, "estimate_distance", unavailable)
    with pytest.raises(UserError):
        registry.run("refocus", {"image": scene["image"]}, {})


# ---------------------------------------------------------------------------------------------------------------
# Command line and user errors (exit 2, nothing overwritten)


@pytest.fixture()
def files(tmp_path, scene):
    write_image(tmp_path / "in.png", scene["image"], "u8")
    np.save(tmp_path / "depth.npy", scene["distance"])
    write_image(tmp_path / "colour.png", scene["image"], "u8")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    np.save(tmp_path / "negative.npy", -scene["distance"])
    np.save(tmp_path / "square.npy", np.full((100, 100), 3.0, np.float32))
    disp = 1.0 / scene["distance"]
    disp = (disp - disp.min()) / (disp.max() - disp.min())
    write_image(tmp_path / "disparity.png", disp[:, :, None], "u16")
    (tmp_path / "out.png").write_bytes(b"keep me")
    return tmp_path


def test_cli_refocus_writes_the_result(files):
    rc = cli_main(["refocus", str(files / "in.png"), "--depth", str(files / "depth.npy"), "-o",
                   str(files / "new.png"), "--focus-distance", "2", "--f-number", "1.4", "--focal-length", "85",
                   "--sensor-width", "36", "--blades", "7", "--blade-rotation", "15", "--highlight-boost", "2",
                   "-q"])
    assert rc == 0 and (files / "new.png").exists()


def test_cli_refocus_with_a_disparity_png(files):
    rc = cli_main(["refocus", str(files / "in.png"), "--depth", str(files / "disparity.png"), "-o",
                   str(files / "new.tif"), "--focus-at", "120,120", "--blur-at-infinity", "0.06", "-q"])
    assert rc == 0 and (files / "new.tif").exists()


@pytest.mark.parametrize("args", [
    ["--depth", "colour.png"],                       # a colour picture is not a depth map
    ["--depth", "broken.png"],                       # damaged file
    ["--depth", "negative.npy"],                     # negative distances
    ["--depth", "square.npy"],                       # a depth map of another picture (aspect ratio)
    ["--depth", "depth.npy", "--f-number", "0.1"],   # out of range
    ["--depth", "depth.npy", "--blades", "2"],       # no two-blade aperture
    ["--depth", "depth.npy", "--focus-at", "5000,10"],  # focus point outside the image
    ["--depth", "depth.npy", "--focus-at", "10,10", "--focus-distance", "2"],  # both
    ["--depth", "depth.npy", "--focus-distance", "0.05"],  # closer than the focal length
    ["--depth", "disparity.png", "--depth-kind", "distance"],  # disparity (0 = infinity) read as metres
    ["--depth", "depth.npy", "--original-f-number", "2.8"],  # original aperture without its focus distance
])
def test_cli_user_errors_exit_2_and_keep_the_output(files, args, capsys):
    argv = ["refocus", str(files / "in.png"), "-o", str(files / "out.png"), "-q"]
    argv += [a if not a.endswith((".png", ".npy")) else str(files / a) for a in args]
    assert cli_main(argv) == 2
    assert (files / "out.png").read_bytes() == b"keep me"
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
