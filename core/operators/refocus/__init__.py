"""refocus: move the plane of focus after capture, with thin-lens bokeh from a depth map.

Stages:
1. depth (0-10 %): the user's map (core.imaging.depthmap: metres or relative disparity), or without one the depth
   service's metric depth for this lens (core.depth.estimate_distance: the subject's distance from its face's
   size and the lens's field of view, the background at `background_distance`), so the f-number, focal length
   and sensor width act as on a camera; the info says which distances were assumed;
2. focus (focus.py): a distance, a point, or by default the nearer eye of the largest face;
3. circle of confusion: the thin lens (core.optics.thin_lens) for metres; for a user's disparity map, the blur at
   infinity as a fraction of the frame's width. Every length is physical or a fraction of the frame, so the same
   settings give the same look at 1 MP and 24 MP;
4. highlights (linear boost of clipped lights), deconv (optional bounded sharpening by the known original blur);
5. the layered, occlusion-aware renderer with the aperture's kernels (core.optics: aperture, layered; shared with
   background replacement) (15-95 %); grain (re-add the original noise).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ... import registry
from ...device import kernel_threads
from ...errors import UserError
from ...imaging import depthmap
from ...parallel import elementwise
from ...registry import Context, Input, Operator, Output, Param
from ...optics import aperture, layered as render, thin_lens as lens
from . import deconv, focus as focusing, grain, highlights, layers

MAX_COC_FRACTION = 0.25  # the largest CoC rendered, as a fraction of the image's longer side


def _signed_coc(depth: depthmap.DepthMap, focus: float, p: Dict[str, Any], width: int):
    if depth.kind == "distance":
        thin = lens.ThinLens(p["focal_length"], p["f_number"], p["sensor_width"])
        coc = thin.coc_px(depth.values, focus, width)
        facts = {"focus_distance_m": round(focus, 4),
                 "blur_at_infinity_px": round(thin.blur_at_infinity_px(focus, width), 3)}
        return coc, facts
    # A fraction of the frame's width, so that the same setting looks the same at any resolution.
    blur_px = p["blur_at_infinity"] * width
    coc = lens.coc_from_disparity(depth.values, focus, blur_px)
    return coc, {"focus_disparity": round(focus, 5), "blur_at_infinity_px": round(blur_px, 3)}


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


def _depth(inputs, image, p, ctx: Context, job):
    """(DepthMap, facts for the info, faces: [(landmarks, irises)] largest first or None if not looked for,
    matte: the person's coverage when the depth is the proxy's, else None)."""
    if inputs.get("depth") is not None:
        # The depth input's storage (a float file or layer = metres) decides 'auto' where the caller knows it.
        kind = depthmap.kind_from_storage(p["depth_kind"], ctx.stored_as.get("depth"))
        d = depthmap.interpret(inputs["depth"], kind)
        return depthmap.fit_to_image(d, image), {}, None, None
    from ... import depth as depth_service
    m = depth_service.estimate_distance(image, p["focal_length"] / p["sensor_width"], p["background_distance"],
                                        job, device=ctx.device)
    facts = {"subject_distance_m": round(m.subject_m, 3), "background_distance_m": round(m.background_m, 3),
             "depth_assumed": m.assumed}
    return depthmap.DepthMap(m.distance_m, "distance", f"depth service: {m.source}"), facts, \
        list(zip(m.landmarks, m.irises)), m.matte


def _faces_of(image, ctx: Context):
    """The faces of a picture that came with its own depth map, largest first; none without the face models."""
    try:
        from ... import face
        if not face.available():
            return []
        found = [f for f in face.detect_faces(image, device=ctx.device) if f.landmarks is not None]
    except (ImportError, UserError):
        return []
    found.sort(key=lambda f: -face.face_size(f.landmarks))
    return [(f.landmarks, f.irises) for f in found]


def _to_linear(srgb):
    """sRGB -> linear light; a faster path for the usual non-negative pictures (the exact same curve)."""
    import torch

    from ...imaging.color import srgb_to_linear
    if float(srgb.min()) < 0.0:
        return srgb_to_linear(srgb)
    # In pieces on one kernel thread each (core.parallel.elementwise): pow's bytes depend on torch's thread count.
    return elementwise(lambda s: torch.where(s <= 0.04045, s * (1.0 / 12.92), ((s + 0.055) * (1.0 / 1.055)).pow_(2.4)),
                       srgb)


def _to_srgb(lin):
    """Linear light (non-negative) -> sRGB, the exact IEC 61966-2-1 curve."""
    import torch
    def encode(x):
        return torch.where(x <= 0.0031308, x * 12.92, x.clamp_min(1e-12).pow_(1.0 / 2.4).mul_(1.055).sub_(0.055))
    return elementwise(encode, lin)


def run(inputs: Dict[str, Any], p: Dict[str, Any], ctx: Context) -> Output:
    import torch

    image = inputs["image"]
    h, w = image.shape[:2]
    blades = p["blades"]
    if blades in (1, 2):
        raise UserError("blades must be 0 (a round aperture) or 3 to 16", "bad-parameter")
    job = ctx.job
    depth, depth_facts, faces, matte = _depth(inputs, image, p, ctx, job.sub(0.0, 0.1))
    focus, how, focus_facts = focusing.choose(depth, p, lambda: faces if faces is not None else
                                              _faces_of(image[:, :, :3], ctx))
    coc, facts = _signed_coc(depth, focus, p, w)
    if depth_facts:
        # What the assumed background becomes: the blur a user sees behind the subject.
        thin = lens.ThinLens(p["focal_length"], p["f_number"], p["sensor_width"])
        bg = np.array([depth_facts["background_distance_m"]], np.float32)
        depth_facts["background_coc_px"] = round(abs(float(thin.coc_px(bg, focus, w)[0])), 3)
    facts.update(depth_facts)
    facts.update(focus_facts)
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
    # Every kernel on one thread (core.device.kernel_threads): torch's pow, resampling, sums and FFT give other
    # bytes at other thread counts; the heavy stages use the cores through independent pieces instead.
    with torch.no_grad(), kernel_threads(1):
        srgb = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(dev)
        lin = _to_linear(srgb)
        job.progress(0.11, "linear light")  # checkpoints at least every 0.5 s of work at 12 MP
        target = torch.from_numpy(coc).to(dev)
        render_coc = target
        sharpened = 0.0
        sigma = grain.estimate_sigma(srgb) if (p["grain"] or coc0 is not None) else None
        job.progress(0.12, "noise measured")
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
        job.progress(0.13, "highlights")
        centres = layers.plan(render_coc, matte, max(h, w))
        sub = job.sub(0.15, 0.95)
        out_lin, stats = render.render(lin, render_coc, kernel_for, progress=sub.progress,
                                       min_kernel_px=12.0 if blades >= 3 else render.KERNEL_AT_SCALE,
                                       centres=centres, check=job.check_cancel)
        out = _to_srgb(out_lin.clamp_min(0.0))
        job.progress(0.96, "back to sRGB")
        if sigma is not None:
            out = grain.readd(out, coc_abs, sigma, ctx.seed)
            job.progress(0.98, "grain")
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
    """Portrait demo: wide open, focused on the nearer eye (the default); metric depth from the depth service."""
    return {"image": image}, {"f_number": 1.4, "blades": 0}


PARAMS = (
    Param("depth_kind", "choice", "auto", "what a given depth map holds: distance in metres, or relative "
          "disparity (near = bright); auto: a float file or layer is metres, 8/16-bit is disparity, else values "
          "all within 0..1 are disparity", choices=("auto", "distance", "disparity"), title="Depth kind", advanced=True),
    Param("focus_distance", "float", None, "distance of the new focal plane (a distance map, or no depth map: "
          "then the depth service's metric depth)", unit="m", min=0.01, max=100000.0, optional=True, step=0.1),
    Param("focus_at", "point", None, "pixel whose depth becomes the focal plane (x,y from the top-left); "
          "with neither this nor a focus distance: the nearer eye of the largest face (no face: the median depth "
          "of the frame's central third)", optional=True, title="Focus at"),
    Param("f_number", "float", 2.0, "aperture of the simulated lens (smaller = more blur)", unit="f-number",
          min=0.5, max=64.0, step=0.1, title="F-number"),
    Param("focal_length", "float", 85.0, "focal length of the simulated lens", unit="mm", min=1.0, max=2000.0,
          step=1.0),
    Param("sensor_width", "float", 36.0, "sensor width (36 = full frame): maps millimetres to pixels and, with "
          "the focal length, gives the field of view (without a depth map: how far the face is)", unit="mm",
          min=1.0, max=200.0, step=0.1, advanced=True),
    Param("blades", "int", 0, "aperture blades: 0 = round, 3..16 = polygonal bokeh", min=0, max=16, step=1),
    Param("blade_rotation", "float", 0.0, "rotation of the polygonal aperture", unit="deg", min=-360.0,
          max=360.0, step=1.0, advanced=True),
    Param("background_distance", "float", 10.0, "without a depth map: how far the background is (the portrait "
          "proxy puts it there; a depth network's map reaches no farther). The subject's distance comes from its "
          "face's size", unit="m", min=0.1, max=100000.0, step=0.5),
    Param("blur_at_infinity", "float", 0.05, "a disparity map of your own (no metres): the blur of a point at "
          "infinity when focused on the nearest point (disparity 1), as a fraction of the image width; blur = "
          "this x |disparity - focus disparity|. 0.05: about an 85 mm lens at f/2 focused at 2 m on full frame",
          unit="fraction", min=0.0, max=MAX_COC_FRACTION, step=0.005, advanced=True),
    Param("highlight_boost", "float", 4.0, "linear gain for clipped highlights before blurring, so point "
          "lights become bright discs (1 = off)", unit="ratio", min=1.0, max=100.0, step=0.5, advanced=True),
    Param("original_f_number", "float", None, "aperture the photo was taken at (with the original focus "
          "distance: enables sharpening where the new focus is sharper)", unit="f-number", min=0.5, max=64.0,
          optional=True, step=0.1, title="Original f-number", advanced=True),
    Param("original_focus_distance", "float", None, "distance the photo was focused at", unit="m", min=0.01,
          max=100000.0, optional=True, step=0.1, advanced=True),
    Param("grain", "bool", True, "re-add the original noise and grain in blurred areas"),
    Param("sharpen", "bool", True, "where the original was blurrier than the new focus asks, sharpen by a "
          "bounded deconvolution of the original blur (needs the original f-number and focus distance)", advanced=True),
)

registry.register(Operator(
    name="refocus",
    title="Refocus",
    help="move the plane of focus and open the aperture after capture: thin-lens bokeh from a depth map, or "
         "without one from a metric portrait depth (the subject's distance from its face's size)",
    inputs=(Input("image", "image", "the photo"),
            Input("depth", "depth", "depth map: .npy or float TIFF in metres, or 8/16-bit PNG disparity "
                  "(near = bright); default: the depth service, in metres for the lens", required=False)),
    params=PARAMS,
    run=run,
    demo=demo,
    order=60,
))
