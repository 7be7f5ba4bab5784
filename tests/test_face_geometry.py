"""Face API geometry without real weights: rotated crops and their inverse, weighted NMS, anchors, detector
windows, polygon masks, and the error when the networks are not installed."""
import math

import cv2
import numpy as np
import pytest

from core.errors import UserError
from core import face
from core.face import detection, landmarks, regions
from core.models import store
from core.models.blazeface import anchors


def test_rotated_crop_maps_back_to_the_same_pixel():
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5  # pixel centres in continuous coordinates
    dot = (231.3, 142.7)
    img = np.exp(-((xx - dot[0]) ** 2 + (yy - dot[1]) ** 2) / (2 * 2.0 ** 2))
    img = np.dstack([img] * 3).astype(np.float32)
    for angle in (0.0, 0.4, -1.1):
        roi = face.Roi(220.0, 150.0, 90.0, 90.0, angle)
        patch = face.crop(img, roi, 64)[:, :, 0]
        py, px = np.mgrid[0:64, 0:64] + 0.5
        c = np.array([(patch * px).sum(), (patch * py).sum()]) / patch.sum()
        back = landmarks._to_image(roi, c[None], 64)[0]
        assert np.hypot(*(back - dot)) < 0.15, (angle, back)


def test_crop_of_a_large_roi_is_antialiased_and_consistent():
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.random((40, 40, 3)).astype(np.float32), (2000, 2000), interpolation=cv2.INTER_CUBIC)
    img[::2, :] = 0.0  # line pattern: aliasing would make the crop stripy
    roi = face.Roi(1000.0, 1000.0, 1500.0, 1500.0, 0.0)
    patch = face.crop(img, roi, 192)
    ref = cv2.resize(img[250:1750, 250:1750], (192, 192), interpolation=cv2.INTER_AREA)
    assert np.abs(patch - ref)[4:-4, 4:-4].mean() < 0.02


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    boxes = np.array([[10, 10, 50, 50], [12, 10, 52, 50], [100, 100, 140, 140]], np.float32)
    pts = np.zeros((3, 6, 2), np.float32)
    pts[:, :, 0] = boxes[:, :1]
    scores = np.array([0.9, 0.6, 0.8])
    out = face.weighted_nms(boxes, pts, scores)
    assert len(out) == 2
    box, kp, score = out[0]
    assert score == 0.9
    assert np.allclose(box, (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5)
    assert np.allclose(kp[:, 0], (10 * 0.9 + 12 * 0.6) / 1.5)
    assert np.allclose(out[1][0], boxes[2])


def test_anchor_layout():
    a = anchors()
    assert a.shape == (896, 2)
    assert np.allclose(a[0], (1 / 32, 1 / 32)) and np.allclose(a[1], a[0])  # 2 anchors per 16×16 cell
    assert np.allclose(a[512], (1 / 16, 1 / 16)) and np.allclose(a[512:518], a[512])  # 6 per 8×8 cell


def test_detector_windows_hold_every_small_face():
    h, w = 900, 1600
    windows = detection._tiles(h, w, 2)
    rng = np.random.default_rng(0)
    for _ in range(300):
        for level in (1, 2):
            t = math.ceil(max(h, w) / 2 ** level)
            s = rng.uniform(0.05, 0.5) * t
            x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
            assert any(x0 <= x and y0 <= y and x + s <= x0 + tt and y + s <= y0 + tt
                       for x0, y0, tt, whole in windows if tt == t), (level, x, y, s)


def test_polygon_mask_area_is_accurate():
    poly = np.array([[20.25, 30.5], [120.75, 30.5], [120.75, 90.0], [20.25, 90.0]])
    m = regions._polygon_mask((128, 160), [poly], 0)
    area = (120.75 - 20.25) * (90.0 - 30.5)
    assert abs(m.sum() - area) / area < 0.01
    soft = regions._polygon_mask((128, 160), [poly], 2.0)
    assert abs(soft.sum() - area) / area < 0.02 and ((soft > 0.05) & (soft < 0.95)).any()


def test_missing_networks_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path))
    face.clear_cache()
    try:
        assert not face.available() and not face.available((face.SELFIE,))
        img = np.zeros((64, 64, 3), np.float32)
        with pytest.raises(UserError, match="python -m core models fetch mediapipe-blazeface"):
            face.detect_faces(img)
        with pytest.raises(UserError, match="fetch mediapipe-selfie"):
            face.person_mask(img)
    finally:
        face.clear_cache()


def test_bad_image_shapes_are_user_errors():
    with pytest.raises(UserError, match="at least 8"):
        face.detect_faces(np.zeros((4, 4, 3), np.float32))


def test_face_size_is_forehead_to_chin_in_pixels_whatever_the_rotation():
    rng = np.random.default_rng(3)
    lm = rng.uniform(50, 150, (468, 3)).astype(np.float32)
    lm[face.topology.FOREHEAD_TOP, :2] = (100.0, 40.0)
    lm[face.topology.CHIN, :2] = (130.0, 80.0)
    lm[face.topology.CHIN, 2] = 500.0  # z does not count: the size is in the image plane
    assert face.face_size(lm) == pytest.approx(50.0, abs=1e-4)
    a = 0.7
    rot = lm.copy()
    rot[:, :2] = lm[:, :2] @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], np.float32)
    assert face.face_size(rot) == pytest.approx(50.0, abs=1e-3)


def test_skin_likelihood_keeps_skin_and_drops_hair_and_background():
    """Skin-coloured noise with a hair patch and a blue patch; the 'sure' mask covers the skin plus a fifth of
    hair (as hair over a forehead would be): the robust colour model must still keep skin and drop the rest."""
    rng = np.random.default_rng(0)
    h, w = 120, 160
    img = np.empty((h, w, 3), np.float32)
    img[:] = (0.80, 0.60, 0.50)                 # skin
    img[:, 120:] = (0.35, 0.25, 0.15)           # brown hair
    img[90:, :60] = (0.25, 0.35, 0.75)          # blue background
    img = np.clip(img + rng.normal(0, 0.01, img.shape).astype(np.float32), 0, 1)
    skin = np.zeros((h, w), bool)
    skin[:, :120] = True
    skin[90:, :60] = False
    sure = skin.copy()
    sure[:, 120:130] = True                     # 1200 hair pixels among 8400 skin pixels in the sample
    like = face.skin_likelihood(img, sure.astype(np.float32))
    assert like.shape == (h, w) and like.dtype == np.float32
    assert (like[skin] > 0.99).mean() > 0.99, float((like[skin] > 0.99).mean())
    hair = like[:, 120:]
    assert hair.mean() < 0.01 and (hair == 0).mean() > 0.95, (float(hair.mean()), float((hair == 0).mean()))
    assert like[90:, :60].max() == 0.0          # measured: hair mean 0.004, 97 % of it exactly 0
    # Too few sure pixels to learn a colour from: no opinion (all ones).
    tiny = np.zeros((h, w), np.float32)
    tiny[:5, :5] = 1
    assert np.array_equal(face.skin_likelihood(img, tiny), np.ones((h, w), np.float32))
