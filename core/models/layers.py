"""Building blocks shared by the MediaPipe networks, written to reproduce TensorFlow Lite's arithmetic.

TensorFlow's 'SAME' padding is asymmetric when the stride does not divide evenly (the extra row/column goes at
the bottom/right), which torch's symmetric `padding=` cannot express, so these layers pad explicitly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def same_pads(size: int, kernel: int, stride: int) -> tuple:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """nn.Conv2d with TensorFlow 'SAME' padding (computed from the input size at run time)."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=True)

    def forward(self, x):
        kh, kw = self.kernel_size
        sh, sw = self.stride
        top, bottom = same_pads(x.shape[-2], kh, sh)
        left, right = same_pads(x.shape[-1], kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def conv(cin, cout, kernel=1, stride=1):
    return Conv2dSame(cin, cout, kernel, stride)


def depthwise(channels, kernel=3, stride=1):
    return Conv2dSame(channels, channels, kernel, stride, groups=channels)


class PadChannels(nn.Module):
    """Zero channels appended to a skip connection (TFLite's PAD on the channel axis)."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class MaxPool2(nn.Module):
    """2×2 max pool, stride 2, on even sizes (as in every MediaPipe skip path); odd sizes pad like 'SAME'."""

    def forward(self, x):
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), value=float("-inf"))
        return F.max_pool2d(x, 2, 2)


def nhwc_flat(x: torch.Tensor, per_cell: int) -> torch.Tensor:
    """N×C×H×W → N×(H·W·C/per_cell)×per_cell in TFLite's (row, column, channel) order."""
    n = x.shape[0]
    return x.permute(0, 2, 3, 1).reshape(n, -1, per_cell)


class DepthwiseResidual(nn.Module):
    """Depthwise 3×3 + pointwise 1×1 with a residual (max-pooled and zero-channel-padded when the block shrinks),
    then `act`: the building block of BlazeFace (ReLU) and of FaceMesh and the iris model (PReLU). The attribute
    names are the converter's state-dict keys."""

    def __init__(self, cin: int, cout: int, stride: int, act: nn.Module):
        super().__init__()
        self.dw = depthwise(cin, 3, stride)
        self.pw = conv(cin, cout, 1)
        self.pool = MaxPool2() if stride == 2 else nn.Identity()
        self.pad = PadChannels(cout - cin)
        self.act = act

    def forward(self, x):
        return self.act(self.pad(self.pool(x)) + self.pw(self.dw(x)))
