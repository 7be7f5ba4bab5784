"""Colour science on `colour-science` (pinned): XYZ, chromaticity, colour temperature, chromatic adaptation,
CIELAB and ΔE2000, and the estimation of a scene's illuminant.

Spaces and conventions
- Linear sRGB: IEC 61966-2-1 primaries, D65 white, linear light (decode host pixels with
  `core.imaging.color.srgb_to_linear` first). White (1, 1, 1) has luminance Y = 1.
- XYZ: CIE 1931 2° observer, Y = 1 for the white of the adapted light. xy: x = X/(X+Y+Z), y = Y/(X+Y+Z).
- Colour temperature in kelvin (c2 = 1.4388e-2 m·K, the ITS-90 value colour-science uses, so D65 sits at
  6504 K, not its nominal 6500 K). `duv` is the signed distance from the Planckian locus in CIE 1960 uv,
  positive above it (greenish), as Ohno (2013) defines it. Mired = 1e6 / kelvin: equal mired steps look
  like equal colour changes, so estimation errors are quoted in mired.
- Planckian locus: the chromaticity of a black body, integrated exactly from Planck's law against the CMFs
  (Ohno 2013 in colour-science). Daylight locus: the CIE D-series formula, defined from 4000 K to 25000 K.
- Chromatic adaptation: a von Kries transform in the cone space of CAT16 (Li et al. 2017) or Bradford (Lam
  1985), full adaptation (D = 1): M = M_cat^-1 · diag(ρ_target / ρ_source) · M_cat in XYZ; here returned as
  the 3×3 matrix acting on linear sRGB column vectors: A = M_XYZ→RGB · M · M_RGB→XYZ.
- CIELAB (CIE 1976) relative to a reference white (D65 unless said): L = 116 f(Y/Yn) − 16,
  a = 500 (f(X/Xn) − f(Y/Yn)), b = 200 (f(Y/Yn) − f(Z/Zn)), f(t) = t^(1/3) above (6/29)^3, linear below.
- ΔE2000: CIEDE2000 (Sharma, Wu & Dalal 2005), kL = kC = kH = 1.

Speed at 12 MP (3000×4000, float32 in, one thread on this project's 2-core machine, shared with other work;
bench/cases/colorimetry.py): colour-science took 5.5 s to adapt an image (chromatic_adaptation with the
sRGB <-> XYZ conversions), 6.7 s for XYZ_to_Lab (after a numpy matrix product) and 11-25 s for
delta_E_CIE2000 (float64 through the whole image, 1.7-4 GB of temporaries): far too slow per pixel in a
filter. So the per-pixel paths here are float32 implementations of the same formulas — `apply_matrix`
(cv2.transform, 0.08 s), `linear_srgb_to_lab` (0.24 s) and `delta_e2000` (1.5-2.8 s) — checked against
colour-science's own functions (`*_reference`) in tests/test_colorimetry.py. Everything that is not per pixel
(loci, matrices, CCT) goes through colour-science.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import UserError

LOCI = ("planckian", "daylight")
CAT_METHODS = ("CAT16", "Bradford")
ESTIMATORS = ("grey_world", "shades_of_grey", "white_patch", "grey_edge")
DAYLIGHT_RANGE_KELVIN = (4000.0, 25000.0)   # where the CIE D-series formula is defined
PLANCKIAN_RANGE_KELVIN = (1000.0, 100000.0)  # colour-science's Ohno (2013) table spans this range
_OBSERVER = "CIE 1931 2 Degree Standard Observer"


@functools.cache
def _colour():
    """colour-science, imported on first use (0.7 s) with its one import-time warning silenced: it says that
    its plotting API needs matplotlib, which the worker does not install and never uses."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r'.*"Matplotlib" related API features are not available')
        import colour
    return colour


def colour_module():
    """The colour-science module itself (quiet import), for callers that need more than this file offers."""
    return _colour()


# --------------------------------------------------------------------------------------------- XYZ and xy

@functools.cache
def _matrices() -> tuple[np.ndarray, np.ndarray]:
    # colour-science rounds both of its sRGB matrices to 4 decimals, so they are inverse to 3e-5 only; the
    # exact inverse makes rgb -> XYZ -> rgb (and an adaptation's white -> white) exact to float rounding.
    to_xyz = np.asarray(_colour().RGB_COLOURSPACES["sRGB"].matrix_RGB_to_XYZ, np.float64)
    return to_xyz, np.linalg.inv(to_xyz)


def linear_srgb_to_xyz_matrix() -> np.ndarray:
    """3×3 float64 M with XYZ = M @ rgb (linear sRGB, D65). Row 2 is the Rec. 709 luminance weights."""
    return _matrices()[0].copy()


def xyz_to_linear_srgb_matrix() -> np.ndarray:
    """3×3 float64, the exact inverse of `linear_srgb_to_xyz_matrix`."""
    return _matrices()[1].copy()


def srgb_white_xy() -> np.ndarray:
    """The xy of linear sRGB's white (1, 1, 1): D65 as the sRGB matrix rounds it, (0.3127, 0.3290)."""
    return _srgb_white_xy().copy()


@functools.cache
def _srgb_white_xy() -> np.ndarray:
    return xyz_to_xy(_matrices()[0] @ np.ones(3))


def xyz_to_xy(xyz) -> np.ndarray:
    """XYZ (..., 3) -> xy (..., 2). Black (X+Y+Z = 0) maps to D65's xy, as colour-science does."""
    return np.asarray(_colour().XYZ_to_xy(np.asarray(xyz, np.float64)), np.float64)


def xy_to_xyz(xy, luminance_y: float = 1.0) -> np.ndarray:
    """xy (..., 2) -> XYZ (..., 3) with Y = luminance_y."""
    return np.asarray(_colour().xy_to_XYZ(np.asarray(xy, np.float64)), np.float64) * luminance_y


def linear_srgb_to_xy(rgb) -> np.ndarray:
    """Chromaticity of linear sRGB triplets (..., 3) -> (..., 2)."""
    return xyz_to_xy(np.asarray(rgb, np.float64) @ _matrices()[0].T)


def xy_to_linear_srgb(xy, luminance_y: float = 1.0) -> np.ndarray:
    """The linear sRGB triplet (float64) of chromaticity xy at luminance Y (may be out of gamut: < 0)."""
    return xy_to_xyz(xy, luminance_y) @ _matrices()[1].T


# ------------------------------------------------------------------------------------- colour temperature

def cct_to_xy(kelvin, locus: str = "planckian", duv: float = 0.0) -> np.ndarray:
    """Chromaticity xy of a colour temperature in kelvin (scalar or array -> (..., 2)).

    locus 'planckian': the black body (exact Planck integration), optionally moved `duv` off the locus along
    its normal in CIE 1960 uv (positive = green, negative = magenta). locus 'daylight': the CIE D series,
    4000-25000 K (duv must be 0: daylight has its own locus, about +0.003 above the Planckian one).
    """
    c = _colour()
    k = np.asarray(kelvin, np.float64)
    if locus == "planckian":
        _check_range(k, PLANCKIAN_RANGE_KELVIN, "Planckian")
        cct_duv = np.stack([k, np.full_like(k, float(duv))], axis=-1)
        return np.asarray(c.UCS_uv_to_xy(c.temperature.CCT_to_uv_Ohno2013(cct_duv)), np.float64)
    if locus == "daylight":
        if duv != 0.0:
            raise UserError("a tint (duv) applies to the Planckian locus only; the daylight locus has none",
                            "bad-parameter")
        _check_range(k, DAYLIGHT_RANGE_KELVIN, "daylight")
        return np.asarray(c.temperature.CCT_to_xy_CIE_D(k), np.float64)
    raise UserError(f"locus must be one of {', '.join(LOCI)}, not '{locus}'", "bad-parameter")


def xy_to_cct(xy, locus: str = "planckian") -> tuple[np.ndarray, np.ndarray]:
    """(kelvin, duv) of chromaticity xy (..., 2).

    locus 'planckian': the correlated colour temperature proper, the nearest black body in CIE 1960 uv
    (Ohno 2013), and duv, the signed distance to it. locus 'daylight': the D-series temperature whose x
    matches (CIE's inverse; duv is then returned as the Planckian duv, for information).
    """
    c = _colour()
    xy = np.asarray(xy, np.float64)
    cct_duv = np.asarray(c.temperature.uv_to_CCT_Ohno2013(c.xy_to_UCS_uv(xy)), np.float64)
    kelvin, duv = cct_duv[..., 0], cct_duv[..., 1]
    if locus == "daylight":
        # CIE's inverse is a numerical search that probes temperatures past the locus's ends on its way and
        # warns about them; the answer itself is checked by the round-trip tests.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*must be in domain \[4000, 25000\]")
            kelvin = np.asarray(c.temperature.xy_to_CCT_CIE_D(xy), np.float64)
    elif locus != "planckian":
        raise UserError(f"locus must be one of {', '.join(LOCI)}, not '{locus}'", "bad-parameter")
    return kelvin, duv


def kelvin_to_mired(kelvin):
    return 1e6 / np.asarray(kelvin, np.float64)


def _check_range(kelvin: np.ndarray, bounds: tuple[float, float], name: str) -> None:
    lo, hi = bounds
    if not np.all(np.isfinite(kelvin)) or np.any(kelvin < lo) or np.any(kelvin > hi):
        raise UserError(f"a colour temperature on the {name} locus must lie between {lo:g} K and {hi:g} K "
                        f"(got {np.min(kelvin):g} K)", "bad-parameter")


# ----------------------------------------------------------------------------------- chromatic adaptation

def adaptation_matrix_xy(source_xy, target_xy, method: str = "CAT16") -> np.ndarray:
    """3×3 float64 matrix on linear sRGB column vectors taking colours seen under a light of chromaticity
    `source_xy` to how they look under `target_xy` (von Kries in CAT16 or Bradford cone space, D = 1).
    The source white maps to the target white at the same luminance."""
    if method not in CAT_METHODS:
        raise UserError(f"chromatic adaptation must be one of {', '.join(CAT_METHODS)}, not '{method}'",
                        "bad-parameter")
    c = _colour()
    m_xyz = c.adaptation.matrix_chromatic_adaptation_VonKries(xy_to_xyz(source_xy), xy_to_xyz(target_xy),
                                                             transform=method)
    to_xyz, to_rgb = _matrices()
    return to_rgb @ np.asarray(m_xyz, np.float64) @ to_xyz


def adaptation_matrix_kelvin(source_kelvin: float, target_kelvin: float, method: str = "CAT16",
                             locus: str = "planckian") -> np.ndarray:
    """`adaptation_matrix_xy` between two colour temperatures on the given locus."""
    return adaptation_matrix_xy(cct_to_xy(source_kelvin, locus), cct_to_xy(target_kelvin, locus), method)


def apply_matrix(image: np.ndarray, matrix) -> np.ndarray:
    """out[y, x] = matrix @ image[y, x, :3] for an H×W×3 (or H×W×4, alpha kept) float32 image: the per-pixel
    fast path (one OpenCV pass, 0.03-0.08 s at 12 MP)."""
    import cv2

    m = np.asarray(matrix, np.float32)
    img = np.ascontiguousarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or m.shape != (3, 3):
        raise ValueError(f"apply_matrix wants H×W×3 or H×W×4 and a 3×3 matrix, got {img.shape} and {m.shape}")
    if img.shape[2] == 4:
        m4 = np.eye(4, dtype=np.float32)
        m4[:3, :3] = m
        m = m4
    return cv2.transform(img, m)


# --------------------------------------------------------------------------------------- CIELAB, ΔE2000

_LAB_EPS = (6.0 / 29.0) ** 3          # 216/24389: where f(t) switches from linear to cube root
_LAB_SLOPE = 1.0 / (3.0 * (6.0 / 29.0) ** 2)


def linear_srgb_to_lab(rgb: np.ndarray, white_xy=None) -> np.ndarray:
    """CIELAB (float32, same shape) of linear sRGB (H×W×3 or N×3), relative to `white_xy` (default: sRGB's D65
    white). Adapt first (`adaptation_matrix_xy`) if the colours were seen under another light than this white.

    The fast path: f(t) is written without a per-pixel branch, since the two pieces meet at eps = (6/29)^3,
        f(t) = min(t, eps) / (3 (6/29)^2) + 4/29 + (max(t, eps)^(1/3) - 6/29),
    in a few OpenCV passes over cache-sized chunks: 12 MP in 0.24 s against 6.7 s for colour-science's
    XYZ_to_Lab. Agrees with `linear_srgb_to_lab_reference` to 1e-3 (measured 1.4e-4).
    """
    import cv2

    white = srgb_white_xy() if white_xy is None else np.asarray(white_xy, np.float64)
    to_rel = (_matrices()[0] / xy_to_xyz(white)[:, None]).astype(np.float32)   # rgb -> (X/Xn, Y/Yn, Z/Zn)
    to_lab = np.array([[0, 116, 0, -16], [500, -500, 0, 0], [0, 200, -200, 0]], np.float32)
    a = np.asarray(rgb, np.float32)[..., :3]
    flat = a.reshape(-1, 3)
    out = np.empty(flat.shape, np.float32)
    for s in range(0, flat.shape[0], _LAB_CHUNK):
        t = cv2.transform(np.ascontiguousarray(flat[s:s + _LAB_CHUNK])[:, None, :], to_rel)
        t = t.reshape(-1, 3)   # one channel: OpenCV applies a scalar to the first channel only of a 3-channel one
        low = cv2.min(t, _LAB_EPS)
        high = cv2.pow(cv2.max(t, _LAB_EPS), 1.0 / 3.0)
        f = cv2.addWeighted(low, _LAB_SLOPE, high, 1.0, 4.0 / 29.0 - 6.0 / 29.0)
        out[s:s + _LAB_CHUNK] = cv2.transform(f[:, None, :], to_lab)[:, 0, :]
    return out.reshape(a.shape)


_LAB_CHUNK = 1 << 15   # pixels per pass: a chunk's few temporaries stay in a core's cache


def lab_to_linear_srgb(lab: np.ndarray, white_xy=None) -> np.ndarray:
    """The inverse of `linear_srgb_to_lab` (float32, same shape): f_y = (L + 16)/116, f_x = f_y + a/500,
    f_z = f_y - b/200, t = f^3 above 6/29 and 3 (6/29)^2 (f - 4/29) below — branch-free, as
        t = max(f, 6/29)^3 - (6/29)^3 + 3 (6/29)^2 (min(f, 6/29) - 4/29),
    then XYZ = t · white and rgb = M_XYZ→RGB · XYZ. Colours outside the sRGB gamut come back negative or
    above 1, unclipped."""
    import cv2

    white = srgb_white_xy() if white_xy is None else np.asarray(white_xy, np.float64)
    to_f = np.array([[1 / 116, 1 / 500, 0, 16 / 116], [1 / 116, 0, 0, 16 / 116], [1 / 116, 0, -1 / 200, 16 / 116]],
                    np.float32)
    to_rgb = (_matrices()[1] * xy_to_xyz(white)[None, :]).astype(np.float32)   # (X/Xn, Y/Yn, Z/Zn) -> rgb
    k = 6.0 / 29.0
    a = np.asarray(lab, np.float32)[..., :3]
    flat = a.reshape(-1, 3)
    out = np.empty(flat.shape, np.float32)
    for s in range(0, flat.shape[0], _LAB_CHUNK):
        f = cv2.transform(np.ascontiguousarray(flat[s:s + _LAB_CHUNK])[:, None, :], to_f).reshape(-1, 3)
        high = cv2.pow(cv2.max(f, k), 3.0)
        t = cv2.addWeighted(cv2.min(f, k), 3 * k * k, high, 1.0, -k ** 3 - 3 * k * k * 4.0 / 29.0)
        out[s:s + _LAB_CHUNK] = cv2.transform(t[:, None, :], to_rgb)[:, 0, :]
    return out.reshape(a.shape)


def linear_srgb_to_lab_reference(rgb, white_xy=None) -> np.ndarray:
    """CIELAB through colour-science (float64): exact, for checks and for a few colours."""
    c = _colour()
    white = srgb_white_xy() if white_xy is None else np.asarray(white_xy, np.float64)
    xyz = np.asarray(rgb, np.float64)[..., :3] @ _matrices()[0].T
    return np.asarray(c.XYZ_to_Lab(xyz, illuminant=white), np.float64)


def delta_e2000_reference(lab1, lab2) -> np.ndarray:
    """CIEDE2000 through colour-science (float64). 11-25 s at 12 MP: use `delta_e2000` per pixel."""
    return np.asarray(_colour().difference.delta_E_CIE2000(np.asarray(lab1, np.float64),
                                                           np.asarray(lab2, np.float64)), np.float64)


_DE_CHUNK = 1 << 16   # pixels per pass: the twenty-odd temporaries of one chunk stay in cache


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 per pixel in float32 (Sharma, Wu & Dalal 2005, the formula in full), shapes (..., 3) ->
    (...). Agrees with colour-science to 1e-3 ΔE and is 7-9× faster (bench/cases/colorimetry.py); chunked so
    that its temporaries stay in cache (46 MB peak at 12 MP against colour-science's 4 GB)."""
    a = np.asarray(lab1, np.float32)
    b = np.asarray(lab2, np.float32)
    a, b = np.broadcast_arrays(a, b)
    shape = a.shape[:-1]
    a, b = a.reshape(-1, 3), b.reshape(-1, 3)
    out = np.empty(a.shape[0], np.float32)
    for s in range(0, a.shape[0], _DE_CHUNK):
        out[s:s + _DE_CHUNK] = _de2000(a[s:s + _DE_CHUNK], b[s:s + _DE_CHUNK])
    return out.reshape(shape)


def _de2000(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    f32 = np.float32
    L1, a1, b1 = p[:, 0], p[:, 1], p[:, 2]
    L2, a2, b2 = q[:, 0], q[:, 1], q[:, 2]
    c_mean = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    c7 = c_mean ** 7
    g = f32(0.5) * (f32(1.0) - np.sqrt(c7 / (c7 + f32(25.0 ** 7))))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % f32(360.0)   # atan2(0, 0) = 0, as the formula wants
    h2p = np.degrees(np.arctan2(b2, a2p)) % f32(360.0)
    chroma0 = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma0, f32(0.0), dh)
    dHp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) * f32(0.5))
    dLp, dCp = L2 - L1, c2p - c1p
    lp_mean = 0.5 * (L1 + L2)
    cp_mean = 0.5 * (c1p + c2p)
    hsum = h1p + h2p
    far = np.abs(h1p - h2p) > 180
    hp_mean = np.where(far, np.where(hsum < 360, hsum + 360, hsum - 360), hsum) * f32(0.5)
    hp_mean = np.where(chroma0, hsum, hp_mean)
    hr = np.radians(hp_mean)
    t = (1 - f32(0.17) * np.cos(hr - f32(np.radians(30))) + f32(0.24) * np.cos(2 * hr)
         + f32(0.32) * np.cos(3 * hr + f32(np.radians(6))) - f32(0.20) * np.cos(4 * hr - f32(np.radians(63))))
    d_theta = f32(30.0) * np.exp(-(((hp_mean - 275) / 25) ** 2))
    cp7 = cp_mean ** 7
    r_c = 2 * np.sqrt(cp7 / (cp7 + f32(25.0 ** 7)))
    l50 = (lp_mean - 50) ** 2
    s_l = 1 + f32(0.015) * l50 / np.sqrt(20 + l50)
    s_c = 1 + f32(0.045) * cp_mean
    s_h = 1 + f32(0.015) * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    tl, tc, th = dLp / s_l, dCp / s_c, dHp / s_h
    return np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0)).astype(np.float32)


# ----------------------------------------------------------------------------------- illuminant estimation

@dataclass(frozen=True)
class Illuminant:
    rgb: np.ndarray      # (3,) linear sRGB of the light, normalised so that G = 1
    xy: np.ndarray       # (2,) its chromaticity
    kelvin: float        # correlated colour temperature (Planckian), K
    duv: float           # distance from the Planckian locus in CIE 1960 uv (+ = green)
    pixels_used: int     # how many pixels the estimate rests on

    @property
    def mired(self) -> float:
        return 1e6 / self.kelvin


# Why these constants: a channel at or above CLIP_LEVEL has lost its ratio to the others (a blown highlight
# reads white whatever the light), and its neighbours bleed towards it (demosaicking, blooming), so they go
# too; below DARK_LEVEL sensor noise and black-level error dominate the ratios.
CLIP_LEVEL = 0.98
DARK_LEVEL = 0.002
SHADES_OF_GREY_P = 6.0   # Finlayson & Trezzi (2004): p = 6 is best on average over their data sets
WHITE_PATCH_TOP = 0.01   # white patch: the brightest 1 % of usable pixels, robust where max-RGB is not


def estimate_illuminant(rgb_linear: np.ndarray, mask: np.ndarray | None = None,
                        method: str = "shades_of_grey", p: float = SHADES_OF_GREY_P) -> Illuminant:
    """The colour of the light on a scene, from linear sRGB pixels (H×W×3 float32) and an optional weight
    mask (H×W in [0, 1]; 0 = ignore, e.g. a strongly coloured object or everything but the subject).

    Methods (each assumes something about the scene's reflectances):
    - 'grey_world': their mean is grey; light ∝ mean(rgb).
    - 'shades_of_grey': Minkowski mean, light ∝ (mean rgb^p)^(1/p) (p = 6), between grey world (p = 1) and
      white patch (p = ∞); the best general default in Finlayson & Trezzi (2004).
    - 'white_patch': the brightest surfaces are white; the mean of the brightest 1 % of usable pixels
      (by luminance), not the maximum, so a single hot pixel does not decide.
    - 'grey_edge': the mean edge is grey (van de Weijer et al. 2007): Minkowski p-norm of each channel's
      gradient magnitude after a Gaussian of σ = 1 px; unaffected by large uniform coloured areas.
    Pixels with any channel ≥ 0.98 (clipped) and their 8 neighbours, and pixels whose brightest channel is
    below 0.002, are left out. Raises UserError when fewer than 64 usable pixels remain.
    """
    import cv2

    if method not in ESTIMATORS:
        raise UserError(f"illuminant estimator must be one of {', '.join(ESTIMATORS)}, not '{method}'",
                        "bad-parameter")
    img = np.ascontiguousarray(np.asarray(rgb_linear, np.float32)[..., :3])
    if img.ndim != 3 or img.shape[2] != 3:
        raise UserError(f"illuminant estimation needs an RGB image, got shape {img.shape}", "bad-input")
    r, g, b = cv2.split(img)   # OpenCV passes: numpy's max over the channel axis is 20× slower
    peak, low = cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)
    clipped = cv2.dilate((peak >= CLIP_LEVEL).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    weight = (~(clipped | (peak < DARK_LEVEL) | (low < 0))).astype(np.float32)
    if mask is not None:
        m = np.asarray(mask, np.float32)
        if m.shape != weight.shape:
            raise UserError(f"the mask is {m.shape[1]}x{m.shape[0]} but the image is "
                            f"{weight.shape[1]}x{weight.shape[0]}", "size-mismatch")
        weight *= np.clip(m, 0.0, 1.0)
    used = int(np.count_nonzero(weight > 0))
    if used < 64:
        raise UserError("too few usable pixels to estimate the light: the mask is (nearly) empty, or the "
                        "image is clipped or black there", "bad-input")
    wsum = float(weight.sum(dtype=np.float64))
    if method == "grey_world":
        light = _weighted_mean(img, weight) / wsum
    elif method == "shades_of_grey":
        light = (_weighted_mean(_power(img, p), weight) / wsum) ** (1.0 / p)
    elif method == "white_patch":
        lum = img @ np.asarray(_matrices()[0][1], np.float32)
        sel = weight > 0
        cut = np.quantile(lum[sel], 1.0 - WHITE_PATCH_TOP)
        top = sel & (lum >= cut)
        light = _weighted_mean(img, weight * top) / float((weight * top).sum(dtype=np.float64))
    else:  # grey_edge
        smooth = cv2.GaussianBlur(img, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
        gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1, borderType=cv2.BORDER_REFLECT)
        gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1, borderType=cv2.BORDER_REFLECT)
        mag = np.sqrt(gx * gx + gy * gy)
        # an edge touching an excluded pixel mixes it in: keep only edges whose whole 3×3 support is usable
        w_edge = cv2.erode(weight, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REFLECT)
        light = (_weighted_mean(_power(mag, p), w_edge) / float(w_edge.sum(dtype=np.float64))) ** (1 / p)
    light = np.asarray(light, np.float64)
    if not np.all(np.isfinite(light)) or light.min() <= 0:
        raise UserError("the usable pixels hold no light in one channel: cannot estimate the illuminant",
                        "bad-input")
    light = light / light[1]
    xy = linear_srgb_to_xy(light)
    kelvin, duv = xy_to_cct(xy)
    return Illuminant(light, xy, float(kelvin), float(duv), used)


def _power(img: np.ndarray, p: float) -> np.ndarray:
    """img ** p for img >= 0 in one OpenCV pass (3× numpy's)."""
    import cv2
    return cv2.pow(img.reshape(img.shape[0], -1), p).reshape(img.shape)


def _weighted_mean(img: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Σ weight·img per channel (float64 accumulation: 12 MP of float32 sums lose digits)."""
    return np.einsum("hwc,hw->c", img, weight, dtype=np.float64)


def white_balance_matrix(illuminant: Illuminant, target_kelvin: float = 6504.0, method: str = "CAT16",
                         locus: str = "daylight") -> np.ndarray:
    """The adaptation matrix (linear sRGB) that renders the scene as if lit at `target_kelvin` (default:
    D65 on the daylight locus, sRGB's own white)."""
    return adaptation_matrix_xy(illuminant.xy, cct_to_xy(target_kelvin, locus), method)
