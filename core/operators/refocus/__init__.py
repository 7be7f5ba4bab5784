"""refocus: move the plane of focus after capture, with thin-lens bokeh from a depth map.

Stages: the thin lens (circle of confusion), the aperture's kernel shapes and the layered, occlusion-aware renderer
come from the shared optics room (core.optics: thin_lens, aperture, layered), because background replacement renders
with them too; here are highlights (linear boost of clipped lights), deconv (optional bounded sharpening by the known
original blur) and grain (re-add the original noise). Depth files are read by core.imaging.depthmap.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ... import registry
from ...errors import UserError
from ...imaging import depthmap
from ...registry import Context, Input, Operator, Output, Param
from ...optics import aperture, layered as render, thin_lens as lens
from . import deconv, grain, highlights

MAX_COC_FRACTION = 0.25  # the largest CoC rendered, as a fraction of the image's longer side


def _focus(depth: depthmap.DepthMap, params: Dict[str, Any]):
    """The focal plane: (value in the map's own kind, how it was chosen)."""
    if params["focus_distance"] is not None and params["focus_at"] is not None:
        raise UserError("give either a focus distance or a focus point, not both", "bad-parameter")
    if params["focus_distance"] is not None:
        if depth.kind != "distance":
            raise UserError("a focus distance in metres needs a distance depth map (metres); with a disparity "
                            "map, pick the focus with a focus point (x,y)", "bad-parameter")
        return float(params["focus_distance"]), "distance"
    if params["focus_at"] is not None:
        x, y = params["focus_at"]
        return depth.at(x, y, radius=1), f"point {x:g},{y:g}"
    # Nothing given: the subject, assumed near the centre of the frame (median of the central third).
    h, w = depth.values.shape
    centre = depth.values[h // 3:max(2 * h // 3, h // 3 + 1), w // 3:max(2 * w // 3, w // 3 + 1)]
    return float(np.median(centre)), "centre of the frame"


def _signed_coc(depth: depthmap.DepthMap, focus: float, p: Dict[str, Any], width: int):
    if depth.kind == "distance":
        thin = lens.ThinLens(p["focal_length"], p["f_number"], p["sensor_width"])
        coc = thin.coc_px(depth.values, focus, width)
        facts = {"focus_distance_m": round(focus, 4),
                 "blur_at_infinity_px": round(thin.blur_at_infinity_px(focus, width), 3)}
        return coc, facts
    coc = lens.coc_from_disparity(depth.values, focus, p["blur_at_infinity"])
    return coc, {"focus_disparity": round(focus, 5), "blur_at_infinity_px": p["blur_at_infinity"]}


def _original_coc(depth: depthmap.DepthMap, p: Dict[str, Any], width: int):
    n0, s0 = p["original_f_number"], p["original_focus_distance"]
    if n0 is None and s0 is None:
        return None
    if n0 is None or s0 is None:
        raise UserError("give both the original f-number and the original focus distance, or neither",
                        "bad-parameter")
    if depth.kind != "distance":
        raise UserError("the original focus distance (metres) needs a distance depth map in metres",
                        "bad-parameter")
    thin0 = lens.ThinLens(p["focal_length"], n0, p["sensor_width"])
    return thin0.coc_px(depth.values, s0, width)


def _depth(inputs, image, p, ctx: Context, job) -> depthmap.DepthMap:
    if inputs.get("depth") is not None:
        # The depth input's storage (a float file or layer = metres) decides 'auto' where the caller knows it.
        kind = depthmap.kind_from_storage(p["depth_kind"], ctx.stored_as.get("depth"))
        d = depthmap.interpret(inputs["depth"], kind)
        return depthmap.fit_to_image(d, image)
    if p["depth_kind"] == "distance":
        raise UserError("depth kind 'distance' needs a depth map in metres: pass --depth", "missing-input")
    from ... import depth as depth_service
    result = depth_service.estimate(image, job, device=ctx.device)
    d = depthmap.interpret(result.disparity, "disparity", source=f"depth service: {result.source}")
    return depthmap.fit_to_image(d, image)


def _to_linear(srgb):
    """sRGB -> linear light; a faster path for the usual non-negative pictures (the exact same curve)."""
    import torch

    from ...imaging.color import srgb_to_linear
    if float(srgb.min()) < 0.0:
        return srgb_to_linear(srgb)
    return torch.where(srgb <= 0.04045, srgb * (1.0 / 12.92), ((srgb + 0.055) * (1.0 / 1.055)).pow_(2.4))


def _to_srgb(lin):
    """Linear light (non-negative) -> sRGB, the exact IEC 61966-2-1 curve."""
    import torch
    enc = lin.clamp_min(1e-12).pow_(1.0 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(lin <= 0.0031308, lin * 12.92, enc)


def run(inputs: Dict[str, Any], p: Dict[str, Any], ctx: Context) -> Output:
    import torch

    image = inputs["image"]
    h, w = image.shape[:2]
    blades = p["blades"]
    if blades in (1, 2):
        raise UserError("blades must be 0 (a round aperture) or 3 to 16", "bad-parameter")
    job = ctx.job
    depth = _depth(inputs, image, p, ctx, job.sub(0.0, 0.1))
    focus, how = _focus(depth, p)
    coc, facts = _signed_coc(depth, focus, p, w)
    limit = MAX_COC_FRACTION * max(h, w)
    clamped = bool(np.abs(coc).max() > limit)
    coc = np.clip(coc, -limit, limit)
    coc0 = _original_coc(depth, p, w)
    job.progress(0.1, "circle of confusion computed")

    def kernel_for(diameter: float, in_front: bool) -> np.ndarray:
        # In front of the focal plane the light cone has not crossed yet: the aperture's image is inverted.
        rot = p["blade_rotation"] + (180.0 if in_front else 0.0)
        return aperture.aperture_kernel(diameter, blades, rot)

    dev = ctx.torch_device()
    with torch.no_grad():
        srgb = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(dev)
        lin = _to_linear(srgb)
        target = torch.from_numpy(coc).to(dev)
        render_coc = target
        sharpened = 0.0
        sigma = grain.estimate_sigma(srgb) if (p["grain"] or coc0 is not None) else None
        if coc0 is not None:
            c0 = torch.from_numpy(np.clip(coc0, -limit, limit)).to(dev)
            # Blur already in the photo counts toward the new blur (widths add in quadrature, as variances do).
            extra = (target.abs() ** 2 - c0.abs() ** 2).clamp_min(0.0).sqrt() * torch.sign(target)
            if p["sharpen"]:
                # Noisier photos get a gentler (more regularised) deconvolution.
                lin, sharpened = deconv.sharpen(lin, c0, target, kernel_for, float(sigma.mean()))
                render_coc = torch.where(c0.abs() > target.abs() + 0.5, target, extra)
            else:
                render_coc = extra
        if not p["grain"]:
            sigma = None
        coc_abs = render_coc.abs()
        lin = highlights.boost(lin, srgb, coc_abs, p["highlight_boost"])
        sub = job.sub(0.15, 0.95)
        out_lin, stats = render.render(lin, render_coc, kernel_for, progress=sub.progress,
                                       min_kernel_px=12.0 if blades >= 3 else render.KERNEL_AT_SCALE)
        out = _to_srgb(out_lin.clamp_min(0.0))
        if sigma is not None:
            out = grain.readd(out, coc_abs, sigma, ctx.seed)
        ceiling = max(1.0, float(image.max()))
        out = out.clamp(0.0, ceiling)
        result = np.ascontiguousarray(out.permute(1, 2, 0).cpu().numpy(), dtype=np.float32)
    info = {"coc_max_px": round(float(np.abs(coc).max()), 3), "coc_clamped": clamped,
            "focus_chosen_by": how, "depth_source": depth.source, "depth_kind": depth.kind,
            "layers": stats.layers, **facts}
    if sigma is not None:
        info["grain_sigma"] = [round(float(v), 5) for v in sigma]
    if coc0 is not None:
        info["sharpened_fraction"] = round(sharpened, 4)
    return Output(result, info=info)


def demo(image: np.ndarray, seed: int):
    """Portrait demo: focus on the astronaut's face, wide open; depth from the shared depth service."""
    h, w = image.shape[:2]
    return {"image": image}, {"focus_at": (w * 0.44, h * 0.25), "f_number": 1.4, "blades": 0,
                              "blur_at_infinity": 0.05 * w}


PARAMS = (
    Param("depth_kind", "choice", "auto", "what the depth map holds: distance in metres, or relative disparity "
          "(near = bright); auto: values all within 0..1 are disparity, others metres",
          choices=("auto", "distance", "disparity"), title="Depth kind"),
    Param("focus_distance", "float", None, "distance of the new focal plane (distance maps only)", unit="m",
          min=0.01, max=100000.0, optional=True, step=0.1),
    Param("focus_at", "point", None, "pixel whose depth becomes the focal plane (x,y from the top-left); "
          "with neither this nor a focus distance: the median depth of the frame's central third",
          optional=True, title="Focus at"),
    Param("f_number", "float", 2.0, "aperture of the simulated lens (smaller = more blur)", unit="f-number",
          min=0.5, max=64.0, step=0.1, title="F-number"),
    Param("focal_length", "float", 85.0, "focal length of the simulated lens", unit="mm", min=1.0, max=2000.0,
          step=1.0),
    Param("sensor_width", "float", 36.0, "sensor width (36 = full frame): maps millimetres to pixels", unit="mm",
          min=1.0, max=200.0, step=0.1),
    Param("blades", "int", 0, "aperture blades: 0 = round, 3..16 = polygonal bokeh", min=0, max=16, step=1),
    Param("blade_rotation", "float", 0.0, "rotation of the polygonal aperture", unit="deg", min=-360.0,
          max=360.0, step=1.0),
    Param("blur_at_infinity", "float", 24.0, "disparity maps only: CoC of a point at infinity when focused on "
          "the nearest point (disparity 1); CoC = this x |disparity - focus disparity|", unit="px", min=0.0,
          max=2000.0, step=1.0),
    Param("highlight_boost", "float", 4.0, "linear gain for clipped highlights before blurring, so point "
          "lights become bright discs (1 = off)", unit="ratio", min=1.0, max=100.0, step=0.5),
    Param("original_f_number", "float", None, "aperture the photo was taken at (with the original focus "
          "distance: enables sharpening where the new focus is sharper)", unit="f-number", min=0.5, max=64.0,
          optional=True, step=0.1, title="Original f-number"),
    Param("original_focus_distance", "float", None, "distance the photo was focused at", unit="m", min=0.01,
          max=100000.0, optional=True, step=0.1),
    Param("grain", "bool", True, "re-add the original noise and grain in blurred areas"),
    Param("sharpen", "bool", True, "where the original was blurrier than the new focus asks, sharpen by a "
          "bounded deconvolution of the original blur (needs the original f-number and focus distance)"),
)

registry.register(Operator(
    name="refocus",
    title="Refocus",
    help="move the plane of focus and open the aperture after capture: thin-lens bokeh from a depth map",
    inputs=(Input("image", "image", "the photo"),
            Input("depth", "depth", "depth map: .npy or float TIFF in metres, or 8/16-bit PNG disparity "
                  "(near = bright); default: the depth service", required=False)),
    params=PARAMS,
    run=run,
    demo=demo,
    order=60,
))
