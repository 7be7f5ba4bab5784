"""skin: remove blemishes and even the tone while keeping, and re-synthesising, the subject's own pores.

Stages (one module each):
- region.py: the skin region (the user's mask, or the face's skin plus the neck, ears and other skin found by a
  colour model seeded from the face) and the scale F (the face's height in pixels) every length follows;
- space.py: CIELAB, the perceptual space the bands live in (L*, a*, b*);
- separation.py: three bands over the skin alone (normalised convolution): low (light and colour), mid
  (blotches, redness, spots, under-eye shadow), high (pores, fine lines, grain); high + mid + low = the image;
- blemishes.py: dark and red spots and raised bumps found on the mid band, up to the blemish size;
- heal.py: the low and mid bands inside them filled in from the skin around (pull-push, then a membrane);
- tone.py: tone evening, the mid band attenuated by the strength as a smooth dodge-and-burn field;
- texture.py: the high band inside healed spots borrowed from clean skin nearby (matched amplitude), so a healed
  spot has pores too.

Scales (F = face height in px; without a face F = blemish px / 0.05, see region.py):
- σ_h = HIGH_SIGMA·F (at least MIN_HIGH_SIGMA_PX): a sinusoid of period 5.34·σ_h ≈ 0.019·F (about 3 mm on an
  adult face) is split half high, half mid; pores (0.1-0.5 mm) are high, spots (2 mm up) mid; on a face under
  430 px the floor keeps the pixel grain high, and spots are looked for down to DETECT_SIGMA_PX;
- σ_m = max(MID_SIGMA·F, MID_PER_BLEMISH·blemish px): half gain at 0.16·F (about 27 mm), so under-eye
  shadow is mid, the face's modelling low;
- the smooth bands are worked on a grid where the face is FACE_GRID_PX tall when the face is larger (they are
  smooth at σ_h, which is then 1.8 grid px); the high band always at full resolution. So a 1 MP and a 24 MP shot
  of the same face are treated alike, at a cost that follows the skin's area on that grid.

Output: the retouched picture (default), or the dodge-and-burn field alone (`result=dodge_burn`): 0.5 + the
tone change in the picture's own encoding, a 50 %-grey layer to put above the picture in Grain merge mode
(picture + layer − 0.5), without the healing.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ... import registry
from ...registry import Context, Input, Operator, Output, Param
from . import blemishes, heal, region, separation, space, texture, tone

HIGH_SIGMA = 0.0035        # × F
MIN_HIGH_SIGMA_PX = 1.5    # the pixel-scale grain always stays in the high band (faces under 430 px)
DETECT_SIGMA_PX = 0.7      # spots are looked for in the mid band extended down to this σ (small faces)
FINE_OCTAVE = 3.0          # small spots are also looked for between σ_h (or DETECT_SIGMA_PX) and 3 σ_h
MID_SIGMA = 0.03           # × F
MIN_MID_OVER_HIGH = 3.0    # a mid band at least this wide (σ_m / σ_h) when the face is small
MID_PER_BLEMISH = 0.6      # σ_m ≥ 0.6 × blemish size: a spot of that diameter keeps ~70 % of its depth in mid
FACE_GRID_PX = 512.0       # the smooth bands' grid: the face this tall (when it is larger)
MIN_GRID_FACTOR = 1.25     # below this the grid is the full resolution (a resampling would gain nothing)


def _bbox(weight: np.ndarray, pad: int):
    rows = np.flatnonzero(weight.max(axis=1) > 0)
    cols = np.flatnonzero(weight.max(axis=0) > 0)
    h, w = weight.shape
    return (max(0, rows[0] - pad), min(h, rows[-1] + pad + 1), max(0, cols[0] - pad), min(w, cols[-1] + pad + 1))


def _resize(x: np.ndarray, size, interpolation):
    import cv2
    out = cv2.resize(x, size, interpolation=interpolation)
    return out[:, :, None] if x.ndim == 3 and out.ndim == 2 else out


def _grid_to_full(v: float, factor: float) -> float:
    """A grid coordinate (pixel centres at integers) in full-resolution pixels, as cv2.resize maps them."""
    return (v + 0.5) * factor - 0.5


def run(inputs: Dict[str, Any], p: Dict[str, Any], ctx: Context) -> Output:
    import cv2

    image = inputs["image"]
    h, w = image.shape[:2]
    job = ctx.job
    user = ctx.mask
    key = region.picture_key(image, ctx.device)
    faces = region.find_faces(image, ctx.device, needed=user is None, key=key)
    job.progress(0.15, f"{len(faces)} face(s) found")
    if user is None and not faces:
        raise region.no_face_error()
    sc = region.scale(faces, p["blemish_size"], (h, w))
    weight = np.asarray(user, np.float32) if user is not None else region.auto_mask(image, faces, ctx.device, key)
    job.progress(0.3, "skin region found")
    field_only = p["result"] == "dodge_burn"
    info: Dict[str, Any] = {"faces": len(faces), "face_px": round(sc.face_px, 2), "scale_from": sc.source,
                            "blemish_px": round(sc.blemish_px, 2), "skin_fraction": round(float(weight.mean()), 4)}
    neutral = np.full_like(image, 0.5) if field_only else None
    if float(weight.max()) <= 0.0:
        info.update(blemishes=0, healed={})
        job.progress(0.95, "no skin to retouch")
        return Output(neutral if field_only else image.copy(), base=neutral, info=info)

    y0, y1, x0, x1 = _bbox(weight, 2)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
    wc = np.ascontiguousarray(weight[y0:y1, x0:x1])
    ch, cw = crop.shape[:2]
    lab = space.srgb_to_lab(crop)
    job.progress(0.4, "CIELAB")

    factor = sc.face_px / FACE_GRID_PX
    if factor < MIN_GRID_FACTOR:
        factor = 1.0
    gsize = (max(4, round(cw / factor)), max(4, round(ch / factor)))
    fy, fx = ch / gsize[1], cw / gsize[0]
    if factor > 1.0:
        lab_g = _resize(lab, gsize, cv2.INTER_AREA)
        w_g = _resize(wc, gsize, cv2.INTER_AREA)
    else:
        lab_g, w_g = lab, wc
    sigma_h = max(HIGH_SIGMA * sc.face_px, MIN_HIGH_SIGMA_PX)
    sigma_m = max(MID_SIGMA * sc.face_px, MID_PER_BLEMISH * sc.blemish_px, MIN_MID_OVER_HIGH * sigma_h)
    sh_g, sm_g, size_g = sigma_h / fx, sigma_m / fx, sc.blemish_px / fx
    info.update(grid_factor=round(fx, 3), sigma_high_px=round(sigma_h, 3), sigma_mid_px=round(sigma_m, 3))

    high_g, mid, low = separation.split(lab_g, w_g, sh_g, sm_g)
    smooth = mid + low
    job.progress(0.55, "bands split")
    spots, alpha_g, hard_g = [], np.zeros(w_g.shape, np.float32), np.zeros(w_g.shape, np.uint8)
    if p["heal"]:
        # On a small face the high band's floor (1.5 px) would hide its spots (a few px) from the mid band:
        # they are looked for down to DETECT_SIGMA_PX.
        sd_g = max(HIGH_SIGMA * sc.face_px, DETECT_SIGMA_PX) / fx
        finest = smooth if sd_g >= sh_g else separation.masked_blur(lab_g, w_g, sd_g)
        fine = finest - separation.masked_blur(lab_g, w_g, FINE_OCTAVE * sh_g)
        spots, alpha_g, hard_g = blemishes.detect(finest - low, w_g, size_g, sh_g, p["sensitivity"], fine)
    delta = np.zeros_like(smooth)
    if spots:
        delta = heal.heal(smooth, w_g, hard_g, alpha_g, spots, sh_g)
        mid = mid + delta - separation.masked_blur(delta, w_g, sm_g)  # the healed mid band (blur is linear)
    job.progress(0.7, f"{len(spots)} blemish(es) found")
    # The field from the mid band smoothed once more at σ_h: the pores' own low-frequency tail (which reaches
    # into the mid band) is left alone, the blotches (larger) are not.
    dodge = tone.field(separation.masked_blur(mid, w_g, sh_g), w_g, p["strength"])

    def full(x):
        return _resize(x, (cw, ch), cv2.INTER_LINEAR) if factor > 1.0 else x

    if field_only:
        toned = space.lab_to_srgb(lab + full(dodge))
        out = 0.5 + (toned - crop) * (wc[:, :, None] if user is None else 1.0)
        result = neutral.copy()
        result[y0:y1, x0:x1, :3] = np.where(wc[:, :, None] > 0, out, 0.5)
        info.update(blemishes=0, healed={})
        job.progress(0.95, "dodge-and-burn field")
        return Output(result, base=neutral, info=info)

    out_lab = lab + full(delta + dodge)
    gain = float(p["texture"])
    if gain != 1.0:
        out_lab += (gain - 1.0) * (lab - separation.masked_blur(lab, wc, sigma_h))
    missing = 0
    if spots:
        alpha = full(alpha_g)
        rng = np.random.default_rng(ctx.seed)
        placed = [(_grid_to_full(s.y, fy), _grid_to_full(s.x, fx), s.radius * fx) for s in spots]
        changes, missing = texture.synthesise(lab, wc, alpha, placed, sigma_h, rng)
        for rows, cols, d in changes:
            out_lab[rows, cols] += gain * d
    job.progress(0.85, "pores synthesised")
    rgb = space.lab_to_srgb(out_lab)
    if user is None:
        rgb = crop + (rgb - crop) * wc[:, :, None]
    rgb = np.where(wc[:, :, None] > 0, rgb, crop)
    result = image.copy()
    result[y0:y1, x0:x1, :3] = rgb
    kinds: Dict[str, int] = {}
    for s in spots:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    info.update(blemishes=len(spots), healed=kinds, unsynthesised=missing)
    info["spots"] = [{"x": round(_grid_to_full(s.x, fx) + x0, 1), "y": round(_grid_to_full(s.y, fy) + y0, 1),
                      "size_px": round(s.size * fx, 1), "kind": s.kind} for s in spots]
    job.progress(0.95, "retouched")
    return Output(result, info=info)


def demo(image: np.ndarray, seed: int):
    """The astronaut without a mask: her face's skin and the skin around it, default settings."""
    return {"image": image}, {"strength": 0.5}


PARAMS = (
    Param("strength", "float", 0.5, "tone evening: how much of the blotchiness, redness and dark patches "
          "(the mid band) is removed; 0 keeps the tone, 1 evens it fully (the face's modelling is kept)",
          unit="ratio", min=0.0, max=1.0, step=0.05),
    Param("texture", "float", 1.0, "gain on the pores and fine texture (the high band): 1 keeps them as they "
          "are, below 1 softens, above 1 crisps", unit="ratio", min=0.0, max=2.0, step=0.05),
    Param("blemish_size", "float", region.DEFAULT_BLEMISH, "largest spot healed, as a fraction of the face's "
          "height (forehead to chin); without a face in the picture, of its shorter side. The band scales follow "
          "the face (without one: this size)", unit="fraction", min=0.005, max=0.3, step=0.005,
          title="Blemish size"),
    Param("result", "choice", "retouched", "retouched: the picture; dodge_burn: the tone-evening field alone, "
          "mid grey (0.5) where nothing changes, to use in Grain merge mode above the picture",
          choices=("retouched", "dodge_burn")),
    Param("heal", "bool", True, "heal blemishes (off: tone evening and texture gain only)", advanced=True),
    Param("sensitivity", "float", 1.0, "blemish detection: higher finds fainter spots (the contrast a spot "
          "needs, 5 spreads of the skin's mid band around it, is divided by this)", unit="ratio", min=0.25, max=4.0,
          step=0.05, advanced=True),
)

registry.register(Operator(
    name="skin",
    title="Skin texture",
    help="remove blemishes and even the tone while keeping, and re-synthesising, the subject's own pores "
         "(no plastic skin); the mask, if given, is the skin",
    inputs=(Input("image", "image", "the portrait"),),
    params=PARAMS,
    run=run,
    demo=demo,
    models=("mediapipe-blazeface", "mediapipe-facemesh", "mediapipe-iris", "mediapipe-selfie"),
    order=20,
))
