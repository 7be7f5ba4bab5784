"""Second-order spherical harmonics: the old light, estimated from the picture and its normals.

Shading model (Ramamoorthi & Hanrahan 2001): for a convex Lambertian surface under distant light, irradiance is
a smooth function of the normal n that the first 9 real spherical harmonics capture to about 1 %:

    S(n) = Σ_k c_k Y_k(n),   k = 0..8,
    Y = (0.282095,  0.488603 y,  0.488603 z,  0.488603 x,
         1.092548 xy,  1.092548 yz,  0.315392 (3z² − 1),  1.092548 xz,  0.546274 (x² − y²)).

A pixel of albedo ρ reads I = ρ · S(n) in linear light. With ρ unknown, `fit` estimates c per channel by
least squares over the subject, I ≈ B(n) c (so c holds the light times the subject's mean albedo), made robust
by iteratively reweighted least squares: residuals are measured on the log of the luminance ratio
r = log(I / B c) (so a dark pixel and a bright one count alike), scaled by their median absolute deviation,
and weighted by Tukey's biweight (zero beyond 4.685 MADs): dark hair, brows and nostrils (r ≪ 0) and specular
highlights (r ≫ 0) drop out of the fit instead of dragging the light toward them. Clipped and black pixels
are left out from the start.

`normalise` removes what cannot be known: the fitted S is scaled, per channel, so that its mean over the fit
region equals the mean of max(n_z, 0) there, the shading a unit light from the camera would give. Hence the
old light's mean colour is taken as neutral (the white balance is the photographer's) and intensity 1 from
the camera keeps the subject's mean exposure.

A directional light of intensity E from l projects onto these 9 functions as c_k = E · A_l · Y_k(l) with
A = (π, 2π/3, π/4) / π for bands 0, 1, 2 (normalised so that max(n·l, 0) ≈ Σ c_k Y_k(n)): `from_lights`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

C0, C1, C2, C3, C4 = 0.282095, 0.488603, 1.092548, 0.315392, 0.546274
BAND = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2])
# Lambertian convolution per band, divided by π so that a unit light gives max(n·l, 0), not π times it.
LAMBERT = np.array([1.0, 2.0 / 3.0, 0.25])[BAND]
LUMA = np.array([0.2126, 0.7152, 0.0722])

TUKEY_C = 4.685          # biweight cut-off in MADs: 95 % efficiency on Gaussian residuals
MIN_SCALE = 0.01         # floor of the residual scale (log units): a perfect synthetic fit must not divide by 0
ITERATIONS = 12          # reweightings: a fifth of the subject under dark hair needs about ten to settle
MAX_SAMPLES = 30_000     # pixels the fit uses (a regular subsample): enough for 9 unknowns, bounded cost
CLIPPED = 0.975          # linear value of sRGB 0.99: a channel this high has lost its ratio to the others
DARK = 1e-4
RIDGE = 1e-3             # Tikhonov weight, relative to the data's mean energy per coefficient (see _weighted_lstsq)
COLOUR_SHRINK = 4.0      # how strongly each channel's shape is tied to the luminance's (see _colour_fit)


def basis(normals: np.ndarray) -> np.ndarray:
    """(..., 3) unit normals -> (..., 9) basis values (same float type as the input)."""
    n = np.asarray(normals)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    dt = n.dtype
    out = np.empty(n.shape[:-1] + (9,), dt)
    out[..., 0] = C0
    out[..., 1] = C1 * y
    out[..., 2] = C1 * z
    out[..., 3] = C1 * x
    out[..., 4] = C2 * x * y
    out[..., 5] = C2 * y * z
    out[..., 6] = C3 * (3.0 * z * z - 1.0)
    out[..., 7] = C2 * x * z
    out[..., 8] = C4 * (x * x - y * y)
    return out


def fibonacci_sphere(count: int) -> np.ndarray:
    """`count` unit vectors spread evenly over the sphere (a Fibonacci lattice), count×3 float64."""
    k = np.arange(count) + 0.5
    z = 1.0 - 2.0 * k / count
    r = np.sqrt(np.maximum(1.0 - z * z, 0.0))
    phi = k * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


@dataclass
class SHLight:
    coeffs: np.ndarray            # 3×9 float64: per channel (R, G, B), per basis function
    pixels_used: int = 0          # pixels with a non-zero final weight
    rejected_fraction: float = 0.0  # of the candidate pixels, the share the robust weights dropped
    residual_scale: float = 0.0   # MAD of the final log residuals
    sample_index: Optional[np.ndarray] = field(default=None, repr=False)   # flat pixel indices the fit used
    sample_weight: Optional[np.ndarray] = field(default=None, repr=False)  # their final robust weights

    def shading(self, normals: np.ndarray) -> np.ndarray:
        """S(n) per channel: (..., 3) normals -> (..., 3) float32."""
        b = basis(np.asarray(normals, np.float32))
        return (b @ self.coeffs.T.astype(np.float32)).astype(np.float32)

    def scaled(self, gains: Sequence[float]) -> "SHLight":
        g = np.asarray(gains, np.float64).reshape(3, 1)
        return SHLight(self.coeffs * g, self.pixels_used, self.rejected_fraction, self.residual_scale,
                       self.sample_index, self.sample_weight)

    def grey(self) -> "SHLight":
        """The same light as one colour: every channel's coefficients are the luminance's (LUMA · coeffs).
        A light whose colour changes with direction cannot be told apart from albedo colour that changes across
        the subject (a redder chin below a paler forehead reads as warm light from below); as the old light of a
        ratio image such a colour would be divided out of the albedo."""
        lum = LUMA @ self.coeffs
        return SHLight(np.repeat(lum[None, :], 3, axis=0), self.pixels_used, self.rejected_fraction,
                       self.residual_scale, self.sample_index, self.sample_weight)

    def dominant_direction(self) -> np.ndarray:
        """Where most light comes from: the gradient of the best plane S ≈ a + g·n through the luminance
        shading over the front-facing normals (n_z ≥ 0.2). The first band's coefficients alone would not do:
        over a face's normals they trade with bands 0 and 2."""
        n = fibonacci_sphere(600)
        n = n[n[:, 2] >= 0.2]
        y = basis(n) @ (LUMA @ self.coeffs)
        x = np.column_stack([np.ones(len(n)), n])
        g = np.linalg.lstsq(x, y, rcond=None)[0][1:]
        norm = np.linalg.norm(g)
        return g / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


def from_lights(directions: Sequence[np.ndarray], colours: Sequence[np.ndarray], ambient=0.0) -> SHLight:
    """The SH (irradiance) of directional lights: intensity·colour (3,) each, plus an ambient term (scalar or
    (3,)) that adds `ambient` to S everywhere."""
    coeffs = np.zeros((3, 9))
    for d, col in zip(directions, colours):
        y = basis(np.asarray(d, np.float64)[None])[0]
        coeffs += np.asarray(col, np.float64).reshape(3, 1) * (LAMBERT * y)[None, :]
    coeffs[:, 0] += np.broadcast_to(np.asarray(ambient, np.float64), (3,)) / C0
    return SHLight(coeffs)


def _subsample(weight: np.ndarray, max_samples: int) -> np.ndarray:
    """Flat indices of the candidate pixels (weight > 0), a regular deterministic subsample of at most
    max_samples."""
    idx = np.flatnonzero(weight.reshape(-1) > 0)
    if idx.size > max_samples:
        step = idx.size / max_samples
        idx = idx[(np.arange(max_samples) * step).astype(np.int64)]
    return idx


def _solve(ata: np.ndarray, atb: np.ndarray) -> np.ndarray:
    """Symmetric positive semi-definite solve by eigen-decomposition: directions the data do not determine
    (eigenvalues below 1e-9 of the largest, e.g. every normal equal on a flat plane) get no coefficient
    (the minimum-norm answer) instead of a blow-up."""
    vals, vecs = np.linalg.eigh(ata)
    keep = vals > 1e-9 * max(float(vals.max()), 1e-300)
    inv = np.where(keep, 1.0 / np.where(keep, vals, 1.0), 0.0)
    return vecs @ (inv[:, None] * (vecs.T @ atb))


def _weighted_lstsq(b: np.ndarray, target: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin_c Σ w (b c − t)² + λ ‖c‖² per column of t, by the 9×9 normal equations (in float64).

    Tikhonov λ = RIDGE · tr(bᵀ W b) / 9: on a face every normal faces the camera, so 1, z and 3z² − 1 are
    nearly collinear and the plain fit trades huge opposite coefficients for a hair of residual; those blow
    up wherever the shading is evaluated off the data (a silhouette, a downward-facing nostril)."""
    bw = b * w[:, None]
    ata = bw.T @ b
    ata = ata + (RIDGE * np.trace(ata) / 9.0) * np.eye(9)
    return _solve(ata, bw.T @ target)


def _colour_fit(b: np.ndarray, img: np.ndarray, w: np.ndarray, shrink: float) -> np.ndarray:
    """9×3 coefficients: per channel c, argmin Σ w (b c_c − I_c)² + λ ‖c_c − g_c c_Y‖² (+ the ridge), with c_Y
    the luminance's own fit, g_c the channel's mean over the luminance's and λ = shrink · tr(bᵀ W b) / 9.

    A channel departs from the luminance's shape only as far as the data insist: on a real subject, albedo
    colour that happens to correlate with the normals (an orange suit below a pink face) must not read as
    coloured light from one side, while a light that really is coloured by direction still shows."""
    lum = img @ LUMA
    c_lum = _weighted_lstsq(b, lum[:, None], w)[:, 0]
    if shrink <= 0:
        return _weighted_lstsq(b, img, w)
    bw = b * w[:, None]
    ata = bw.T @ b
    trace = np.trace(ata) / 9.0
    lam = shrink * trace
    gains = (img * w[:, None]).sum(0) / max(float((lum * w).sum()), 1e-12)
    lhs = ata + (lam + RIDGE * trace) * np.eye(9)
    rhs = bw.T @ img + lam * c_lum[:, None] * gains[None, :]
    return _solve(lhs, rhs)


def _weighted_median(values: np.ndarray, weights: np.ndarray, max_points: int = 4000) -> float:
    """Weighted median (of a regular subsample of at most max_points: a scale estimate needs no more)."""
    if values.size > max_points:
        pick = (np.arange(max_points) * (values.size / max_points)).astype(np.int64)
        values, weights = values[pick], weights[pick]
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    k = int(np.searchsorted(cw, 0.5 * cw[-1]))
    return float(values[order][min(k, len(order) - 1)])


def fit(linear: np.ndarray, normals: np.ndarray, weight: np.ndarray, max_samples: int = MAX_SAMPLES,
        iterations: int = ITERATIONS, robust: bool = True, colour_shrink: float = None) -> SHLight:
    """Estimate the light on `linear` (H×W×3, linear light) whose surface has `normals` (H×W×3, unit), over
    `weight` (H×W in [0, 1]: how much each pixel counts; 0 = not the subject). Returns un-normalised
    coefficients (light × mean albedo); see `normalise`. `colour_shrink` (default COLOUR_SHRINK) ties each
    channel's shape to the luminance's (see `_colour_fit`)."""
    shrink = COLOUR_SHRINK if colour_shrink is None else colour_shrink
    flat_w = np.asarray(weight, np.float32).reshape(-1)
    idx = _subsample(flat_w, max_samples)
    if idx.size < 16:
        raise ValueError("too few pixels to fit the light")
    img = np.asarray(linear, np.float32).reshape(-1, 3)[idx].astype(np.float64)
    b = basis(np.asarray(normals, np.float32).reshape(-1, 3)[idx].astype(np.float64))
    w0 = flat_w[idx].astype(np.float64)
    usable = (img.max(axis=1) < CLIPPED) & (img.min(axis=1) > DARK)
    if usable.sum() < 16:
        usable = np.ones_like(usable)
    w0 = w0 * usable
    lum = np.maximum(img @ LUMA, DARK)
    if robust:
        # Start from the middle of the brightness distribution: hair and highlights must not steer the start.
        lo, hi = np.quantile(np.log(lum[usable]), [0.15, 0.9])
        start = (np.log(lum) >= lo) & (np.log(lum) <= hi)
        w = w0 * start if (w0 * start).sum() > 0 else w0
    else:
        w = w0
    coeffs = _weighted_lstsq(b, img, w)
    scale = 0.0
    for _ in range(iterations if robust else 0):
        pred = np.maximum(b @ (coeffs @ LUMA), 1e-6)
        r = np.log(lum) - np.log(pred)
        live = w0 > 0
        med = _weighted_median(r[live], w0[live])
        mad = _weighted_median(np.abs(r[live] - med), w0[live])
        scale = max(1.4826 * mad, MIN_SCALE)
        u = (r - med) / (TUKEY_C * scale)
        w = w0 * np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)
        previous = coeffs
        coeffs = _weighted_lstsq(b, img, w)
        if np.abs(coeffs - previous).max() <= 1e-5 * max(np.abs(coeffs).max(), 1e-12):
            break   # the weights have settled
    coeffs = _colour_fit(b, img, w, shrink)
    used = int(np.count_nonzero(w > 0))
    rejected = 1.0 - used / max(int(np.count_nonzero(w0 > 0)), 1)
    return SHLight(coeffs.T.copy(), used, float(rejected), float(scale), idx, w)


def normalise(light: SHLight, normals: np.ndarray, weight: np.ndarray,
              max_samples: int = MAX_SAMPLES) -> SHLight:
    """Scale each channel so that mean_w S_c = mean_w max(n_z, 0) over `weight` (see the module docstring)."""
    flat_w = np.asarray(weight, np.float32).reshape(-1)
    idx = _subsample(flat_w, max_samples)
    n = np.asarray(normals, np.float32).reshape(-1, 3)[idx].astype(np.float64)
    w = flat_w[idx].astype(np.float64)
    s = basis(n) @ light.coeffs.T                      # N×3
    mean_s = (s * w[:, None]).sum(0) / max(w.sum(), 1e-12)
    frontal = float((np.maximum(n[:, 2], 0.0) * w).sum() / max(w.sum(), 1e-12))
    frontal = max(frontal, 0.05)
    gains = frontal / np.where(np.abs(mean_s) > 1e-9, mean_s, 1e-9)
    return light.scaled(gains)


def fit_normalised(linear, normals, weight, robust: bool = True, colour_shrink: float = None) -> SHLight:
    return normalise(fit(linear, normals, weight, robust=robust, colour_shrink=colour_shrink), normals, weight)


def describe(light: SHLight) -> dict:
    d = light.dominant_direction()
    az = float(np.degrees(np.arctan2(d[0], d[2])))
    el = float(np.degrees(np.arcsin(np.clip(d[1], -1, 1))))
    return {"dominant_azimuth_deg": round(az, 1), "dominant_elevation_deg": round(el, 1),
            "pixels_used": light.pixels_used, "rejected_fraction": round(light.rejected_fraction, 4),
            "residual_scale": round(light.residual_scale, 4)}


def mean_level(light: SHLight, normals: np.ndarray, weight: Optional[np.ndarray] = None) -> np.ndarray:
    """Mean of S per channel over `weight` (all pixels if None)."""
    s = light.shading(normals).reshape(-1, 3).astype(np.float64)
    if weight is None:
        return s.mean(0)
    w = np.asarray(weight, np.float64).reshape(-1)
    return (s * w[:, None]).sum(0) / max(w.sum(), 1e-12)
