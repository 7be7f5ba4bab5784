"""MediaPipe FaceMesh (Kartynnik et al. 2019) and the Iris landmark network, as plain torch modules.

FaceMesh: N×3×192×192 RGB in [0, 1] → 468 landmarks (x, y in input pixels, z in the same pixel scale, smaller =
nearer the camera) and a face-presence logit. Iris: N×3×64×64 RGB in [0, 1] (one eye crop, a left eye or a
horizontally flipped right eye) → 71 eye-contour/brow points and 5 iris points, each (x, y, z) in input pixels.
"""
from __future__ import annotations

from torch import nn

from .layers import DepthwiseResidual, MaxPool2, PadChannels, conv, depthwise

MESH_INPUT = 192
IRIS_INPUT = 64


class MeshBlock(DepthwiseResidual):
    """FaceMesh's (and the iris model's) residual block: PReLU after the sum."""

    def __init__(self, cin, cout, stride=1):
        super().__init__(cin, cout, stride, nn.PReLU(cout))


class FaceMesh(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv(3, 16, 3, 2)
        self.stem_act = nn.PReLU(16)
        spec = [(16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1),
                (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 128, 2), (128, 128, 1),
                (128, 128, 1)]
        self.trunk = nn.Sequential(*[MeshBlock(a, b, s) for a, b, s in spec])
        # Landmark branch: three blocks, a 1×1 squeeze, one block, then a 3×3 'valid' conv to 1404 = 468×3.
        self.mesh_blocks = nn.Sequential(MeshBlock(128, 128, 2), MeshBlock(128, 128), MeshBlock(128, 128))
        self.mesh_squeeze = conv(128, 32)
        self.mesh_squeeze_act = nn.PReLU(32)
        self.mesh_block = MeshBlock(32, 32)
        self.mesh_head = nn.Conv2d(32, 1404, 3, stride=3)
        # Face-presence branch.
        self.flag_block = MeshBlock(128, 128, 2)
        self.flag_squeeze = conv(128, 32)
        self.flag_squeeze_act = nn.PReLU(32)
        self.flag_block2 = MeshBlock(32, 32)
        self.flag_head = nn.Conv2d(32, 1, 3, stride=3)

    def forward(self, x):
        t = self.trunk(self.stem_act(self.stem(x)))
        m = self.mesh_blocks(t)
        m = self.mesh_head(self.mesh_block(self.mesh_squeeze_act(self.mesh_squeeze(m))))
        f = self.flag_block(t)
        f = self.flag_head(self.flag_block2(self.flag_squeeze_act(self.flag_squeeze(f))))
        return m.reshape(-1, 468, 3), f.reshape(-1, 1)  # TFLite outputs: conv2d_21, conv2d_31


class IrisBlock(nn.Module):
    """1×1 (or 2×2 stride-2) squeeze to half the output width + PReLU, depthwise 3×3, 1×1 expand, residual,
    PReLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        mid = cout // 2
        self.squeeze = nn.Conv2d(cin, mid, 2, stride=2) if stride == 2 else conv(cin, mid, 1)
        self.squeeze_act = nn.PReLU(mid)
        self.dw = depthwise(mid, 3)
        self.expand = conv(mid, cout, 1)
        self.pool = MaxPool2() if stride == 2 else nn.Identity()
        self.pad = PadChannels(cout - cin)
        self.act = nn.PReLU(cout)

    def forward(self, x):
        y = self.expand(self.dw(self.squeeze_act(self.squeeze(x))))
        return self.act(self.pad(self.pool(x)) + y)


def _branch():
    return nn.Sequential(IrisBlock(128, 128), IrisBlock(128, 128), IrisBlock(128, 128, 2), IrisBlock(128, 128),
                         IrisBlock(128, 128), IrisBlock(128, 128, 2), IrisBlock(128, 128), IrisBlock(128, 128))


class IrisLandmark(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv(3, 64, 3, 2)
        self.stem_act = nn.PReLU(64)
        spec = [(64, 64, 1)] * 4 + [(64, 128, 2)] + [(128, 128, 1)] * 4 + [(128, 128, 2)]
        self.trunk = nn.Sequential(*[IrisBlock(a, b, s) for a, b, s in spec])
        self.eye_branch = _branch()
        self.eye_head = nn.Conv2d(128, 213, 2)
        self.iris_branch = _branch()
        self.iris_head = nn.Conv2d(128, 15, 2)

    def forward(self, x):
        t = self.trunk(self.stem_act(self.stem(x)))
        eye = self.eye_head(self.eye_branch(t)).reshape(-1, 71, 3)
        iris = self.iris_head(self.iris_branch(t)).reshape(-1, 5, 3)
        return eye, iris  # TFLite outputs: output_eyes_contours_and_brows, output_iris
