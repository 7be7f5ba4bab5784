"""The bundled background plate: an outdoor scene made procedurally (no file, no download, no licence question).

A level camera's view of a park at dusk-light daylight: a sky graded from deep blue overhead to a pale horizon
with soft clouds, a hazy line of hills, a tree line, a mown field whose texture shrinks toward the horizon as a
ground plane's does under perspective, and small bright glints (sun through leaves, far lamps) that a lens turns
into bokeh discs. The horizon is at half the plate's height (a level camera without shift), so the operator's
default `background_horizon` fits it. Values are sRGB-encoded in [0, 1], seeded and deterministic.
"""
from __future__ import annotations

import cv2
import numpy as np

HORIZON = 0.5


def _value_noise(h: int, w: int, rng: np.random.Generator, cells_y: int, cells_x: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid interpolated bicubically to h×w."""
    grid = rng.random((max(cells_y, 2), max(cells_x, 2))).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _fbm(h: int, w: int, rng: np.random.Generator, base_cells: int, octaves: int = 5) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    total = 0.0
    for o in range(octaves):
        cells = base_cells * 2 ** o
        amp = 0.55 ** o
        out += amp * _value_noise(h, w, rng, max(2, cells * h // max(w, 1)), cells)
        total += amp
    out /= total
    return (out - out.min()) / max(float(out.max() - out.min()), 1e-6)


def plate(height: int = 512, width: int = 768, seed: int = 0) -> np.ndarray:
    """An H×W×3 float32 sRGB outdoor plate (see the module notes)."""
    rng = np.random.default_rng(seed)
    h, w = int(height), int(width)
    yy = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
    xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w
    hz = HORIZON

    # Sky: deep blue at the top to a pale, warm-white horizon; soft clouds.
    t = np.clip(yy / hz, 0.0, 1.0)[:, :, None]
    sky = (1 - t) * np.float32([0.30, 0.50, 0.82]) + t * np.float32([0.80, 0.86, 0.92])
    clouds = _fbm(h, w, rng, 4)
    cloud_w = np.clip((clouds - 0.55) * 3.0, 0.0, 1.0) * np.clip((hz - yy) / hz * 2.0, 0.0, 1.0)
    sky = sky * (1 - cloud_w[:, :, None] * 0.8) + cloud_w[:, :, None] * 0.8 * np.float32([0.97, 0.96, 0.95])
    img = np.broadcast_to(sky, (h, w, 3)).copy()

    # Hills: a hazy bluish silhouette rising a little above the horizon.
    ridge = hz - (0.03 + 0.05 * _fbm(1, w, rng, 3, 3)[0]) * np.float32(1.0)
    hills = (yy >= ridge[None, :]).astype(np.float32)
    hill_c = np.float32([0.52, 0.60, 0.66])
    img = img * (1 - hills[:, :, None]) + hills[:, :, None] * hill_c

    # Tree line: dark green crowns along the horizon, with leaf texture.
    crowns = hz - (0.02 + 0.22 * _fbm(1, w, rng, 10, 4)[0] ** 1.3)
    trees = ((yy >= crowns[None, :]) & (yy < hz + 0.01)).astype(np.float32)
    leaf = _fbm(h, w, rng, 40, 4)
    tree_c = np.float32([0.16, 0.27, 0.14])[None, None, :] * (0.7 + 0.6 * leaf[:, :, None])
    img = img * (1 - trees[:, :, None]) + trees[:, :, None] * tree_c

    # Field: ground plane below the horizon; texture frequency ∝ 1/(y − horizon), as perspective shrinks it.
    below = np.clip((yy - hz) / (1.0 - hz), 1e-3, 1.0)
    field_tex = _fbm(h, w, rng, 24, 5)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (0.7 / below) + 6.0 * field_tex)
    grass = (np.float32([0.30, 0.46, 0.18])[None, None, :] * (0.85 + 0.15 * stripes[:, :, None])
             * (0.8 + 0.3 * field_tex[:, :, None]))
    haze = np.clip(1.0 - below / 0.25, 0.0, 1.0)[:, :, None] * 0.35
    grass = grass * (1 - haze) + haze * hill_c
    ground = (yy >= hz + 0.01).astype(np.float32) * np.ones((1, w), np.float32)
    img = img * (1 - ground[:, :, None]) + ground[:, :, None] * grass

    # Glints: small clipped lights in the trees and along the horizon (they become bokeh discs).
    n = max(16, int(90 * w / 768))
    gx = rng.uniform(0.02, 0.98, n) * w
    gy = (hz + rng.uniform(-0.2, 0.0, n)) * h
    r = max(1.0, w / 500.0)
    reach = int(np.ceil(1.5 * r)) + 1
    for x0, y0, warm in zip(gx, gy, rng.random(n)):
        if not trees[min(max(int(y0), 0), h - 1), min(max(int(x0), 0), w - 1)]:
            continue   # glints only where leaves let the sun through
        ya, yb = max(int(y0) - reach, 0), min(int(y0) + reach + 1, h)
        xa, xb = max(int(x0) - reach, 0), min(int(x0) + reach + 1, w)
        if ya >= yb or xa >= xb:
            continue
        ys, xs = np.mgrid[ya:yb, xa:xb].astype(np.float32) + 0.5
        spot = np.clip(1.5 - np.sqrt((xs - x0) ** 2 + (ys - y0) ** 2) / r, 0.0, 1.0)[:, :, None]
        colour = np.float32([1.0, 0.93, 0.75]) if warm > 0.5 else np.float32([1.0, 1.0, 1.0])
        img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - spot) + spot * colour
    return np.clip(img, 0.0, 1.0).astype(np.float32)
