"""Occlusion-aware layered depth of field.

Why layers and not a per-pixel gather: a gather blurs each output pixel with its own circle of confusion, so a
sharp subject bleeds into the blurred background around it and a blurred foreground cannot spread over what is
behind it. Here the scene is sliced by signed circle of confusion into layers; each layer's premultiplied colour
and coverage are blurred with the aperture kernel of its own CoC and composited back to front with "over", as the
light field of stacked planes through a thin lens is (exactly so when one side of every edge is in focus).

What a nearer object hides is unknown; when the nearer object is blurred it becomes partly transparent and that
hidden part shows. Each layer's hidden region is therefore filled before blurring by pull-push (a multi-scale
normalised convolution, core.imaging.fill) from the layer's visible pixels, weighted by how much of each pixel
is known at that depth: pixels at or behind the layer are known (present or empty), pixels of nearer layers are
not.

Speed: a layer with a large CoC is band-limited by its own blur, so it is processed at a reduced resolution
(power-of-two scale keeping the kernel at least 6 px wide there), and only inside the bounding box of its pixels
grown by the kernel radius. Kernels are applied by FFT (optics.convolve).

Used by refocus, and by any operator that composites blurred depth layers (background replacement): give it
linear RGB, a signed CoC map (optics.thin_lens) and a kernel function (optics.aperture).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging.fill import pull_push
from ..parallel import per_plane
from .convolve import convolve

IN_FOCUS_PX = 1.0     # a CoC at most this wide is a sharp pixel
LAYER_RATIO = 1.25    # neighbouring layer CoCs differ by at most 25 %, below what the eye tells apart in bokeh
KERNEL_AT_SCALE = 6.0  # minimum kernel diameter (px) at a layer's working resolution
MAX_SCALE = 16
BLOCK = 16            # block size of the coarse min/max CoC map used to find each layer's bounding box


@dataclass
class RenderStats:
    layers: int
    scales: List[int]


def layer_centres(coc: torch.Tensor) -> List[float]:
    """Signed CoC of each layer, back (most negative) to front. Cells grow geometrically away from focus; each
    non-empty cell's centre is the mean CoC of its pixels, so a scene of discrete planes gets exact layers."""
    flat = coc.reshape(-1)
    cmax = float(flat.abs().max())
    edges = [IN_FOCUS_PX]
    while edges[-1] < cmax:
        edges.append(edges[-1] * LAYER_RATIO)
    bounds = torch.tensor([-e for e in reversed(edges)] + edges, dtype=flat.dtype, device=flat.device)
    idx = torch.bucketize(flat, bounds)
    n = len(bounds) + 1
    counts = torch.bincount(idx, minlength=n).cpu().numpy()
    sums = torch.bincount(idx, weights=flat.double(), minlength=n).cpu().numpy()
    focus_cell = len(edges)
    centres = []
    for i in range(n):
        if counts[i] == 0:
            continue
        centres.append(0.0 if i == focus_cell else float(sums[i] / counts[i]))
    return sorted(centres)


def _scale_for(diameter: float, min_kernel_px: float = KERNEL_AT_SCALE) -> int:
    s = 1
    while s * 2 <= MAX_SCALE and diameter / (s * 2) >= min_kernel_px:
        s *= 2
    return s


class _Accumulator:
    """Premultiplied colour + coverage composited back to front, at a working scale that only gets finer."""

    def __init__(self, hp: int, wp: int, device, dtype):
        self.hp, self.wp = hp, wp
        self.scale: Optional[int] = None
        self.buf: Optional[torch.Tensor] = None
        self.device, self.dtype = device, dtype

    def _ensure(self, scale: int) -> None:
        if self.buf is None:
            self.scale = scale
            self.buf = torch.zeros((4, self.hp // scale, self.wp // scale), device=self.device, dtype=self.dtype)
        elif scale < self.scale:
            size = (self.hp // scale, self.wp // scale)
            self.buf = per_plane(lambda p: F.interpolate(p[None], size=size, mode="bilinear",
                                                         align_corners=False)[0], self.buf)
            self.scale = scale

    def over(self, layer: torch.Tensor, scale: int, y0: int, x0: int) -> None:
        """Composite a blurred layer (4×h×w at `scale`, top-left (y0, x0) in full-res pixels) over the stack."""
        self._ensure(scale)
        if scale > self.scale:
            f = scale // self.scale
            layer = per_plane(lambda p: F.interpolate(p[None], scale_factor=f, mode="bilinear",
                                                      align_corners=False)[0], layer)
        s = self.scale
        ys, xs = y0 // s, x0 // s
        region = self.buf[:, ys:ys + layer.shape[1], xs:xs + layer.shape[2]]
        region.mul_(1.0 - layer[3:4]).add_(layer)

    def result(self) -> torch.Tensor:
        self._ensure(1)
        return self.buf


def render(lin: torch.Tensor, coc: torch.Tensor, kernel_for: Callable[[float, bool], np.ndarray],
           progress: Optional[Callable[[float, str], None]] = None, fill: bool = True,
           min_kernel_px: float = KERNEL_AT_SCALE, centres: Optional[List[float]] = None,
           check: Optional[Callable[[], None]] = None):
    """Render depth of field. lin: 3×H×W linear RGB; coc: H×W signed CoC diameter in px (positive = in front of
    the focal plane). kernel_for(diameter, in_front) gives the aperture kernel; min_kernel_px is the smallest
    kernel worth keeping at reduced resolution (polygons need more pixels than discs to keep their corners).
    centres: the layers' signed CoCs (default layer_centres(coc)); a pixel between two centres is split between
    those two layers by the tents, so a caller whose in-between CoCs are mixed pixels (a soft matte between two
    depths) can leave them out and have each mixed pixel drawn as its share of both, as alpha matting does.
    check: a cancel checkpoint (raises to stop), also called from the threads blurring a layer's planes, between
    their fill and their blur: a large layer's planes take seconds at 12 MP.
    Returns (3×H×W, RenderStats)."""
    check = check or (lambda: None)
    _, h, w = lin.shape
    centres = layer_centres(coc) if centres is None else sorted(float(c) for c in centres)
    diam = [abs(c) for c in centres]
    scales = [_scale_for(d, min_kernel_px) for d in diam]
    smax = max(max(scales), BLOCK)
    hp, wp = -(-h // smax) * smax, -(-w // smax) * smax
    img = F.pad(lin[None], (0, wp - w, 0, hp - h), mode="replicate")[0]
    cp = F.pad(coc[None, None], (0, wp - w, 0, hp - h), mode="replicate")[0, 0]

    # Where each layer lives, from per-block CoC ranges: each layer's work is limited to its bounding box.
    bmax = F.max_pool2d(cp[None, None], BLOCK)[0, 0]
    bmin = -F.max_pool2d(-cp[None, None], BLOCK)[0, 0]

    cumulative = torch.zeros((hp, wp), dtype=img.dtype, device=img.device)  # coverage at or behind so far
    acc = _Accumulator(hp, wp, img.device, img.dtype)
    n = len(centres)
    for k, (c, d, s) in enumerate(zip(centres, diam, scales)):
        if progress is not None:
            progress(k / n, f"layer {k + 1} of {n} (CoC {c:+.1f} px)")
        # Tent membership: 1 at this layer's CoC, falling to 0 at the neighbours' (partition of unity). The
        # focus layer is a plateau over the in-focus width, so nearly sharp pixels stay exactly sharp.
        lo_c = hi_c = c
        if c == 0.0:
            lo_c, hi_c = -IN_FOCUS_PX, IN_FOCUS_PX
        below = centres[k - 1] if k > 0 else -math.inf
        above = centres[k + 1] if k + 1 < n else math.inf
        if below == 0.0:
            below = IN_FOCUS_PX
        if above == 0.0:
            above = -IN_FOCUS_PX
        present = (bmax > below) & (bmin < above)
        if not bool(present.any()):
            continue
        rows = torch.nonzero(present.any(dim=1)).reshape(-1)
        cols = torch.nonzero(present.any(dim=0)).reshape(-1)
        margin = int(math.ceil(d / 2.0)) + 2 * s + 2
        y0 = max(int(rows[0]) * BLOCK - margin, 0) // s * s
        y1 = min(((int(rows[-1]) + 1) * BLOCK + margin + s - 1) // s * s, hp)
        x0 = max(int(cols[0]) * BLOCK - margin, 0) // s * s
        x1 = min(((int(cols[-1]) + 1) * BLOCK + margin + s - 1) // s * s, wp)

        cc = cp[y0:y1, x0:x1]
        stack = torch.empty((5, y1 - y0, x1 - x0), dtype=img.dtype, device=img.device)
        wk = stack[3]
        if math.isfinite(below):
            torch.sub(cc, below, out=wk).mul_(1.0 / (lo_c - below))
        else:
            wk.fill_(1.0)
        if math.isfinite(above):
            torch.minimum(wk, (above - cc) * (1.0 / (above - hi_c)), out=wk)
        wk.clamp_(0.0, 1.0)
        cum = cumulative[y0:y1, x0:x1]
        cum.add_(wk)
        torch.mul(img[:, y0:y1, x0:x1], wk, out=stack[:3])
        stack[4].copy_(cum)
        if s > 1:
            stack = per_plane(lambda p: F.avg_pool2d(p[None], s)[0], stack)
        layer, known = stack[:4], stack[4:5].clamp_(0.0, 1.0)
        unknown = known.neg_().add_(1.0)
        filled = fill and bool((unknown > 1e-4).any())
        # Start the fill about 128 px across: it is a smooth guess, blurred afterwards anyway.
        start = min(4, max(0, int(math.ceil(math.log2(max(min(layer.shape[-2:]), 1) / 128.0)))))
        kernel = kernel_for(d / s, c > 0)

        def blur(plane: torch.Tensor) -> torch.Tensor:
            # Colour and coverage planes are filled and blurred independently: one plane per core (per_plane).
            check()
            if filled:
                plane = plane.addcmul(unknown, pull_push(plane, 1.0 - unknown, start))
                check()
            return convolve(plane, kernel)

        layer = per_plane(blur, layer)
        if progress is not None:
            progress((k + 0.5) / n, f"layer {k + 1} of {n} (CoC {c:+.1f} px) blurred")
        layer[3].clamp_(0.0, 1.0)
        check()
        acc.over(layer, s, y0, x0)
    out = acc.result()[:, :h, :w]
    cover = out[3:4]
    rgb = out[:3] / cover.clamp_min(1e-6)
    rgb = torch.where(cover > 1e-3, rgb, lin)
    if progress is not None:
        progress(1.0, "layers composited")
    return rgb, RenderStats(layers=n, scales=sorted(set(scales)))
