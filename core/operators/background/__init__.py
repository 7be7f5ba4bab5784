"""background: put the subject into a new scene so that it looks shot there, not cut and pasted.

Stages (one module each), in the order they run:
  subject      the rough subject mask (--subject-mask, else the person segmentation) and the subject's
               distance (given, or from the face's size by the thin lens; no face: 2 m)
  matte        trimap around the rough edge; closed-form matting (pymatting) on the band at a working
               resolution, in linear light; smooth foreground/background colours there
  upsample     the matte to full size by its own colour-line model (alpha = a·I + b, fitted at the working
               resolution, evaluated on the full-resolution colours)
  foreground   full-resolution foreground colour: the smallest per-pixel correction of the smooth estimates
               that explains each pixel exactly, so the old plate does not fringe the hair
  plate        the new plate scaled to cover (never stretched), magnified by focal length / the plate's focal
               length, its horizon moved to --horizon
  defocus      the plate blurred by the thin lens focused on the subject (one plane at the background
               distance, or the plate's depth map), through the shared layered renderer (core.optics)
  colour_match the subject adapted (CAT16) from its own illuminant toward the plate's (--match-color)
  light_wrap   the plate's light over the subject's edges (--light-wrap)
  grain        the photo's noise given to the plate (--match-grain)
Compositing is in linear light: C = α·F + (1 − α)·P. Results: the composite (default), the cut-out subject
(RGBA: foreground colour, matte as alpha) or the matte alone (grey). With all matching off, the subject's pixels
inside the matte's core (alpha = 1) are returned bit-identical.

The parameter choosing the result is called `result` (every command already has -o/--output).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import cv2
import numpy as np

from ... import registry
from ...errors import UserError
from ...imaging import depthmap
from ...imaging.color import linear_to_srgb, srgb_to_linear
from ...optics import thin_lens
from ...registry import Context, Input, Operator, Output, Param
from . import colour_match, defocus, demo_plate, foreground, grain, light_wrap, matte, plate, subject, upsample

SNAP = 0.02           # alpha this close to 0 or 1 is taken as exactly 0 or 1 (see _Matte)
MIN_SIDE = 32          # px: below this there is no edge to matte (and the segmentation needs 8 px at least)
RESULTS = ("composite", "cutout", "matte")


def _split(arr: np.ndarray):
    """(RGB, alpha or None) of an H×W×C picture with C in 1..4 (the operator owns alpha, so it gets them raw)."""
    c = arr.shape[2]
    if c == 1:
        return np.repeat(arr, 3, axis=2), None
    if c == 2:
        return np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1]
    if c == 3:
        return arr, None
    return arr[:, :, :3], arr[:, :, 3]


def _linear(srgb: np.ndarray) -> np.ndarray:
    """Linear light, negatives (from negative float input) cut at 0: light is never negative."""
    lin = np.ascontiguousarray(srgb_to_linear(np.ascontiguousarray(srgb, np.float32)), dtype=np.float32)
    return np.maximum(lin, 0.0, out=lin)


def _known_full(mask_low: np.ndarray, h: int, w: int) -> np.ndarray:
    """A working-resolution bool region brought to full size: a full pixel belongs to it when every working pixel
    its bilinear interpolation touches does."""
    if mask_low.shape == (h, w):
        return mask_low.copy()
    up = cv2.resize(mask_low.astype(np.uint8) * np.uint8(255), (w, h), interpolation=cv2.INTER_LINEAR)
    return up == 255


def _plate_depth(inputs, p, ctx: Context, plate_rgb: np.ndarray) -> Optional[depthmap.DepthMap]:
    if inputs.get("depth") is None:
        return None
    kind = depthmap.kind_from_storage(p["depth_kind"], ctx.stored_as.get("depth"))
    d = depthmap.interpret(inputs["depth"], kind, source="plate depth")
    dh, dw = d.values.shape
    ph, pw = plate_rgb.shape[:2]
    if abs(dw / dh - pw / ph) > 0.02 * (pw / ph):
        raise UserError(f"the depth map is {dw}x{dh} but the background plate is {pw}x{ph}: a depth map for "
                        f"the plate must have the plate's shape", "size-mismatch")
    return depthmap.fit_to_image(d, plate_rgb)


def _encode(lin: np.ndarray, ceiling: float) -> np.ndarray:
    """sRGB encoding, clipped to [0, ceiling] in place (float32)."""
    out = np.ascontiguousarray(linear_to_srgb(lin), dtype=np.float32)
    return np.clip(out, 0.0, ceiling, out=out)


def _with_alpha(srgb: np.ndarray, alpha: Optional[np.ndarray]) -> np.ndarray:
    if alpha is None:
        return srgb
    return np.concatenate([srgb, alpha.reshape(srgb.shape[:2] + (1,)).astype(np.float32)], axis=2)


class _Matte:
    """The matte at full size, kept as regions: known foreground (a bool map), the mixed pixels (flat indices,
    with their alpha and foreground/background colours) and, implicitly, the known background."""

    def __init__(self, lin: np.ndarray, wm: matte.WorkMatte, in_alpha: Optional[np.ndarray], progress=None):
        h, w = lin.shape[:2]
        self.shape = (h, w)
        self.fg = _known_full(wm.trimap.fg, h, w)
        bg = _known_full(wm.trimap.bg, h, w)
        idx = np.flatnonzero(~(self.fg | bg))
        flat = lin.reshape(-1, 3)
        colours = flat[idx]
        if wm.scale < 1.0:
            ys, xs = np.divmod(idx, w)
            coef = upsample.affine_coefficients(wm.lin, wm.alpha)
            a = upsample.alpha_at(coef, colours, ys, xs, (h, w))
            f0 = upsample.sample(wm.fg, ys, xs, (h, w))
            b0 = upsample.sample(wm.bg, ys, xs, (h, w))
        else:
            a = wm.alpha.reshape(-1)[idx]
            f0, b0 = wm.fg.reshape(-1, 3)[idx], wm.bg.reshape(-1, 3)[idx]
        if progress is not None:
            progress(0.5, "matte: alpha at full size")
        # Within SNAP of 0 or 1 the solver's residual, not transparency: exactly 0 or 1 (a face 1 % "transparent"
        # would let 1 % of the new plate through, and a background 1 % "opaque" keeps 1 % of the old one).
        # Snapped pixels leave the mixed set: opaque ones are the photo's own, clear ones the plate's.
        self.fg.reshape(-1)[idx[a >= 1.0 - SNAP]] = True
        keep = (a > SNAP) & (a < 1.0 - SNAP)
        idx, colours, a, f0, b0 = idx[keep], colours[keep], a[keep], f0[keep], b0[keep]
        f, _ = foreground.full_colours(colours, a, f0, b0)
        if in_alpha is not None:
            # Transparent parts of the layer are not subject: alpha × the layer's alpha; foreground pixels the
            # layer makes partly transparent join the mixed pixels with their own colour.
            la = np.clip(in_alpha, 0.0, 1.0).reshape(-1)
            a = a * la[idx]
            extra = np.flatnonzero(self.fg.reshape(-1) & (la < 1.0))
            if extra.size:
                order = np.argsort(np.concatenate([idx, extra]), kind="stable")
                idx = np.concatenate([idx, extra])[order]
                a = np.concatenate([a, la[extra]])[order]
                f = np.concatenate([f, flat[extra]])[order]
                self.fg.reshape(-1)[extra] = False
        self.idx, self.a, self.f = idx, a.astype(np.float32), f

    def alpha(self) -> np.ndarray:
        """H×W float32."""
        out = self.fg.astype(np.float32)
        out.reshape(-1)[self.idx] = self.a
        return out

    def foreground(self, lin: np.ndarray) -> np.ndarray:
        """H×W×3 linear foreground colour: the photo's own where alpha = 1, the estimate in the mixed pixels."""
        out = lin.copy()
        out.reshape(-1, 3)[self.idx] = self.f
        return out


def run(inputs: Dict[str, Any], p: Dict[str, Any], ctx: Context) -> Output:
    image = inputs["image"]
    rgb, in_alpha = _split(image)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UserError(f"the picture is {w}x{h}; background replacement needs at least {MIN_SIDE} px on each "
                        f"side", "bad-input")
    kind = p["result"]
    plate_in = inputs.get("background")
    if kind == "composite" and plate_in is None:
        raise UserError("a composite needs the new background: give it with --background PLATE (or choose "
                        "--result cutout or matte)", "missing-input")
    job = ctx.job
    info: Dict[str, Any] = {"result": kind}
    base = _with_alpha(rgb, in_alpha)

    # 1. The rough subject and the matte.
    rough, source = subject.rough_mask(rgb, inputs.get("subject_mask"), ctx.device)
    matte.check_subject(rough, "the subject mask" if source == "subject mask" else "the person segmentation")
    info["subject_mask_from"] = source
    job.progress(0.08, "subject found")
    lin = _linear(rgb)
    wm = matte.work_matte(lin, rough.astype(np.float32), p["edge_band"], progress=job.sub(0.08, 0.45).progress)
    mt = _Matte(lin, wm, in_alpha, job.sub(0.45, 0.5).progress)
    info.update({"matte_size": f"{wm.alpha.shape[1]}x{wm.alpha.shape[0]}", "matte_unknown_px": wm.unknown_pixels,
                 "matte_iterations": wm.iterations, "edge_band_px": int(round(wm.trimap.band_px / wm.scale)),
                 "mixed_px": int(mt.idx.size)})
    job.progress(0.5, "matte at full size")
    if kind == "matte":
        out = np.repeat(mt.alpha()[:, :, None], 3, axis=2)
        return Output(_with_alpha(out, None if in_alpha is None else np.ones((h, w), np.float32)), base=base,
                      info=info)
    if kind == "cutout":
        f_srgb = _encode(mt.foreground(lin), max(1.0, float(rgb.max())))
        return Output(_with_alpha(f_srgb, mt.alpha()), base=base, info=info)

    # 2. The plate: placed, with its depth, defocused by the lens focused on the subject.
    plate_rgb, _ = _split(plate_in if plate_in.ndim == 3 else plate_in[:, :, None])
    where = plate.placement(plate_rgb.shape[:2], (h, w), p["focal_length"], p["background_focal_length"],
                            p["horizon"], p["background_horizon"])
    depth = _plate_depth(inputs, p, ctx, plate_rgb)
    info.update({"plate_scale": round(where.scale, 4), "plate_magnification": round(where.magnification, 4),
                 "plate_offset_px": [round(where.tx, 2), round(where.ty, 2)]})
    if where.note:
        info["plate_note"] = where.note
    if p["subject_distance"] is not None:
        dist_m, how = float(p["subject_distance"]), "given"
    else:
        dist_m, how, face_px = subject.distance_from_face(rgb, p["focal_length"], p["sensor_width"], ctx.device)
        if face_px is not None:
            info["face_height_px"] = round(face_px, 2)
    info.update({"subject_distance_m": round(dist_m, 3), "subject_distance_from": how})
    defocus.check_distances(dist_m, p["background_distance"], p["focal_length"], depth is None)
    pd = defocus.plate_distances(depth, p["background_distance"])
    info["plate_depth"] = pd.source
    lens = thin_lens.ThinLens(p["focal_length"], p["f_number"], p["sensor_width"])
    plate_lin = _linear(plate_rgb)
    job.progress(0.6, "plate placed")
    blurred = defocus.defocus_plate(plate_lin, plate_rgb, where, (h, w), pd.distance_m, lens, dist_m,
                                    p["highlight_boost"], ctx.torch_device(), job.sub(0.6, 0.75).progress)
    info.update(blurred.facts)

    # 3. Composite by regions, in linear light: the plate where alpha = 0, the subject where alpha = 1 (the photo's
    # own pixels, unless its colour is matched), alpha·F + (1 − alpha)·P in the mixed pixels; then light wrap.
    ceiling = max(1.0, float(rgb.max()))
    out = blurred.srgb_full(ceiling)
    # A plate rendered smaller was blurred by a disc of 8 px or more, the mean of 50+ pixels: under 1/7 of its own
    # noise is left, nothing to measure or subtract.
    plate_srgb = out.copy() if (blurred.k == 1 and p["match_grain"] > 0.0) else None
    alpha = mt.alpha()
    match = None
    if p["match_color"] > 0.0:
        rows, cols = plate.visible_window(where, plate_rgb.shape[:2], (h, w))
        match, why = colour_match.estimate(lin, alpha, plate_lin[rows, cols], p["match_color"])
        if match is None:
            info["color"] = f"not matched: {why}"
        else:
            info.update(match.facts())
    job.progress(0.8, "light estimated")
    fg3 = mt.fg[:, :, None]
    job.progress(0.81, "subject in place")
    if match is None:
        np.copyto(out, rgb, where=fg3)
        f_mixed = mt.f
    else:
        subject_srgb = _encode(colour_match.apply(lin, match), ceiling)
        np.copyto(out, subject_srgb, where=fg3)
        f_mixed = colour_match.apply(mt.f, match)
    ys, xs = np.divmod(mt.idx, w)
    a1 = mt.a[:, None]
    mixed = a1 * f_mixed + (1.0 - a1) * blurred.lin_at(ys, xs)
    out_flat = out.reshape(-1, 3)
    out_flat[mt.idx] = _encode(mixed, ceiling)
    job.progress(0.83, "edges composited")
    if p["light_wrap"] > 0.0:
        ring, weight, spill = light_wrap.ring(alpha, blurred, p["light_wrap"])
        # The linear composite at the ring's pixels: the mixed value where mixed, the subject's colour elsewhere.
        pos = np.minimum(np.searchsorted(mt.idx, ring), max(mt.idx.size - 1, 0))
        is_mixed = (mt.idx[pos] == ring) if mt.idx.size else np.zeros(ring.size, bool)
        colours = lin.reshape(-1, 3)[ring]
        if match is not None:
            colours = colour_match.apply(colours, match)
        colours[is_mixed] = mixed[pos[is_mixed]]
        out_flat[ring] = _encode(light_wrap.mix(colours, weight, spill), ceiling)
        info["light_wrap_px"] = int(ring.size)
    job.progress(0.85, "composited")
    if p["match_grain"] > 0.0:
        plan = grain.plan(rgb, alpha >= colour_match.CORE_ALPHA, plate_srgb)
        job.progress(0.9, "noise measured")
        if plan is None:
            info["grain"] = "the subject's noise could not be measured (too few smooth areas): none added"
        else:
            out = grain.apply(out, alpha, plan, p["match_grain"], ctx.seed)
            np.clip(out, 0.0, ceiling, out=out)
            info.update(plan.facts())
    job.progress(0.95, "grain matched")
    return Output(_with_alpha(out, None if in_alpha is None else np.ones((h, w), np.float32)), base=base, info=info)


def demo(image: np.ndarray, seed: int):
    """The astronaut in a park: the bundled procedural plate, an 85 mm portrait lens at f/2, the horizon at about
    the shoulders, all matching on."""
    h, w = image.shape[:2]
    bg = demo_plate.plate(max(64, h), max(96, int(w * 1.5)), seed=3)
    return {"image": image, "background": bg}, {"f_number": 2.0, "horizon": 0.55, "match_color": 0.5,
                                                "light_wrap": 0.3, "match_grain": 1.0}


PARAMS = (
    Param("result", "choice", "composite", "what to return: the composite on the new background, the cut-out "
          "subject (RGBA: foreground colour, matte as alpha) or the matte alone (grey)", choices=RESULTS),
    Param("subject_distance", "float", None, "distance from the camera to the subject; default: from the face's "
          "size (no face: 2 m)", unit="m", min=0.05, max=1000.0, optional=True, step=0.1),
    Param("background_distance", "float", 10.0, "distance of the new background (one plane; with a depth map "
          "for the plate: the distance of its nearest point when the map is relative disparity)", unit="m",
          min=0.1, max=100000.0, step=0.5),
    Param("focal_length", "float", 85.0, "focal length the portrait was taken with", unit="mm", min=1.0,
          max=2000.0, step=1.0),
    Param("f_number", "float", 2.0, "aperture of the portrait's lens (smaller = a more blurred background)",
          unit="f-number", min=0.5, max=64.0, step=0.1, title="F-number"),
    Param("sensor_width", "float", 36.0, "sensor width (36 = full frame): maps millimetres to pixels", unit="mm",
          min=1.0, max=200.0, step=0.1, advanced=True),
    Param("background_focal_length", "float", None, "focal length the plate was taken with (same sensor "
          "format); the plate is cropped as the portrait's lens would frame it. Default: as if the same",
          unit="mm", min=1.0, max=2000.0, optional=True, step=1.0),
    Param("horizon", "float", None, "where the plate's horizon goes, as a fraction of the image's height from "
          "the top (the camera's height in the scene); default: keep the plate as it is", unit="fraction",
          min=0.0, max=1.0, optional=True, step=0.01),
    Param("background_horizon", "float", 0.5, "where the horizon is in the plate, as a fraction of its height "
          "from the top (0.5: a level camera without shift)", unit="fraction", min=0.01, max=0.99, step=0.01,
          advanced=True),
    Param("match_color", "float", 0.5, "adapt the subject to the plate's light (CAT16 from the subject's "
          "estimated illuminant toward the plate's): 0 = off, 1 = fully", unit="fraction", min=0.0, max=1.0,
          step=0.05, title="Match colour"),
    Param("light_wrap", "float", 0.3, "the plate's light spilling over the subject's edges: 0 = off",
          unit="fraction", min=0.0, max=1.0, step=0.05),
    Param("match_grain", "float", 1.0, "give the plate the photo's measured noise and grain: 0 = off, "
          "1 = the same noise", unit="fraction", min=0.0, max=1.0, step=0.05),
    Param("edge_band", "float", 0.04, "half-width of the band around the subject mask's edge where the matte "
          "is solved, as a fraction of the image's longer side (wider: catches longer stray hair, slower)",
          unit="fraction", min=0.002, max=0.2, step=0.005, advanced=True),
    Param("depth_kind", "choice", "auto", "what the plate's depth map holds: distance in metres, or relative "
          "disparity (near = bright); auto: a float file or layer is metres, 8/16-bit is disparity",
          choices=("auto", "distance", "disparity"), advanced=True),
    Param("highlight_boost", "float", 4.0, "linear gain for the plate's clipped highlights before blurring, so "
          "point lights become bright discs (1 = off)", unit="ratio", min=1.0, max=100.0, step=0.5,
          advanced=True),
)

registry.register(Operator(
    name="background",
    title="Background",
    help="replace the background with a matching depth of field, perspective, colour, light wrap and grain",
    inputs=(Input("image", "image", "the portrait"),
            Input("background", "background", "the new background plate (any size: scaled to cover, never "
                  "stretched); needed for the composite", required=False),
            Input("subject_mask", "mask", "a rough mask of the subject (white = subject); default: the person "
                  "segmentation", required=False),
            Input("depth", "depth", "depth map of the plate (its shape): float = metres, 8/16-bit = disparity "
                  "(near = bright); default: one plane at the background distance", required=False)),
    params=PARAMS,
    run=run,
    demo=demo,
    uses_alpha=True,
    order=90,
))
