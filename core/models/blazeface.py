"""BlazeFace, MediaPipe's short-range face detector (Bazarevsky et al. 2019), as a plain torch module.

Input: N×3×128×128 RGB in [-1, 1]. Output: regressors N×896×16 (box centre offset, size and six key points, in
128-pixel input units relative to the anchor) and classification logits N×896×1. Anchor decoding and weighted
non-maximum suppression live in `core.face.detection`; `anchors()` here generates MediaPipe's SSD anchor layout.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .layers import DepthwiseResidual, conv, nhwc_flat

INPUT_SIZE = 128


class BlazeBlock(DepthwiseResidual):
    """BlazeFace's residual block: ReLU after the sum."""

    def __init__(self, cin, cout, stride=1):
        super().__init__(cin, cout, stride, nn.ReLU())


class BlazeFace(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv(3, 24, 5, 2)
        self.stem_act = nn.ReLU()
        chans16 = [(24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1),
                   (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1)]
        self.backbone16 = nn.Sequential(*[BlazeBlock(a, b, s) for a, b, s in chans16])
        self.backbone8 = nn.Sequential(BlazeBlock(88, 96, 2), *[BlazeBlock(96, 96) for _ in range(4)])
        self.cls16 = conv(88, 2)     # 2 anchors per cell at 16×16
        self.cls8 = conv(96, 6)      # 6 anchors per cell at 8×8
        self.reg16 = conv(88, 32)
        self.reg8 = conv(96, 96)

    def forward(self, x):
        x = self.stem_act(self.stem(x))
        f16 = self.backbone16(x)
        f8 = self.backbone8(f16)
        reg = torch.cat([nhwc_flat(self.reg16(f16), 16), nhwc_flat(self.reg8(f8), 16)], dim=1)
        cls = torch.cat([nhwc_flat(self.cls16(f16), 1), nhwc_flat(self.cls8(f8), 1)], dim=1)
        return reg, cls  # the order of the TFLite graph's outputs (regressors, classificators)


def anchors() -> np.ndarray:
    """896×2 anchor centres in [0, 1] (MediaPipe's SsdAnchorsCalculator for the short-range model:
    strides 8, 16, 16, 16, fixed anchor size 1, 2 anchors per layer per cell → 16×16×2 + 8×8×6)."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        for y in range(grid):
            for x in range(grid):
                for _ in range(per_cell):
                    out.append(((x + 0.5) / grid, (y + 0.5) / grid))
    return np.asarray(out, np.float32)
