"""Normal maps against exact geometry: a ray-traced sphere and tilted planes seen by a pinhole camera, round trips
through files at each depth, and pictures that are not normal maps."""
import numpy as np
import pytest

from core.errors import UserError
from core.imaging import normalmap as N
from core.imaging.depthmap import interpret as interpret_depth
from tests.scenes import portrait, sphere, texture

FOCAL_PX = 300.0


def _rays(h, w, f=FOCAL_PX):
    """Per-pixel ray directions r = (a, b, -1) with the point at depth Z being Z·r (x right, y up)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a = (xx + 0.5 - w / 2) / f
    b = -(yy + 0.5 - h / 2) / f
    return np.stack([a, b, -np.ones_like(a)], axis=2)


def _sphere_scene(h=240, w=320, radius_m=0.5, centre_m=2.0, wall_m=4.0):
    """A sphere of radius 0.5 m, 2 m in front of the camera, before a wall at 4 m facing the camera.
    Returns (depth Z in metres, analytic normals, sphere mask)."""
    r = _rays(h, w)
    c = np.array([0.0, 0.0, -centre_m])
    rr = (r * r).sum(axis=2)
    rc = r @ c
    disc = rc * rc - rr * (c @ c - radius_m ** 2)
    hit = disc > 0
    t = (rc - np.sqrt(np.where(hit, disc, 0.0))) / rr          # nearer intersection; Z = t since r_z = -1
    z = np.where(hit, t, wall_m)
    normals = np.where(hit[:, :, None], (t[:, :, None] * r - c) / radius_m, [0.0, 0.0, 1.0])
    return z.astype(np.float32), normals.astype(np.float32), hit


def _angle_deg(a, b):
    """Angle between unit vectors in degrees, as atan2(|a×b|, a·b) in float64: arccos of a float32 dot product
    cannot resolve angles below 0.02°."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(axis=-1)))


def _erode(mask, px):
    import cv2
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


# ------------------------------------------------------------------------------------------ from depth

def test_sphere_depth_gives_its_analytic_normals():
    z, truth, hit = _sphere_scene()
    nm = N.normals_from_depth(interpret_depth(z, "distance"), FOCAL_PX)
    steep = truth[:, :, 2] > np.cos(np.radians(75))           # the limb is measured separately below
    inner = _erode(hit, 2) & steep
    err = _angle_deg(nm.normals, truth)
    # measured: mean 0.024°, max 0.37° up to 75° from the view
    assert err[inner].mean() < 0.05 and err[inner].max() < 0.5, (err[inner].mean(), err[inner].max())
    assert nm.valid.all()
    # the pixels just inside the silhouette keep the sphere's normal (one-sided differences, no blend with
    # the wall) and the wall right next to the sphere stays flat
    rim = hit & ~_erode(hit, 1)
    assert np.median(err[rim]) < 5.0            # measured 3.0° (the limb is steep: first-order differences)
    wall_next = _erode(~hit, 0) & ~_erode(~hit, 1)
    assert err[wall_next].max() < 1e-3


def test_disparity_gives_the_same_normals_as_distance():
    z, truth, hit = _sphere_scene()
    from_distance = N.normals_from_depth(z, FOCAL_PX, kind="distance").normals
    from_disparity = N.normals_from_depth(0.37 / z, FOCAL_PX, kind="disparity").normals   # any scale
    assert _angle_deg(from_distance, from_disparity).max() < 0.01


@pytest.mark.parametrize("axis,tilt_deg", [("y", 30.0), ("y", -50.0), ("x", 20.0), ("x", -35.0)])
def test_tilted_plane_gives_its_tilt(axis, tilt_deg):
    """A plane through (0, 0, -2 m) whose normal is the camera's z axis turned by tilt_deg about `axis`."""
    h, w = 200, 260
    t = np.radians(tilt_deg)
    n = np.array([np.sin(t), 0.0, np.cos(t)]) if axis == "y" else np.array([0.0, np.sin(t), np.cos(t)])
    r = _rays(h, w)
    z = -2.0 * n[2] / (r @ n)                 # n·(Z r - (0, 0, -2)) = 0
    assert z.min() > 0
    nm = N.normals_from_depth(z.astype(np.float32), FOCAL_PX, kind="distance")
    err = _angle_deg(nm.normals, n.astype(np.float32))
    tilt = np.degrees(np.arccos(np.clip(nm.normals[:, :, 2], -1, 1)))
    assert err.max() < 0.01                     # measured at most 0.002°: the direction, sign included
    assert np.abs(tilt - abs(tilt_deg)).max() < 0.01
    # right side farther for a positive turn about y; the top farther for a positive turn about x (rows go down)
    if axis == "y":
        assert (z[:, -1] > z[:, 0]).all() == (tilt_deg > 0)
    else:
        assert (z[0] > z[-1]).all() == (tilt_deg > 0)


def test_points_at_infinity_have_no_normal():
    z, _, hit = _sphere_scene()
    disp = np.where(hit, 1.0 / z, 0.0).astype(np.float32)     # background at infinity
    nm = N.normals_from_depth(disp, FOCAL_PX, kind="disparity")
    assert not nm.valid[~hit].any() and nm.valid[_erode(hit, 1)].all()
    assert np.array_equal(nm.normals[~hit], np.broadcast_to(N.FACING, nm.normals[~hit].shape))


def test_focal_length_must_be_positive():
    with pytest.raises(UserError, match="focal length"):
        N.normals_from_depth(np.ones((8, 8), np.float32) * 2, 0.0, kind="distance")
    assert N.focal_px(50.0, 36.0, 7200) == pytest.approx(10000.0)


# ---------------------------------------------------------------------------------------- files, layers

def _sphere_map(h=96, w=128):
    n, _, mask = sphere(h, w)
    return n, mask


def test_16_bit_round_trip_within_quantisation(tmp_path):
    n, _ = _sphere_map()
    path = tmp_path / "n.png"
    assert N.write_normal_file(path, n, "u16") == "u16"
    back = N.read_normal_file(path)
    # one 16-bit step is 2/65535 in n; the rounding is half of it, renormalising adds a little
    assert np.abs(back.normals - n).max() < 1.5 / 65535 * 2
    assert _angle_deg(back.normals, n).max() < 0.005     # degrees; measured 0.0013°
    assert back.valid.all()


def test_8_bit_and_float_round_trips(tmp_path):
    n, _ = _sphere_map()
    N.write_normal_file(tmp_path / "n8.png", n, "u8")
    assert _angle_deg(N.read_normal_file(tmp_path / "n8.png").normals, n).max() < 0.5   # measured 0.34°
    assert N.write_normal_file(tmp_path / "n.tif", n, "f32") == "f32"
    back = N.read_normal_file(tmp_path / "n.tif")
    assert np.abs(back.normals - n).max() < 1e-6
    assert N.write_normal_file(tmp_path / "f.png", n, "f32") == "u16"   # PNG holds no float: encoded instead
    assert _angle_deg(N.read_normal_file(tmp_path / "f.png").normals, n).max() < 0.005


def test_layer_pixels_by_storage():
    n, _ = _sphere_map()
    encoded = N.encode(n, "u16")
    assert _angle_deg(N.interpret(encoded, "u16").normals, n).max() < 1e-3
    assert _angle_deg(N.interpret(n, "f32").normals, n).max() < 1e-3
    assert _angle_deg(N.interpret(n).normals, n).max() < 1e-3            # negative values: raw
    # a float layer painted as colour, (n + 1) / 2: the data settles it
    assert _angle_deg(N.interpret(encoded, "f32").normals, n).max() < 1e-3
    flipped = N.interpret(encoded, "u16", flip_y=True).normals
    assert np.allclose(flipped[:, :, 1], -n[:, :, 1], atol=1e-4)


def test_colour_photo_is_refused():
    photo = portrait()
    with pytest.raises(UserError, match="does not hold unit normal vectors"):
        N.interpret(photo, "u8")
    with pytest.raises(UserError, match="colour picture is not a normal map"):
        N.interpret(texture(64, 64, seed=3), "u16")


def test_non_unit_vectors_are_refused():
    n, _ = _sphere_map()
    with pytest.raises(UserError, match=r"median length 0\.80"):
        N.interpret(n * 0.8, "f32")
    with pytest.raises(UserError, match="three channels"):
        N.interpret(n[:, :, 0], "f32")
    # a few off pixels (an anti-aliased edge) are tolerated and marked invalid
    few = n.copy()
    few[0, :5] *= 0.5
    nm = N.interpret(few, "f32")
    assert not nm.valid[0, :5].any() and nm.valid.sum() == n.shape[0] * n.shape[1] - 5


def test_transparent_and_black_pixels_hold_no_normal():
    n, mask = _sphere_map()
    encoded = N.encode(n, "u8")
    encoded[~mask] = 0.0                                      # black background
    nm = N.interpret(encoded, "u8")
    assert np.array_equal(nm.valid, mask)
    rgba = np.concatenate([N.encode(n, "u8"), mask[:, :, None].astype(np.float32)], axis=2)
    rgba[~mask, :3] = 0.3                                     # junk under alpha 0: ignored
    assert np.array_equal(N.interpret(rgba, "u8").valid, mask)
    with pytest.raises(UserError, match="transparent or empty"):
        N.interpret(np.zeros((8, 8, 3), np.float32), "u8")


# --------------------------------------------------------------------------------------------- resize

@pytest.mark.parametrize("size", [(64, 48), (256, 192)])
def test_resize_renormalises_and_matches_the_sphere(size):
    n, mask = _sphere_map(96, 128)
    w, h = size
    out = N.resize(N.NormalMap(n, mask), w, h)
    truth, _, tmask = sphere(h, w)
    length = np.linalg.norm(out.normals, axis=2)
    assert np.abs(length - 1).max() < 1e-5
    inner = _erode(tmask, 2) & (truth[:, :, 2] > 0.3)
    err = _angle_deg(out.normals, truth)
    # measured: mean 0.011° / max 0.04° (shrink), mean 0.11° / max 0.34° (enlarge)
    assert err[inner].mean() < 0.3 and err[inner].max() < 1.0, (err[inner].mean(), err[inner].max())
    assert out.valid[inner].all() and not out.valid[_erode(~tmask, 2)].any()
