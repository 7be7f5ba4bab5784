"""film: datasheet stocks, grain and halation, reference frames, against exact ground truth.

Ground truth: the datasheets themselves (characteristic curves, RMS granularity at 48 µm), flat patches whose
level and grain are known, frames rendered at two resolutions, and references made with a known colour
transform and a known monochrome grain. LUTs are baked at a small size where a property does not depend on
it, into a cache in a temporary folder.
"""
import dataclasses
import math

import cv2
import numpy as np
import pytest

from core import registry
from core.cli import main as cli_main
from core.errors import UserError
from core.imaging import colorimetry, noise
from core.imaging.color import linear_to_srgb, srgb_to_linear
from core.imaging.io import read_image, write_image
from core.operators.film import bake, cache, grain, granularity, lut, reference, render, sensitometry, spectral, \
    stocks

SMALL_LUT = 17
# Skin of the astronaut's face (y0, y1, x0, x1): forehead, both cheeks, chin.
SKIN = ((84, 92, 200, 240), (112, 130, 186, 210), (112, 130, 250, 268), (156, 170, 205, 245))


@pytest.fixture(autouse=True, scope="module")
def film_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("AI_PORTRAIT_CACHE", str(tmp_path_factory.mktemp("film-cache")))
    cache.clear_memory()
    yield
    cache.clear_memory()
    mp.undo()


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data
    return data.astronaut().astype(np.float32) / 255.0


def small_look(stock_id):
    return cache.look(stock_id, "auto", size=SMALL_LUT)


def flat(levels, side=128):
    """A row of flat patches, each `side` px square, at sRGB levels `levels`."""
    row = np.concatenate([np.full((side, side, 3), v, np.float32) for v in levels], axis=1)
    return np.ascontiguousarray(row)


def patch_stats(img, levels, side=128, margin=8):
    means, sigmas = [], []
    for k in range(len(levels)):
        p = img[margin:side - margin, k * side + margin:(k + 1) * side - margin].mean(axis=2)
        means.append(float(p.mean()))
        sigmas.append(float(p.std()))
    return np.array(means), np.array(sigmas)


def lag1(field):
    a = field - field.mean()
    return float((a[:, 1:] * a[:, :-1]).mean() / (a * a).mean())


# ---------------------------------------------------------------------------------------------------------------
# The pipeline reproduces the datasheets


@pytest.mark.parametrize("stock_id", stocks.STOCK_IDS)
def test_grey_wedge_reads_the_datasheet_curves(stock_id):
    """Scene greys through the exposure matrix, the ISO mid-grey placement and the curves, then read by the
    sheet's own densitometer on the model's spectral density: every curve within 0.05 density."""
    sheet = stocks.camera_datasheet(stock_id)
    em = bake.emulsion(sheet)
    matrix = spectral.exposure_matrix(sheet.sensitivity, sheet.exposure_kelvin)
    grey = sensitometry.grey_log_exposure(sheet)
    worst = 0.0
    for layer, (x, y) in enumerate(sheet.curves):
        v = 0.18 * 10.0 ** (x - grey)                                   # the scene grey exposing to log H = x
        exposure = np.repeat(v[:, None], 3, axis=1) @ matrix.T          # neutral: the same in every layer
        np.testing.assert_allclose(exposure, np.repeat(v[:, None], sheet.layers, axis=1), rtol=1e-9)
        log_h = np.log10(exposure) + grey - math.log10(0.18)
        spec = sensitometry.spectral_density(em.curves.dye_at(log_h), em.d_min, em.dyes)
        read = spectral.density(spec, em.weights)[:, layer]
        worst = max(worst, float(np.abs(read - y).max()))
    assert worst < 0.05, f"{stock_id}: {worst:.4f}"


def _visual_rms_at_net_one(stock_id, pitch=3.0, side=512):
    """Simulated RMS granularity × 1000 of the grey wedge at net visual density 1.0, read through a 48 µm disc."""
    sheet = stocks.camera_datasheet(stock_id)
    look = small_look(stock_id)
    em = bake.emulsion(sheet)
    net, _ = granularity.visual_wedge(em.curves, em.d_min, em.dyes)
    k = int(np.argmin(np.abs(net - 1.0)))
    c0 = em.curves.c[:, k]
    sigma_g = grain.sigma_of_size(look.grain_size_um)
    c = np.empty((side, side, sheet.layers))
    for i in range(sheet.layers):
        table_c = look.grain_c0[i] + look.grain_step[i] * np.arange(look.grain.shape[1])
        sig = np.interp(c0[i], table_c, look.grain[i])
        c[:, :, i] = c0[i] + sig * grain.unit_field(11, i, (0, side), (0, side), pitch, sigma_g)
    spec = sensitometry.spectral_density(c.reshape(-1, sheet.layers), em.d_min, em.dyes)
    d_vis = spectral.density(spec, spectral.densitometer("visual"))[:, 0].reshape(side, side).astype(np.float32)
    r = 24.0 / pitch
    n = int(math.ceil(r))
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    disc = ((xx * xx + yy * yy) <= r * r).astype(np.float32)
    through = cv2.filter2D(d_vis, -1, disc / disc.sum())[2 * n:-2 * n, 2 * n:-2 * n]
    return float(through.std()) * 1000.0, sheet.rms


@pytest.mark.parametrize("stock_id", [s.id for s in stocks.STOCKS if s.id not in
                                      ("vision3-50d", "vision3-250d", "vision3-200t", "vision3-500t",
                                       "ektachrome-100d")])
def test_rms_granularity_through_48um_aperture_matches_the_datasheet(stock_id):
    simulated, quoted = _visual_rms_at_net_one(stock_id)
    print(f"{stock_id}: simulated RMS granularity x1000 at net visual density 1.0, 48 µm: {simulated:.2f} "
          f"(datasheet {quoted})")
    assert quoted is not None
    assert simulated == pytest.approx(quoted, rel=0.20), (simulated, quoted)


# ---------------------------------------------------------------------------------------------------------------
# --stock none: grain and halation only

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@pytest.fixture(scope="module")
def patches():
    img = flat(LEVELS)      # 128 × 1152: a 35 mm frame at 31 µm per pixel
    out = registry.run("film", {"image": img}, {"stock": "none", "halation": 0.0}, seed=3).image
    return img, out


def test_none_keeps_every_level_and_adds_visible_grain(patches):
    img, out = patches
    means, sigmas = patch_stats(out, LEVELS)
    print("none: mean change", np.round(means - np.array(LEVELS), 4), "σ", np.round(sigmas, 4))
    assert np.abs(means - np.array(LEVELS)).max() < 0.01
    assert sigmas[LEVELS.index(0.5)] >= 0.004, sigmas


def test_none_grain_peaks_in_the_midtones(patches):
    _, sigmas = patch_stats(patches[1], LEVELS)
    peak = int(np.argmax(sigmas))
    assert 2 <= peak <= 6, sigmas                           # 0.3 .. 0.7
    assert sigmas[0] < 0.75 * sigmas.max() and sigmas[-1] < 0.75 * sigmas.max(), sigmas


def test_none_larger_grain_size_gives_a_longer_correlation():
    img = flat((0.5,), side=1024)     # 35 µm per pixel on 35 mm
    rho = []
    for size in (4.0, 60.0, 200.0):
        out = registry.run("film", {"image": img}, {"stock": "none", "halation": 0.0, "grain_size": size}).image
        rho.append(lag1(out[16:-16, 16:-16].mean(axis=2)))
    print("lag-1 correlation at grain sizes 4, 60, 200 µm:", rho)
    assert rho[0] < rho[1] < rho[2], rho
    assert rho[0] < 0.1 and rho[2] > 0.5, rho


def test_grain_same_seed_same_bytes_other_seed_other_grain():
    img = flat((0.3, 0.6), side=96)
    a = registry.run("film", {"image": img}, {"stock": "none"}, seed=4).image
    b = registry.run("film", {"image": img}, {"stock": "none"}, seed=4).image
    c = registry.run("film", {"image": img}, {"stock": "none"}, seed=5).image
    assert a.tobytes() == b.tobytes()
    da, dc = a - img, c - img
    assert abs(np.corrcoef(da.ravel(), dc.ravel())[0, 1]) < 0.05
    assert da.std() == pytest.approx(dc.std(), rel=0.1)


@pytest.mark.parametrize("stock_id", ["none", "portra-400"])
def test_tiled_and_untiled_renders_agree(stock_id):
    """The frame rendered whole and as four tiles (each told where it sits): same grain, no seams."""
    img = np.full((300, 400, 3), 0.45, np.float32)
    s = render.Settings(grain=2.0, halation=0.0, pitch_um=render.pitch_um((3000, 4000), "35mm"), seed=9)
    draw = (lambda x, st: render.render_none(x, st)) if stock_id == "none" else \
        (lambda x, st: render.render_stock(x, small_look(stock_id), st))
    whole = draw(img, s)
    tiles = np.empty_like(whole)
    for y0, y1 in ((0, 137), (137, 300)):
        for x0, x1 in ((0, 211), (211, 400)):
            st = dataclasses.replace(s, origin=(y0, x0))
            tiles[y0:y1, x0:x1] = draw(np.ascontiguousarray(img[y0:y1, x0:x1]), st)
    print(f"{stock_id}: σ tiled {tiles.std():.6f} untiled {whole.std():.6f}")
    assert tiles.std() == pytest.approx(whole.std(), rel=0.03)
    np.testing.assert_allclose(tiles, whole, atol=1e-5)   # position-hashed: the very same grain


# ---------------------------------------------------------------------------------------------------------------
# Resolution independence


@pytest.mark.parametrize("stock_id", ["none", "portra-400", "tri-x-400"])
def test_6mp_and_24mp_frames_have_the_same_grain_at_one_size(stock_id):
    """The same region of a 35 mm frame at 6 MP (3000×2000) and at 24 MP (6000×4000), the latter halved by area
    averaging: the grain's RMS within 10 %."""
    results = []
    for width, side in ((3000, 256), (6000, 512)):
        img = np.full((side, side, 3), 0.45, np.float32)
        s = render.Settings(grain=1.0, halation=0.0, pitch_um=render.pitch_um((width * 2 // 3, width), "35mm"),
                            seed=2)
        out = render.render_none(img, s) if stock_id == "none" else render.render_stock(img, small_look(stock_id), s)
        if side == 512:
            out = cv2.resize(out, (256, 256), interpolation=cv2.INTER_AREA)
        results.append(float(out.mean(axis=2)[8:-8, 8:-8].std()))
    print(f"{stock_id}: grain RMS 6 MP {results[0]:.5f}, 24 MP halved {results[1]:.5f}")
    assert results[1] == pytest.approx(results[0], rel=0.10), results


# ---------------------------------------------------------------------------------------------------------------
# Stocks on a real portrait


@pytest.mark.parametrize("stock_id", stocks.STOCK_IDS)
def test_portrait_skin_stays_skin_and_the_face_does_not_clip(astronaut, stock_id, record_property):
    look = small_look(stock_id)
    out = render.render_stock(astronaut, look, render.Settings(grain=0.0, halation=1.0,
                                                               pitch_um=render.pitch_um((512, 512), "35mm")))
    skin_in = np.concatenate([astronaut[y0:y1, x0:x1].reshape(-1, 3) for y0, y1, x0, x1 in SKIN])
    skin_out = np.concatenate([out[y0:y1, x0:x1].reshape(-1, 3) for y0, y1, x0, x1 in SKIN])
    lab_in = colorimetry.linear_srgb_to_lab(srgb_to_linear(skin_in))
    lab_out = colorimetry.linear_srgb_to_lab(srgb_to_linear(skin_out))
    de = float(colorimetry.delta_e2000(lab_in, lab_out).mean())
    record_property("skin_delta_e", round(de, 2))
    print(f"{stock_id}: mean skin ΔE2000 to the input {de:.2f}")
    assert skin_out.max() < 0.995 and skin_out.min() > 0.0  # the skin does not clip
    face = out[82:170, 186:268]
    clipped = np.mean((face.max(axis=2) >= 0.999) | (face.min(axis=2) <= 0.0))
    assert clipped < 0.01, clipped                          # nor the face (eyes, brows, teeth)
    if look.layers == 3:
        chroma = np.hypot(lab_out[:, 1], lab_out[:, 2])
        hue = math.degrees(math.atan2(lab_out[:, 2].mean(), lab_out[:, 1].mean()))
        assert 20.0 <= hue <= 75.0, hue                     # skin hues: orange-red to yellow
        assert 8.0 <= chroma.mean() <= 45.0, chroma.mean()
    assert de < 20.0


def test_neutral_greys_print_neutral(astronaut):
    levels = np.array([0.02, 0.05, 0.1, 0.18, 0.3, 0.5, 0.7, 0.9], np.float32)
    ramp = np.repeat(np.repeat(linear_to_srgb(levels)[None, :, None], 3, axis=2), 2, axis=0).astype(np.float32)
    for sid in ("portra-400", "pro-400h", "vision3-500t", "gold-200"):
        out = render.render_stock(ramp, small_look(sid), render.Settings(grain=0.0, halation=0.0))
        lab = colorimetry.linear_srgb_to_lab(srgb_to_linear(out[0]))
        assert np.hypot(lab[:, 1], lab[:, 2]).max() < 1.5, (sid, lab)


def test_exposure_pushes_brighten_and_pulls_darken(astronaut):
    look = small_look("portra-400")
    means = [float(render.render_stock(astronaut[::4, ::4].copy(), look,
                                       render.Settings(exposure_ev=ev, grain=0.0, halation=0.0)).mean())
             for ev in (-2.0, -1.0, 0.0, 1.0, 2.0)]
    assert all(b > a + 0.01 for a, b in zip(means, means[1:])), means


# ---------------------------------------------------------------------------------------------------------------
# Halation


def test_halation_is_a_red_orange_glow_that_keeps_flat_areas():
    img = np.full((240, 320, 3), 0.05, np.float32)
    img[100:140, 140:180] = 1.0
    s = dict(grain=0.0, pitch_um=36000.0 / 320, halation_radius_um=300.0)
    off = render.render_none(img, render.Settings(halation=0.0, **s))
    on = render.render_none(img, render.Settings(halation=10.0, **s))
    glow = srgb_to_linear(on) - srgb_to_linear(off)
    ring = glow[100:140, 183:195].reshape(-1, 3).mean(axis=0)   # just right of the square
    assert ring[0] > 2.0 * ring[1] > 0 and ring[1] > ring[2] >= 0, ring
    far = np.abs(glow[:, :40]).max()                             # far from the light: untouched
    assert far < 1e-4
    # energy is redistributed, not added: a uniform frame keeps its values
    uniform = np.full((64, 64, 3), 0.5, np.float32)
    np.testing.assert_allclose(render.render_none(uniform, render.Settings(halation=10.0, **s)), uniform, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# LUT, cache


def test_trilinear_lut_is_exact_for_a_linear_table_and_agrees_with_torch():
    s = 9
    axis = np.linspace(0.0, 2.0, s)
    rr, gg, bb = np.meshgrid(axis, axis, axis, indexing="ij")
    table = np.stack([0.1 + 0.3 * rr + 0.1 * gg, 0.2 * gg - 0.05 * bb + 0.5, 0.25 * bb + 0.05 * rr], -1)
    table = table.astype(np.float32)
    rng = np.random.default_rng(0)
    c = rng.uniform(-0.2, 2.2, (50, 60, 3)).astype(np.float32)
    lo, hi = np.zeros(3, np.float32), np.full(3, 2.0, np.float32)
    got = lut.lut3d([c[:, :, i].copy() for i in range(3)], lut.layout(table), lo, hi)
    cc = np.clip(c, 0.0, 2.0)
    truth = np.stack([0.1 + 0.3 * cc[..., 0] + 0.1 * cc[..., 1], 0.2 * cc[..., 1] - 0.05 * cc[..., 2] + 0.5,
                      0.25 * cc[..., 2] + 0.05 * cc[..., 0]], -1)
    np.testing.assert_allclose(got, truth, atol=2e-3)            # remap's 1/32-step coordinates
    import torch
    np.testing.assert_allclose(lut.lut3d_torch(c, table, lo, hi, torch.device("cpu")), truth, atol=1e-5)


def test_look_is_cached_on_disk_atomically_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("AI_PORTRAIT_CACHE", str(tmp_path))
    cache.clear_memory()
    first = cache.look("tri-x-400", "auto", size=SMALL_LUT)
    path = cache.path_for("tri-x-400", first.print_id, SMALL_LUT)
    assert path.is_file() and first.bake_seconds > 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]       # no temporary left behind
    cache.clear_memory()
    again = cache.look("tri-x-400", "auto", size=SMALL_LUT)
    assert again.bake_seconds == 0.0 and np.array_equal(again.lut, first.lut)
    # a truncated file (a full disk, a crash in another process) is baked again
    path.write_bytes(path.read_bytes()[:100])
    cache.clear_memory()
    third = cache.look("tri-x-400", "auto", size=SMALL_LUT)
    assert third.bake_seconds > 0 and np.array_equal(third.lut, first.lut)
    # two writers at once: both write whole files, the rename is atomic, the survivor loads
    import threading
    threads = [threading.Thread(target=cache._save, args=(path, first)) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert np.array_equal(cache._load(path).lut, first.lut)
    # the key follows the size and the data package's version
    assert cache.key("tri-x-400", "kodak-polymax", 17) != cache.key("tri-x-400", "kodak-polymax", 33)
    before = cache.key("tri-x-400", "kodak-polymax", 17)
    monkeypatch.setattr(stocks, "package_version", lambda: "9.9.9")
    assert cache.key("tri-x-400", "kodak-polymax", 17) != before


# ---------------------------------------------------------------------------------------------------------------
# Reference frames


def _known_reference(seed=3, sigma=0.03):
    """A smooth natural-colour frame (coffee, blurred: large flat regions) through a known colour transform,
    plus known monochrome grain (white noise blurred by 0.8 px, RMS `sigma`)."""
    from skimage import data
    base = cv2.GaussianBlur(data.coffee().astype(np.float32) / 255.0, (0, 0), 6.0)
    m = np.array([[1.05, 0.10, 0.0], [0.03, 0.92, 0.02], [0.0, 0.06, 0.70]], np.float32)   # warm, less blue
    lin = np.clip(srgb_to_linear(base) @ m.T, 0.0, 1.0) ** 1.2
    ref = linear_to_srgb(lin.astype(np.float32))
    n = cv2.GaussianBlur(np.random.default_rng(seed).standard_normal(ref.shape[:2]).astype(np.float32), (0, 0), 0.8)
    n *= sigma / n.std()
    return np.clip(ref + n[:, :, None], 0.0, 1.0).astype(np.float32), ref


def test_reference_transfers_colour_and_grain(astronaut):
    ref, clean = _known_reference()
    out = registry.run("film", {"image": astronaut, "reference": ref}, {"fit_stock": False, "halation": 0.0},
                       seed=1).image
    lab_out = reference.lab_of(reference._thumb(out, 160))
    lab_ref = reference.lab_of(reference._thumb(clean, 160))
    de = float(colorimetry.delta_e2000(lab_out.mean(0)[None].astype(np.float32),
                                       lab_ref.mean(0)[None].astype(np.float32))[0])
    assert de <= 3.0, de
    spread_out = np.hypot(lab_out[:, 1], lab_out[:, 2]).std()
    spread_ref = np.hypot(lab_ref[:, 1], lab_ref[:, 2]).std()
    assert spread_out == pytest.approx(spread_ref, rel=0.15)
    # grain in the output's flat regions, on the channel mean (so the channels' correlation counts)
    prof = noise.measure(out.mean(axis=2))
    measured = math.sqrt(prof.covariance[0, 0])
    print(f"reference: mean ΔE2000 {de:.2f}, chroma spread {spread_out:.2f} vs {spread_ref:.2f}, "
          f"grain {measured:.4f} vs 0.03")
    assert measured == pytest.approx(0.03, rel=0.30), measured


def test_reference_stock_fit_finds_the_stock_and_exposure(astronaut):
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    ref = render.render_stock(small, small_look("velvia-50"), render.Settings(exposure_ev=0.5, grain=0.0,
                                                                              halation=0.0))
    out = registry.run("film", {"image": small, "reference": ref}, {"halation": 0.0, "grain": 0.0})
    fit = out.info["fitted"]
    print("fit:", fit, "W2 after:", out.info["w2_after"])
    assert fit["stock"] == "velvia-50", fit
    assert fit["exposure"] == pytest.approx(0.5, abs=0.3), fit
    assert out.info["w2_after"] < 2.0, out.info


def test_reading_a_datasheet_leaves_colour_science_in_float64():
    """spectral-film-lut's config switches colour-science to float32 for the whole process when imported; the
    stock loader switches it back, so the worker's other colour maths keeps its precision."""
    stocks.camera_datasheet("ektachrome-100d")
    colour = colorimetry.colour_module()
    assert colour.constants.DTYPE_FLOAT_DEFAULT is np.float64
    assert np.asarray(colour.xy_to_XYZ([0.3127, 0.329])).dtype == np.float64


# ---------------------------------------------------------------------------------------------------------------
# Errors


def test_user_errors_are_one_clear_line_and_write_nothing(tmp_path, astronaut):
    img = tmp_path / "in.png"
    ref = tmp_path / "ref.png"
    write_image(img, astronaut[::8, ::8].copy(), "u8")
    write_image(ref, astronaut[::4, ::4].copy(), "u8")
    out = tmp_path / "out.png"
    assert cli_main(["film", str(img), "-o", str(out), "--stock", "portra-400", "--reference", str(ref), "-q"]) == 2
    assert cli_main(["film", str(img), "-o", str(out), "--stock", "velvia-50", "--print", "kodak-2383", "-q"]) == 2
    assert cli_main(["film", str(img), "-o", str(out), "--stock", "none", "--print", "scan", "-q"]) == 2
    assert cli_main(["film", str(img), "-o", str(out), "--stock", "portra-9000", "-q"]) == 2
    assert cli_main(["film", str(img), "-o", str(out), "--grain", "-1", "-q"]) == 2
    assert not out.exists()
    with pytest.raises(UserError):
        registry.run("film", {"image": astronaut, "reference": astronaut}, {"stock": "none"})


def test_command_line_renders_a_stock(tmp_path, astronaut):
    img = tmp_path / "in.png"
    write_image(img, astronaut[::4, ::4].copy(), "u16")
    out = tmp_path / "out.png"
    assert cli_main(["film", str(img), "-o", str(out), "--stock", "tri-x-400", "--print", "scan", "--seed", "3",
                     "-q"]) == 0
    result = read_image(out)
    assert result.depth == "u16"
    px = result.pixels
    assert np.abs(px[:, :, 0] - px[:, :, 1]).max() < 1e-3       # black-and-white
