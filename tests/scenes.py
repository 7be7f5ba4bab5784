"""Synthetic scenes with known ground truth, shared by every operator's tests.

Everything here is generated from a seed, so a test's ground truth is exact: textures, layered scenes with known
distance and alpha, a Lambertian sphere with known normals and albedo, bursts with known motion and noise.
Operator issues extend this module rather than inventing their own scenes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0, where: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB, optionally over a boolean H×W region."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if where is not None:
        d = d[np.broadcast_to(where.reshape(where.shape[:2] + (1,) * (d.ndim - 2)), d.shape)]
    mse = float(d.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(peak ** 2 / mse)


def portrait() -> np.ndarray:
    """scikit-image's astronaut (public domain, NASA), float32 sRGB in [0, 1]; face about x 178-273, y 83-178."""
    from skimage import data
    return data.astronaut().astype(np.float32) / 255.0


def texture(h: int, w: int, seed: int = 0, channels: int = 3, octaves: int = 5) -> np.ndarray:
    """Band-limited multi-scale noise texture in [0.05, 0.95]: detail at every scale, like natural images."""
    import cv2
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, channels), np.float32)
    amp_total = 0.0
    for o in range(octaves):
        scale = 2 ** o
        sh, sw = max(h // scale, 2), max(w // scale, 2)
        layer = rng.random((sh, sw, channels)).astype(np.float32)
        layer = cv2.resize(layer, (w, h), interpolation=cv2.INTER_CUBIC)
        if layer.ndim == 2:
            layer = layer[:, :, None]
        amp = 0.6 ** (octaves - 1 - o)
        out += amp * layer
        amp_total += amp
    out /= amp_total
    lo, hi = out.min(), out.max()
    return (0.05 + 0.9 * (out - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def disc_alpha(h: int, w: int, cx: float, cy: float, r: float, supersample: int = 4) -> np.ndarray:
    """Anti-aliased coverage of a disc (exact area fraction up to supersampling), H×W float32."""
    s = supersample
    yy, xx = np.mgrid[0:h * s, 0:w * s].astype(np.float32)
    yy, xx = (yy + 0.5) / s, (xx + 0.5) / s
    inside = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32)
    return inside.reshape(h, s, w, s).mean(axis=(1, 3))


@dataclass
class Layer:
    rgb: np.ndarray        # H×W×3, the layer's full colour (also where it is hidden)
    alpha: np.ndarray      # H×W coverage
    distance_m: float      # distance from the camera in metres


@dataclass
class LayeredScene:
    layers: List[Layer] = field(default_factory=list)  # back to front

    def composite(self) -> np.ndarray:
        out = np.zeros_like(self.layers[0].rgb)
        for layer in self.layers:
            a = layer.alpha[:, :, None]
            out = layer.rgb * a + out * (1 - a)
        return out.astype(np.float32)

    def distance(self) -> np.ndarray:
        """Per-pixel distance of the front-most layer with coverage above one half."""
        d = np.full(self.layers[0].alpha.shape, self.layers[0].distance_m, np.float32)
        for layer in self.layers[1:]:
            d = np.where(layer.alpha > 0.5, layer.distance_m, d)
        return d.astype(np.float32)


def layered_scene(h: int = 192, w: int = 256, seed: int = 0, subject_m: float = 2.0,
                  background_m: float = 8.0) -> LayeredScene:
    """A textured background plane far away and a textured disc subject nearer, with an anti-aliased edge."""
    bg = texture(h, w, seed)
    fg = texture(h, w, seed + 1) * np.array([1.0, 0.8, 0.7], np.float32)
    alpha_bg = np.ones((h, w), np.float32)
    alpha_fg = disc_alpha(h, w, w * 0.5, h * 0.5, min(h, w) * 0.28)
    return LayeredScene([Layer(bg, alpha_bg, background_m), Layer(fg, alpha_fg, subject_m)])


def sphere(h: int = 128, w: int = 128, radius: float | None = None, seed: int = 0):
    """A Lambertian sphere: returns (normals H×W×3 camera space x right y up z toward camera, albedo, mask)."""
    r = radius or 0.45 * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = (xx + 0.5 - w / 2) / r
    y = -(yy + 0.5 - h / 2) / r
    rr = x * x + y * y
    mask = rr < 1.0
    z = np.sqrt(np.clip(1.0 - rr, 0.0, 1.0))
    n = np.stack([x, y, z], axis=2) * mask[:, :, None]
    n[~mask] = (0.0, 0.0, 1.0)
    albedo = texture(h, w, seed) * 0.6 + 0.3
    return n.astype(np.float32), albedo.astype(np.float32), mask


def shade_lambert(normals: np.ndarray, albedo: np.ndarray, light_dir, ambient: float = 0.1) -> np.ndarray:
    """Linear-light Lambertian rendering under a distant light (direction toward the light)."""
    l = np.asarray(light_dir, np.float32)
    l = l / np.linalg.norm(l)
    shading = np.clip(normals @ l, 0.0, None) + ambient
    return (albedo * shading[:, :, None]).astype(np.float32)


def poisson_gaussian(clean_linear: np.ndarray, a: float, b: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise with variance a·signal + b (shot + read), Gaussian approximation, in linear light."""
    var = a * np.clip(clean_linear, 0, None) + b
    return (clean_linear + rng.standard_normal(clean_linear.shape).astype(np.float32) * np.sqrt(var)).astype(
        np.float32)


def warp_affine(img: np.ndarray, dx: float, dy: float, angle_deg: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Shift by (dx, dy) px and rotate by angle about the centre; returns (warped, 2×3 matrix) with reflected
    borders so no black edges appear."""
    import cv2
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    m[:, 2] += (dx, dy)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return out.astype(np.float32), m
