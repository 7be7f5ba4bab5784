"""The portrait depth proxy (face mesh + person mask, no depth weights), the service's choice and cache, and the
`python -m core depth` command."""
import types

import numpy as np
import pytest

from core import depth
from core.depth import network, proxy
from core.errors import UserError
from tests import scenes


def _face_models_present():
    try:
        from core import face
        return face.available() and face.available((face.SELFIE,))
    except ImportError:
        return False


needs_face_models = pytest.mark.skipif(not _face_models_present(),
                                       reason="face models not installed (python -m core models fetch)")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """These tests are about the proxy: the depth network counts as not installed."""
    monkeypatch.setattr(network, "available", lambda: False)
    depth.clear_cache()
    yield
    depth.clear_cache()


def synthetic_face(cx=100.0, cy=80.0, width=60.0):
    """468 landmarks shaped like a face: an oval outline (MediaPipe's silhouette indices) around a dome whose
    top (the nose tip, index 1) is nearest; z in pixels, toward the camera."""
    rng = np.random.default_rng(0)
    lm = np.zeros((468, 3), np.float32)
    r = rng.uniform(0, 0.9, 468) ** 0.5
    a = rng.uniform(0, 2 * np.pi, 468)
    u, v = r * np.cos(a), r * np.sin(a)
    for k, i in enumerate(proxy.FACE_OVAL):
        t = 2 * np.pi * k / len(proxy.FACE_OVAL) - np.pi / 2  # index 10 (forehead) at the top, clockwise
        u[i], v[i] = np.cos(t), np.sin(t)
    u[1], v[1] = 0.0, 0.1
    lm[:, 0] = cx + u * width / 2
    lm[:, 1] = cy + v * width * 0.65
    lm[:, 2] = np.sqrt(np.clip(1 - u ** 2 - v ** 2, 0, 1)) * width * 0.35
    return lm


def fake_face_api(faces, mask):
    def person_mask(image, device=None):
        if isinstance(mask, Exception):
            raise mask
        return mask

    return types.SimpleNamespace(
        available=lambda *a: True,
        detect_faces=lambda image, device=None: [types.SimpleNamespace(landmarks=lm) for lm in faces],
        person_mask=person_mask)


def test_geometry_face_in_front_of_body_in_front_of_background():
    h, w = 200, 200
    lm = synthetic_face()
    mask = np.zeros((h, w), np.float32)
    mask[40:, 60:140] = 1.0
    d = proxy.portrait_disparity((h, w), [lm], mask)
    assert d.shape == (h, w) and np.isfinite(d).all() and d.min() == 0.0 and d.max() == pytest.approx(1.0)
    nose = d[int(lm[1, 1]), int(lm[1, 0])]
    edge = d[int(lm[234, 1]), int(lm[234, 0]) + 2]
    body = d[170, 100]
    assert nose > edge > d[5, 5]
    assert body > 0.6 and d[170, 10] < 0.01  # body at the face's distance, background far
    # The body rounds away toward its outline.
    assert d[170, 100] > d[170, 62]


def test_small_mask_islands_without_a_face_are_background():
    h, w = 200, 240
    lm = synthetic_face()
    mask = np.zeros((h, w), np.float32)
    mask[40:, 60:140] = 1.0
    mask[20:40, 200:220] = 0.9          # a stray false positive, smaller than the face, away from it
    mask[100:200, 160:240] = 0.9        # a second person whose face was not found: larger than a face
    d = proxy.portrait_disparity((h, w), [lm], mask)
    assert d[30, 210] < 0.01
    assert d[150, 200] > 0.6


def test_guessed_outline_without_a_person_mask():
    lm = synthetic_face(cx=160.0)
    d = proxy.portrait_disparity((220, 320), [lm], None)
    assert d[200, 160] > 0.5       # a torso below the face, shoulders about three face widths across
    assert d[200, 120] > 0.5 and d[200, 200] > 0.5
    assert d[200, 10] < 0.1 and d[200, 310] < 0.1 and d[10, 10] < 0.1


def test_service_degrades_honestly(monkeypatch):
    img = scenes.texture(200, 200, seed=1)
    lm = synthetic_face()
    mask = np.zeros((200, 200), np.float32)
    mask[40:, 60:140] = 1.0
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_face_api([lm], mask))
    assert depth.estimate(img).source == "proxy:face-mesh+person-mask (1 face)"
    depth.clear_cache()
    monkeypatch.setattr(proxy, "_face_api",
                        lambda: fake_face_api([lm], UserError("selfie model missing", "missing-model")))
    r = depth.estimate(img)
    assert r.source == "proxy:face-mesh (no person mask: body outline guessed)" and r.disparity.max() == 1.0
    depth.clear_cache()
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_face_api([], mask))
    assert depth.estimate(img).source == "proxy:person-mask (no face found)"
    depth.clear_cache()
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_face_api([], np.zeros((200, 200), np.float32)))
    with pytest.raises(UserError) as err:
        depth.estimate(img)
    assert err.value.code == "missing-input" and "--depth" in str(err.value)
    monkeypatch.setattr(proxy, "_face_api", lambda: None)
    with pytest.raises(UserError, match="face models"):
        depth.estimate(img)


def test_cache_and_bad_inputs(monkeypatch):
    calls = []
    mask = np.ones((64, 64), np.float32)

    def api():
        calls.append(1)
        return fake_face_api([], mask)

    monkeypatch.setattr(proxy, "_face_api", api)
    img = scenes.texture(64, 64, seed=2)
    a = depth.estimate(img)
    b = depth.estimate(np.concatenate([img, np.ones((64, 64, 1), np.float32)], axis=2))  # alpha is ignored
    assert len(calls) == 1 and np.array_equal(a.disparity, b.disparity)
    with pytest.raises(UserError):
        depth.estimate(img[:8, :8])
    with pytest.raises(UserError):
        depth.estimate(img, method="sonar")


@needs_face_models
def test_astronaut_face_nearer_than_background_and_nose_nearer_than_cheeks():
    from core import face

    img = scenes.portrait()
    r = depth.estimate(img)
    assert r.source.startswith("proxy:face-mesh+person-mask")
    d = r.disparity
    lm = face.detect_faces(img)[0].landmarks

    def at(i):
        x, y = lm[i, :2]
        return float(d[int(round(y)), int(round(x))])

    cheeks = (at(50) + at(280)) / 2     # cheek centres
    edges = (at(234) + at(454)) / 2     # face outline by the ears
    assert at(1) > cheeks + 0.02        # nose tip nearer than the cheeks
    assert cheeks > edges
    person = face.person_mask(img)
    face_level = np.mean([at(i) for i in proxy.FACE_OVAL])
    background = float(d[person < 0.05].mean())
    assert face_level > background + 0.7
    # The face is a surface, not a flat card: a spread of disparities inside it.
    assert at(1) - edges > 0.05


def test_depth_command_writes_16_bit_near_bright(tmp_path, monkeypatch, capsys):
    from core.cli import main
    from core.imaging.io import read_image, write_image

    lm = synthetic_face()
    mask = np.zeros((200, 200), np.float32)
    mask[40:, 60:140] = 1.0
    monkeypatch.setattr(proxy, "_face_api", lambda: fake_face_api([lm], mask))
    src = tmp_path / "in.png"
    write_image(src, scenes.texture(200, 200, seed=4), "u8")
    out = tmp_path / "depth.png"
    assert main(["depth", str(src), "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "source=proxy:face-mesh+person-mask" in printed
    got = read_image(out)
    assert got.depth == "u16"
    px = got.pixels[:, :, 0]
    assert px[int(lm[1, 1]), int(lm[1, 0])] > 0.95 and px[5, 5] < 0.05
    # A format that cannot be written: exit 2, nothing written.
    bad = tmp_path / "depth.gif"
    assert main(["depth", str(src), "-o", str(bad), "-q"]) == 2
    assert not bad.exists()
    assert main(["depth", str(tmp_path / "missing.png"), "-o", str(out), "-q"]) == 2


def test_metric_scale_from_the_subject_distance():
    d = np.array([[1.0, 0.5, 0.25, 0.0]], np.float32)
    m = depth.distance_m(d, subject_distance_m=1.5, subject_disparity=0.5)
    assert m[0, 1] == pytest.approx(1.5)       # the subject where the user said
    assert m[0, 0] == pytest.approx(0.75)      # twice the disparity: half the distance
    assert m[0, 2] == pytest.approx(3.0)
    assert m[0, 3] == pytest.approx(30.0)      # no disparity: clamped at 20 × the subject distance
    with pytest.raises(UserError):
        depth.distance_m(d, 0.0, 0.5)
    with pytest.raises(UserError):
        depth.distance_m(d, 1.5, 0.0)
