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


# ---------------------------------------------------------------------------------------------------------------
# Bursts (denoise): hand-held frames with known motion, an independently moving object and sensor noise


@dataclass
class Burst:
    frames: List[np.ndarray]        # noisy H×W×3 float32 sRGB-encoded, clipped to [0, 1]
    truths: List[np.ndarray]        # the clean version of each frame (same geometry), sRGB-encoded
    object_masks: List[np.ndarray]  # H×W bool: where the moving object covers each frame
    static_mask: np.ndarray         # H×W bool: never covered by the object in any frame, away from the borders
    shifts_px: List[Tuple[float, float]]
    angles_deg: List[float]
    noise_a: float                  # linear-light noise model: variance = a·signal + b
    noise_b: float


def burst(clean: np.ndarray, n: int = 8, seed: int = 0, max_shift_px: float = 8.0, max_rotation_deg: float = 1.0,
          sigma_mid_grey: float = 0.05, read_sigma: float = 0.005, object_radius_frac: float = 0.11,
          object_step_px: float = 5.0, clip: bool = True) -> Burst:
    """A noisy hand-held burst of `clean` (H×W×3 sRGB float): frame 0 is the unmoved camera position, the others
    are shifted by up to ±`max_shift_px` (sub-pixel) and rotated by up to ±`max_rotation_deg` about the centre;
    a textured disc moves independently by `object_step_px` per frame; Poisson-Gaussian noise is added in linear
    light with standard deviation `sigma_mid_grey` at mid grey (sRGB 0.5, linear 0.214) and read noise
    `read_sigma`."""
    from core.imaging.color import linear_to_srgb, srgb_to_linear

    rng = np.random.default_rng(seed)
    h, w = clean.shape[:2]
    lin = srgb_to_linear(clean[:, :, :3])
    mid = float(srgb_to_linear(np.float32(0.5)))
    b = read_sigma ** 2
    a = (sigma_mid_grey ** 2 - b) / mid
    radius = object_radius_frac * min(h, w)
    obj = srgb_to_linear(texture(h, w, seed + 101) * np.array([0.9, 0.6, 0.3], np.float32) + 0.05)
    y_obj = h * 0.62
    x_start = w * 0.5 - object_step_px * (n - 1) / 2
    frames, truths, masks, shifts, angles = [], [], [], [], []
    for k in range(n):
        if k == 0:
            dx = dy = ang = 0.0
        else:
            dx, dy = rng.uniform(-max_shift_px, max_shift_px, 2)
            ang = rng.uniform(-max_rotation_deg, max_rotation_deg)
        moved, _ = warp_affine(lin, float(dx), float(dy), float(ang))
        cx = x_start + object_step_px * k
        alpha = disc_alpha(h, w, cx, y_obj, radius)
        # The object's own texture travels with it.
        tex, _ = warp_affine(obj, cx - w * 0.5, 0.0)
        scene = moved * (1 - alpha[:, :, None]) + tex * alpha[:, :, None]
        scene = np.clip(scene, 0.0, 1.0)
        noisy = poisson_gaussian(scene, a, b, rng)
        noisy_srgb = linear_to_srgb(noisy)
        truth = linear_to_srgb(scene)
        if clip:
            noisy_srgb = np.clip(noisy_srgb, 0.0, 1.0)
        frames.append(noisy_srgb.astype(np.float32))
        truths.append(truth.astype(np.float32))
        masks.append(alpha > 0.5)
        shifts.append((float(dx), float(dy)))
        angles.append(float(ang))
    import cv2
    covered = np.any(np.stack(masks), axis=0).astype(np.uint8)
    covered = cv2.dilate(covered, np.ones((9, 9), np.uint8)) > 0
    margin = int(np.ceil(max_shift_px + np.radians(max_rotation_deg) * 0.5 * np.hypot(h, w))) + 2
    static = ~covered
    static[:margin] = static[-margin:] = False
    static[:, :margin] = static[:, -margin:] = False
    return Burst(frames, truths, masks, static, shifts, angles, float(a), float(b))


# Bursts in the dark (denoise, issue 21): frames clipped at black and white, as every camera export is

SPECULARS = ((40.0, 118.0), (58.0, 200.0), (22.0, 150.0))   # (x, y) of the highlights, on the helmet's ring
SPECULAR_LINEAR = 4.0    # linear value of a highlight: two stops above white, clipped in every frame


def shadowed_portrait(specular_radius_px: float = 2.5) -> np.ndarray:
    """The astronaut's face (256×256, native resolution) lit from the left: linear light (H×W×3 float32) falling
    smoothly to 1.5 % of the key light over the right half (smoothstep from x = 0.5 w to 0.9 w, the key 1.25× the
    photo's own exposure). About a fifth of it is darker than 10 % sRGB (the shadow side and the black collar);
    three small specular highlights on the helmet ring hold SPECULAR_LINEAR, beyond white."""
    from core.imaging.color import srgb_to_linear
    lin = srgb_to_linear(portrait()[60:316, 128:384])
    h, w = lin.shape[:2]
    x = np.arange(w, dtype=np.float32)
    t = np.clip((x / w - 0.5) / 0.4, 0.0, 1.0)
    light = 1.25 * (1.0 - 0.985 * t * t * (3.0 - 2.0 * t))
    scene = lin * light[None, :, None]
    for cx, cy in SPECULARS:
        a = disc_alpha(h, w, cx, cy, specular_radius_px)[:, :, None]
        scene = scene * (1.0 - a) + SPECULAR_LINEAR * a
    return scene.astype(np.float32)


@dataclass
class ClippedBurst(Burst):
    linear_truths: List[np.ndarray] = field(default_factory=list)   # each frame's scene in linear light, unclipped
    exposure: float = 1.0           # the scene's scale before the noise (0.02: a night burst at 2 % exposure)

    def truth_at(self, k: int, ev: float = 0.0) -> np.ndarray:
        """Frame k's ground truth brightened by `ev` stops in linear light, clipped to [0, 1], sRGB-encoded."""
        from core.imaging.color import linear_to_srgb
        return linear_to_srgb(np.clip(self.linear_truths[k] * np.float32(2.0 ** ev), 0.0, 1.0)).astype(np.float32)


def quantize_u16(x: np.ndarray) -> np.ndarray:
    """What a 16-bit PNG holds of values in [0, 1]: round(x·65535)/65535."""
    return (np.round(np.clip(x, 0.0, 1.0) * 65535.0) / 65535.0).astype(np.float32)


def clipped_burst(scene_linear: np.ndarray, n: int = 8, seed: int = 0, noise_a: float = 0.004,
                  noise_b: float = 0.0004, exposure: float = 1.0, max_shift_px: float = 8.0,
                  max_rotation_deg: float = 1.0, object_radius_frac: float = 0.11,
                  object_step_px: float = 5.0) -> ClippedBurst:
    """A hand-held burst of a linear-light scene (values may exceed 1) scaled by `exposure`, with the noise of
    variance noise_a·signal + noise_b added in linear light to the exposed signal, then clipped to [0, 1] (black
    and white), sRGB-encoded and quantised as a 16-bit PNG. Motion as `burst`: frame 0 unmoved, the others
    shifted up to ±max_shift_px and rolled up to ±max_rotation_deg; a textured disc (lit like the scene's bright
    side, scaled by the exposure too) moves by object_step_px per frame. truths are the clipped, encoded scene."""
    from core.imaging.color import linear_to_srgb, srgb_to_linear

    rng = np.random.default_rng(seed)
    h, w = scene_linear.shape[:2]
    radius = object_radius_frac * min(h, w)
    obj = srgb_to_linear(texture(h, w, seed + 101) * np.array([0.9, 0.6, 0.3], np.float32) + 0.05)
    y_obj = h * 0.62
    x_start = w * 0.5 - object_step_px * (n - 1) / 2
    frames, truths, linear, masks, shifts, angles = [], [], [], [], [], []
    for k in range(n):
        if k == 0:
            dx = dy = ang = 0.0
        else:
            dx, dy = rng.uniform(-max_shift_px, max_shift_px, 2)
            ang = rng.uniform(-max_rotation_deg, max_rotation_deg)
        moved, _ = warp_affine(scene_linear, float(dx), float(dy), float(ang))
        moved = np.maximum(moved, 0.0)            # bicubic overshoot beside the highlights
        cx = x_start + object_step_px * k
        alpha = disc_alpha(h, w, cx, y_obj, radius)
        tex, _ = warp_affine(obj, cx - w * 0.5, 0.0)
        scene = (moved * (1 - alpha[:, :, None]) + tex * alpha[:, :, None]) * np.float32(exposure)
        noisy = poisson_gaussian(scene, noise_a, noise_b, rng)
        frames.append(quantize_u16(linear_to_srgb(np.clip(noisy, 0.0, 1.0))))
        truths.append(linear_to_srgb(np.clip(scene, 0.0, 1.0)).astype(np.float32))
        linear.append(scene.astype(np.float32))
        masks.append(alpha > 0.5)
        shifts.append((float(dx), float(dy)))
        angles.append(float(ang))
    import cv2
    covered = cv2.dilate(np.any(np.stack(masks), axis=0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    margin = int(np.ceil(max_shift_px + np.radians(max_rotation_deg) * 0.5 * np.hypot(h, w))) + 2
    static = ~covered
    static[:margin] = static[-margin:] = False
    static[:, :margin] = static[:, -margin:] = False
    return ClippedBurst(frames, truths, masks, static, shifts, angles, float(noise_a), float(noise_b),
                        linear_truths=linear, exposure=float(exposure))


# ---------------------------------------------------------------------------------------------------------------
# Depth of field ground truth (refocus)


def disc_kernel(diameter_px: float, supersample: int = 8) -> np.ndarray:
    """The thin-lens point-spread function: a uniform disc of the given diameter, exact pixel-area coverage,
    normalised to sum 1 (a single tap at one pixel or less)."""
    r = diameter_px / 2.0
    if r <= 0.5:
        return np.ones((1, 1), np.float32)
    half = int(np.ceil(r + 0.5))
    size = 2 * half + 1
    k = disc_alpha(size, size, half + 0.5, half + 0.5, r, supersample)
    return (k / k.sum()).astype(np.float32)


def add_point_lights(rgb: np.ndarray, points, radius: float = 1.2, value: float = 1.0) -> np.ndarray:
    """Small bright discs (street lamps, fairy lights) painted into a layer's colour at (x, y) positions."""
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for x, y in points:
        a = disc_alpha(h, w, x, y, radius)[:, :, None]
        out = out * (1 - a) + value * a
    return out.astype(np.float32)


def thin_lens_layers(scene: "LayeredScene", coc_px, linear: bool = True) -> np.ndarray:
    """The thin-lens image of a stack of fronto-parallel layers, each blurred by its own CoC (px diameter).

    Each layer's premultiplied colour and coverage are convolved with its disc and composited back to front
    over the full, hidden layers. For two layers this equals the exact aperture integral whenever one of them is
    in focus (the other's blur then does not depend on where the ray crosses the sharp one). Colour is blurred in
    linear light (sRGB-encoded layers in, sRGB-encoded image out) as light adds linearly.
    """
    import cv2
    from core.imaging.color import linear_to_srgb, srgb_to_linear

    out = None
    for layer, c in zip(scene.layers, coc_px):
        k = disc_kernel(abs(c))
        lin = srgb_to_linear(layer.rgb) if linear else layer.rgb
        a = layer.alpha.astype(np.float32)
        prem = cv2.filter2D(lin * a[:, :, None], -1, k, borderType=cv2.BORDER_REFLECT)
        cov = cv2.filter2D(a, -1, k, borderType=cv2.BORDER_REFLECT)[:, :, None]
        out = prem if out is None else prem + (1.0 - cov) * out
    return (linear_to_srgb(np.clip(out, 0, None)) if linear else out).astype(np.float32)


def gather_blur(image_srgb: np.ndarray, coc_abs_px: np.ndarray) -> np.ndarray:
    """The naive baseline: every output pixel averages a disc of ITS OWN CoC around it (linear light), with
    anti-aliased disc edges. No occlusion: sharp subjects bleed into blurred backgrounds and blurred
    foregrounds stop at their own silhouette."""
    from core.imaging.color import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(image_srgb)
    h, w = coc_abs_px.shape
    r = np.maximum(coc_abs_px / 2.0, 0.5).astype(np.float32)
    rmax = int(np.ceil(r.max() + 0.5))
    pad = np.pad(lin, ((rmax, rmax), (rmax, rmax), (0, 0)), mode="reflect")
    acc = np.zeros_like(lin)
    wsum = np.zeros((h, w, 1), np.float32)
    for dy in range(-rmax, rmax + 1):
        for dx in range(-rmax, rmax + 1):
            wt = np.clip(r + 0.5 - np.hypot(dx, dy), 0.0, 1.0)[:, :, None]
            if not wt.any():
                continue
            acc += wt * pad[rmax + dy:rmax + dy + h, rmax + dx:rmax + dx + w]
            wsum += wt
    return linear_to_srgb(acc / wsum).astype(np.float32)


def bokeh_scene(h: int = 240, w: int = 320, pad: int = 40, seed: int = 0, subject_m: float = 2.0,
                background_m: float = 8.0, lights: bool = True) -> "LayeredScene":
    """A portrait-like two-plane scene, `pad` px larger on every side than the picture (so that blurs near the
    picture's edge see real content): a textured background with small point lights and a textured disc subject
    with an anti-aliased edge, left of centre. Crop with `[pad:-pad, pad:-pad]`."""
    H, W = h + 2 * pad, w + 2 * pad
    bg = texture(H, W, seed) * 0.8
    if lights:
        rng = np.random.default_rng(seed + 7)
        pts = [(pad + x, pad + y) for x, y in
               zip(rng.uniform(0.62, 0.95, 6) * w, rng.uniform(0.08, 0.92, 6) * h)]
        bg = add_point_lights(bg, pts, radius=1.2, value=1.0)
    fg = texture(H, W, seed + 1) * np.array([1.0, 0.8, 0.7], np.float32)
    alpha_fg = disc_alpha(H, W, pad + w * 0.38, pad + h * 0.5, min(h, w) * 0.3)
    return LayeredScene([Layer(bg, np.ones((H, W), np.float32), background_m), Layer(fg, alpha_fg, subject_m)])


# ---------------------------------------------------------------------------------------------------------------
# A synthetic head for relighting: an ellipsoid with a nose, a brow ridge, eye sockets and cheekbones, with
# textured skin albedo; exact normals and height (analytic), rendered under any light.


def _smoothstep(e0: float, e1: float, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class Head:
    """Camera space x right, y up, z toward the camera; heights in pixels toward the camera."""
    height: np.ndarray      # H×W float64, 0 outside the head
    normals: np.ndarray     # H×W×3 float32 exact unit normals; (0, 0, 1) outside the head
    albedo: np.ndarray      # H×W×3 float32, linear
    mask: np.ndarray        # H×W bool: the head
    face: np.ndarray        # H×W bool: the face (the head's front, away from its silhouette), where quality is measured
    skin: np.ndarray        # H×W bool: the face without the brows (the part a light fit should trust)
    centre: Tuple[float, float]
    axes: Tuple[float, float, float]   # ellipsoid semi-axes a (x), b (y), c (depth), pixels
    nose_tip: Tuple[float, float]

    def height_at(self, x, y):
        """The analytic height at continuous image positions (pixel-edge coordinates, y down)."""
        return _head_height(np.asarray(x, np.float64), np.asarray(y, np.float64), self.centre, self.axes)


def _head_height(x, y, centre, axes):
    cx, cy = centre
    a, b, c = axes
    u, v = (x - cx) / a, (y - cy) / b           # v > 0 below the centre (image rows go down)
    rr = u * u + v * v
    base = c * np.sqrt(np.clip(1.0 - rr, 0.0, 1.0))
    taper = _smoothstep(0.55, 0.85, 1.0 - np.sqrt(np.minimum(rr, 1.0)) + 0.55)  # features fade before the rim
    # Nose: a ridge along the midline rising from between the eyes to the tip, falling off below it.
    tip_v = 0.22
    rise = _smoothstep(-0.22, tip_v, v)
    fall = np.exp(-((v - tip_v) ** 2) / (2 * 0.04 ** 2))
    along = np.where(v <= tip_v, rise, fall)
    width = 0.06 + 0.05 * _smoothstep(-0.22, tip_v, v)
    nose = 0.30 * a * along * np.exp(-(u * u) / (2 * width * width))
    brow = 0.07 * a * np.exp(-((v + 0.30) ** 2) / (2 * 0.06 ** 2)) * np.exp(-(u * u) / (2 * 0.45 ** 2))
    sockets = -0.08 * a * (np.exp(-((u - 0.32) ** 2 + (v + 0.15) ** 2) / (2 * 0.10 ** 2)) +
                           np.exp(-((u + 0.32) ** 2 + (v + 0.15) ** 2) / (2 * 0.10 ** 2)))
    cheeks = 0.04 * a * (np.exp(-((u - 0.42) ** 2 + (v - 0.08) ** 2) / (2 * 0.12 ** 2)) +
                         np.exp(-((u + 0.42) ** 2 + (v - 0.08) ** 2) / (2 * 0.12 ** 2)))
    chin = 0.05 * a * np.exp(-(u * u) / (2 * 0.15 ** 2) - ((v - 0.75) ** 2) / (2 * 0.08 ** 2))
    inside = rr < 1.0
    return np.where(inside, base + taper * (nose + brow + sockets + cheeks + chin), 0.0)


def head(h: int = 256, w: int = 256, seed: int = 0, pores: float = 0.12, blotches: float = 0.03) -> Head:
    """The synthetic head, filling most of an h×w picture. Albedo: a skin colour times fine pore texture
    (contrast `pores`, features 1-2 px) and a gentle large-scale variation (`blotches`), dark brows, redder
    lips."""
    centre = (w / 2.0, h / 2.0 + 0.02 * h)
    a, b = 0.34 * w, 0.44 * h
    axes = (a, b, 0.85 * a)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xx + 0.5, yy + 0.5
    hgt = _head_height(px, py, centre, axes)
    eps = 1e-3
    hx = (_head_height(px + eps, py, centre, axes) - _head_height(px - eps, py, centre, axes)) / (2 * eps)
    hy = (_head_height(px, py + eps, centre, axes) - _head_height(px, py - eps, centre, axes)) / (2 * eps)
    u, v = (px - centre[0]) / a, (py - centre[1]) / b
    rr = u * u + v * v
    mask = rr < (1.0 - 2.0 / min(a, b)) ** 2        # a pixel inside the rim: its derivatives are finite
    n = np.stack([-hx, hy, np.ones_like(hx)], axis=2)
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    n[~mask] = (0.0, 0.0, 1.0)
    face = rr < 0.75 ** 2
    rng_tex = texture(h, w, seed, channels=1, octaves=2)[:, :, 0]          # 1-2 px detail: pores
    slow = texture(h, w, seed + 1, channels=1, octaves=5)[:, :, 0]         # large scale: blotches
    skin_rgb = np.array([0.62, 0.42, 0.33])
    alb = skin_rgb[None, None, :] * (1.0 + pores * 2.0 * (rng_tex[:, :, None] - 0.5)
                                     + blotches * 2.0 * (slow[:, :, None] - 0.5))
    brows = ((np.abs(v + 0.36) < 0.045) & (np.abs(np.abs(u) - 0.3) < 0.17))
    alb[brows] = (0.06, 0.04, 0.03)
    lips = ((u / 0.22) ** 2 + ((v - 0.45) / 0.06) ** 2) < 1.0
    alb[lips] = alb[lips] * np.array([1.15, 0.75, 0.75])
    alb[~mask] = (0.5, 0.5, 0.5)
    skin = face & ~brows
    tip = (centre[0], centre[1] + 0.22 * b)
    return Head(hgt, n.astype(np.float32), alb.astype(np.float32), mask, face, skin, centre, axes, tip)


def render_lambert(hd: Head, lights, ambient: float = 0.0, normals: np.ndarray | None = None) -> np.ndarray:
    """Linear light: albedo · (ambient + Σ intensity · colour · max(n·l, 0)); lights = [(direction (3,),
    intensity, colour (3,))]. Outside the head: the albedo (a grey background) under the ambient + lights as if
    facing the camera."""
    n = hd.normals if normals is None else normals
    s = np.full(n.shape[:2] + (3,), ambient, np.float64)
    for d, inten, col in lights:
        d = np.asarray(d, np.float64) / np.linalg.norm(d)
        s += inten * np.clip(n @ d, 0.0, None)[:, :, None] * np.asarray(col, np.float64)[None, None, :]
    return (hd.albedo * s).astype(np.float32)


def render_sh(hd: Head, coeffs: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """Linear light: albedo · Σ_k c_k Y_k(n), coeffs 3×9 (real SH to second order, in the order Y00, Y1-1,
    Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22)."""
    n = (hd.normals if normals is None else normals).astype(np.float64)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    basis = np.stack([np.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x, 1.092548 * x * y,
                      1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z, 0.546274 * (x * x - y * y)],
                     axis=-1)
    return (hd.albedo * (basis @ np.asarray(coeffs, np.float64).T)).astype(np.float32)


def cast_shadow(hd: Head, direction, where: np.ndarray, step: float = 0.2) -> np.ndarray:
    """Exact cast shadow (bool, H×W) toward a distant light for the pixels in `where`: the ray from the surface
    point to the light, marched in steps of `step` px on the analytic height (not the sampled grid), passes
    under the surface somewhere. Attached shadow (n·l ≤ 0) is not counted as cast."""
    lx, ly, lz = (float(c) for c in np.asarray(direction, np.float64) / np.linalg.norm(direction))
    horiz = float(np.hypot(lx, ly))
    ys, xs = np.nonzero(where)
    px, py = xs + 0.5, ys + 0.5
    h0 = hd.height_at(px, py)
    top = float(hd.height.max())
    slope = lz / horiz
    reach = (top - float(h0.min())) / max(slope, 1e-3) if slope > 0 else 2.0 * max(hd.height.shape)
    out = np.zeros(len(xs), bool)
    s = step
    while s <= reach:
        hx, hy = px + s * lx / horiz, py - s * ly / horiz
        out |= hd.height_at(hx, hy) > h0 + s * slope + 1e-6
        s += step
    lit = (hd.normals[ys, xs].astype(np.float64) @ np.array([lx, ly, lz])) > 0
    full = np.zeros(where.shape, bool)
    full[ys, xs] = out & lit
    return full


def scale_invariant_psnr(result: np.ndarray, truth: np.ndarray, where: np.ndarray, peak: float = 1.0) -> float:
    """PSNR after the best single gain on `result` (least squares over `where`): relighting cannot know the
    subject's absolute albedo, so a global exposure factor is not an error."""
    r = np.asarray(result, np.float64)[where]
    t = np.asarray(truth, np.float64)[where]
    gain = float((r * t).sum() / max((r * r).sum(), 1e-30))
    return psnr(gain * r, t, peak)


# ----------------------------------------------------------------------------------------------------------------
# Skin with planted blemishes (issue 15, the skin operator): exact ground truth = the same skin without them.
@dataclass
class SkinScene:
    """Procedural skin with planted blemishes (see `skin_scene`). Lengths in pixels of this scene."""
    image: np.ndarray          # H×W×3 sRGB: the skin with its blemishes (the input)
    truth: np.ndarray          # H×W×3 sRGB: the same skin without them (the ground truth)
    spots: List[Tuple[float, float, float, str]] = field(default_factory=list)   # (x, y, diameter, 'dark'|'red')
    pore_std: float = 0.0      # RMS of the pores' luminance modulation (fraction of the tone)

    def spot_mask(self, grow: float = 0.0) -> np.ndarray:
        """H×W bool: inside the planted spots (diameter + 2·grow)."""
        h, w = self.image.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        out = np.zeros((h, w), bool)
        for x, y, d, _ in self.spots:
            out |= (xx - x) ** 2 + (yy - y) ** 2 <= (d / 2 + grow) ** 2
        return out


SKIN_TONE = (0.80, 0.60, 0.50)   # sRGB of a light skin in even light
SKIN_SPOT_DIAMETERS = (6, 8, 10, 12, 14, 16, 18, 20, 22, 24)   # px at factor 1, as the issue asks (6-24 px)


def _box_down(x: np.ndarray, k: int) -> np.ndarray:
    h, w = x.shape[:2]
    return x.reshape(h // k, k, w // k, k, *x.shape[2:]).mean(axis=(1, 3)).astype(np.float32)


def skin_scene(side: int = 256, factor: int = 1, seed: int = 0, spots: int = 14) -> SkinScene:
    """Skin seen at a face height of about 560 px (factor 1): tone, large-scale shading and a faint blotch
    pattern, pores of three sizes (0.7, 1.1 and 1.6 px radius at factor 1, about one per 10 px²) and fine grain,
    plus `spots` dark and red spots of the SKIN_SPOT_DIAMETERS (raised-cosine profile, the pores kept under
    them), each at least 10 px from the others and 16 px from the border.

    The scene is always drawn at 3× and averaged down 3×3 for factor 1, so factor 1 and factor 3 are the same
    skin at two resolutions (every length ×3). Returns SkinScene with lengths at the requested factor."""
    import cv2
    if factor not in (1, 3):
        raise ValueError("factor must be 1 or 3")
    rng = np.random.default_rng(seed)
    k = 3
    n = side * k
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / n

    def smooth_field(cells: int, amp: float) -> np.ndarray:
        f = rng.standard_normal((cells, cells)).astype(np.float32)
        return amp * cv2.resize(f, (n, n), interpolation=cv2.INTER_CUBIC)

    # Light: a gradient and a broad bump (large-scale shading), a faint blotch pattern (mid scales).
    shade = 0.9 + 0.1 * (xx - 0.5) - 0.08 * (yy - 0.5) + 0.06 * np.exp(-((xx - 0.6) ** 2 + (yy - 0.4) ** 2) / 0.08)
    shade = shade + smooth_field(6, 0.012)
    pores = np.zeros((n, n), np.float32)
    for radius, density, depth in ((0.7, 0.06, 0.05), (1.1, 0.03, 0.06), (1.6, 0.012, 0.06)):
        count = int(density * side * side)
        py, px = rng.integers(0, n, count), rng.integers(0, n, count)
        imp = np.zeros((n, n), np.float32)
        sigma = radius * k
        np.add.at(imp, (py, px), rng.uniform(0.5, 1.0, count).astype(np.float32) * depth * 2 * np.pi * sigma ** 2)
        pores += cv2.GaussianBlur(imp, (0, 0), sigma)
    grain = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), 0.6 * k) * 0.012 * k
    modulation = 1.0 - pores + grain
    tone = np.asarray(SKIN_TONE, np.float32)
    chroma = np.stack([smooth_field(5, 0.006), smooth_field(5, -0.004), smooth_field(5, 0.0)], axis=2)
    truth = (tone * shade[:, :, None] + chroma) * modulation[:, :, None]

    # Spots: positions at factor 3, diameters from the list (cycled), alternately dark and red.
    placed: List[Tuple[float, float, float, str]] = []
    tries = 0
    while len(placed) < spots and tries < 5000:
        tries += 1
        d = SKIN_SPOT_DIAMETERS[len(placed) % len(SKIN_SPOT_DIAMETERS)] * k
        x, y = rng.uniform(16 * k + d / 2, n - 16 * k - d / 2, 2)
        if all((x - a) ** 2 + (y - b) ** 2 > ((d + e) / 2 + 10 * k) ** 2 for a, b, e, _ in placed):
            placed.append((float(x), float(y), float(d), "dark" if len(placed) % 2 == 0 else "red"))
    image = truth.copy()
    px_, py_ = (np.mgrid[0:n, 0:n][::-1].astype(np.float32) + 0.5)
    for x, y, d, kind in placed:
        rho = np.sqrt((px_ - x) ** 2 + (py_ - y) ** 2) / (d / 2)
        prof = np.where(rho < 1.0, 0.5 * (1.0 + np.cos(np.pi * np.minimum(rho, 1.0))), 0.0)[:, :, None]
        if kind == "dark":      # a brown spot: darker, a little more saturated
            image = image * (1.0 - prof * np.float32([0.30, 0.34, 0.38]))
        else:                   # a red spot: green and blue absorbed, a touch darker
            image = image * (1.0 - prof * np.float32([0.02, 0.20, 0.16]))
    truth, image = np.clip(truth, 0, 1).astype(np.float32), np.clip(image, 0, 1).astype(np.float32)
    pore_std = float(np.std(modulation))
    if factor == 1:
        truth, image = _box_down(truth, k), _box_down(image, k)
        placed = [(x / k, y / k, d / k, kind) for x, y, d, kind in placed]
    return SkinScene(image, truth, placed, pore_std)
