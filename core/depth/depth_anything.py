"""Depth Anything V2 (Small by default) in plain torch: a DINOv2 ViT encoder and a DPT head.

Module and parameter names follow the Hugging Face checkpoint `depth-anything/Depth-Anything-V2-Small-hf`
(`backbone.embeddings...`, `backbone.encoder.layer.N...`, `neck.reassemble_stage...`, `neck.convs`,
`neck.fusion_stage...`, `head.conv1...`), so the hub's safetensors load with `load_state_dict(strict=True)`
and no renaming. Written from the published architecture; no code from transformers is used.

Data flow: image resized so its short side is `input_size` (a multiple of the 14 px patch) -> ViT-S/14
(12 blocks, features taken after blocks 3, 6, 9, 12 and layer-normed) -> reassembled to four scales
(x4, x2, x1, x0.5 of the patch grid) -> fused coarse to fine (RefineNet-style) -> head -> relative
disparity (affine-invariant inverse depth, near = large) at the inference resolution.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DepthAnythingConfig:
    """Architecture numbers. Defaults are Depth Anything V2 Small; `from_hf_config` reads a hub config.json."""
    hidden_size: int = 384
    num_layers: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    patch_size: int = 14
    image_size: int = 518            # the pretraining grid of the position embeddings: 518 / 14 = 37
    out_indices: Tuple[int, ...] = (3, 6, 9, 12)   # hidden-state indices (0 = embeddings) fed to the neck
    neck_hidden_sizes: Tuple[int, ...] = (48, 96, 192, 384)
    reassemble_factors: Tuple[float, ...] = (4, 2, 1, 0.5)
    fusion_hidden_size: int = 64
    head_hidden_size: int = 32
    layer_norm_eps: float = 1e-6
    depth_estimation_type: str = "relative"   # "metric" variants end in a sigmoid times max_depth
    max_depth: float = 1.0

    @classmethod
    def from_hf_config(cls, cfg: Dict) -> "DepthAnythingConfig":
        """Map the hub's config.json (DepthAnythingConfig with a nested Dinov2 backbone_config) onto ours."""
        bb = cfg.get("backbone_config") or {}
        kw = {}
        for ours, theirs, src in (("hidden_size", "hidden_size", bb), ("num_layers", "num_hidden_layers", bb),
                                  ("num_heads", "num_attention_heads", bb), ("mlp_ratio", "mlp_ratio", bb),
                                  ("patch_size", "patch_size", bb), ("image_size", "image_size", bb),
                                  ("layer_norm_eps", "layer_norm_eps", bb),
                                  ("fusion_hidden_size", "fusion_hidden_size", cfg),
                                  ("head_hidden_size", "head_hidden_size", cfg),
                                  ("depth_estimation_type", "depth_estimation_type", cfg),
                                  ("max_depth", "max_depth", cfg)):
            if src.get(theirs) is not None:
                kw[ours] = src[theirs]
        if bb.get("out_indices"):
            kw["out_indices"] = tuple(int(i) for i in bb["out_indices"])
        elif bb.get("out_features"):  # "stage3" -> 3
            kw["out_indices"] = tuple(int(s.replace("stage", "")) for s in bb["out_features"])
        for name in ("neck_hidden_sizes", "reassemble_factors"):
            if cfg.get(name):
                kw[name] = tuple(cfg[name])
        if bb.get("use_swiglu_ffn"):
            raise ValueError("SwiGLU DINOv2 backbones (giant) are not supported")
        return cls(**kw)

    def to_dict(self) -> Dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------------------------------------------------------
# Encoder: DINOv2 ViT


class PatchEmbeddings(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.projection = nn.Conv2d(3, c.hidden_size, kernel_size=c.patch_size, stride=c.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x).flatten(2).transpose(1, 2)  # N, tokens, C


class Embeddings(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        grid = c.image_size // c.patch_size
        self.patch_size = c.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, c.hidden_size))  # pretraining only; kept so names match
        self.patch_embeddings = PatchEmbeddings(c)
        self.position_embeddings = nn.Parameter(torch.zeros(1, grid * grid + 1, c.hidden_size))

    def _positions(self, gh: int, gw: int) -> torch.Tensor:
        """Position embeddings for a gh×gw patch grid: the pretrained square grid resized bicubically."""
        pos = self.position_embeddings
        n = pos.shape[1] - 1
        side = int(round(math.sqrt(n)))
        if gh == side and gw == side:
            return pos
        dim = pos.shape[2]
        grid = pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim).to(pos.dtype)
        return torch.cat([pos[:, :1], grid], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        tokens = self.patch_embeddings(x)
        tokens = torch.cat([self.cls_token.expand(n, -1, -1), tokens], dim=1)
        return tokens + self._positions(h // self.patch_size, w // self.patch_size)


class SelfAttention(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.heads = c.num_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape

        def split(y):
            return y.view(n, t, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return out.transpose(1, 2).reshape(n, t, d)


class SelfOutput(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class Attention(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.attention = SelfAttention(c)
        self.output = SelfOutput(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.attention(x))


class LayerScale(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(c.hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class MLP(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        hidden = int(c.hidden_size * c.mlp_ratio)
        self.fc1 = nn.Linear(c.hidden_size, hidden)
        self.fc2 = nn.Linear(hidden, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with layer scale (DINOv2)."""

    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.attention = Attention(c)
        self.layer_scale1 = LayerScale(c)
        self.norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = MLP(c)
        self.layer_scale2 = LayerScale(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class Encoder(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.layer = nn.ModuleList([Block(c) for _ in range(c.num_layers)])


class Backbone(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.out_indices = tuple(c.out_indices)
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        self.layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The layer-normed token sequences (CLS first) after the blocks named in out_indices."""
        h = self.embeddings(x)
        feats = [self.layernorm(h)] if 0 in self.out_indices else []
        for i, block in enumerate(self.encoder.layer, start=1):
            h = block(h)
            if i in self.out_indices:
                feats.append(self.layernorm(h))
        return feats


# ---------------------------------------------------------------------------------------------------------------
# Decoder: DPT neck and head


class ReassembleLayer(nn.Module):
    def __init__(self, c: DepthAnythingConfig, channels: int, factor: float):
        super().__init__()
        self.projection = nn.Conv2d(c.hidden_size, channels, kernel_size=1)
        if factor > 1:
            f = int(factor)
            self.resize = nn.ConvTranspose2d(channels, channels, kernel_size=f, stride=f)
        elif factor == 1:
            self.resize = nn.Identity()
        else:
            self.resize = nn.Conv2d(channels, channels, kernel_size=3, stride=int(round(1 / factor)), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(self.projection(x))


class ReassembleStage(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.layers = nn.ModuleList([ReassembleLayer(c, ch, f)
                                     for ch, f in zip(c.neck_hidden_sizes, c.reassemble_factors)])

    def forward(self, feats: Sequence[torch.Tensor], gh: int, gw: int) -> List[torch.Tensor]:
        out = []
        for layer, tokens in zip(self.layers, feats):
            t = tokens[:, 1:]  # the CLS token is not used by Depth Anything's head
            n, _, d = t.shape
            out.append(layer(t.reshape(n, gh, gw, d).permute(0, 3, 1, 2).contiguous()))
        return out


class ResidualUnit(nn.Module):
    """Pre-activation residual conv unit: x + conv(relu(conv(relu(x))))."""

    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        k = c.fusion_hidden_size
        self.convolution1 = nn.Conv2d(k, k, kernel_size=3, padding=1)
        self.convolution2 = nn.Conv2d(k, k, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.convolution2(F.relu(self.convolution1(F.relu(x))))


class FusionLayer(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        k = c.fusion_hidden_size
        self.projection = nn.Conv2d(k, k, kernel_size=1)
        self.residual_layer1 = ResidualUnit(c)
        self.residual_layer2 = ResidualUnit(c)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor], size: Optional[Tuple[int, int]]):
        if skip is not None:
            if skip.shape[2:] != x.shape[2:]:
                skip = F.interpolate(skip, size=x.shape[2:], mode="bilinear", align_corners=False)
            x = x + self.residual_layer1(skip)
        x = self.residual_layer2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.projection(x)


class FusionStage(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.layers = nn.ModuleList([FusionLayer(c) for _ in c.neck_hidden_sizes])

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Coarse to fine: each layer adds the next finer map and upsamples to the one after it."""
        coarse_first = list(feats)[::-1]
        n = len(coarse_first)
        x = None
        for i, (layer, feat) in enumerate(zip(self.layers, coarse_first)):
            size = tuple(coarse_first[i + 1].shape[2:]) if i + 1 < n else None
            x = layer(feat, None, size) if x is None else layer(x, feat, size)
        return x


class Neck(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        self.reassemble_stage = ReassembleStage(c)
        self.convs = nn.ModuleList([nn.Conv2d(ch, c.fusion_hidden_size, kernel_size=3, padding=1, bias=False)
                                    for ch in c.neck_hidden_sizes])
        self.fusion_stage = FusionStage(c)

    def forward(self, feats: Sequence[torch.Tensor], gh: int, gw: int) -> torch.Tensor:
        maps = self.reassemble_stage(feats, gh, gw)
        return self.fusion_stage([conv(m) for conv, m in zip(self.convs, maps)])


class Head(nn.Module):
    def __init__(self, c: DepthAnythingConfig):
        super().__init__()
        k = c.fusion_hidden_size
        self.patch_size = c.patch_size
        self.metric = c.depth_estimation_type == "metric"
        self.max_depth = float(c.max_depth)
        self.conv1 = nn.Conv2d(k, k // 2, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(k // 2, c.head_hidden_size, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(c.head_hidden_size, 1, kernel_size=1)

    def forward(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        x = self.conv1(x)
        x = F.interpolate(x, size=(gh * self.patch_size, gw * self.patch_size), mode="bilinear",
                          align_corners=True)
        x = self.conv3(F.relu(self.conv2(x)))
        x = torch.sigmoid(x) * self.max_depth if self.metric else F.relu(x)
        return x[:, 0]


class DepthAnything(nn.Module):
    """The whole network. forward(N×3×H×W normalised, H and W multiples of 14) -> N×H×W disparity."""

    def __init__(self, config: Optional[DepthAnythingConfig] = None):
        super().__init__()
        self.config = config or DepthAnythingConfig()
        self.backbone = Backbone(self.config)
        self.neck = Neck(self.config)
        self.head = Head(self.config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        _, _, h, w = pixel_values.shape
        if h % p or w % p:
            raise ValueError(f"input {w}x{h} is not a multiple of the {p} px patch")
        gh, gw = h // p, w // p
        return self.head(self.neck(self.backbone(pixel_values), gh, gw), gh, gw)


# ---------------------------------------------------------------------------------------------------------------
# Loading and running


class WeightsMismatch(ValueError):
    """The state dict does not have this architecture's names or shapes."""


def build(state_dict: Dict[str, torch.Tensor], config: Optional[DepthAnythingConfig] = None,
          device=None) -> DepthAnything:
    """A model in eval mode holding `state_dict` (hub key layout), checked name by name and shape by shape."""
    model = DepthAnything(config)
    own = model.state_dict()
    # mask_token is a pretraining-only parameter some exports leave out: it is never used at inference.
    optional = {"backbone.embeddings.mask_token"}
    missing = sorted(k for k in own if k not in state_dict and k not in optional)
    unexpected = sorted(k for k in state_dict if k not in own)
    wrong = sorted(k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with the wrong shape (first: {k} {tuple(state_dict[k].shape)} "
                         f"vs {tuple(own[k].shape)})")
        raise WeightsMismatch("; ".join(parts))
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=False)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def inference_size(h: int, w: int, input_size: int = 518, patch: int = 14, max_side: int = 2072) -> Tuple[int, int]:
    """(height, width) for the network: short side about `input_size`, aspect kept, both multiples of `patch`.

    The long side is capped (4 × 518 by default) so a panorama does not explode the attention cost.
    """
    scale = input_size / min(h, w)
    scale = min(scale, max_side / max(h, w))

    def snap(v: float) -> int:
        return max(patch, int(round(v / patch)) * patch)

    return snap(h * scale), snap(w * scale)


def preprocess(image_rgb: np.ndarray, size_hw: Tuple[int, int]) -> torch.Tensor:
    """float32 sRGB H×W×3 in [0, 1] -> 1×3×h×w ImageNet-normalised (the encoding the network was trained on)."""
    import cv2

    h, w = size_hw
    src_h, src_w = image_rgb.shape[:2]
    shrink = h < src_h or w < src_w
    # Area averaging when shrinking avoids aliasing that a plain bicubic would add to big photos.
    resized = cv2.resize(np.ascontiguousarray(image_rgb[:, :, :3], np.float32), (w, h),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    resized = np.clip(resized, 0.0, 1.0)
    mean = np.array(IMAGENET_MEAN, np.float32)
    std = np.array(IMAGENET_STD, np.float32)
    x = (resized - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


@torch.no_grad()
def predict(model: DepthAnything, image_rgb: np.ndarray, input_size: int = 518, device=None) -> np.ndarray:
    """Raw network disparity at the inference resolution (h×w float32, near = large, arbitrary scale)."""
    dev = device if device is not None else next(model.parameters()).device
    h, w = inference_size(image_rgb.shape[0], image_rgb.shape[1], input_size, model.config.patch_size)
    x = preprocess(image_rgb, (h, w)).to(dev)
    out = model(x)[0]
    return out.float().cpu().numpy().astype(np.float32)


def read_config(path) -> DepthAnythingConfig:
    with open(path, "r", encoding="utf-8") as fh:
        return DepthAnythingConfig.from_hf_config(json.load(fh))
