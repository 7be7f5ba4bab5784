"""Hole filling by pull-push: a smooth guess of a field where it is unknown, from where it is known.

Pull-push (Gortler et al. 1996, "The Lumigraph") is a multi-scale normalised convolution. With weights w in
[0, 1] (1 = known, 0 = a hole) and premultiplied values n = w·v:

- pull: halve the resolution of (n, w) by 2×2 means, level after level, down to a single pixel; at a coarse
  enough level every pixel has seen some known pixel;
- push: from the top down, est = up + α·(n/w − up), with up the bilinear upsampling of the coarser estimate and
  α = clamp(4w, 0, 1): a pixel with a quarter or more of known weight keeps its own value, an empty one takes
  the coarser level's.

So a hole is filled from the nearest known values, smoothly, at every size, in O(pixels). It is a guess, not a
reconstruction: exact for constant fields, close for smooth ones, blurred for texture.

`pull_push` is the torch function (C×h×w, on any device) that the layered renderer uses; `fill_holes` is the
numpy entry point (H×W or H×W×C float32) that also keeps the known pixels bit-exact.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EMPTY = 1e-8   # weights below this count as no data at all


def pull_push(num: torch.Tensor, weight: torch.Tensor, start_level: int = 0) -> torch.Tensor:
    """Fill-in estimate of num/weight everywhere: known values where weight is high, a multi-scale normalised
    average of the surroundings where it is low. num: C×h×w premultiplied values (value·weight), weight: 1×h×w
    in [0, 1]. Returns C×h×w.

    start_level > 0 computes the estimate from 2^start_level coarser data and upsamples it: where the fill is only
    a guess that is blurred afterwards (the layered renderer), its finest scales are not worth the time."""
    size = num.shape[-2:]
    c = num.shape[0]
    x = torch.cat([num, weight], dim=0)[None]
    if start_level > 0:
        f = 2 ** start_level
        x = F.avg_pool2d(x, f, ceil_mode=True, count_include_pad=False)
    levels = []
    while True:
        levels.append(x[0])
        if min(x.shape[-2:]) <= 1:
            break
        x = F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False)
    top = levels[-1]
    est = top[:c] / top[c:].clamp_min(EMPTY) * (top[c:] > EMPTY)
    for lev in reversed(levels[:-1]):
        n, w = lev[:c], lev[c:]
        up = F.interpolate(est[None], size=n.shape[-2:], mode="bilinear", align_corners=False)[0]
        alpha = (4.0 * w).clamp_(0.0, 1.0)
        est = torch.addcmul(up, alpha, n / w.clamp_min(EMPTY) - up)
    if est.shape[-2:] != size:
        est = F.interpolate(est[None], size=size, mode="bilinear", align_corners=False)[0]
    return est


def fill_holes(values: np.ndarray, weight: np.ndarray, start_level: int = 0) -> np.ndarray:
    """Fill the unknown part of `values` (H×W or H×W×C float32) from its known part.

    weight: H×W (or H×W×1) in [0, 1], 1 = known, 0 = a hole, or a boolean known-mask. The result is
    w·values + (1 − w)·estimate, as the layered renderer composes it: known pixels (w = 1) come back bit-exact,
    holes get the pull-push estimate, and a partly known pixel (w >= 1/4 keeps its own value in the estimate)
    is its value, a nearly empty one leans on its neighbours. Values under a hole are ignored (they may be
    NaN). A field with no known pixel at all comes back as zeros."""
    v = np.asarray(values, np.float32)
    w = np.asarray(weight, np.float32)
    if w.ndim == 3:
        w = w[:, :, 0]
    if w.shape != v.shape[:2]:
        raise ValueError(f"weight of shape {w.shape} does not match values of shape {v.shape}")
    w = np.clip(w, 0.0, 1.0)
    flat = v.ndim == 2
    v3 = v[:, :, None] if flat else v
    known = w[:, :, None]
    safe = np.where(known > 0.0, v3, 0.0)  # NaN or garbage under a hole must not reach the sums
    num = torch.from_numpy(np.ascontiguousarray((safe * known).transpose(2, 0, 1)))
    est = pull_push(num, torch.from_numpy(np.ascontiguousarray(w[None])), start_level)
    est = est.permute(1, 2, 0).numpy()
    out = np.where(known >= 1.0, v3, known * safe + (1.0 - known) * est).astype(np.float32)
    return out[:, :, 0] if flat else out
