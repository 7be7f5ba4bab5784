"""core.imaging.noise: the one noise measurement, against synthetic noise of known σ, correlation and covariance."""
import cv2
import numpy as np
import pytest
import torch

from core.imaging import noise as nz
from tests import scenes

H, W = 512, 640


def smooth_scene(h=H, w=W, lo=0.3, hi=0.7):
    """Smooth shading (no texture) over a range of levels, three channels."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = lo + (hi - lo) * xx / w
    base = base * (0.9 + 0.1 * np.cos(yy / 70.0)) + 0.03 * np.sin(xx / 55.0)
    return np.stack([base, base * 0.95 + 0.02, base * 0.9 + 0.04], axis=-1).astype(np.float32)


def chw(x):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).transpose(2, 0, 1)))


def correlated(shape, rng, kx, ky, mix=None):
    """White N(0, 1) per channel, mixed across channels by `mix`, filtered by the separable kernels (kx along x,
    ky along y), rescaled to unit variance per unit of input variance. Returns (noise, variance gain undone)."""
    white = rng.standard_normal(shape).astype(np.float32)
    if mix is not None:
        white = white @ np.asarray(mix, np.float32).T
    kx, ky = np.asarray(kx, np.float32), np.asarray(ky, np.float32)
    gain = float((kx ** 2).sum() * (ky ** 2).sum())
    planes = [cv2.sepFilter2D(white[:, :, c], -1, kx, ky, borderType=cv2.BORDER_REFLECT) for c in range(shape[2])]
    return np.stack(planes, axis=-1) / np.sqrt(gain)


def autocorr(k, lag):
    """Autocorrelation coefficient at `lag` of white noise filtered by the 1-D kernel k."""
    k = np.asarray(k, np.float64)
    full = np.correlate(k, k, mode="full")
    i = len(k) - 1 + lag
    return float(full[i] / full[len(k) - 1]) if i < len(full) else 0.0


def test_level_dependent_sigma_of_white_noise():
    """variance = a·level + b from one picture (levels 0.05..0.95): a within 5 %, σ within 3 % at every level;
    no spurious correlation."""
    rng = np.random.default_rng(0)
    img = smooth_scene(lo=0.05, hi=0.95)
    a, b = 0.002, 1e-4
    noisy = (img + rng.standard_normal(img.shape).astype(np.float32) * np.sqrt(a * img + b)).astype(np.float32)
    p = nz.measure(noisy)
    assert abs(p.model.a - a) / a < 0.05, p.model
    assert abs(p.model.b - b) / b < 0.25, p.model
    for level in (0.1, 0.5, 0.9):
        assert abs(float(p.sigma(level)) / np.sqrt(a * level + b) - 1) < 0.03, (level, p.model)
    assert np.abs(p.lag1).max() < 0.02, p.lag1
    assert abs(p.hh_factor - 1.0) < 0.04
    # The Haar level model (denoise's) agrees on white noise.
    hh = nz.level_model(chw(noisy))
    assert abs(hh.a - a) / a < 0.05, hh


@pytest.mark.parametrize("kx, ky", [((0.25, 0.5, 0.25), (0.25, 0.5, 0.25)), ((0.25, 0.5, 0.25), (1.0,)),
                                    ((1.0,), (0.2, 0.6, 0.2))])
def test_spatial_correlation_and_sigma_of_correlated_noise(kx, ky):
    """Filtered white noise: ρ at lags 1 and 2 along each axis within 0.01 and σ within 1 % (measured over six
    seeds: 0.007 and 0.4 %; without the exact detrending correction ρ reads 0.013 and σ 1.7 % low), and the HH
    under-reading factor as computed from the kernel."""
    rng = np.random.default_rng(1)
    img = smooth_scene()
    sigma = 0.02
    noisy = img + sigma * correlated(img.shape, rng, kx, ky)
    p = nz.measure(noisy)
    rx1, ry1, rx2, ry2 = autocorr(kx, 1), autocorr(ky, 1), autocorr(kx, 2), autocorr(ky, 2)
    lag = nz.MAX_LAG
    for c in range(3):
        assert abs(p.lag1[c, 0] - rx1) < 0.01 and abs(p.lag1[c, 1] - ry1) < 0.01, (p.lag1, rx1, ry1)
        assert abs(p.correlation[c, lag, lag + 2] - rx2) < 0.01, p.correlation[c]
        assert abs(p.correlation[c, lag + 2, lag] - ry2) < 0.01, p.correlation[c]
        assert abs(p.correlation[c, lag + 1, lag + 1] - rx1 * ry1) < 0.01, p.correlation[c]
    assert abs(float(p.sigma(0.5)) / sigma - 1) < 0.01, p.model
    assert abs(np.sqrt(p.autocovariance[:, lag, lag]).mean() / sigma - 1) < 0.01
    hh_true = 1 - rx1 - ry1 + rx1 * ry1        # (ρ(1,1) + ρ(1,−1)) / 2 = ρx·ρy for separable noise
    assert abs(p.hh_factor - hh_true) < 0.02, (p.hh_factor, hh_true)


def test_noise_power_spectrum_of_horizontally_correlated_noise():
    """[1 2 1]/4 along x: S(fx, fy) = σ²(6 + 8 cos 2πfx + 2 cos 4πfx)/6, flat along fy; within 5 % of σ²·(peak)."""
    rng = np.random.default_rng(2)
    img = smooth_scene()
    sigma = 0.03
    noisy = img + sigma * correlated(img.shape, rng, (0.25, 0.5, 0.25), (1.0,))
    s = nz.measure(noisy).spectrum(32)
    f = np.fft.fftfreq(32)
    truth = sigma ** 2 * (6 + 8 * np.cos(2 * np.pi * f) + 2 * np.cos(4 * np.pi * f)) / 6
    for c in range(3):
        for fy in (0, 5, 16):
            err = np.abs(s[c, fy] - truth).max() / truth.max()
            assert err < 0.05, (c, fy, err)
    assert abs(s.mean(axis=(1, 2)).mean() / sigma ** 2 - 1) < 0.05   # the spectrum averages to the variance


def test_cross_channel_covariance():
    """Channels mixed by a known matrix L (covariance σ²·L·Lᵀ), spatially correlated too: every entry within
    3 % of the largest; correlation coefficients within 0.02."""
    rng = np.random.default_rng(3)
    img = smooth_scene()
    mix = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.3, -0.4, 0.7]])
    sigma = 0.02
    noisy = img + sigma * correlated(img.shape, rng, (0.25, 0.5, 0.25), (0.25, 0.5, 0.25), mix)
    p = nz.measure(noisy)
    truth = sigma ** 2 * mix @ mix.T
    assert np.abs(p.covariance - truth).max() / np.abs(truth).max() < 0.03, (p.covariance, truth)
    d = np.sqrt(np.diag(truth))
    assert np.abs(p.channel_correlation - truth / np.outer(d, d)).max() < 0.02


def test_textured_regions_are_not_taken_for_noise():
    """Half the frame is strong texture: σ is still found within 5 % from the smooth half."""
    rng = np.random.default_rng(4)
    img = smooth_scene()
    tex = scenes.texture(H, W, seed=2)
    yy, xx = np.mgrid[0:H, 0:W]
    mixed = np.where((xx < W // 2)[:, :, None], tex, img).astype(np.float32)
    sigma = 0.015
    p = nz.measure(mixed + rng.standard_normal(mixed.shape).astype(np.float32) * sigma)
    assert abs(float(p.sigma(0.5)) / sigma - 1) < 0.05, p.model
    assert np.abs(p.lag1).max() < 0.03


def test_mask_selects_the_region_measured():
    """Different noise inside and outside the mask: each side measured on its own (σ within 3 %), by the profile,
    the Immerkaer σ and the Haar level model."""
    rng = np.random.default_rng(5)
    img = smooth_scene()
    mask = np.zeros((H, W), np.float32)
    mask[:, W // 2:] = 1.0
    inside, outside = 0.04, 0.01
    sig = np.where(mask[:, :, None] > 0, inside, outside).astype(np.float32)
    noisy = (img + rng.standard_normal(img.shape).astype(np.float32) * sig).astype(np.float32)
    for m, truth in ((mask, inside), (1.0 - mask, outside)):
        assert abs(float(nz.measure(noisy, m).sigma(0.5)) / truth - 1) < 0.03
        imm = nz.immerkaer_sigma(chw(noisy), m)
        assert np.abs(imm.numpy() / truth - 1).max() < 0.05, imm
        lm = nz.level_model(chw(noisy), m)
        assert abs(np.sqrt(lm.a * 0.5 + lm.b) / truth - 1) < 0.05, lm


def test_immerkaer_sigma_is_refocus_grain_estimator():
    """White noise of σ = 0.02: within 5 % per channel, on a small and a big (tiled) picture."""
    from core.operators.refocus import grain
    assert grain.estimate_sigma is nz.immerkaer_sigma
    rng = np.random.default_rng(6)
    for h, w in ((H, W), (1000, 900)):
        img = smooth_scene(h, w)
        noisy = img + rng.standard_normal(img.shape).astype(np.float32) * 0.02
        s = nz.immerkaer_sigma(chw(noisy)).numpy()
        assert np.abs(s / 0.02 - 1).max() < 0.05, s


def test_hh_median_variance_undoes_a_known_prefilter():
    """The alignment's estimator: noise variance of a pre-blurred picture = σ²·Σk² (within 5 %)."""
    from core.operators.denoise import align
    rng = np.random.default_rng(7)
    luma = torch.from_numpy(smooth_scene()[:, :, 0] + rng.standard_normal((H, W)).astype(np.float32) * 0.02)
    blurred = align._blur(luma)
    k = np.array([1, 4, 6, 4, 1]) / 16.0
    truth = 0.02 ** 2 * float((k ** 2).sum()) ** 2
    assert abs(nz.hh_median_variance(blurred, align._blur) / truth - 1) < 0.05
    assert align.luma_noise_variance(blurred, align._blur) == nz.hh_median_variance(blurred, align._blur)
    assert abs(nz.filter_gain(align._blur) / float((k ** 2).sum()) ** 2 - 1) < 0.05


def test_big_picture_and_gray_input():
    """A 1.5 MP picture is measured on a grid of tiles (σ within 3 %); an H×W picture works as one channel."""
    rng = np.random.default_rng(8)
    big = smooth_scene(1500, 1000)
    p = nz.measure(big + rng.standard_normal(big.shape).astype(np.float32) * 0.02)
    assert abs(float(p.sigma(0.5)) / 0.02 - 1) < 0.03 and p.blocks > 200
    gray = smooth_scene()[:, :, 0] + rng.standard_normal((H, W)).astype(np.float32) * 0.01
    g = nz.measure(gray)
    assert g.covariance.shape == (1, 1) and abs(float(g.sigma(0.5)) / 0.01 - 1) < 0.03


def test_detrending_correction_is_exact():
    """The expected residual lag sums per unit of c(u) (computed from the 6 basis images) equal the dense
    trace tr(T_τ R S_u R) on an 8×8 block."""
    b = 8
    lags = nz._lags(nz.MAX_LAG)
    q = nz._basis(b)
    r = np.eye(b * b) - q @ q.T

    def shift_matrix(lag):
        m = np.zeros((b * b, b * b))
        for i in range(b * b):
            y, x = divmod(i, b)
            if 0 <= y + lag[0] < b and 0 <= x + lag[1] < b:
                m[i, (y + lag[0]) * b + x + lag[1]] = 1.0
        return m

    def sym(u):
        return np.eye(b * b) if u == (0, 0) else shift_matrix(u) + shift_matrix((-u[0], -u[1]))

    dense = np.array([[np.trace(shift_matrix(t) @ r @ sym(u) @ r) for u in lags] for t in lags])
    np.testing.assert_allclose(nz._design(b, lags), dense, atol=1e-9)
