"""How this photograph's colours follow the light: the colour law of the ratio image.

Rendered physics (I = ρ · S in linear light, S the same in every channel for a neutral light) says that less
light keeps a pixel's chromaticity: I' = I · k with one k per pixel. Photographs of people do not: skin scatters
red light further under its surface than blue, and film and camera tone curves expand colour in the shadows, so
the same skin in less light is more saturated. Measured on the astronaut's own face (log-gradients of the
channels at σ = 3 px across its shading): one stop less green is 0.83 stop less red and 1.39 stops less blue, and
its orange suit and its hair do the same (0.37 and 1.34 on the suit, 0.85 and 1.43 on the hair). A ratio that
is one scalar per pixel then paints new shadows with the lit skin's chromaticity: grey, muddy skin.

Model (one number, κ, read off the face): a skin pixel's log-chromaticity a_c = ln(I_c / Y) (Y its luminance)
expands as the light drops, da_c / d ln k = −κ a_c. One step of it, from the pixel's own colour:

    ln I'_c = ln I_c + ln k − κ · w · a_c · t(ln k),

w the law's weight (`skin_weight`: 1 on skin, 0 on the eyes, teeth and anything not skin-coloured), and the
factors then scaled so that the pixel's luminance changes by exactly k (the light's own ratio): the law moves
colour only, never brightness. κ = 0 is the rendered, linear-camera case (one scalar per pixel, chromaticity
kept exactly). On skin (a_R > 0 > a_B) darker is warmer and more saturated, brighter paler, as in the photo's
own shadows and highlights. Darkening follows the step as it is (t(u) = u, which the MAX_GAIN clamp of the
level bounds); brightening saturates, t(u) = r tanh(u / r) with r = 2 σ(ln s) of the fit's samples (within
LAW_RANGE): the photo shows nothing brighter than its own highlights, and extrapolated further a light four
times brighter would bleach skin to grey. Measured against the astronaut's own skin at the same luminance
(tests/test_relight_real.py), relit skin is off by 0.021 in xy at most, against 0.067 with one scalar per pixel.

Estimate: over the light fit's trusted samples (the robust weights of `sh.fit`, confident geometry only), the
weighted least-squares slope β_c of ln I_c on ln s (s the old light's luminance shading at the pixel's normal),
divided by the luminance-share-weighted mean slope (so the law is relative, immune to a fitted shading with
too little or too much contrast); then κ is the least-squares solution of β_c − 1 = −κ · ā_c over the three
channels (ā_c the samples' mean log-chromaticity). κ is kept within [0, KAPPA_MAX]: a negative κ (darker
paler) is albedo colour that happens to follow the shading (a redder cheek that is also brighter), not a law
of light, and below KAPPA_MIN the evidence does not tell a law from albedo, so none is applied.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .sh import LUMA, SHLight, basis

KAPPA_MAX = 1.0        # the astronaut's skin gives 0.70; its suit and hair about 0.5
KAPPA_MIN = 0.05       # below this the law is indistinguishable from albedo colour that follows the shading
MIN_LOG_SPREAD = 0.05  # std of ln s over the samples below which the light says nothing about the law
CHROMA_LIMIT = 1.5     # |a_c| bound: a deep red or a near-black channel must not get an extreme exponent
FEATURE_MARGIN = 0.015  # the eyes' and the mouth's masks reach this many face widths beyond their contours
WEIGHT_SMOOTHING = 0.02   # Gaussian σ of the law's weight map, in face widths
WEAK_WARMTH = (0.45, 0.75)  # ln(R/B) as a fraction of the skin's median: no law below the first, all above
                            # the second (the astronaut: teeth 0.45, lips 1.0, skin 1.0)
DARK_Y = 0.004         # linear luminance at which a pixel's chromaticity is half noise: a_c is shrunk there
LAW_RANGE = (0.22, 0.69)   # bounds of r (brightening's saturation) in ln units: 1.25x to 2x


def estimate(linear: np.ndarray, normals: np.ndarray, light: SHLight, trusted: np.ndarray) -> dict:
    """κ and the measurements behind it, from the samples `light` was fitted on (its sample_index and robust
    sample_weight) that `trusted` (H×W bool) marks as confident geometry."""
    idx, w = light.sample_index, light.sample_weight
    none = {"kappa": 0.0, "range": LAW_RANGE[0], "slopes": [1.0, 1.0, 1.0], "why": ""}
    if idx is None or w is None:
        return {**none, "why": "no samples"}
    keep = (w > 0) & np.asarray(trusted).reshape(-1)[idx]
    idx, w = idx[keep], w[keep].astype(np.float64)
    img = np.asarray(linear, np.float32).reshape(-1, 3)[idx].astype(np.float64)
    n = np.asarray(normals, np.float32).reshape(-1, 3)[idx].astype(np.float64)
    s = basis(n) @ (LUMA @ light.coeffs)
    ok = (s > 1e-4) & (img.min(axis=1) > 1e-4)
    if ok.sum() < 64:
        return {**none, "why": "too few samples"}
    x, y, w = np.log(s[ok]), np.log(img[ok]), w[ok]
    wsum = w.sum()
    xm = (w * x).sum() / wsum
    ym = (w[:, None] * y).sum(0) / wsum
    dx = x - xm
    var = (w * dx * dx).sum() / wsum
    if var < MIN_LOG_SPREAD ** 2:
        return {**none, "why": "too little shading to read a law from"}
    slopes = (w[:, None] * dx[:, None] * (y - ym)).sum(0) / (wsum * var)
    share = LUMA * np.exp(ym)
    share /= share.sum()
    mean_slope = float(share @ slopes)
    if mean_slope <= 0.05:
        return {**none, "why": "the picture does not follow the fitted shading"}
    beta = slopes / mean_slope
    lum = np.maximum(img[ok] @ LUMA, 1e-6)
    a_mean = (w[:, None] * np.log(img[ok] / lum[:, None])).sum(0) / wsum
    kappa = float(-((beta - 1.0) @ a_mean) / max(float(a_mean @ a_mean), 1e-6))
    raw = kappa
    kappa = float(np.clip(kappa, 0.0, KAPPA_MAX))
    if kappa < KAPPA_MIN:
        kappa = 0.0
    r = float(np.clip(2.0 * np.sqrt(var), *LAW_RANGE))
    return {"kappa": kappa, "kappa_measured": raw, "range": r, "slopes": [float(v) for v in beta], "why": ""}


def log_chroma(linear: np.ndarray) -> np.ndarray:
    """a_c = ln(I_c / Y) per pixel (H×W×3 float32), bounded by ±CHROMA_LIMIT and shrunk toward 0 (neutral)
    in the dark, where a pixel's colour is mostly noise: a · Y / (Y + DARK_Y)."""
    import cv2

    lin = np.maximum(np.asarray(linear, np.float32), 0.0)
    y = lin @ LUMA.astype(np.float32)
    a = np.log(np.maximum(lin, 1e-6) / np.maximum(y, 1e-6)[:, :, None])
    a *= (y / (y + np.float32(DARK_Y)))[:, :, None]
    a = cv2.GaussianBlur(np.clip(a, -CHROMA_LIMIT, CHROMA_LIMIT).astype(np.float32), (0, 0), 0.7)
    return a


def skin_weight(image: np.ndarray, skin: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
    """Where the law applies (H×W float32 in [0, 1]): skin, wherever it is (the face, the neck, a hand), as the
    chroma likelihood of the face's own sure skin (`core.face.skin_likelihood`, sampled where the face's skin
    region `skin` > 0.9), without the eyes and the teeth: irises, the whites and teeth keep their chromaticity
    exactly (a brown iris has a skin's hue, yellowish teeth nearly); lips, which scatter light as skin does,
    follow the law."""
    import cv2

    from ... import face
    from ...face import topology as T
    from .mesh_surface import face_width

    h, w = image.shape[:2]
    like = face.skin_likelihood(np.clip(image[:, :, :3], 0.0, 1.0), (skin > 0.9).astype(np.float32))
    features = np.zeros((h, w), np.float32)
    mouths = np.zeros((h, w), np.float32)
    for lm in landmarks:
        fw = face_width(lm)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, int(round(FEATURE_MARGIN * fw))) + 1,) * 2)
        for parts, into in (((T.RIGHT_EYE, T.LEFT_EYE), features), ((T.LIPS_OUTER,), mouths)):
            m = np.zeros((h, w), np.uint8)
            for part in parts:
                cv2.fillPoly(m, [np.round(lm[part, :2] * 16 - 8).astype(np.int32)], 1, cv2.LINE_8, shift=4)
            m = cv2.GaussianBlur(cv2.dilate(m, kernel).astype(np.float32), (0, 0), max(0.01 * fw, 0.5))
            np.maximum(into, np.clip(m * 1.5, 0.0, 1.0), out=into)
    # One pixel's colour decides little: a freckle or a pore must not switch the law off next to its neighbours
    # (speckles of unsaturated shadow); the likelihood is smoothed at the scale of the features it leaves out.
    fw = max((face_width(lm) for lm in landmarks), default=0.1 * max(h, w))
    like = cv2.GaussianBlur(like.astype(np.float32), (0, 0), max(WEIGHT_SMOOTHING * fw, 0.5))
    # In the mouth, teeth: far less saturated than lips and skin (warmth ln(R/B) under WEAK_WARMTH of the skin's
    # median), though the chroma likelihood may take yellowish teeth for skin. (Only there: elsewhere a pale
    # forehead or a highlight is still skin.) The mesh's inner lip contour cannot say where they are.
    lin = np.maximum(_linear(image), 1e-4)
    warmth = np.log(lin[:, :, 0] / lin[:, :, 2]).astype(np.float32)
    warmth = cv2.GaussianBlur(warmth, (0, 0), max(0.5 * WEIGHT_SMOOTHING * fw, 0.5))
    sure = skin > 0.9
    ref = float(np.median(warmth[sure])) if sure.sum() >= 50 else 0.0
    if ref > 0.1:
        lo, hi = WEAK_WARMTH
        gate = np.clip((warmth / ref - lo) / (hi - lo), 0.0, 1.0)
        like = like * (1.0 - mouths * (1.0 - gate * gate * (3.0 - 2.0 * gate)))
    return (like * (1.0 - features)).astype(np.float32)


def _linear(image: np.ndarray) -> np.ndarray:
    from ...imaging.color import srgb_to_linear
    return srgb_to_linear(np.clip(image[:, :, :3], 0.0, None))


def channel_gains(level: np.ndarray, linear: np.ndarray, kappa: float, law_range: float = LAW_RANGE[1],
                  where: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-channel factors (H×W×3 float32) for a luminance change `level` (H×W, > 0) under the law (κ, r):
    k · exp(−κ w a_c t(ln k)) with w the weight `where` (None: 1 everywhere) and a_c the pixel's own
    log-chromaticity, scaled so that Σ LUMA_c I_c f_c = k · Y exactly. κ = 0 (or w = 0) gives k in every
    channel."""
    k = np.asarray(level, np.float32)
    if kappa <= 0.0:
        return np.repeat(k[:, :, None], 3, axis=2)
    a = log_chroma(linear)
    if where is not None:
        a = a * np.asarray(where, np.float32)[:, :, None]
    r = np.float32(law_range)
    u = np.log(np.maximum(k, 1e-6))
    t = np.where(u > 0, r * np.tanh(u / r), u)
    f = k[:, :, None] * np.exp(-np.float32(kappa) * a * t[:, :, None])
    lin = np.maximum(np.asarray(linear, np.float32), 0.0)
    luma = LUMA.astype(np.float32)
    y = lin @ luma
    got = (lin * f) @ luma
    # Where the pixel is black the luminance says nothing: fall back to the plain ratio's scale.
    scale = np.where(got > 1e-7, k * y / np.maximum(got, 1e-12), 1.0).astype(np.float32)
    f *= scale[:, :, None]
    black = y <= 1e-7
    if black.any():
        f[black] = k[black][:, None]
    return f.astype(np.float32)
