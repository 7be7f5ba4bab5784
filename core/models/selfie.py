"""MediaPipe Selfie Segmentation (general, 256×256), as a plain torch module.

A MobileNetV3-small-like encoder with squeeze-and-excitation, an LR-ASPP-style head, and a decoder that fuses
each skip through a channel-attention gate before upsampling (half-pixel bilinear, as TFLite's RESIZE_BILINEAR
with half_pixel_centers) and a final stride-2 transposed convolution. Input N×3×256×256 RGB in [0, 1];
output N×1×256×256 person probability.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv, depthwise

INPUT_SIZE = 256


class SqueezeExcite(nn.Module):
    def __init__(self, channels, mid):
        super().__init__()
        self.reduce = conv(channels, mid)
        self.expand = conv(mid, channels)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


class InvertedResidual(nn.Module):
    """Expand 1×1, depthwise k×k (stride s), optional SE, project 1×1; residual when shapes allow."""

    def __init__(self, cin, expand, cout, kernel, stride, se_mid=0, hswish=False, residual=None, do_expand=True):
        super().__init__()
        self.expand = conv(cin, expand) if do_expand else None
        self.dw = depthwise(expand, kernel, stride)
        self.se = SqueezeExcite(expand, se_mid) if se_mid else None
        self.project = conv(expand, cout)
        self.act = nn.Hardswish() if hswish else nn.ReLU()
        self.residual = (cin == cout and stride == 1) if residual is None else residual

    def forward(self, x):
        y = self.act(self.expand(x)) if self.expand is not None else x
        y = self.act(self.dw(y))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class DecoderStage(nn.Module):
    """Fuse a skip connection: 1×1 to the skip's width, attention gate from the sum, then conv + dw refine."""

    def __init__(self, cin, cskip):
        super().__init__()
        self.proj = conv(cin, cskip)
        self.gate_reduce = conv(cskip, cskip)
        self.gate_expand = conv(cskip, cskip)
        self.refine = conv(cskip, cskip)
        self.refine_dw = depthwise(cskip, 3)

    def forward(self, x, skip):
        y = self.proj(x)
        g = (skip + y).mean(dim=(2, 3), keepdim=True)
        g = torch.sigmoid(self.gate_expand(F.relu(self.gate_reduce(g))))
        z = F.relu(self.refine(skip * g + y))
        return z + F.relu(self.refine_dw(z))


def _up2(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SelfieSegmentation(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv(3, 16, 3, 2)                                                     # 128
        self.b1 = InvertedResidual(16, 16, 16, 3, 2, se_mid=8, residual=False)            # 64
        self.b2 = InvertedResidual(16, 72, 24, 3, 2)                                      # 32
        self.b3 = InvertedResidual(24, 88, 24, 3, 1)
        self.b4 = InvertedResidual(24, 96, 32, 5, 2, se_mid=24, hswish=True)              # 16
        self.b5 = InvertedResidual(32, 128, 32, 5, 1, se_mid=32, hswish=True)
        self.b6 = InvertedResidual(32, 128, 32, 5, 1, se_mid=32, hswish=True)
        self.b7 = InvertedResidual(32, 96, 32, 5, 1, se_mid=24, hswish=True)
        self.b8 = InvertedResidual(32, 96, 32, 5, 1, se_mid=24, hswish=True)
        self.head = conv(32, 128)        # LR-ASPP: features × sigmoid(global context)
        self.head_gate = conv(32, 128)
        self.dec32 = DecoderStage(128, 24)
        self.dec64 = DecoderStage(24, 16)
        self.dec128 = DecoderStage(16, 16)
        self.out = nn.ConvTranspose2d(16, 1, 2, stride=2)

    def forward(self, x):
        s128 = F.hardswish(self.stem(x))
        s64 = self.b1(s128)
        s32 = self.b3(self.b2(s64))
        f = self.b8(self.b7(self.b6(self.b5(self.b4(s32)))))
        h = F.relu(self.head(f)) * torch.sigmoid(self.head_gate(f.mean(dim=(2, 3), keepdim=True)))
        d = self.dec32(_up2(h), s32)
        d = self.dec64(_up2(d), s64)
        d = self.dec128(_up2(d), s128)
        return torch.sigmoid(self.out(d))
