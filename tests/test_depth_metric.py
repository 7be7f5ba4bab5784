"""Metric depth without a depth map (core.depth.metric, proxy.portrait_maps, estimate_distance): distances in
metres for a lens from the face's size, the background at the stated distance, holes inside the person filled,
the work done once per picture at a working resolution, the person's edge brought to full resolution on the
picture's own edge."""
import types

import cv2
import numpy as np
import pytest

from core import depth
from core.depth import metric, network, proxy
from core.errors import UserError
from tests import scenes
from tests.test_depth_proxy import synthetic_face


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(network, "available", lambda: False)
    depth.clear_cache()
    yield
    depth.clear_cache()


def fake_api(faces, mask, calls=None):
    """A face service with fixed landmarks (full-resolution pixels) and a person mask resized to what it is
    asked for (the proxy asks at its working resolution)."""
    def person_mask(image, device=None):
        if calls is not None:
            calls.append(image.shape[:2])
        return cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)

    return types.SimpleNamespace(
        available=lambda *a: True,
        detect_faces=lambda image, device=None: [types.SimpleNamespace(landmarks=lm, irises=None) for lm in faces],
        person_mask=person_mask)


def person_scene(h=200, w=200):
    lm = synthetic_face()
    mask = np.zeros((h, w), np.float32)
    mask[40:, 60:140] = 1.0
    return lm, mask


# ---------------------------------------------------------------------------------------------------------------
# Holes in the person


def test_holes_inside_the_person_are_filled_and_the_background_is_not():
    h, w = 240, 240
    g = proxy.face_geometry(synthetic_face(cx=120, cy=60, width=40), w)   # a face 40 px wide, about 52 tall
    mask = np.zeros((h, w), np.float32)
    mask[30:, 40:200] = 1.0
    mask[120:140, 80:110] = 0.6      # the segmenter unsure about a badge: 600 px, smaller than the face
    mask[150:215, 120:190] = 0.0     # a real gap (an arm on a hip): 4550 px, larger than the face (2080)
    mask[225:, 60:80] = 0.0          # a notch open to the frame's edge
    filled, n = proxy.fill_person_holes(mask, [g])
    assert n == 600
    assert filled[120:140, 80:110].min() == 1.0
    assert filled[150:215, 120:190].max() == 0.0 and filled[226:, 61:79].max() == 0.0
    assert np.array_equal(filled[mask == 1.0], mask[mask == 1.0])
    # Without a face the limit is 2 % of the person's area (28150 px here): 600 px is more, 400 px less.
    assert proxy.fill_person_holes(mask, [])[1] == 0
    mask[120:140, 80:110], mask[120:140, 80:100] = 1.0, 0.6
    assert proxy.fill_person_holes(mask, [])[1] == 400


def test_a_filled_hole_is_at_the_body_distance():
    h, w = 200, 200
    lm, mask = person_scene(h, w)
    mask[150:170, 90:110] = 0.5      # a dip in the middle of the body
    faces = [proxy.face_geometry(lm, w)]
    scale, offset, coverage, filled = proxy.portrait_maps((h, w), faces, mask)
    assert filled == 400 and coverage[150:170, 90:110].min() == 1.0
    d = proxy.focal_ratio() * scale + offset
    assert abs(float(d[160, 100]) - float(d[160, 80])) < 0.01   # metres: the same as the body beside it


# ---------------------------------------------------------------------------------------------------------------
# Metres for a lens


def test_subject_distance_from_the_face_size_and_the_field_of_view(monkeypatch):
    h, w = 200, 300
    lm, _ = person_scene(h, w)
    mask = np.zeros((h, w), np.float32)
    mask[40:, 60:140] = 1.0
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_api([lm], mask))
    img = scenes.texture(h, w, seed=3)
    width = np.linalg.norm(lm[454, :2] - lm[234, :2])
    height = np.linalg.norm(lm[10, :2] - lm[152, :2])
    m_per_px = min(0.15 / width, 0.1725 / height)
    for focal_mm in (35.0, 85.0, 200.0):
        ratio = focal_mm / 36.0
        m = depth.estimate_distance(img, ratio, background_m=10.0)
        # A pinhole: distance = focal length in pixels × metres per pixel at the face.
        assert m.subject_m == pytest.approx(ratio * w * m_per_px, rel=1e-5)
        assert m.background_m == 10.0 and m.measured
        assert m.distance_m[5, 250] == pytest.approx(10.0, rel=1e-4)          # background where stated
        body = float(m.distance_m[170, 100])
        assert m.subject_m < body < m.subject_m + proxy.BODY_ROUNDING_M + 1e-3  # body at the face's outline
        nose = float(m.distance_m[int(lm[1, 1]), int(lm[1, 0])])
        assert nose < m.subject_m                                              # the nose in front of the outline
        assert f"{proxy.field_of_view_deg(ratio):.1f}°" in m.assumed and "background 10 m" in m.assumed
    # A background asked nearer than the subject is moved behind it, and the info says so.
    m = depth.estimate_distance(img, 200.0 / 36.0, background_m=0.5)
    assert m.background_m > m.subject_m and "moved behind the subject" in m.assumed
    with pytest.raises(UserError):
        depth.estimate_distance(img, 0.0)


def test_no_face_means_an_assumed_distance_said_so(monkeypatch):
    h, w = 200, 200
    _, mask = person_scene(h, w)
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_api([], mask))
    m = depth.estimate_distance(scenes.texture(h, w, seed=4), 50.0 / 36.0)
    assert not m.measured and m.subject_m == proxy.DEFAULT_SUBJECT_M
    assert "no face to measure" in m.assumed
    assert m.distance_m[150, 100] == pytest.approx(proxy.DEFAULT_SUBJECT_M, abs=proxy.BODY_ROUNDING_M + 1e-3)


def test_a_relative_map_scaled_by_the_face():
    """The depth network's path: relative disparity, the face's oval put at its metric distance."""
    h, w = 200, 200
    lm, _ = person_scene(h, w)
    disp = np.full((h, w), 0.05, np.float32)
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(lm[list(proxy.FACE_OVAL), :2]).astype(np.int32)], 1)
    disp[oval > 0] = 0.5
    ratio = 85.0 / 36.0
    m = metric.distance_from_disparity(disp, [lm], ratio, w, background_m=10.0)
    subject = proxy.face_geometry(lm, w).outline_at(ratio)
    assert m.subject_m == pytest.approx(subject)
    assert m.distance_m[int(lm[1, 1]), int(lm[1, 0])] == pytest.approx(subject, rel=1e-5)
    # Ten times less disparity would be ten times farther; the background distance caps it.
    assert m.distance_m[5, 5] == pytest.approx(min(10 * subject, 10.0), rel=1e-5)


def test_with_the_depth_network_the_service_scales_its_map_by_the_face(monkeypatch):
    h, w = 200, 200
    lm, _ = person_scene(h, w)
    disp = np.full((h, w), 0.1, np.float32)
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(lm[list(proxy.FACE_OVAL), :2]).astype(np.int32)], 1)
    disp[oval > 0] = 0.8
    monkeypatch.setattr(network, "available", lambda: True)
    monkeypatch.setattr(network, "estimate", lambda image, job=None, device=None, input_size=None: disp.copy())
    monkeypatch.setattr(depth, "_detect", lambda image, dev: [(lm, None)])
    m = depth.estimate_distance(scenes.texture(h, w, seed=6), 85.0 / 36.0, background_m=10.0)
    assert m.source.startswith("network:") and m.matte is None
    assert m.subject_m == pytest.approx(proxy.face_geometry(lm, w).outline_at(85.0 / 36.0))
    assert m.distance_m[5, 5] == pytest.approx(min(8 * m.subject_m, 10.0), rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Once per picture, at a working resolution


def test_work_once_per_picture_at_a_working_resolution(monkeypatch):
    h, w = 1500, 2000
    k = w / 200.0
    lm, small_mask = person_scene(150, 200)
    lm = lm * np.float32(k)
    calls = []
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_api([lm], small_mask, calls))
    img = cv2.resize(scenes.texture(150, 200, seed=5), (w, h), interpolation=cv2.INTER_LINEAR)
    a = depth.estimate_distance(img, 85.0 / 36.0)
    b = depth.estimate_distance(img, 35.0 / 36.0, background_m=20.0)
    rel = depth.estimate(img)
    assert len(calls) == 1 and max(calls[0]) == proxy.WORK_SIDE     # one person mask, at the working size
    assert a.distance_m.shape == (h, w) and rel.disparity.shape == (h, w)
    assert b.subject_m == pytest.approx(a.subject_m * 35.0 / 85.0)
    assert a.matte is b.matte and not a.matte.flags.writeable       # the coverage is shared, read-only
    a.distance_m[:] = 0                                             # each caller gets its own distances
    assert depth.estimate_distance(img, 85.0 / 36.0).distance_m.min() > 0


def test_the_person_edge_lands_on_the_picture_edge_at_full_resolution(monkeypatch):
    """A bright person on a dark background at 3000 × 2250. The mask comes at the working resolution with edges
    half a working pixel soft (2 px here); at full resolution the coverage crosses 0.5 within long side /
    EDGE_SIDE px of the true edge for 90 % of the misplaced pixels, and its soft band (0.1-0.9) is a quarter of a
    bilinear upsampling's. (A mask blurred further than its own pixels stays soft: the joint bilateral
    upsampler aligns edges, it cannot sharpen values the samples do not hold.)"""
    h, w = 2250, 3000
    lm = synthetic_face(cx=1500, cy=300, width=500)
    truth = np.zeros((h, w), np.float32)
    truth[500:, 900:2100] = 1.0
    cv2.fillConvexPoly(truth, cv2.convexHull(np.round(lm[:, :2]).astype(np.int32)), 1.0)   # the head
    img = np.repeat((0.15 + 0.7 * truth)[:, :, None], 3, axis=2)
    work = (proxy.WORK_SIDE, proxy.WORK_SIDE * h // w)
    soft = cv2.GaussianBlur(cv2.resize(truth, work, interpolation=cv2.INTER_AREA), (0, 0), 0.5)
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_api([lm], soft))
    m = depth.estimate_distance(img, 85.0 / 36.0)
    t = truth.astype(np.uint8)
    outline = int((t - cv2.erode(t, np.ones((3, 3), np.uint8))).sum())     # about 6000 px
    wrong = (m.matte > 0.5) != (truth > 0.5)
    inside = cv2.distanceTransform(t, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - t, cv2.DIST_L2, 3)
    off = np.maximum(inside, outside)[wrong]
    # Measured: 639 pixels on the wrong side of 0.5 (of an outline 5723 px long), 90 % of them within 1.9 px of
    # the edge, all within 3.8 px (the head's corners, rounded by the soft mask).
    assert off.size < 0.2 * outline, (off.size, outline)
    assert np.percentile(off, 90) <= w / metric.EDGE_SIDE and off.max() <= 2 * w / metric.EDGE_SIDE, off.max()
    band = lambda c: int(((c > 0.1) & (c < 0.9)).sum())  # noqa: E731
    plain = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
    assert band(m.matte) < 0.4 * band(plain), (band(m.matte), band(plain))   # measured 9036 and 35173
