"""relight: move the light on a face after the shot, by re-rendering the subject's geometry.

Stages (one module each):
- geometry: the subject's normals and height, from a normal map, a depth map or the face mesh (mesh_surface);
- sh: the old light, as 9 spherical-harmonic coefficients, fitted robustly over the subject (one colour);
- lights: the new lights (directions, kelvin colour, presets);
- shading: diffuse (point, area, wrap) and specular shading of the new lights;
- response: how this photo's skin colour follows the light (its colour law, measured on the face);
- shadows: cast shadows by marching the height field toward each light.

Re-rendering is a ratio image in linear light, I' = I · S_new / S_old (+ a specular term on skin): the albedo,
every pore of it, is untouched by construction because only the shading changes. The old light is one colour
(its luminance shading: a colour that changes across the face is the albedo's as far as one picture can tell),
so the ratio is the light's level k = Y(S_new) / S_old, clamped to [1 / MAX_GAIN, MAX_GAIN], times the new
lights' own colour S_new / Y(S_new); on skin the level is spread over the channels by the photo's own colour law
(`response`: the same skin in less light is warmer and more saturated), elsewhere it is one number per pixel.
With no --mask only the person (the person mask, feathered) is relit, and pixels outside it are bit-identical;
with a mask the mask is the subject (the registry blends by it afterwards).

Geometry, the light fit and shadows run at a working resolution of at most WORK_SIDE pixels on the long side
(shadows at SHADOW_SIDE); the ratio, which is smooth, is upsampled to the full picture.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ... import registry
from ...errors import UserError
from ...imaging import depthmap
from ...imaging.color import linear_to_srgb, srgb_to_linear
from ...registry import Context, Input, Operator, Output, Param
from . import geometry as geo
from . import lights as L
from . import mesh_surface, reference, response, shading, shadows, sh

WORK_SIDE = 800          # geometry, the light fit and the ratio image: the shading of a face is smooth
PERSON_SIDE = 480        # the person mask's edge-aware upsampling stops here (the subject is feathered anyway)
SHADOW_SIDE = 512        # height-field marching: a face's cast shadows are soft at this scale
MAX_GAIN = 4.0           # the ratio never brightens or darkens a pixel by more than 2 stops (noise, bad normals)
OLD_LIGHT_FLOOR = 0.35   # of the old shading's mean: where the fit extrapolates to "no light" (under the nose,
                         # below the chin) a real photo still had bounce light; never divide by ~0
DEFAULT_AMBIENT = 0.2    # with lights (no reference): what fills the shadows
EXPOSE_PERCENTILE = 90.0  # keep_exposure matches this percentile of the subject's shading, old and new
PERSON_FLOOR = 0.02      # person probability below which a pixel is background: left bit-identical
MESH_SHADOW_SOFTENING = 0.025  # Gaussian σ of the mesh's cast shadows, in face widths
FEATHER_FRACTION = 0.01  # of the long side: the person mask's edge is softened this much when it is the subject


# ---------------------------------------------------------------------------------------------- helpers

def _resize(arr: np.ndarray, size: Tuple[int, int], shrink: bool) -> np.ndarray:
    import cv2
    if arr.shape[:2] == (size[1], size[0]):
        return arr
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _work_size(h: int, w: int, side: int) -> Tuple[int, int]:
    s = min(1.0, side / max(h, w))
    return max(1, round(w * s)), max(1, round(h * s))


def _lights(p: Dict[str, Any], has_reference: bool) -> Tuple[List[L.Light], str]:
    given = [L.from_item(item, k) for k, item in enumerate(p["light"] or [])]
    preset = p["preset"]
    if preset == "auto":
        preset = "none" if (given or has_reference) else L.DEFAULT_PRESET
    chosen = list(L.PRESETS.get(preset, ())) + given
    return chosen, preset


def _faces(image_work: np.ndarray, device, required: bool, where: str = "picture"):
    """The faces (with landmarks) in `image_work`; with `required`, none is a UserError."""
    from ... import face
    if not face.available():
        if required:
            raise UserError(f"relight's face mesh needs the face models for the {where}: run 'python -m core "
                            f"models fetch all' (or give a normal map or a depth map)", "missing-model")
        return []
    # Portraits first: the whole view only (faces wider than about a sixth of the picture), then, if that
    # finds nothing, the detector's finer windows too. Irises are not needed here.
    found = face.detect_faces(image_work, landmarks=False, tile_levels=0, device=device)
    if not found:
        found = face.detect_faces(image_work, landmarks=False, device=device)
    for f in found:
        face.face_landmarks(image_work, f, irises=False, device=device)
    found = [f for f in found if f.presence is None or f.presence >= face.MIN_PRESENCE]
    if required and not found:
        raise UserError(f"no face found in the {where}: relight's face mesh needs a visible face (or give a "
                        f"normal map or a depth map)", "no-face")
    return found


def _person(image_work: np.ndarray, device) -> np.ndarray:
    from ... import face
    if not face.available((face.SELFIE,)):
        raise UserError("relight needs the subject: give a mask, or fetch the person model with "
                        "'python -m core models fetch all'", "missing-model")
    h, w = image_work.shape[:2]
    size = _work_size(h, w, PERSON_SIDE)
    if size == (w, h):
        return face.person_mask(image_work, device=device)
    # The network sees 256×256 anyway; its edge-aware upsampling need not go further than PERSON_SIDE.
    small = face.person_mask(_resize(image_work, size, True), device=device)
    return np.clip(_resize(small, (w, h), False), 0.0, 1.0)


def _feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    import cv2
    if sigma < 0.3:
        return mask.astype(np.float32)
    return np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma), 0.0, 1.0)


def _clip_keeping_hue(lin: np.ndarray, ceiling: float) -> np.ndarray:
    """A pixel brightened past the ceiling is scaled down as a whole (all channels by the same factor), so a
    brightened cheek keeps its colour instead of clipping red first and turning pale. In place."""
    import cv2
    r, g, b = cv2.split(lin)
    peak = cv2.max(cv2.max(r, g), b)
    if float(peak.max()) > ceiling:
        scale = np.minimum(np.float32(ceiling) / np.maximum(peak, np.float32(1e-12)), np.float32(1.0))
        lin *= scale[:, :, None]
    np.maximum(lin, 0.0, out=lin)
    return lin


def _upsample_into(small: np.ndarray, full_size: Tuple[int, int], box: Tuple[int, int, int, int]) -> np.ndarray:
    """The bilinear upsampling of `small` to full_size (w, h), as cv2.resize would make it (pixel centres
    aligned), but only the part inside box = (x0, y0, x1, y1)."""
    import cv2
    w, h = full_size
    x0, y0, x1, y1 = box
    sx, sy = small.shape[1] / w, small.shape[0] / h
    m = np.float32([[sx, 0, sx * (x0 + 0.5) - 0.5], [0, sy, sy * (y0 + 0.5) - 0.5]])
    return cv2.warpAffine(small, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _apply(image: np.ndarray, ratio: np.ndarray, spec: Optional[np.ndarray], blend: Optional[np.ndarray]):
    """The full-resolution picture: I' = I · R + specular in linear light (R and the specular upsampled from
    the working resolution), blended by `blend` (None: not here, the registry blends by the mask). Only the
    bounding box of what changes is touched: outside it the ratio is exactly 1 and the picture is copied."""
    h, w = image.shape[:2]
    wh, ww = ratio.shape[:2]
    active = np.abs(ratio - 1.0).max(axis=2) > 0
    if spec is not None:
        active |= spec.max(axis=2) > 0
    ys, xs = np.nonzero(active)
    out = image.copy()
    if xs.size == 0:
        return out
    # One working pixel of margin each side: beyond it the bilinear ratio interpolates only 1s.
    x0 = max(int(np.floor((xs.min() - 1) * w / ww)), 0)
    x1 = min(int(np.ceil((xs.max() + 2) * w / ww)), w)
    y0 = max(int(np.floor((ys.min() - 1) * h / wh)), 0)
    y1 = min(int(np.ceil((ys.max() + 2) * h / wh)), h)
    box = (x0, y0, x1, y1)
    src = image[y0:y1, x0:x1]
    lin = srgb_to_linear(src)
    if (wh, ww) == (h, w):
        lin *= ratio[y0:y1, x0:x1]
        if spec is not None:
            lin += spec[y0:y1, x0:x1]
    else:
        lin *= _upsample_into(ratio, (w, h), box)
        if spec is not None:
            lin += _upsample_into(spec, (w, h), box)
    ceiling = max(1.0, float(src.max()))
    lin = _clip_keeping_hue(lin, float(srgb_to_linear(np.float32([ceiling]))[0]))
    res = np.clip(linear_to_srgb(lin), 0.0, ceiling).astype(np.float32)
    if blend is not None:
        wgt = blend[y0:y1, x0:x1] if (wh, ww) == (h, w) else _upsample_into(blend, (w, h), box)
        # src + (res − src) · 0 is src exactly: where the weight is 0 the pixel stays bit-identical.
        res -= src
        res *= wgt[:, :, None]
        res += src
    out[y0:y1, x0:x1] = res
    return out


def _point_light_field(direction: np.ndarray, normals: np.ndarray, height: np.ndarray,
                       centre: Tuple[float, float, float], distance_m: float, metres_per_px: float):
    """(n·l, intensity scale) per pixel of a point light at distance_m from the subject's centre along
    `direction`, with inverse-square falloff normalised to 1 at the centre."""
    h, w = height.shape
    cx, cy, cz = centre
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pos = np.stack([(xx + 0.5 - cx), -(yy + 0.5 - cy), height - cz], axis=2) * np.float32(metres_per_px)
    to_light = (np.asarray(direction) * distance_m).astype(np.float32)[None, None, :] - pos
    dist = np.linalg.norm(to_light, axis=2)
    ldir = to_light / np.maximum(dist, 1e-6)[:, :, None]
    cos = np.einsum("hwc,hwc->hw", normals, ldir)
    return cos.astype(np.float32), (distance_m ** 2 / np.maximum(dist, 1e-6) ** 2).astype(np.float32)


def _reference_light(inputs, ctx: Context) -> Tuple["reference.ReferenceLight", Dict[str, Any]]:
    """The light of the reference portrait, from its own geometry (its normal map if given, else its mesh)."""
    import cv2

    from ... import face
    ref = inputs["light_from"]
    rh, rw = ref.shape[:2]
    if min(rh, rw) < 8:
        raise UserError(f"the reference is {rw}x{rh}: too small to read a light from", "bad-input")
    size = _work_size(rh, rw, WORK_SIDE)
    ref_w = _resize(ref[:, :, :3], size, True)
    lin = srgb_to_linear(np.clip(ref_w, 0.0, None))
    if inputs.get("light_from_normals") is not None:
        from ...imaging import normalmap
        nm = normalmap.interpret(inputs["light_from_normals"], ctx.stored_as.get("light_from_normals"),
                                 name="reference's normal map")
        geo._check_aspect("reference's normal map", nm.normals.shape[:2], (size[1], size[0]))
        if nm.normals.shape[:2] != (size[1], size[0]):
            nm = normalmap.resize(nm, size[0], size[1])
        normals = nm.normals
        # The reference's subject: where its map holds a normal that is not the background's (0, 0, 1).
        tilt = np.linalg.norm(normals - np.array([0.0, 0.0, 1.0], np.float32), axis=2)
        region = (nm.valid & (tilt > 1e-4)).astype(np.float32)
        region = cv2.erode(region, np.ones((3, 3), np.uint8))
        how = "its normal map"
    else:
        faces = _faces(ref_w, ctx.device, True, "reference")
        person = _person(ref_w, ctx.device)
        g = geo.from_mesh([f.landmarks for f in faces], person)
        normals = g.normals
        region = face.region_mask(ref_w, "skin", faces, device=ctx.device) * g.face_weight
        how = "its face mesh"
    if float((region > 0.5).sum()) < 64:
        raise UserError("the reference has too little face to read its light from", "bad-input")
    light = reference.read(lin, normals, region)
    return light, {"reference_geometry": how, **{f"reference_{k}": v for k, v in light.describe().items()}}


# ---------------------------------------------------------------------------------------------- the run

def run(inputs: Dict[str, Any], p: Dict[str, Any], ctx: Context) -> Output:
    image = inputs["image"]
    h, w = image.shape[:2]
    job = ctx.job
    has_ref = inputs.get("light_from") is not None
    if inputs.get("light_from_normals") is not None and not has_ref:
        raise UserError("a normal map of the reference needs the reference itself (--light-from)", "missing-input")
    if inputs.get("normals") is not None and inputs.get("depth") is not None:
        raise UserError("give a normal map or a depth map, not both", "bad-input")
    new_lights, preset = _lights(p, has_ref)
    ambient = p["ambient"] if p["ambient"] is not None else (0.0 if has_ref else DEFAULT_AMBIENT)
    if not new_lights and not has_ref and ambient <= 0.0:
        raise UserError("no light left: give --light, a --preset, --light-from or an --ambient above 0",
                        "bad-parameter")
    if min(h, w) < 8:
        raise UserError(f"the image is {w}x{h}: relight needs at least 8x8 pixels", "bad-input")

    wsize = _work_size(h, w, WORK_SIDE)
    ww, wh = wsize
    img_work = np.clip(_resize(image, wsize, True), 0.0, None)
    lin_work = srgb_to_linear(img_work)
    job.progress(0.05, "relight: working copy")

    use_normals = inputs.get("normals") is not None
    use_depth = inputs.get("depth") is not None
    mesh = not (use_normals or use_depth)
    want_skin = p["specular"] > 0 or (p["wrap"] > 0 and any(l.size_deg > 0 for l in new_lights))
    need_faces = mesh or want_skin or p["light_distance"] > 0 or (use_depth and p["field_of_view"] is None)
    faces = _faces(img_work, ctx.device, mesh) if need_faces else []
    landmarks = [f.landmarks for f in faces if f.landmarks is not None]
    job.progress(0.15, f"relight: {len(faces)} face(s)")

    person = None
    if ctx.mask is not None:
        subject = _resize(ctx.mask.astype(np.float32), wsize, True)
    else:
        person = _person(img_work, ctx.device)
        # Feathered inward only (the product), and exactly 0 where the person mask is (nearly) 0, so the
        # background stays bit-identical.
        person = np.where(person > PERSON_FLOOR, person, 0.0).astype(np.float32)
        subject = person * _feather(person, FEATHER_FRACTION * max(ww, wh))
    if mesh and person is None:
        person = _person(img_work, ctx.device)
    if float(subject.max()) <= 0.0:
        return Output(image.copy(), info={"relit": False, "why": "the subject region is empty"})
    job.progress(0.25, "relight: subject")

    if use_normals:
        g = geo.from_normals(inputs["normals"], ctx.stored_as.get("normals"), (wh, ww), subject, landmarks)
    elif use_depth:
        kind = depthmap.kind_from_storage(p["depth_kind"], ctx.stored_as.get("depth"))
        g = geo.from_depth(inputs["depth"], kind, img_work, subject, landmarks, p["field_of_view"], w)
    else:
        g = geo.from_mesh(landmarks, person)
    normals = g.normals
    job.progress(0.4, f"relight: geometry from {g.source}")

    fit_weight = subject * g.confidence
    if float((fit_weight > 0.5).sum()) < 32:
        raise UserError("the subject is too small to read its light from (fewer than 32 pixels)", "bad-input")
    # The old light as one colour (see SHLight.grey): its luminance shading, the same in every channel.
    old = sh.normalise(sh.fit(lin_work, normals, fit_weight).grey(), normals, fit_weight)
    s_old = old.shading(normals)[:, :, 0]
    skin = None
    law_where = None
    if faces:
        from ... import face
        skin = face.region_mask(img_work, "skin", faces, device=ctx.device)
        law_where = response.skin_weight(img_work, skin, [f.landmarks for f in faces if f.landmarks is not None])
    # The colour law is read on confident geometry over skin (where it applies), see response.
    trusted = fit_weight > 0.5
    if law_where is not None:
        trusted &= law_where > 0.5
    law = response.estimate(lin_work, normals, old, trusted)
    job.progress(0.5, "relight: old light estimated")

    if not want_skin:
        skin = None
    wrap = p["wrap"] * skin if skin is not None else 0.0

    s_new = np.full((wh, ww, 3), np.float32(ambient), np.float32)
    spec = np.zeros((wh, ww, 3), np.float32)
    info: Dict[str, Any] = {"geometry": g.source, "preset": preset, "lights": [l.as_list() for l in new_lights],
                            "ambient": ambient, **(g.facts or {}), **{f"old_light_{k}": v for k, v in
                                                                       sh.describe(old).items()},
                            "colour_law_kappa": round(law["kappa"], 3)}
    # What is rendered: (direction, rgb intensity, angular radius, size in degrees) per light.
    render = [(l.direction, l.intensity * l.colour, l.half_angle_rad, l.size_deg) for l in new_lights
              if l.intensity > 0]
    if has_ref:
        ref_light, ref_info = _reference_light(inputs, ctx)
        info.update(ref_info)
        if ref_light.model == "rig":
            s_new += ref_light.rig.ambient.astype(np.float32)[None, None, :]
            render += [(d, rgb, 0.0, 0.0) for d, rgb in ref_light.rig.lights]
        else:
            s_new += ref_light.shading(normals)
    job.progress(0.55, "relight: new light")

    point = p["light_distance"] > 0
    if point and g.metres_per_px is None:
        raise UserError("point lights at a distance need the subject's scale: a face in the picture or a depth "
                        "map in metres (or set light distance 0 for distant lights)", "bad-parameter")
    inside = subject > 0.5
    ys, xs = np.nonzero(inside)
    centre = (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5, float(g.height[inside].mean())) if xs.size else \
        (ww / 2.0, wh / 2.0, 0.0)
    ssize = _work_size(wh, ww, SHADOW_SIDE)
    shadow_scale = ssize[0] / ww
    height_s = _resize(g.height, ssize, True) * np.float32(shadow_scale) if p["shadows"] > 0 else None
    subject_s = _resize(subject, ssize, True) if p["shadows"] > 0 else None
    # The face mesh's relief is coarse (468 points): the edges of the shadows it casts are no sharper than
    # its own detail, so they are softened by MESH_SHADOW_SOFTENING face widths (a depth or normal map's are not).
    soften = MESH_SHADOW_SOFTENING * mesh_surface.face_width(landmarks[0]) if (mesh and landmarks) else 0.0
    for k, (direction, rgb, half_angle, size_deg) in enumerate(render):
        if point:
            cos, falloff = _point_light_field(direction, normals, g.height, centre, p["light_distance"],
                                              g.metres_per_px)
        else:
            cos, falloff = shading.n_dot(normals, direction), None
        # Wrap belongs to the soft-light model (skin under an area light): a hard light is exactly max(n·l, 0).
        diff = shading.diffuse(cos, half_angle, wrap if size_deg > 0 else 0.0)
        vis = None
        if height_s is not None:
            vis = shadows.visibility(height_s, direction, half_angle, subject_s, job.check_cancel)
            vis = _resize(vis, wsize, False)
            if soften > 0.3:
                import cv2
                vis = cv2.GaussianBlur(vis, (0, 0), soften)
            vis = 1.0 - np.float32(p["shadows"]) * (1.0 - vis)
        term = diff
        if falloff is not None:
            term = term * falloff
        if vis is not None:
            term = term * vis
        colour = np.asarray(rgb, np.float32)[None, None, :]
        s_new += term[:, :, None] * colour
        if skin is not None and p["specular"] > 0:
            lobe = shading.specular(normals, direction, p["roughness"], half_angle)
            lobe = lobe * skin * np.float32(p["specular"])
            if falloff is not None:
                lobe = lobe * falloff
            if vis is not None:
                lobe = lobe * vis
            spec += lobe[:, :, None] * colour
        job.progress(0.55 + 0.3 * (k + 1) / max(len(render), 1), f"relight: light {k + 1}")

    if p["keep_exposure"]:
        # Expose for the key: the subject's brightest tenth keeps its brightness (luminance of the shading).
        pick = np.flatnonzero((fit_weight > 0.5).reshape(-1))
        pick = pick[::max(1, pick.size // 50_000)]          # a percentile needs no more samples
        lum_new = s_new.reshape(-1, 3)[pick] @ sh.LUMA.astype(np.float32)
        lum_old = s_old.reshape(-1)[pick]
        gain = float(np.percentile(lum_old, EXPOSE_PERCENTILE)) / max(float(np.percentile(lum_new,
                                                                                           EXPOSE_PERCENTILE)), 1e-6)
        s_new *= np.float32(gain)
        spec *= np.float32(gain)
        info["exposure_gain"] = round(gain, 4)
    sel = fit_weight > 0.5
    mean_old = max(float(s_old[sel].mean()), 1e-6)
    # The ratio: the level (luminance) of the light, clamped, times the new lights' own colour, spread over the
    # channels by the photo's colour law (response: darker is more saturated, as in the photo's own shadows).
    lum_new = s_new @ sh.LUMA.astype(np.float32)
    level = lum_new / np.maximum(s_old, np.float32(OLD_LIGHT_FLOOR * mean_old))
    level = np.clip(level, 1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)
    tint = np.where((lum_new > 1e-6)[:, :, None], s_new / np.maximum(lum_new, 1e-6)[:, :, None], 1.0)
    gains = response.channel_gains(level, lin_work, law["kappa"], law["range"], where=law_where)
    ratio = tint.astype(np.float32) * gains
    strength = np.float32(p["strength"])
    if strength < 1.0:
        ratio = np.power(ratio, strength)     # geometric: half strength is half the change in stops
        spec *= strength
    # Outside the subject nothing changes (ratio exactly 1, no specular), so the upsampled ratio fades there.
    wgt = subject if ctx.mask is None else (subject > 0).astype(np.float32)
    ratio = 1.0 + (ratio - 1.0) * wgt[:, :, None]
    spec *= wgt[:, :, None]
    job.progress(0.88, "relight: ratio image")
    out = _apply(image, ratio.astype(np.float32), spec if float(spec.max()) > 0 else None,
                 subject if ctx.mask is None else None)
    job.progress(0.97, "relight: done")
    info["relit_fraction"] = round(float((subject > 0.5).mean()), 4)
    return Output(out, info=info)


def demo(image: np.ndarray, seed: int):
    """The astronaut under a Rembrandt key with cast shadows and a touch of skin specular."""
    return {"image": image}, {"preset": "rembrandt", "shadows": 0.8, "specular": 0.5}


PARAMS = (
    Param("preset", "choice", "auto", "a classic portrait set-up (lights on the image's right): " +
          L.describe_presets() + " (azimuth, elevation, intensity, kelvin, size); auto = " + L.DEFAULT_PRESET +
          " unless lights or a reference are given; the --light lights are added to a preset",
          choices=("auto", "none") + L.PRESET_NAMES, title="Preset"),
    Param("light", "vector", [], "a light: azimuth, elevation (deg; azimuth 0 = from the camera, +90 = from the "
          "image's right; elevation +90 = from above), intensity (relative to the other lights; with keep "
          "exposure off, 1 from the camera gives the original exposure), "
          "colour temperature (K; 6504 = neutral) and size (deg, angular diameter; 0 = hard), e.g. "
          "45,30,1,6504,10; repeat for more lights", size=5, repeat=True, min=-360.0, max=40000.0,
          title="Lights", components=L.LIGHT_COMPONENTS),
    Param("ambient", "float", None, "light from everywhere, filling the shadows (automatic: 0.2 with lights, "
          "0 with a reference)", unit="ratio", min=0.0, max=4.0, optional=True, step=0.05),
    Param("strength", "float", 1.0, "how much of the change to apply (0 = the original, 1 = fully relit; "
          "geometric, so 0.5 is half the change in stops)", unit="fraction", min=0.0, max=1.0, step=0.05),
    Param("keep_exposure", "bool", True, "scale the new light so that the subject's brightest tenth keeps its "
          "brightness (exposing for the key light, as a photographer does); off: intensity 1 from the camera "
          "gives the original exposure", title="Keep exposure"),
    Param("specular", "float", 0.0, "skin highlights of the new lights, on skin only (1 = skin's own "
          "reflectance, Fresnel 0.028; more for oily skin)", unit="ratio", min=0.0, max=4.0, step=0.1),
    Param("roughness", "float", 0.45, "skin's microfacet roughness (0.3 = sheen, 0.6 = matte)", unit="ratio",
          min=0.05, max=1.0, step=0.05),
    Param("shadows", "float", 0.0, "strength of cast shadows (the nose on the cheek, the brow into the eye "
          "socket; 0.7-0.9 looks natural); 0 = off", unit="fraction", min=0.0, max=1.0, step=0.05),
    Param("wrap", "float", 0.15, "light wrapping past the terminator on skin (subsurface scattering), as a "
          "fraction of n·l", unit="fraction", min=0.0, max=1.0, step=0.05, advanced=True),
    Param("light_distance", "float", 0.0, "distance of the lights from the face (a point light with "
          "inverse-square falloff); 0 = distant (directional) lights", unit="m", min=0.0, max=100.0, step=0.1,
          advanced=True),
    Param("depth_kind", "choice", "auto", "what the depth map holds (as refocus): distance in metres or "
          "relative disparity (near = bright); auto: float files are metres, 8/16-bit are disparity",
          choices=("auto", "distance", "disparity"), advanced=True),
    Param("field_of_view", "float", None, "horizontal field of view of the camera, for normals from a depth map "
          "(automatic: from the face's size in a metric depth map, else 40°)", unit="deg", min=1.0, max=170.0,
          optional=True, step=1.0, advanced=True),
)

registry.register(Operator(
    name="relight",
    title="Relight",
    help="move the light on a face after the shot: the old light removed, new lights rendered on the face's "
         "geometry (normals, depth or the face mesh), with cast shadows; only the shading changes",
    inputs=(Input("image", "image", "the portrait"),
            Input("normals", "normals", "normal map of the subject: 8/16-bit as (n+1)/2 or float raw vectors; "
                  "default: from the depth map or the face mesh", required=False),
            Input("depth", "depth", "depth map: float in metres or 8/16-bit disparity (near = bright); default: "
                  "the face mesh", required=False),
            Input("light_from", "reference", "a reference portrait whose light is copied onto this face",
                  required=False),
            Input("light_from_normals", "normals", "the reference's normal map (default: its face mesh)",
                  required=False)),
    params=PARAMS,
    run=run,
    demo=demo,
    models=("mediapipe-blazeface", "mediapipe-facemesh", "mediapipe-selfie"),
    order=10,
))
