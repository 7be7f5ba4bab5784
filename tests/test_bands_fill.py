"""core.imaging.bands (pyramids, band splits) and core.imaging.fill (pull-push hole filling)."""
import numpy as np
import pytest

from core.imaging import bands, fill

SHAPES = [(101, 64), (101, 64, 1), (96, 130, 3), (37, 50, 5)]


@pytest.mark.parametrize("shape", SHAPES)
def test_laplacian_pyramid_and_band_split_reconstruct_the_input(shape):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    pyr = bands.laplacian_pyramid(x)
    assert len(pyr) == bands.default_levels(shape) + 1 and all(p.dtype == np.float32 for p in pyr)
    assert np.abs(bands.collapse(pyr) - x).max() < 1e-6
    split = bands.band_split(x, (1.5, 6.0))
    assert len(split) == 3 and all(b.shape == x.shape for b in split)
    assert np.abs(np.sum(split, axis=0) - x).max() < 1e-6


def test_pyramid_level_halves_the_size_and_keeps_a_constant():
    x = np.full((101, 64, 3), 0.37, np.float32)
    g = bands.gaussian_pyramid(x, 4)
    assert [p.shape[:2] for p in g] == [(101, 64), (51, 32), (26, 16), (13, 8), (7, 4)]
    assert all(np.abs(p - 0.37).max() < 1e-6 for p in g)
    lap = bands.laplacian_pyramid(x, 4)
    assert all(np.abs(p).max() < 1e-6 for p in lap[:-1])      # a constant has no detail at any scale
    assert bands.default_levels((101, 64)) == 3                 # 64 -> 32 -> 16 -> 8, not below 8 px


def _grating(period, axis, h=256, w=384):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (0.3 + np.sin(2 * np.pi * (xx if axis == 1 else yy) / period)).astype(np.float32)


@pytest.mark.parametrize("period, band", [(2.5, 0), (24.0, 1), (400.0, 2)])
@pytest.mark.parametrize("axis", [0, 1])
def test_sine_grating_lands_in_its_band(period, band, axis):
    """sigmas (1, 16) px: period 2.5 px -> high, 24 px -> mid, 400 px -> low band with at least 90 % of the
    grating's energy; every band's energy fraction matches the Gaussian transfer exp(−2π²σ²/P²) within 0.01."""
    g = _grating(period, axis)
    split = bands.band_split(g, (1.0, 16.0))
    inner = (slice(64, -64), slice(64, -64))
    ac = g[inner] - 0.3
    energy = []
    for k, b in enumerate(split):
        part = b[inner] - (0.3 if k == len(split) - 1 else 0.0)  # the low band also holds the mean
        energy.append(float((part ** 2).sum() / (ac ** 2).sum()))
    assert energy[band] > 0.9, energy
    np.testing.assert_allclose(energy, bands.band_gain(period, (1.0, 16.0)) ** 2, atol=0.01)


def test_sigma_for_period_halves_that_period():
    for period in (6.0, 20.0, 60.0):
        g = _grating(period, 1, w=768) - 0.3
        blurred = bands.gaussian_blur(g, bands.sigma_for_period(period))[:, 200:-200]
        gain = float(np.sqrt((blurred ** 2).mean() / (g[:, 200:-200] ** 2).mean()))   # RMS ratio: amplitude gain
        assert abs(gain - 0.5) < 0.01, (period, gain)


def _smooth_field(h=256, w=320):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.5 + 0.3 * np.sin(xx / 40) * np.cos(yy / 50), 0.4 + 0.002 * xx,
                     0.3 + 0.2 * np.cos((xx + yy) / 60)], -1).astype(np.float32)


def _holes(h=256, w=320, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    known = np.ones((h, w), bool)
    for _ in range(25):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 12)
        known &= (xx - cx) ** 2 + (yy - cy) ** 2 > r * r
    known[100:140, 150:200] = False                     # and one large hole, 40×50 px
    return known


def test_pull_push_fills_a_smooth_field_and_keeps_the_known_pixels():
    """Holes (≈10 % of the frame, up to 40×50 px) in a smooth field of amplitude 0.3: RMS error < 0.02 (measured
    0.011), under a fifth of filling with the known mean; known pixels bit-exact; NaN under the holes ignored."""
    truth = _smooth_field()
    known = _holes()
    values = np.where(known[:, :, None], truth, np.nan).astype(np.float32)
    out = fill.fill_holes(values, known)
    hole = ~known
    rms = float(np.sqrt(((out - truth)[hole] ** 2).mean()))
    baseline = float(np.sqrt(((truth[known].mean(axis=0) - truth[hole]) ** 2).mean()))
    assert rms < 0.02 and rms < 0.2 * baseline, (rms, baseline)
    assert np.array_equal(out[known], truth[known])
    gray = fill.fill_holes(truth[:, :, 0], known.astype(np.float32))
    assert gray.shape == known.shape and np.array_equal(gray[known], truth[known][:, 0])


def test_pull_push_fills_a_constant_exactly():
    known = _holes()
    const = np.full(known.shape + (3,), 0.25, np.float32)
    assert np.abs(fill.fill_holes(const, known) - 0.25).max() < 1e-6
    nothing = fill.fill_holes(const, np.zeros(known.shape, np.float32))   # no known pixel at all: zeros
    assert np.array_equal(nothing, np.zeros_like(const))


def test_renderer_uses_the_shared_fill():
    from core.optics import layered
    assert layered.pull_push is fill.pull_push
