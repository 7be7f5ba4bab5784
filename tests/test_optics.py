"""core.optics: the thin lens, aperture kernels and layered renderer, used without any operator.

(The lens formulas and kernel shapes are tested in test_refocus.py, which imports them from here.)"""
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from core.optics import aperture, convolve, layered, thin_lens

ROOT = Path(__file__).resolve().parents[1]


def test_optics_imports_no_operator_and_refocus_uses_it():
    code = ("import sys; import core.optics.thin_lens, core.optics.aperture, core.optics.convolve, "
            "core.optics.layered; bad = [m for m in sys.modules if m.startswith('core.operators')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    from core.operators import refocus
    assert refocus.lens is thin_lens and refocus.aperture is aperture and refocus.render is layered
    for old in ("lens", "aperture", "render"):                 # no second copy left in the operator
        assert importlib.util.find_spec(f"core.operators.refocus.{old}") is None


def test_convolution_turns_a_point_into_the_kernel_not_its_mirror():
    """True convolution on both paths (shifted adds for 3×3, FFT above): an asymmetric kernel comes out as is."""
    rng = np.random.default_rng(0)
    for size in (3, 9):
        k = rng.random((size, size)).astype(np.float32)
        k[0, :] = 0.0                                          # asymmetric: empty top row
        x = torch.zeros((1, 31, 31))
        x[0, 15, 15] = 1.0
        out = convolve.convolve(x, k)[0].numpy()
        r = size // 2
        np.testing.assert_allclose(out[15 - r:16 + r, 15 - r:16 + r], k, atol=1e-6)
        assert abs(float(out.sum()) - float(k.sum())) < 1e-5


def test_fast_len_has_only_small_prime_factors():
    for n in (1, 7, 97, 1021, 4097):
        m = convolve.fast_len(n)
        assert m >= n and all(convolve.fast_len(k) > k for k in range(n, m))  # the smallest such length
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        assert m == 1


def test_one_plane_renders_as_the_aperture_convolution():
    """A scene at one depth is a single layer: the render is the image convolved with that CoC's kernel."""
    rng = np.random.default_rng(1)
    lin = torch.from_numpy(rng.random((3, 90, 117)).astype(np.float32))
    coc = torch.full((90, 117), -5.0)
    kernel = aperture.aperture_kernel(5.0)
    out, stats = layered.render(lin, coc, lambda d, front: aperture.aperture_kernel(d))
    assert stats.layers == 1
    np.testing.assert_allclose(out.numpy(), convolve.convolve(lin, kernel).numpy(), atol=2e-5)


def test_sharp_subject_over_blurred_background_keeps_its_edge_and_does_not_bleed():
    """A red disc in focus (CoC 0) in front of a green wall blurred by a 12 px disc: the subject's pixels are
    the input exactly; the wall just outside the disc shows no red (the sharp subject's layer covers only
    itself), where a per-pixel gather would spread the subject over it."""
    h, w = 128, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - 80, yy - 64)
    subject = r < 30
    wall = np.stack([np.zeros((h, w)), 0.3 + 0.2 * np.sin(xx / 9.0), np.full((h, w), 0.2)]).astype(np.float32)
    img = np.where(subject[None], np.array([1.0, 0.0, 0.0], np.float32)[:, None, None], wall)
    coc = np.where(subject, 0.0, -12.0).astype(np.float32)
    lin, c = torch.from_numpy(img), torch.from_numpy(coc)
    out, stats = layered.render(lin, c, lambda d, front: aperture.aperture_kernel(d))
    out = out.numpy()
    assert stats.layers == 2
    assert np.array_equal(out[:, subject], img[:, subject])
    ring = (r > 31) & (r < 36)
    assert float(out[0][ring].max()) < 0.02, float(out[0][ring].max())
    # Beyond the blur's reach of the subject: the wall, blurred. At full resolution (min_kernel_px above the
    # CoC) exactly; by default the 12 px layer is worked at half resolution, within 0.015 (measured 0.0103).
    far = r > 30 + 6 + 12
    blurred = convolve.convolve(torch.from_numpy(wall), aperture.aperture_kernel(12.0)).numpy()
    assert float(np.abs(out[:, far] - blurred[:, far]).max()) < 0.015
    full, _ = layered.render(lin, c, lambda d, front: aperture.aperture_kernel(d), min_kernel_px=100.0)
    assert float(np.abs(full.numpy()[:, far] - blurred[:, far]).max()) < 1e-4


def test_blurred_foreground_reveals_the_hidden_background():
    """A red disc blurred by a 16 px CoC in front of a wall in focus: the exact two-plane light field is
    wall·(1 − A) + red·A with A the blurred disc coverage. The wall hidden behind the disc's soft edge is guessed
    by the fill: within 0.03 of the truth everywhere (measured 0.027); without the fill 0.53."""
    h, w = 128, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    subject = (np.hypot(xx - 80, yy - 64) < 30).astype(np.float32)
    wall = np.stack([np.zeros((h, w)), 0.3 + 0.2 * np.sin(xx / 9.0), np.full((h, w), 0.2)]).astype(np.float32)
    red = np.array([1.0, 0.0, 0.0], np.float32)[:, None, None]
    img = torch.from_numpy(np.where(subject[None] > 0, red, wall))
    coc = torch.from_numpy(np.where(subject > 0, 16.0, 0.0).astype(np.float32))
    cover = convolve.convolve(torch.from_numpy(subject[None]), aperture.aperture_kernel(16.0)).numpy()
    truth = wall * (1 - cover) + red * cover
    kernels = lambda d, front: aperture.aperture_kernel(d)  # noqa: E731
    out, _ = layered.render(img, coc, kernels)
    assert float(np.abs(out.numpy() - truth).max()) < 0.03
    unfilled, _ = layered.render(img, coc, kernels, fill=False)
    assert float(np.abs(unfilled.numpy() - truth).max()) > 0.3   # what the fill is for


def test_thin_lens_focus_plane_and_sign():
    t = thin_lens.ThinLens(85.0, 1.4, 36.0)
    coc = t.coc_px(np.array([1.0, 2.0, 4.0], np.float32), 2.0, 6000)
    assert coc[1] == 0.0 and coc[0] > 0 > coc[2]               # nearer than focus: positive
    k = t.slope_px(2.0, 6000)
    assert math.isclose(float(coc[0]), k * (1.0 - 0.5), rel_tol=1e-6)
