"""--reference: the colour and the grain of a reference frame (a film scan), instead of a named stock.

1. Stock fit (fit_stock). Every stock, at exposures -1.5..+1.5 EV, renders a thumbnail of the photo (small LUTs,
   no grain); the one whose colours are closest to the reference's, as the 2-Wasserstein distance between
   Gaussians fitted in CIELAB,
       W2² = |μ_a − μ_b|² + tr(Σ_a + Σ_b − 2 (Σ_b^½ Σ_a Σ_b^½)^½),
   is taken (exposure refined by a parabola through the best three), and the photo is rendered through it:
   the stock explains what it can, the transfer below only the remainder.
2. Colour transfer in CIELAB: the linear Monge-Kantorovich map between the two Gaussians, the optimal transport
   map between them (Pitié & Kokaram 2007),
       x' = μ_r + T (x − μ_s),   T = Σ_s^-½ (Σ_s^½ Σ_r Σ_s^½)^½ Σ_s^-½,
   then SLICED_ITERATIONS rounds of iterative distribution transfer (Pitié, Kokaram & Dahyot 2005): in a random
   rotation of the space, each axis's 1-D distribution is matched to the reference's by its quantiles
   (QUANTILES of them; displacement held past the ends). The whole map is evaluated on a 33³ grid over sRGB and
   applied as a LUT, so it is smooth and costs one lookup per pixel. Statistics come from thumbnails of at most
   THUMB px (area-averaged, which also keeps the reference's grain out of its colour statistics).
3. Grain, measured on the reference where it is flat (core.imaging.noise.measure: smooth blocks): the RMS in
   LEVEL_BANDS brightness bands (amplitude as a function of brightness), the lag-1 spatial correlation (fitted
   with the dye-cloud kernel of grain.py: a grain size), and the cross-channel correlation (three fields mixed
   by its Cholesky factor). The photo's own noise after steps 1-2, measured the same way, is subtracted in
   quadrature, so the result carries the reference's grain, not more. The grain is physical like a stock's
   (both frames are taken to fill the same format), so a reference of another size gives the same look.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ...errors import UserError
from ...imaging import colorimetry
from ...imaging.color import linear_to_srgb, srgb_to_linear
from ...parallel import cpu_map
from ...registry import Output
from . import cache, grain as grain_field, lut as tables, render, stocks

THUMB = 160                 # px, long side of the thumbnails the colour statistics come from
FIT_THUMB = 96              # px, long side of the thumbnail every stock renders while fitting
FIT_LUT = 17                # LUT size while fitting (the stock's look, not its finest gradations)
FIT_EV = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
COLOUR_LUT = 33
SLICED_ITERATIONS = 10
QUANTILES = 65
LEVEL_BANDS = 5
MIN_BLOCKS = 6              # smooth blocks a brightness band needs for its own grain figure
COV_FLOOR = 1e-3            # CIELAB² added to covariances: a flat picture must not make T singular


def _thumb(image: np.ndarray, side: int) -> np.ndarray:
    import cv2
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return np.ascontiguousarray(image[:, :, :3], np.float32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(image[:, :, :3], np.float32), size, interpolation=cv2.INTER_AREA)


def lab_of(srgb: np.ndarray) -> np.ndarray:
    """(N, 3) CIELAB (D65) of sRGB pixels (any shape ending in 3)."""
    lin = srgb_to_linear(np.ascontiguousarray(np.clip(srgb, 0.0, 1.0), np.float32))
    return colorimetry.linear_srgb_to_lab(lin.reshape(-1, 3)).astype(np.float64)


@dataclass(frozen=True)
class Stats:
    mean: np.ndarray
    cov: np.ndarray

    @staticmethod
    def of(lab: np.ndarray) -> "Stats":
        cov = np.cov(lab.T) if len(lab) > 1 else np.zeros((3, 3))
        return Stats(lab.mean(axis=0), np.atleast_2d(cov) + COV_FLOOR * np.eye(3))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def _inv_sqrtm(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    return (v / np.sqrt(np.maximum(w, 1e-12))) @ v.T


def w2(a: Stats, b: Stats) -> float:
    """2-Wasserstein distance between the Gaussians of two colour distributions (CIELAB units)."""
    rb = _sqrtm(b.cov)
    cross = _sqrtm(rb @ a.cov @ rb)
    d2 = float(np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov + b.cov - 2.0 * cross))
    return math.sqrt(max(d2, 0.0))


def mk_matrix(source: Stats, target: Stats) -> np.ndarray:
    """T of the linear Monge-Kantorovich map from one Gaussian to another."""
    hs, ihs = _sqrtm(source.cov), _inv_sqrtm(source.cov)
    return ihs @ _sqrtm(hs @ target.cov @ hs) @ ihs


@dataclass
class ColourMap:
    """x -> MK then the sliced 1-D maps, in CIELAB."""
    mean_s: np.ndarray
    mean_r: np.ndarray
    t: np.ndarray
    slices: List[Tuple[np.ndarray, np.ndarray, np.ndarray]]   # (rotation 3×3, source quantiles (3, Q), target)

    def __call__(self, lab: np.ndarray) -> np.ndarray:
        x = (lab - self.mean_s) @ self.t.T + self.mean_r
        for rot, qs, qr in self.slices:
            x = x + _slice_step(x @ rot.T, qs, qr) @ rot
        return x


def _slice_step(proj: np.ndarray, qs: np.ndarray, qr: np.ndarray) -> np.ndarray:
    """Displacement along each rotated axis: quantile matching, displacement held past the ends."""
    out = np.empty_like(proj)
    for k in range(proj.shape[1]):
        disp = qr[k] - qs[k]
        out[:, k] = np.interp(proj[:, k], qs[k], disp)
    return out


def colour_map(source_lab: np.ndarray, reference_lab: np.ndarray, seed: int = 0) -> ColourMap:
    s, r = Stats.of(source_lab), Stats.of(reference_lab)
    cmap = ColourMap(s.mean, r.mean, mk_matrix(s, r), [])
    x = cmap(source_lab)
    rng = np.random.default_rng(seed)
    levels = np.linspace(0.0, 1.0, QUANTILES)
    for _ in range(SLICED_ITERATIONS):
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        ps, pr = x @ q.T, reference_lab @ q.T
        qs = np.quantile(ps, levels, axis=0).T
        qr = np.quantile(pr, levels, axis=0).T
        qs = np.maximum.accumulate(qs + 1e-9 * np.arange(QUANTILES)[None, :], axis=1)  # strictly increasing
        cmap.slices.append((q, qs, qr))
        x = x + _slice_step(ps, qs, qr) @ q
    return cmap


def colour_lut(cmap: ColourMap, size: int = COLOUR_LUT) -> np.ndarray:
    """(S, S, S, 3) sRGB -> sRGB table of the colour map."""
    colour = colorimetry.colour_module()
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = cmap(lab_of(grid))
    xyz = np.asarray(colour.Lab_to_XYZ(lab, illuminant=colorimetry.srgb_white_xy()), np.float64)
    lin = np.clip(xyz @ colorimetry.xyz_to_linear_srgb_matrix().T, 0.0, 1.0).astype(np.float32)
    return np.clip(linear_to_srgb(lin), 0.0, 1.0).reshape(size, size, size, 3).astype(np.float32)


def apply_colour_lut(image: np.ndarray, table: np.ndarray, device) -> np.ndarray:
    laid = tables.layout(table)
    lo, hi = np.zeros(3, np.float32), np.ones(3, np.float32)

    def strip(r):
        import cv2
        planes = list(cv2.split(np.ascontiguousarray(image[r[0]:r[1], :, :3])))
        return tables.lut3d(planes, laid, lo, hi)

    return np.concatenate(cpu_map(strip, render.strips(image.shape[0]), device), axis=0)


# ---------------------------------------------------------------------------------------------------------------
# Stock fit


def fit_stock(image: np.ndarray, ref: Stats, job) -> Dict[str, Any]:
    thumb = _thumb(image, FIT_THUMB)
    best = None
    tried = []
    ids = stocks.STOCK_IDS
    for n, sid in enumerate(ids):
        job.progress(n / len(ids), f"fitting a stock: {sid}")
        look = cache.look(sid, "auto", size=FIT_LUT)
        costs = []
        for ev in FIT_EV:
            out = render.render_stock(thumb, look, render.Settings(exposure_ev=ev, grain=0.0, halation=0.0))
            costs.append(w2(Stats.of(lab_of(out)), ref))
        k = int(np.argmin(costs))
        ev = FIT_EV[k]
        if 0 < k < len(FIT_EV) - 1:   # parabola through the best three
            c0, c1, c2 = costs[k - 1], costs[k], costs[k + 1]
            den = c0 - 2 * c1 + c2
            if den > 1e-9:
                ev = ev + 0.5 * (FIT_EV[1] - FIT_EV[0]) * (c0 - c2) / den
        tried.append((costs[k], sid, float(ev)))
        if best is None or costs[k] < best[0]:
            best = (costs[k], sid, float(ev))
    job.progress(1.0, "stock fitted")
    tried.sort()
    return {"stock": best[1], "exposure": round(best[2], 3), "w2": round(best[0], 3),
            "runner_up": [{"stock": s, "exposure": round(e, 2), "w2": round(c, 2)} for c, s, e in tried[1:4]]}


# ---------------------------------------------------------------------------------------------------------------
# Grain


@dataclass
class GrainProfile:
    levels: np.ndarray        # band levels (mean of the channels, the picture's encoding)
    sigma: np.ndarray         # RMS per band (mean over the channels)
    ratios: np.ndarray        # (3,) per-channel RMS / mean RMS
    correlation: np.ndarray   # (3, 3) cross-channel correlation
    rho1: float               # lag-1 spatial autocorrelation
    blocks: int


def measure_grain(image: np.ndarray) -> Optional[GrainProfile]:
    """The grain of a picture from its flat regions, or None where there are too few (a tiny picture)."""
    import cv2

    from ...imaging import noise

    img = np.ascontiguousarray(np.clip(image[:, :, :3], 0.0, 1.0), np.float32)
    try:
        whole = noise.measure(img)
    except ValueError:
        return None
    if whole.blocks < MIN_BLOCKS:
        return None
    level = cv2.GaussianBlur(img.mean(axis=2), (0, 0), 2.0)
    edges = np.quantile(level, np.linspace(0.0, 1.0, LEVEL_BANDS + 1))
    levels, sigmas = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = ((level >= lo) & (level <= hi)).astype(np.float32)
        try:
            prof = noise.measure(img, mask=band)
        except ValueError:
            continue
        if prof.blocks >= MIN_BLOCKS:
            levels.append(float(np.median(level[band > 0])))
            sigmas.append(float(np.sqrt(np.mean(np.diag(prof.covariance)))))
    sd = np.sqrt(np.maximum(np.diag(whole.covariance), 1e-12))
    if not levels:
        levels, sigmas = [float(level.mean())], [float(sd.mean())]
    order = np.argsort(levels)
    return GrainProfile(np.array(levels)[order], np.array(sigmas)[order], sd / sd.mean(),
                        np.clip(whole.channel_correlation, -1.0, 1.0), float(np.clip(whole.lag1.mean(), 0.0, 0.95)),
                        whole.blocks)


def grain_size_for(rho1: float, pitch_um: float) -> float:
    """σ_g (µm) whose pixel kernel at `pitch_um` gives lag-1 autocorrelation rho1 (bisection; 0 = white)."""
    def rho(sigma):
        k = grain_field.pixel_kernel(sigma, pitch_um).astype(np.float64)
        return float(np.sum(k[1:] * k[:-1]) / np.sum(k * k)) if len(k) > 1 else 0.0

    if rho1 <= rho(0.05 * pitch_um) + 1e-3:
        return 0.0
    lo, hi = 0.05 * pitch_um, 20.0 * pitch_um
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rho(mid) < rho1 else (lo, mid)
    return 0.5 * (lo + hi)


def add_grain(image: np.ndarray, target: GrainProfile, own: Optional[GrainProfile], pitch_out: float,
              pitch_ref: float, seed: int, device, job=None) -> np.ndarray:
    """The picture plus grain with the target's statistics, less what it already has."""
    sigma_g = grain_size_for(target.rho1, pitch_ref)
    per_pixel = grain_field.pixel_rms(sigma_g, pitch_ref)   # the unit field's RMS at the reference's pixels
    w, v = np.linalg.eigh(target.correlation)
    mix = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T           # symmetric square root: a mixing with C = mix·mixᵀ
    ratios = target.ratios.astype(np.float32)
    width = image.shape[1]

    def amplitude(level):
        want = np.interp(level, target.levels, target.sigma) ** 2
        have = np.interp(level, own.levels, own.sigma) ** 2 if own is not None else 0.0
        return np.sqrt(np.maximum(want - have, 0.0)).astype(np.float32)

    def strip(r):
        y0, y1 = r
        rows = image[y0:y1]
        fields = [grain_field.unit_field(seed, c, (y0, y1), (0, width), pitch_out, sigma_g) / np.float32(per_pixel)
                  for c in range(3)]
        a = amplitude(rows.mean(axis=2))
        out = np.empty_like(rows)
        for c in range(3):
            g = mix[c, 0] * fields[0] + mix[c, 1] * fields[1] + mix[c, 2] * fields[2]
            out[:, :, c] = rows[:, :, c] + ratios[c] * a * g
        return np.clip(out, 0.0, 1.0)

    return np.concatenate(cpu_map(strip, render.strips(image.shape[0]), device, job, "reference grain"), axis=0)


# ---------------------------------------------------------------------------------------------------------------


def run(image: np.ndarray, reference: np.ndarray, params: Dict[str, Any], ctx, device) -> Output:
    job = ctx.job
    if params["print"] != "auto":
        raise UserError("with a reference the print comes with the fitted stock: leave print on auto",
                        "bad-parameter")
    ref_lab = lab_of(_thumb(reference, THUMB))
    ref_stats = Stats.of(ref_lab)
    info: Dict[str, Any] = {"reference": f"{reference.shape[1]}x{reference.shape[0]}", "format": params["format"]}
    pitch = render.pitch_um(image.shape[:2], params["format"])
    s = render.Settings(exposure_ev=params["exposure"], grain=0.0, grain_size_um=None, pitch_um=pitch,
                        halation=params["halation"], halation_radius_um=params["halation_radius"], seed=ctx.seed)
    base = image
    if params["fit_stock"]:
        fit = fit_stock(image, ref_stats, job.sub(0.0, 0.45))
        info["fitted"] = fit
        look = cache.look(fit["stock"], "auto")
        s = dataclasses.replace(s, exposure_ev=params["exposure"] + fit["exposure"])
        base = render.render_stock(image, look, s, device, job.sub(0.45, 0.6))
    elif params["halation"] > 0:
        base = render.render_none(image, s, device, job.sub(0.45, 0.6))
    job.progress(0.6, "colour transfer")
    src_lab = lab_of(_thumb(base, THUMB))
    cmap = colour_map(src_lab, ref_lab)
    info["w2_before"] = round(w2(Stats.of(src_lab), ref_stats), 3)
    out = apply_colour_lut(base, colour_lut(cmap), device)
    info["w2_after"] = round(w2(Stats.of(lab_of(_thumb(out, THUMB))), ref_stats), 3)
    job.progress(0.75, "measuring grain")
    target = measure_grain(reference) if params["grain"] > 0 else None
    if target is not None:
        target.sigma = target.sigma * params["grain"]
        own = measure_grain(out)
        out = add_grain(out, target, own, pitch, render.pitch_um(reference.shape[:2], params["format"]), ctx.seed,
                        device, job.sub(0.8, 1.0))
        info["grain"] = {"levels": [round(float(v), 3) for v in target.levels],
                         "rms": [round(float(v), 5) for v in target.sigma],
                         "lag1": round(target.rho1, 3),
                         "channel_correlation": round(float(np.mean(target.correlation[np.triu_indices(3, 1)])), 3)}
    else:
        info["grain"] = "none measured" if params["grain"] > 0 else "off"
    if params["strength"] < 1.0:
        out = image[:, :, :3] + np.float32(params["strength"]) * (out - image[:, :, :3])
    return Output(out.astype(np.float32), info=info)
