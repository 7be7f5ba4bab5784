"""The face's expression coefficients: the 478-point mesh from the face service, and the blendshape network on it.

Mesh. MediaPipe's blendshape network was trained on its 478-point mesh: the 468 face points, then the subject's
right iris (468 centre, 469-472 rim) and left iris (473 centre, 474-477). The face service gives the 468 points and
the two irises (centre, then 4 rim points) from the iris network. Checked against Google's own Face Mesh V2 run
by its interpreter on the astronaut (tests/data/blendshapes_litert_reference.npz): the points agree to 0.86 px on
average (0.70 median, 107 px face), except that the left iris's rim comes mirrored (the iris network sees that
eye flipped), so its points 1 and 3 are swapped here to give MediaPipe's order. Without the iris model the irises
are approximated by the eye contour's centre and a rim at 0.45 × the eye's height.

Coefficients: `NAMES` (52, ARKit-style, "Left"/"Right" as MediaPipe names them) in [0, 1] from the x, y of the
`LANDMARK_SUBSET` in image pixels (the network removes translation and scale itself).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...face import topology as T
from ...models import blendshapes as B

NAMES = B.NAMES
INDEX = {n: i for i, n in enumerate(NAMES)}
MESH_POINTS = 478
RIGHT_IRIS = list(range(468, 473))
LEFT_IRIS = list(range(473, 478))
LEFT_RIM_ORDER = [0, 3, 2, 1, 4]     # the iris network's left-eye points in MediaPipe's order


def available() -> bool:
    return B.available()


def mesh478(landmarks: np.ndarray, irises: Optional[np.ndarray]) -> np.ndarray:
    """478×3 float64 (x, y, z; pixel-edge coordinates as the face service gives them) in MediaPipe's order."""
    lm = np.asarray(landmarks, np.float64)[:, :3]
    if irises is None:
        irises = np.stack([_iris_estimate(lm, T.RIGHT_EYE), _iris_estimate(lm, T.LEFT_EYE)])
    ir = np.asarray(irises, np.float64).copy()
    ir[1] = ir[1][LEFT_RIM_ORDER]
    return np.concatenate([lm, ir.reshape(10, 3)], axis=0)


def _iris_estimate(lm: np.ndarray, eye) -> np.ndarray:
    """Centre of the eye contour and four rim points (right, top, left, bottom in the image) at 0.45 × the eye
    opening's height: a stand-in where the iris model is missing."""
    pts = lm[eye]
    c = pts.mean(axis=0)
    r = 0.45 * float(np.ptp(pts[:, 1])) + 1e-3
    return np.array([c, c + (r, 0, 0), c + (0, -r, 0), c + (-r, 0, 0), c + (0, r, 0)])


def subset(mesh: np.ndarray) -> np.ndarray:
    """146×2 network input from a 478-point mesh (x, y)."""
    return np.asarray(mesh)[list(B.LANDMARK_SUBSET), :2]


def measure(mesh: np.ndarray) -> np.ndarray:
    """52 coefficients of one 478-point mesh (the float32 network, returned as float64)."""
    import torch

    net = B.network()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a tiny network: more threads only spin against each other on a busy machine
    try:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(subset(mesh), np.float32))[None]
            return net(x)[0].double().numpy()
    finally:
        torch.set_num_threads(threads)
