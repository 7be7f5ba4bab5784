"""Dense warps against exact ground truth: global transforms each model must reproduce, interpolation at the
control points, the identity, the Jacobian of a scaling, folds, and a warp there and back."""
import numpy as np
import pytest

from core.errors import UserError
from core.imaging import warp as W
from tests.scenes import psnr, texture

H, WIDTH = 180, 260
CENTRE = np.array([130.0, 90.0])


def _grid():
    ys, xs = np.mgrid[0:H, 0:WIDTH].astype(np.float64)
    return np.stack([xs, ys], axis=2)


def _transform(kind):
    """A forward map of the given kind (content moves x -> A (x - c) + c + t), as (A, t)."""
    a = np.radians(14.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    if kind == "rigid":
        m = rot
    elif kind == "similarity":
        m = 1.12 * rot
    else:   # affine: shear and unequal scales too
        m = np.array([[1.1, 0.2], [-0.15, 0.92]]) @ rot
    return m, np.array([6.5, -4.25])


def _apply(m, t, x):
    return (x - CENTRE) @ m.T + CENTRE + t


def _control_points(n=9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform([20, 20], [WIDTH - 20, H - 20], (n, 2))


@pytest.mark.parametrize("method,kind", [("rigid", "rigid"), ("similarity", "similarity"),
                                         ("affine", "affine"), ("tps", "affine")])
def test_points_of_a_global_transform_give_that_transform_everywhere(method, kind):
    m, t = _transform(kind)
    src = _control_points()
    field = W.displacement_field(W.fit(src, _apply(m, t, src), method), H, WIDTH)
    pos = _grid()
    truth = (pos - CENTRE - t) @ np.linalg.inv(m).T + CENTRE - pos     # backward: where each pixel came from
    err = np.abs(field - truth).max()
    assert err < 1e-3, err          # pixels; measured 1.9e-6 (float32 rounding of the field)


def _irregular_points(seed=1):
    """A 5×4 lattice of control points, jittered, each moved by a few pixels in its own direction."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.linspace(30, WIDTH - 30, 5), np.linspace(25, H - 25, 4))
    src = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-8, 8, (20, 2))
    tgt = src + rng.normal(0, 4, src.shape)
    return np.round(src), np.round(tgt)      # on pixel centres, so the dense field can be read there


@pytest.mark.parametrize("method", W.METHODS)
def test_warp_interpolates_its_control_points(method):
    src, tgt = _irregular_points()
    warp = W.fit(src, tgt, method)
    assert np.abs(warp(tgt) - src).max() < 1e-9                      # the model itself
    field = W.displacement_field(warp, H, WIDTH)
    ti = tgt.astype(int)
    at_points = field[ti[:, 1], ti[:, 0]] + tgt
    assert np.abs(at_points - src).max() < 0.01                       # the dense field, px; measured 3e-14
    # between the points the 8-px grid stays close to the exact model everywhere
    exact = W.displacement_field(warp, H, WIDTH, grid_step=1)
    assert np.abs(field - exact).max() < 0.15                         # measured 0.013 (tps) to 0.079 (similarity)


def test_tps_smoothing_approaches_instead_of_interpolating():
    src, tgt = _irregular_points()
    exact = W.fit(src, tgt, "tps")
    smooth = W.fit(src, tgt, "tps", smoothing=1.0)
    residual = np.abs(smooth(tgt) - src).max()
    assert residual > 0.1 and np.abs(exact(tgt) - src).max() < 1e-9


@pytest.mark.parametrize("method", W.METHODS)
def test_identity_points_leave_the_image_unchanged(method):
    src = _control_points()
    field = W.displacement_field(W.fit(src, src, method), H, WIDTH)
    assert np.abs(field).max() < 1e-9
    img = np.concatenate([texture(H, WIDTH, seed=3), texture(H, WIDTH, seed=4)[:, :, :2]], axis=2)   # 5 channels
    for interp in ("cubic", "lanczos"):
        out = W.remap(img, field, interp)
        assert out.shape == img.shape and np.abs(out - img).max() < 1e-6


def test_jacobian_determinant_of_a_scaling_is_its_square():
    pos = _grid()
    for k in (0.8, 1.0, 1.25):
        field = ((k - 1.0) * (pos - CENTRE)).astype(np.float32)      # backward map s(x) = c + k (x - c)
        assert np.abs(W.jacobian_determinant(field) - k * k).max() < 1e-5
    # content enlarged 1.5× about the centre: the backward map shrinks by 1/1.5, det = 1/1.5²
    src = _control_points()
    for method in ("similarity", "affine", "tps"):        # rigid MLS cannot scale, by design
        field = W.displacement_field(W.fit(src, CENTRE + 1.5 * (src - CENTRE), method), H, WIDTH)
        assert np.abs(W.jacobian_determinant(field) - 1 / 1.5 ** 2).max() < 1e-4   # measured 1.7e-6


def test_folds_are_found_where_the_analytic_jacobian_is_not_positive():
    pos = _grid()
    amp, period = 12.0, 40.0                  # dDx/dx = 1 + amp·2π/period·cos(...) reaches -0.9: folds
    phase = 2 * np.pi * pos[..., 0] / period
    field = np.stack([amp * np.sin(phase), np.zeros(phase.shape)], axis=2).astype(np.float32)
    det_true = 1 + amp * 2 * np.pi / period * np.cos(phase)
    clear = np.abs(det_true) > 0.1           # away from the fold lines, where differences decide the sign
    clear[:, :1] = clear[:, -1:] = False
    assert np.array_equal(W.folds(field)[clear], (det_true <= 0)[clear])
    assert W.folds(field).mean() > 0.2
    assert not W.folds(W.displacement_field(W.fit(*_irregular_points(), "rigid"), H, WIDTH)).any()


@pytest.mark.parametrize("interp,limit_db", [("cubic", 40.0), ("lanczos", 42.0)])
def test_there_and_back_recovers_the_texture(interp, limit_db):
    img = texture(H, WIDTH, seed=2)
    pos = _grid()
    x, y = pos[..., 0], pos[..., 1]
    field = np.stack([2.5 * np.sin(2 * np.pi * y / 97 + 0.3) * np.cos(2 * np.pi * x / 131),
                      2.0 * np.cos(2 * np.pi * x / 83) * np.sin(2 * np.pi * y / 71)], axis=2).astype(np.float32)
    inverse = W.invert_field(field)
    # the inverse field composes with the field to the identity (px)
    assert np.abs(inverse + W.remap(field, inverse, border="replicate")).max() < 1e-3
    back = W.remap(W.remap(img, field, interp), inverse, interp)
    value = psnr(back, img)
    # measured 42.6 dB (cubic), 44.1 dB (Lanczos): two resamplings of detail up to the pixel scale
    assert value > limit_db, value
    assert psnr(W.remap(img, field, interp), img) < 30        # the warp itself moved things: 26.7 dB


def test_content_moves_from_source_to_target():
    """A small Gaussian spot at a source point lands on its target point (its centroid, in pixels)."""
    pos = _grid()
    src = np.array([[70.0, 60.0], [190.0, 50.0], [120.0, 140.0], [40.0, 150.0]])
    tgt = src + np.array([[6.3, -2.1], [-4.0, 3.5], [2.2, 5.7], [-3.1, -4.4]])
    spot = np.exp(-((pos - src[0]) ** 2).sum(axis=2) / (2 * 2.0 ** 2)).astype(np.float32)
    for method in W.METHODS:
        out, _ = W.warp_image(spot, src, tgt, method)
        centroid = (pos * out[..., None]).sum(axis=(0, 1)) / out.sum()
        assert np.abs(centroid - tgt[0]).max() < 0.05, (method, centroid)   # measured at most 0.031 px


def test_few_points_fall_back_and_bad_points_are_refused():
    pos = _grid()
    assert np.abs(W.displacement_field(W.fit(np.zeros((0, 2)), np.zeros((0, 2))), H, WIDTH)).max() == 0
    one = W.displacement_field(W.fit([[10.0, 10.0]], [[13.0, 8.0]], "tps"), H, WIDTH)
    assert np.abs(one - (-3.0, 2.0)).max() < 1e-6                   # a translation
    two = W.fit([[50.0, 50.0], [150.0, 50.0]], [[60.0, 40.0], [160.0, 40.0]], "affine")
    assert two.method == "similarity"
    with pytest.raises(UserError, match="pairs"):
        W.fit(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(UserError, match="share one target"):
        W.fit([[1.0, 1.0], [5.0, 5.0]], [[2.0, 2.0], [2.0, 2.0]])
    with pytest.raises(UserError, match="warp method"):
        W.fit(pos[0, :3], pos[0, :3], "bend")
