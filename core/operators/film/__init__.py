"""film: the look of a film stock from its datasheets (spectral response, curves, dyes, print), silver-halide
grain and halation; or the colour and grain of a reference frame.

Stages (one module each):
  stocks.py        the stocks offered and their digitised datasheets (spectral-film-lut, MIT)
  spectral.py      the spectral grid, illuminants, observer, densitometers, sRGB -> reflectance upsampling
  dyes.py          dye spectra and the exact inversion of densitometer readings to dye amounts
  sensitometry.py  characteristic curves per layer on a log-exposure grid; the ISO mid-grey exposure
  granularity.py   each layer's RMS grain (48 µm) from the datasheet's granularity chart and figure
  bake.py          negative -> print (timed to a neutral grey), slide, or scan -> display: the 3-D LUT
  cache.py         baked looks on disk, atomic, keyed by stock, print, LUT size and data version
  halation.py      the red-orange glow from the base, on exposure before the curve
  grain.py         resolution-independent, position-hashed grain fields of physical size
  lut.py           1-D and 3-D (trilinear) table lookups, OpenCV on the CPU, torch on a GPU
  render.py        the per-pixel pipeline in strips
  reference.py     --reference: stock fit, Monge-Kantorovich + sliced colour transfer, measured grain
Help page: core/operators/film/README.md.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ...errors import UserError
from ...registry import Context, Input, Operator, Output, Param, register
from . import cache, render, stocks


def settings(params: Dict[str, Any], shape, ctx: Context) -> render.Settings:
    """The render settings of one run; lengths physical (µm on the film), the pitch from the format."""
    return render.Settings(exposure_ev=params["exposure"], grain=params["grain"],
                           grain_size_um=params["grain_size"], pitch_um=render.pitch_um(shape, params["format"]),
                           halation=params["halation"], halation_radius_um=params["halation_radius"],
                           strength=params["strength"], seed=ctx.seed)


def run(inputs: Dict[str, Any], params: Dict[str, Any], ctx: Context) -> Output:
    image = inputs["image"]
    reference = inputs.get("reference")
    job = ctx.job
    device = ctx.torch_device()
    if reference is not None:
        if params["stock"] is not None:
            raise UserError("give either --stock or --reference, not both: with a reference the stock is "
                            "fitted to it (see --fit-stock)", "bad-parameter")
        from . import reference as ref
        return ref.run(image, reference, params, ctx, device)
    stock_id = params["stock"] or stocks.DEFAULT_STOCK
    s = settings(params, image.shape[:2], ctx)
    info: Dict[str, Any] = {"stock": stock_id, "format": params["format"], "pitch_um": round(s.pitch_um, 3)}
    if stock_id == stocks.NONE:
        if params["print"] != "auto":
            raise UserError("--stock none applies grain and halation only: it takes no print", "bad-parameter")
        job.progress(0.05, "grain and halation")
        out = render.render_none(image, s, device, job.sub(0.05, 1.0))
        return Output(out, info=info)
    st = stocks.stock(stock_id)
    print_id = stocks.resolve_print(st, params["print"])
    job.progress(0.02, f"{st.title}: loading its look")
    look = cache.look(stock_id, print_id or "auto", progress=lambda f: job.progress(0.02 + 0.28 * f, "baking"))
    job.progress(0.3, f"{st.title}: rendering")
    out = render.render_stock(image, look, s, device, job.sub(0.3, 1.0))
    info.update({"stock_title": st.title, "print": look.print_id or "none (slide)",
                 "grain_size_um": round(s.grain_size_um if s.grain_size_um is not None else look.grain_size_um, 3),
                 "lut_bake_seconds": round(look.bake_seconds, 3), "rms_x1000": look.info.get("rms_x1000")})
    return Output(out, info=info)


def demo(image: np.ndarray, seed: int):
    """The portrait through Portra 400 printed on Endura, grain and glow shown at the size of a screen
    (the bundled portrait is small: a 35 mm frame's grain would be invisible at 512 px)."""
    return {"image": image}, {"stock": "portra-400", "grain": 3.0, "halation": 2.0}


PARAMS = (
    Param("stock", "choice", None, "film stock, from its datasheets (none: grain and halation only); empty: "
          "Kodak Portra 400, or with a reference the stock that best explains it",
          choices=stocks.STOCK_IDS + (stocks.NONE,), optional=True),
    Param("exposure", "float", 0.0, "camera exposure against the stock's box speed (push/pull): + puts more light "
          "on the film; the print stays timed for normal exposure, so the picture gets brighter and shows the "
          "film's own shoulder and toe", unit="stops", min=-5.0, max=5.0, step=0.1),
    Param("grain", "float", 1.0, "grain amount: 1 = the stock's datasheet granularity at this film format, "
          "0 = no grain", unit="ratio", min=0.0, max=10.0, step=0.1),
    Param("grain_size", "float", None, "size of the grain clumps (dye clouds) on the film; empty: the stock's "
          "(larger for coarser stocks)", unit="µm", min=0.5, max=200.0, optional=True, step=0.5),
    Param("format", "choice", "35mm", "film format the picture fills (its long side): maps µm on the film to "
          "pixels, so larger formats show finer grain", choices=tuple(render.FORMATS)),
    Param("halation", "float", 1.0, "halation: the red-orange glow around highlights from light scattered in "
          "the film base; 1 = a film with an anti-halation layer, about 8 = one without (CineStill), 0 = off",
          unit="ratio", min=0.0, max=20.0, step=0.1),
    Param("halation_radius", "float", 200.0, "spread of the glow in the red layer on the film (green 0.8×, "
          "blue 0.6× of it)", unit="µm", min=5.0, max=2000.0, step=5.0, advanced=True),
    Param("strength", "float", 1.0, "mix with the original picture: 1 = the full film look, 0 = unchanged",
          unit="ratio", min=0.0, max=1.0, step=0.05),
    Param("print", "choice", "auto", "how a negative is shown: auto = the stock's usual print, scan = a neutral "
          "scan, or a print stock (slides are viewed directly)", choices=stocks.PRINT_CHOICES, advanced=True),
    Param("fit_stock", "bool", True, "with a reference: first find the stock and exposure that best explain it, "
          "then transfer only what remains", advanced=True),
)

register(Operator(
    name="film",
    title="Film Look",
    help="render the photo as a film stock (spectral datasheet model, print, silver-halide grain, halation) or "
         "take the colour and grain of a reference frame",
    inputs=(Input("image", "image", "the photo"),
            Input("reference", "reference", "a frame whose colour and grain to take (a film scan); instead of "
                  "a stock", required=False)),
    params=PARAMS,
    run=run,
    demo=demo,
    order=30,
))
