"""Refocus without --depth takes its depth from the shared depth service: on the astronaut the eyes stay sharp
and the background blurs."""
import numpy as np
import pytest

from core import depth, registry
from core.depth import network
from tests import scenes


def _refocus_registered():
    try:
        registry.get("refocus")
        return True
    except Exception:
        return False


def _depth_available():
    try:
        from core import face
        return network.available() or (face.available() and face.available((face.SELFIE,)))
    except ImportError:
        return network.available()


pytestmark = [
    pytest.mark.skipif(not _refocus_registered(), reason="the refocus operator is not registered yet"),
    pytest.mark.skipif(not _depth_available(), reason="neither the depth network nor the face models are "
                                                      "installed (python -m core models fetch)"),
]


def _detail(img, where):
    """Mean squared Laplacian of the luminance: how much fine detail a region holds."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(g, cv2.CV_32F)
    return float((lap[where] ** 2).mean())


def test_refocus_without_depth_keeps_the_eyes_sharp_and_blurs_the_background():
    from core import face

    img = scenes.portrait()
    lm = face.detect_faces(img)[0].landmarks
    depth.clear_cache()
    # No depth map: the service supplies it. The user clicks between the eyes (the bridge of the nose, 168).
    x, y = lm[168, :2]
    out = registry.run("refocus", {"image": img}, {"focus_at": f"{x:.1f},{y:.1f}"})
    assert out.info["depth_source"].startswith("depth service: ")
    result = out.image[:, :, :3]

    eyes = np.zeros(img.shape[:2], bool)
    for a, b in ((33, 133), (362, 263)):  # eye corners (subject's right eye, left eye)
        x0, y0 = lm[[a, b], :2].min(axis=0) - 4
        x1, y1 = lm[[a, b], :2].max(axis=0) + 4
        eyes[int(y0) - 4:int(y1) + 5, int(x0):int(x1) + 1] = True
    background = face.person_mask(img) < 0.05
    assert background.mean() > 0.2

    eyes_kept = _detail(result, eyes) / _detail(img, eyes)
    background_kept = _detail(result, background) / _detail(img, background)
    assert eyes_kept > 0.9, eyes_kept               # measured 1.00 with the portrait proxy
    assert background_kept < 0.35, background_kept  # measured 0.17 (metric depth, 85 mm f/2: CoC 22.8 px)
