"""A tiny operator for foundation tests: a local 3×3 box blur scaled by `gain`, with a seeded noise option.

It exists only in tests (registered by the fixture in test files), so registry, CLI and mask behaviour can be
checked against an exactly known result.
"""
import numpy as np

from core import registry
from core.registry import Input, Operator, Param


def box3(img: np.ndarray) -> np.ndarray:
    import cv2
    return cv2.blur(img, (3, 3), borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)


def _run(inputs, p, ctx):
    img = inputs["image"]
    out = box3(img) * p["gain"]
    if p["noise"] > 0:
        rng = np.random.default_rng(ctx.seed)
        out = out + rng.normal(0, p["noise"], out.shape).astype(np.float32)
    for k in range(4):
        ctx.job.progress(k / 4, "toy")
    return out


TOY = Operator(
    name="toy", title="Toy", help="box blur times gain (tests only)",
    inputs=(Input("image", "image", "the picture"), Input("depth", "depth", "unused depth", required=False)),
    params=(Param("gain", "float", 1.0, "multiplier", unit="ratio", min=0.0, max=4.0),
            Param("noise", "float", 0.0, "noise sigma", min=0.0, max=1.0),
            Param("mode", "choice", "a", "a choice", choices=("a", "b")),
            Param("flag", "bool", False, "a flag"),
            Param("where", "point", None, "a pixel", unit="px", optional=True),
            Param("count", "int", 3, "a count", min=1, max=9)),
    run=_run,
    demo=lambda image, seed: ({"image": image}, {"gain": 1.0}),
)


def install():
    registry.register(TOY)


def uninstall():
    registry.unregister("toy")
