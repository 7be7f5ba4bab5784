"""A test-only operator for the GIMP adapter: it uses a required extra input and a point parameter, so a run in
real GIMP shows whether extra input layers and image-pixel points land on the right pixels of the processed
region (layer offsets and selection bounds both move the origin).

  gimptest_mix  out = image·(1 − amount) + amount·luma(depth), optionally inverted, with a red pixel at `mark`
                (a point in the region's pixels; None = no mark)
"""
import numpy as np

from core import registry
from core.registry import Input, Operator, Output, Param


def _mix(inputs, p, ctx):
    img = inputs["image"]
    depth = inputs["depth"]
    luma = depth[:, :, :3].mean(axis=2, keepdims=True) if depth.shape[2] >= 3 else depth[:, :, :1]
    if p["invert"]:
        luma = 1.0 - luma
    out = img * (1.0 - p["amount"]) + p["amount"] * luma
    ctx.job.progress(0.5, "mixing")
    if p["mark"] is not None:
        x, y = int(round(p["mark"][0])), int(round(p["mark"][1]))
        if 0 <= y < out.shape[0] and 0 <= x < out.shape[1]:
            out[y, x, :3] = (1.0, 0.0, 0.0)
    return Output(out.astype(np.float32), info={"models": {"none": "0"}, "mean_depth": float(luma.mean())})


MIX = Operator(
    name="gimptest_mix", title="GIMP test mix", help="mix the picture with a depth layer (tests only)",
    inputs=(Input("image", "image", "the picture"), Input("depth", "depth", "a depth map layer (required)")),
    params=(Param("amount", "float", 0.5, "how much of the depth map", unit="ratio", min=0.0, max=1.0),
            Param("invert", "bool", False, "use 1 − depth"),
            Param("mark", "point", None, "paint a red pixel here", unit="px", optional=True)),
    run=_mix, order=1100)


def install():
    registry.register(MIX)


def uninstall():
    registry.unregister(MIX.name)
