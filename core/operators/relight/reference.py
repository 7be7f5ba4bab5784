"""Light from a reference portrait: the reference's own light, read off its face and its geometry, to be
rendered on this face.

1. The SH light (`sh.fit`, robust) of the reference over its face: 9 coefficients per channel.
2. A light rig fitted to the same pixels with the same robust weights: ambient plus up to RIG_LIGHTS distant
   lights, S(n) = a + Σ_k E_k max(n·l_k, 0) in luminance. Directions are searched over a Fibonacci lattice of
   RIG_DIRECTIONS on the sphere (for given directions the model is linear: a small weighted least squares per
   candidate; every pair at once from the lattice's Gram matrix), then polished jointly by Nelder-Mead from
   several starts (variable projection: the linear part solved exactly at every step); colours are then
   fitted per channel with the directions fixed.
3. The model that explains the reference better (smaller weighted squared error of the luminance) is the one
   rendered: the SH is the smoother (a soft, wrapped light is what it represents exactly), the rig has hard
   terminators (what a small studio light makes, and what second-order harmonics can only round off) and
   directions that cast shadows.

Both are normalised as `sh.normalise` does: per channel, the mean shading over the reference's face equals the
mean of max(n_z, 0) there. So the reference's mean colour is taken as its skin's, not its light's (the two
cannot be told apart), and the transferred light keeps this picture's white balance and exposure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from . import sh

RIG_LIGHTS = 2
RIG_DIRECTIONS = 240          # the coarse lattice, about 13° apart (all pairs are tried: 29 000 of them)
RIG_SAMPLES = 8000            # pixels the rig search uses (a regular subsample of the SH fit's)
RIG_STARTS = 6               # coarse pairs polished (the best one wins)
POLISH_ITERATIONS = 250
MIN_LIGHT = 0.02              # a rig light weaker than this fraction of the ambient + key is dropped


@dataclass
class Rig:
    ambient: np.ndarray                              # (3,) linear RGB
    lights: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)   # (direction (3,), rgb (3,))

    def shading(self, normals: np.ndarray) -> np.ndarray:
        out = np.broadcast_to(self.ambient.astype(np.float32), normals.shape[:-1] + (3,)).copy()
        for d, rgb in self.lights:
            cos = np.maximum(normals @ d.astype(np.float32), 0.0)
            out += cos[..., None] * rgb.astype(np.float32)
        return out

    def scaled(self, gains: np.ndarray) -> "Rig":
        return Rig(self.ambient * gains, [(d, rgb * gains) for d, rgb in self.lights])


@dataclass
class ReferenceLight:
    sh: sh.SHLight
    rig: Optional[Rig]
    model: str                # 'sh' or 'rig'
    sh_error: float           # weighted mean squared luminance residual of each model (un-normalised units)
    rig_error: float

    def shading(self, normals: np.ndarray) -> np.ndarray:
        if self.model == "rig":
            return self.rig.shading(normals)
        return np.maximum(self.sh.shading(normals), 0.0)

    def describe(self) -> dict:
        out = {"model": self.model, **sh.describe(self.sh)}
        if self.rig is not None:
            out["rig"] = [[round(float(np.degrees(np.arctan2(d[0], d[2]))), 1),
                           round(float(np.degrees(np.arcsin(np.clip(d[1], -1, 1)))), 1),
                           round(float(rgb @ sh.LUMA), 4)] for d, rgb in self.rig.lights]
            if self.model == "rig" and self.rig.lights:
                d = self.rig.lights[0][0]
                out["dominant_azimuth_deg"] = round(float(np.degrees(np.arctan2(d[0], d[2]))), 1)
                out["dominant_elevation_deg"] = round(float(np.degrees(np.arcsin(np.clip(d[1], -1, 1)))), 1)
        return out


def _best_with(fixed: List[np.ndarray], candidates: np.ndarray, n: np.ndarray, y: np.ndarray, w: np.ndarray):
    """For each candidate direction, the weighted least squares of y on [1, max(n·l_fixed, 0)..., max(n·l, 0)]
    with non-negative coefficients required; returns (best direction, its coefficients, its error)."""
    cols = [np.ones(len(n))] + [np.maximum(n @ d, 0.0) for d in fixed]
    base = np.stack(cols, axis=1)                                   # N×p
    m = np.maximum(n @ candidates.T, 0.0)                           # N×D
    wb = base * w[:, None]
    p = base.shape[1]
    d_count = candidates.shape[0]
    ata = np.empty((d_count, p + 1, p + 1))
    ata[:, :p, :p] = wb.T @ base
    cross = wb.T @ m                                                # p×D
    ata[:, :p, p] = cross.T
    ata[:, p, :p] = cross.T
    ata[:, p, p] = (m * m * w[:, None]).sum(0)
    atb = np.empty((d_count, p + 1))
    atb[:, :p] = wb.T @ y
    atb[:, p] = (m * (w * y)[:, None]).sum(0)
    ata += np.eye(p + 1)[None] * 1e-9 * np.trace(ata, axis1=1, axis2=2)[:, None, None]
    coef = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
    err = (w * y * y).sum() - (coef * atb).sum(1)
    err = np.where((coef >= -1e-9).all(axis=1), err, np.inf)        # a negative light is no light
    k = int(np.argmin(err))
    return candidates[k], coef[k], float(err[k])


def _coarse_rig(n: np.ndarray, y: np.ndarray, w: np.ndarray) -> List[List[np.ndarray]]:
    """Starting rigs for the refinement: the best single light and the RIG_STARTS best pairs of lights (each
    with the ambient) over a coarse lattice, all pairs tried at once from the lattice's weighted Gram matrix
    (a greedy pick would split one light in two or let it swallow a weak fill)."""
    lattice = sh.fibonacci_sphere(RIG_DIRECTIONS)
    m = np.maximum(n @ lattice.T, 0.0)                     # N×D
    mw = m * w[:, None]
    s1, sy, syy = float(w.sum()), float((w * y).sum()), float((w * y * y).sum())
    sm = mw.sum(0)
    smy = mw.T @ y
    gram = mw.T @ m                                        # D×D
    # One light: 2×2 systems [[s1, sm], [sm, g]] [a, e] = [sy, smy].
    g = np.diag(gram)
    det = s1 * g - sm * sm
    det = np.where(np.abs(det) > 1e-18, det, np.inf)
    a1 = (g * sy - sm * smy) / det
    e1 = (s1 * smy - sm * sy) / det
    err1 = np.where((a1 >= -1e-12) & (e1 > 0), syy - a1 * sy - e1 * smy, np.inf)
    best1 = int(np.argmin(err1))
    if not np.isfinite(err1[best1]):
        return []
    # Pairs i < j: 3×3 systems, batched.
    i, j = np.triu_indices(len(lattice), 1)
    mat = np.empty((len(i), 3, 3))
    mat[:, 0, 0] = s1
    mat[:, 0, 1] = mat[:, 1, 0] = sm[i]
    mat[:, 0, 2] = mat[:, 2, 0] = sm[j]
    mat[:, 1, 1] = gram[i, i]
    mat[:, 2, 2] = gram[j, j]
    mat[:, 1, 2] = mat[:, 2, 1] = gram[i, j]
    rhs = np.stack([np.full(len(i), sy), smy[i], smy[j]], axis=1)
    mat += np.eye(3)[None] * 1e-12 * np.trace(mat, axis1=1, axis2=2)[:, None, None]
    coef = np.linalg.solve(mat, rhs[:, :, None])[:, :, 0]
    err2 = syy - (coef * rhs).sum(1)
    ok = (coef >= -1e-12).all(1) & (np.minimum(coef[:, 1], coef[:, 2]) > MIN_LIGHT * coef.sum(1))
    err2 = np.where(ok, err2, np.inf)
    starts = [[lattice[best1]]]
    if RIG_LIGHTS >= 2:
        for k in np.argsort(err2)[:RIG_STARTS]:
            if np.isfinite(err2[k]):
                starts.append([lattice[i[k]], lattice[j[k]]])
    return starts


def _to_angles(d: np.ndarray) -> Tuple[float, float]:
    return float(np.arctan2(d[0], d[2])), float(np.arcsin(np.clip(d[1], -1.0, 1.0)))


def _from_angles(az: float, el: float) -> np.ndarray:
    return np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])


def _rig_error(dirs: List[np.ndarray], n: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted squared error of the best non-negative (ambient, intensities) for these directions (variable
    projection: the linear part solved exactly; a light the data want negative is dropped)."""
    cols = np.stack([np.ones(len(n))] + [np.maximum(n @ d, 0.0) for d in dirs], axis=1)
    keep = np.ones(cols.shape[1], bool)
    for _ in range(cols.shape[1]):
        x = cols[:, keep]
        xw = x * w[:, None]
        coef = np.linalg.solve(xw.T @ x + 1e-12 * np.eye(x.shape[1]), xw.T @ y)
        if (coef >= 0).all():
            return float((w * (y - x @ coef) ** 2).sum())
        keep[np.flatnonzero(keep)[int(np.argmin(coef))]] = False
        if not keep.any():
            break
    return float((w * y * y).sum())


def _polish(dirs: List[np.ndarray], n: np.ndarray, y: np.ndarray, w: np.ndarray):
    """The directions refined jointly (Nelder-Mead over their azimuths and elevations, the linear part solved
    exactly at every step): coupled lights (a key and the fill it trades with) move together."""
    from scipy.optimize import minimize

    x0 = np.array([a for d in dirs for a in _to_angles(d)])

    def cost(x):
        return _rig_error([_from_angles(x[2 * k], x[2 * k + 1]) for k in range(len(dirs))], n, y, w)

    res = minimize(cost, x0, method="Nelder-Mead",
                   options={"xatol": np.radians(0.2), "fatol": 1e-12, "maxiter": POLISH_ITERATIONS,
                            "initial_simplex": x0[None, :] + np.vstack([np.zeros(len(x0)),
                                                                        np.eye(len(x0)) * np.radians(5.0)])})
    x = res.x if res.fun <= cost(x0) else x0
    return [_from_angles(x[2 * k], x[2 * k + 1]) for k in range(len(dirs))], float(min(res.fun, cost(x0)))


def fit_rig(linear_samples: np.ndarray, normals: np.ndarray, weights: np.ndarray) -> Tuple[Optional[Rig], float]:
    """The rig (see the module docstring) on sample pixels: N×3 linear RGB, N×3 normals, N weights."""
    all_samples, all_normals, all_weights = linear_samples, normals, weights
    live = np.flatnonzero(weights > 0)
    if live.size > RIG_SAMPLES:     # the candidate search holds samples × directions numbers: keep it small
        live = live[(np.arange(RIG_SAMPLES) * (live.size / RIG_SAMPLES)).astype(np.int64)]
    linear_samples, normals, weights = linear_samples[live], normals[live], weights[live]
    y = linear_samples @ sh.LUMA
    w = weights / max(weights.sum(), 1e-12)
    starts = _coarse_rig(normals, y, w)
    if not starts:
        return None, np.inf
    results = [_polish(st, normals, y, w) for st in starts]
    if RIG_LIGHTS >= 2:
        # The key polished first, then a second light searched over the whole lattice given it: a weak fill
        # shows only once the key sits where it belongs (on the coarse lattice two neighbours of the key
        # imitate it better than key plus fill).
        key, _ = results[0]
        d2, coef, e2 = _best_with(key, sh.fibonacci_sphere(RIG_DIRECTIONS), normals, y, w)
        if np.isfinite(e2) and coef[-1] > MIN_LIGHT * coef.sum():
            results.append(_polish(key + [d2], normals, y, w))
    best_dirs, err = min(results, key=lambda r: r[1])
    dirs = best_dirs
    # Colours: per channel, the same columns, on all the samples (and the error there, comparable with the SH's).
    w = all_weights / max(all_weights.sum(), 1e-12)
    cols = np.stack([np.ones(len(all_normals))] + [np.maximum(all_normals @ d, 0.0) for d in dirs], axis=1)
    cw = cols * w[:, None]
    coef = np.linalg.solve(cw.T @ cols + 1e-9 * np.eye(cols.shape[1]), cw.T @ all_samples)   # p×3
    coef = np.maximum(coef, 0.0)
    rig = Rig(coef[0], [(dirs[k], coef[k + 1]) for k in range(len(dirs))])
    y_all = all_samples @ sh.LUMA
    err = float((w * (y_all - cols @ (coef @ sh.LUMA)) ** 2).sum())
    return rig, err


def read(linear: np.ndarray, normals: np.ndarray, region: np.ndarray) -> ReferenceLight:
    """The reference's light from its linear pixels (h×w×3), normals (h×w×3) and face region (h×w weights)."""
    light = sh.fit(linear, normals, region)
    idx, wts = light.sample_index, light.sample_weight
    img = np.asarray(linear, np.float32).reshape(-1, 3)[idx].astype(np.float64)
    n = np.asarray(normals, np.float32).reshape(-1, 3)[idx].astype(np.float64)
    wn = wts / max(wts.sum(), 1e-12)
    y = img @ sh.LUMA
    sh_pred = sh.basis(n) @ (light.coeffs.T @ sh.LUMA)
    sh_err = float((wn * (y - sh_pred) ** 2).sum())
    rig, rig_err = fit_rig(img, n, wts)
    model = "rig" if rig is not None and rig_err <= sh_err else "sh"
    # Normalise both as sh.normalise does (per channel: mean shading over the region = mean max(n_z, 0)).
    light_n = sh.normalise(light, normals, region)
    if rig is not None:
        flat_w = np.asarray(region, np.float32).reshape(-1)
        sel = sh._subsample(flat_w, sh.MAX_SAMPLES)
        nn = np.asarray(normals, np.float32).reshape(-1, 3)[sel]
        ww = flat_w[sel].astype(np.float64)
        mean_s = (rig.shading(nn).astype(np.float64) * ww[:, None]).sum(0) / max(ww.sum(), 1e-12)
        frontal = max(float((np.maximum(nn[:, 2], 0.0) * ww).sum() / max(ww.sum(), 1e-12)), 0.05)
        rig = rig.scaled(frontal / np.maximum(mean_s, 1e-9))
    return ReferenceLight(light_n, rig, model, sh_err, float(rig_err))
