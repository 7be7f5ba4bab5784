"""Light wrap: the plate's light spilling over the subject's edges.

A subject shot in front of a bright scene is never cut out sharply by the light: lens glare, the veiling of
thin edges and light scattered round the silhouette carry some of the surroundings' light onto its rim. Here
the subject's edge is lit by the plate blurred over the wrap width σ (WRAP_FRACTION of the frame's longer side),
in linear light, weighted by how much plate surrounds each subject pixel:

    w = α · G_σ * (1 − α),       C' = C + s · w · (G_σ * P − C)

with P the (defocused) plate and s = light_wrap in [0, 1]. The weight is 0 deep inside the subject (nothing
around it is plate) and on the plate itself (α = 0), and at most about ½ on a straight edge; C' is a mix of C and
the plate's local light, so no pixel gets brighter than the brighter of the two. s = 0 changes nothing.
"""
from __future__ import annotations

import cv2
import numpy as np

WRAP_FRACTION = 0.012     # σ of the wrap as a fraction of the longer side (about 50 px at 12 MP)
WORK_SIDE = 512           # the blurs are smooth: computed on a copy of at most this longer side
MIN_WEIGHT = 1e-3         # s·w below this moves no colour by a visible amount (0.1 % of the difference)


def _blur_small(x: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of σ (px of x) on a copy of at most WORK_SIDE (a Gaussian of σ ≥ a few px is band-limited,
    so the reduced copy loses nothing visible); returns that small copy."""
    h, w = x.shape[:2]
    k = min(1.0, WORK_SIDE / max(h, w))
    small = x
    if k < 1.0:
        small = cv2.resize(x, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), max(sigma_px * small.shape[1] / w, 0.5),
                            borderType=cv2.BORDER_REFLECT)


def wrap_weight(alpha: np.ndarray, sigma_px: float) -> np.ndarray:
    """w = α · G_σ * (1 − α) (H×W)."""
    h, w = alpha.shape
    around = _blur_small(1.0 - alpha, sigma_px)
    if around.shape != (h, w):
        around = cv2.resize(around, (w, h), interpolation=cv2.INTER_LINEAR)
    return (alpha * around).astype(np.float32)


def sigma_for(shape) -> float:
    return WRAP_FRACTION * max(shape[:2])


def ring(alpha: np.ndarray, plate, strength: float):
    """Where the wrap acts and with what: (flat indices of the pixels with s·w > MIN_WEIGHT, their s·w (N),
    the blurred plate there (N×3)). `plate`: the defocused plate (defocus.Defocused). Everything else is left
    exactly as it is."""
    from .upsample import sample
    h, w = alpha.shape
    sigma = sigma_for(alpha.shape)
    weight = wrap_weight(alpha, sigma) * np.float32(strength)
    idx = np.flatnonzero(weight > MIN_WEIGHT)
    spill_small = _blur_small(plate.lin, sigma * plate.lin.shape[1] / w)
    ys, xs = np.divmod(idx, w)
    return idx, weight.reshape(-1)[idx], sample(spill_small, ys, xs, (h, w))


def mix(colours: np.ndarray, weight: np.ndarray, spill: np.ndarray) -> np.ndarray:
    """C' = C + s·w·(G_σ * P − C) for N×3 linear colours (weight = s·w)."""
    return (colours + weight[:, None] * (spill - colours)).astype(np.float32)
