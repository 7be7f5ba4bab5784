"""Tiling agrees with the untiled computation; colour transfer functions invert; guided upsampling snaps edges."""
import numpy as np
import pytest

from core.imaging import color, resample, tiling
from core.jobs import Job
from tests.scenes import psnr, texture


def gaussian(img, sigma=2.0):
    import cv2
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)


@pytest.mark.parametrize("tile,overlap", [(64, 16), (50, 8), (97, 31)])
def test_tiled_local_filter_matches_untiled(tile, overlap):
    img = texture(211, 173, seed=4)
    whole = gaussian(img)
    # halo covers the filter's support (OpenCV uses ±3 sigma), so every tile sees what the whole image saw
    tiled = tiling.run_tiled(img, gaussian, tile=tile, overlap=overlap, halo=8)
    assert np.abs(tiled - whole).max() < 1e-5


def test_without_halo_seams_are_feathered_not_hard():
    img = texture(200, 200, seed=5)
    whole = gaussian(img, 3.0)
    hard = tiling.run_tiled(img, lambda t: gaussian(t, 3.0), tile=64, overlap=0, halo=0)
    soft = tiling.run_tiled(img, lambda t: gaussian(t, 3.0), tile=64, overlap=16, halo=0)
    assert psnr(soft, whole) > psnr(hard, whole) + 3


def test_weights_are_a_partition_of_unity():
    ones = np.ones((123, 157, 1), np.float32)
    out = tiling.run_tiled(ones, lambda t: t, tile=40, overlap=12)
    assert np.abs(out - 1).max() < 1e-6


def test_tiling_reports_progress_and_changes_channels():
    seen = []
    img = texture(64, 64, seed=1)
    out = tiling.run_tiled(img, lambda t: t[:, :, :1] * 2, tile=32, overlap=8, job=Job(lambda f, m: seen.append(f)))
    assert out.shape == (64, 64, 1) and np.allclose(out[:, :, 0], img[:, :, 0] * 2, atol=1e-6)
    assert seen[-1] == 1.0 and len(seen) >= 5


def test_tile_for_budget_fits():
    side = tiling.tile_for_budget(bytes_per_pixel=48, budget_bytes=256 * 2**20, halo=16)
    assert (side + 32) ** 2 * 48 <= 256 * 2**20


def test_srgb_round_trip_and_known_values():
    x = np.linspace(-0.5, 2.0, 1001, dtype=np.float32)
    assert np.abs(color.linear_to_srgb(color.srgb_to_linear(x)) - x).max() < 2e-6
    assert color.srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-5)
    assert color.linear_to_srgb(np.float32(0.0031308)) == pytest.approx(0.04045, abs=1e-5)
    import torch
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(color.srgb_to_linear(t), torch.from_numpy(color.srgb_to_linear(t.numpy())), atol=1e-6)


def test_luminance_weights_sum_to_one():
    assert color.luminance(np.ones((2, 2, 3), np.float32)) == pytest.approx(np.ones((2, 2)), abs=1e-6)


def test_guided_upsample_aligns_edges_better_than_bilinear():
    import cv2
    h, w = 256, 256
    guide = np.zeros((h, w, 3), np.float32)
    guide[:, 100:] = 1.0  # a sharp vertical edge at x = 100 (not on the 8× grid)
    truth = (np.arange(w)[None, :] >= 100).astype(np.float32).repeat(h, 0)
    low = cv2.resize(truth, (32, 32), interpolation=cv2.INTER_AREA)
    bilinear = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    guided = resample.guided_upsample(low, guide)
    err_b = np.abs(bilinear - truth).mean()
    err_g = np.abs(guided - truth).mean()
    assert err_g < 0.5 * err_b


def _exact_decode(x):
    a = np.abs(x.astype(np.float64))
    return np.sign(x) * np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)


def _exact_encode(x):
    a = np.abs(x.astype(np.float64))
    return np.sign(x) * np.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("shape,low,high", [((300, 400, 3), 0.0, 1.0), ((90, 70, 4), -0.02, 1.0),
                                            ((128, 256), -0.6, 3.0), ((50, 60, 1), 0.0, 8.0)])
def test_fast_opencv_curves_match_the_exact_piecewise_formula(shape, low, high):
    """The OpenCV path (branch-free, chunked) against float64 numpy: grey, RGB, RGBA, HDR and negative values
    (mirrored), across the knee where the two pieces meet."""
    rng = np.random.default_rng(3)
    x = rng.uniform(low, high, shape).astype(np.float32)
    x.flat[:64] = np.linspace(-0.05, 0.05, 64)   # both knees, both signs
    dec, enc = color.srgb_to_linear(x), color.linear_to_srgb(x)
    assert dec.dtype == np.float32 and dec.shape == x.shape and enc.shape == x.shape
    scale = np.maximum(np.abs(_exact_decode(x)), 1e-3)
    assert np.max(np.abs(dec - _exact_decode(x)) / scale) < 2e-6
    assert np.max(np.abs(enc - _exact_encode(x))) < 1e-6


def test_fast_curves_read_strided_views_without_copying_them_first():
    planes = np.random.default_rng(4).random((3, 200, 300), dtype=np.float32)
    view = planes[:, 10:190, 20:280].transpose(1, 2, 0)          # as burst denoise's canvas is read
    np.testing.assert_array_equal(color.linear_to_srgb(view), color.linear_to_srgb(np.ascontiguousarray(view)))
    np.testing.assert_array_equal(color.srgb_to_linear(view), color.srgb_to_linear(np.ascontiguousarray(view)))


def test_guided_upsample_in_parallel_row_blocks_equals_one_block(monkeypatch):
    """Row blocks (run in parallel) must not change a single value: each output row depends only on its own
    position and the low-resolution map."""
    rng = np.random.default_rng(5)
    guide = rng.random((203, 157, 4)).astype(np.float32)      # RGBA guide: alpha must be ignored
    low = rng.random((41, 33)).astype(np.float32)
    blocks = resample.guided_upsample(low, guide)
    monkeypatch.setattr(resample, "UPSAMPLE_BLOCK_ROWS", 10_000)
    whole = resample.guided_upsample(low, guide)
    np.testing.assert_array_equal(blocks, whole)
    guide_rgb_only = guide.copy()
    guide_rgb_only[:, :, 3] = 0.0
    np.testing.assert_array_equal(resample.guided_upsample(low, guide_rgb_only), whole)
