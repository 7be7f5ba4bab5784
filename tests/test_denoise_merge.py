"""Burst denoise's merge machinery on its own: the lapped transform, the two samplers, the parallel merge."""
import numpy as np
import pytest
import torch

from core.operators.denoise import align, clipping, lapped, merge, noise, sampling
from tests import scenes


@pytest.mark.parametrize("tile", [16, 32])
def test_lapped_transform_is_the_windowed_dct_of_each_tile_and_overlap_adds_back(tile):
    s = tile // 2
    x = torch.rand(3, 6 * s, 11 * s, generator=torch.Generator().manual_seed(0))
    coef = lapped.forward(x, tile)
    assert coef.shape == (3, 5, tile, 10, tile)
    m = lapped.dct_matrix(tile).float()
    w = lapped.raised_cosine_1d(tile).float()
    window = w[:, None] * w[None, :]
    for c, i, j in [(0, 0, 0), (1, 2, 7), (2, 4, 9)]:
        block = x[c, i * s:i * s + tile, j * s:j * s + tile] * window
        torch.testing.assert_close(coef[c, i, :, j, :], m @ block @ m.T, atol=2e-6, rtol=0)
    back = lapped.inverse(coef, tile)
    # Every pixel but the outer half-tile ring is covered by four tiles whose windows sum to one.
    assert (back[:, s:-s, s:-s] - x[:, s:-s, s:-s]).abs().max() < 2e-6


def test_lapped_noise_power_and_dc_mean_are_exact():
    tile = 16
    noise_img = torch.randn(1, 8 * 200, 8 * 200, generator=torch.Generator().manual_seed(1))
    coef = lapped.forward(noise_img, tile)
    measured = coef.pow(2).mean(dim=(0, 1, 3))
    predicted = lapped.noise_power(tile)
    assert ((measured - predicted) / predicted).abs().max() < 0.05   # 200×200 tiles: a few % sampling error
    flat = torch.full((1, 32, 32), 0.37)
    assert float(lapped.forward(flat, tile)[0, 1, 0, 1, 0]) * lapped.dc_to_mean(tile) == pytest.approx(0.37)


@pytest.fixture(scope="module")
def burst():
    clean = scenes.portrait()[60:316, 128:384].copy()
    b = scenes.burst(clean, n=4, seed=2)
    aligner = align.Aligner(align.alignment_luma(b.frames[0]))
    motions = [None] + [aligner.align(align.alignment_luma(f)) for f in b.frames[1:]]
    return b, motions


def test_opencv_and_torch_samplers_give_the_same_strips(burst):
    """The CPU sampler (OpenCV) and the device one (torch grid_sample, run here on the CPU) must agree: they are
    one merge on two kinds of machine. Strips reach past the image on every side (mirrored)."""
    b, motions = burst
    h, w = b.frames[0].shape[:2]
    ocv = sampling.OpenCVSampler(b.frames, motions, -8, w + 24)
    ref = sampling.TorchSampler(b.frames, motions, -8, w + 24, torch.device("cpu"))
    for k in range(4):
        for y0, rows in [(-8, 48), (100, 64), (h - 40, 56)]:
            a, t = ocv.strip(k, y0, rows), ref.strip(k, y0, rows)
            assert a.shape == t.shape == (3, rows, w + 24)
            # Away from the borders (the motion is at most 8 px) the bicubic kernels agree to rounding, OpenCV
            # placing samples on a 1/32 px grid; within reach of a border, one mirrors the sample position and
            # the other the kernel's taps, which differ a little.
            ys = np.arange(y0, y0 + rows)
            inner_rows = torch.from_numpy((ys >= 12) & (ys < h - 12))
            inner = a[:, inner_rows, 20:w - 4] - t[:, inner_rows, 20:w - 4]
            # (1/64 px of position error on the steepest edges of linear light reads up to 0.02.)
            assert inner.abs().max() < 0.03, (k, y0)
            assert torch.quantile(inner.abs().flatten(), 0.99) < 0.004, (k, y0)
            assert (a - t).abs().mean() < 2e-3, (k, y0)


def test_reference_strip_is_the_decoded_frame_mirrored_at_the_borders(burst):
    b, motions = burst
    h, w = b.frames[0].shape[:2]
    strip = sampling.OpenCVSampler(b.frames, motions, -8, w + 16).strip(0, -8, 40).numpy()
    from core.imaging.color import srgb_to_linear
    lin = srgb_to_linear(b.frames[0]).transpose(2, 0, 1)
    np.testing.assert_array_equal(strip[:, 8:, 8:8 + w], lin[:, :32])
    np.testing.assert_array_equal(strip[:, 7, 8:8 + w], lin[:, 0])       # row -1 mirrors row 0
    np.testing.assert_array_equal(strip[:, 8:, 7], lin[:, :32, 0])        # column -1 mirrors column 0


def test_parallel_merge_equals_the_single_threaded_one(burst):
    b, motions = burst
    model = noise.estimate_burst(b.frames, 0)
    unclip = clipping.Unclipper.build(model, 0.0, 1.0)   # with the inversion of the clipped mean and a gain
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, acc_one = merge.merge(b.frames, 0, motions, model, unclip=unclip, gain=1.5)
        torch.set_num_threads(2)
        two, acc_two = merge.merge(b.frames, 0, motions, model, unclip=unclip, gain=1.5)
        plain, _ = merge.merge(b.frames, 0, motions, model)
    finally:
        torch.set_num_threads(before)
    # Same bytes whatever the threads: every strip is computed the same way, and each canvas pixel adds at most
    # two strips' contributions (an order-free sum).
    np.testing.assert_array_equal(one, two)
    assert acc_one == pytest.approx(acc_two, rel=1e-4)
    assert scenes.psnr(plain, b.truths[0]) > scenes.psnr(b.frames[0], b.truths[0]) + 4.0


def test_merge_through_the_device_sampler_matches_the_cpu_one(burst, monkeypatch):
    """What a GPU runs (TorchSampler, large strips), checked on the CPU against the OpenCV path."""
    b, motions = burst
    model = noise.estimate_burst(b.frames, 0)
    cpu, _ = merge.merge(b.frames, 0, motions, model)
    monkeypatch.setattr(sampling, "OPENCV_MAX_SIDE", 0)   # forces TorchSampler
    dev, _ = merge.merge(b.frames, 0, motions, model)
    assert np.abs(cpu - dev).max() < 0.02
    assert abs(scenes.psnr(cpu, b.truths[0]) - scenes.psnr(dev, b.truths[0])) < 0.05


def test_gather_search_costs_equal_the_opencv_ones(burst):
    """The alignment search's two cost implementations (patch gathers on a GPU, whole-image OpenCV passes on a
    CPU) must agree for every tile and offset, including motions that reach past the frame's edges."""
    b, _ = burst
    ref = align.pyramid(align.alignment_luma(b.frames[0]))[0]
    alt = align.pyramid(align.alignment_luma(b.frames[1]))[0]
    gather, warp = align._GatherCosts(ref, align.TILE), align._WarpCosts(ref, align.TILE)
    assert (gather.ny, gather.nx) == (warp.ny, warp.nx)
    n = gather.ny * gather.nx
    flow = torch.randint(-9, 10, (n, 2), generator=torch.Generator().manual_seed(0))
    for radius, squared in ((0, False), (1, True), (2, False)):
        a = gather.costs(alt, flow, radius, squared)
        c = warp.costs(alt, flow, radius, squared)
        assert a.shape == c.shape == (n, (2 * radius + 1) ** 2)
        torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-4)
