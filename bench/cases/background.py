"""Background replacement: 12 MP and the 1 MP preview, on the available device, with the matte's share.

The portrait is scikit-image's astronaut scaled up (12 MP: 3464×3464; preview: 1000×1000), the plate the bundled
procedural one at 2/3 of the height, and every stage on: person segmentation, the face's distance, the
closed-form matte, defocus at f/2, colour matching, light wrap and grain. Each row says how the time splits
between the stages (from the progress checkpoints, wall seconds): `matte_s` is the subject mask, the matte solve
and its full-size upsampling and foreground colours together, `matte_share` its fraction of the whole. The
first call in a process loads pymatting's compiled kernels (about 1.5 s) and the networks: each case warms up on
a small picture first, and the preview is the best of two, as a dialog's preview runs in a warm worker.
"""
from __future__ import annotations

import time

import numpy as np

from bench.runner import Case

STAGES = (("subject found", "segmentation"), ("matte at full size", "matte"), ("layers composited", "plate"),
          ("composited", "composite"), ("grain matched", "grain"))


def _portrait(side: int) -> np.ndarray:
    import cv2
    from skimage import data
    img = data.astronaut().astype(np.float32) / 255.0
    return np.clip(cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _timed_case(img, bg, params, device):
    from core import registry
    from core.jobs import Job

    last = {}

    def ours():
        marks = []
        t0 = time.perf_counter()
        job = Job(lambda f, m: marks.append((m, time.perf_counter() - t0)))
        out = registry.run("background", {"image": img, "background": bg}, params, device=device, job=job)
        last["marks"], last["total"] = marks, time.perf_counter() - t0
        return out

    def quality(result, _peer):
        at = {m: t for m, t in last["marks"]}
        figures, prev = {}, 0.0
        for message, name in STAGES:
            if message in at:
                figures[f"{name}_s"] = round(at[message] - prev, 3)
                prev = at[message]
        matte = figures.get("segmentation_s", 0.0) + figures.get("matte_s", 0.0)
        figures.update({"matte_s": round(matte, 3), "matte_share": round(matte / max(last["total"], 1e-9), 3),
                        "matte_size": result.info.get("matte_size"), "mixed_px": result.info.get("mixed_px"),
                        "plate_coc_px": result.info.get("plate_coc_px"),
                        "render_reduction": result.info.get("render_reduction")})
        figures.pop("segmentation_s", None)
        return figures

    return ours, quality


def cases(quick: bool):
    from core import registry
    from core.device import select_device
    from core.operators.background import demo_plate

    device = str(select_device(None))
    params = {"f_number": 2.0, "horizon": 0.55, "match_color": 0.5, "light_wrap": 0.3, "match_grain": 1.0}
    # Warm the process once: pymatting's kernels, colour-science, the face and person networks.
    warm = _portrait(256)
    registry.run("background", {"image": warm, "background": demo_plate.plate(170, 256, seed=3)}, params,
                 device=device)
    out = []
    sizes = [("1 MP preview", 1000)] + ([] if quick else [("12 MP", 3464)])
    for name, side in sizes:
        img = _portrait(side)
        bg = demo_plate.plate(side * 2 // 3, side, seed=3)
        ours, quality = _timed_case(img, bg, params, device)
        out.append(Case("background", name, f"{side}x{side}", ours, device=device, quality=quality,
                        repeat=2 if "preview" in name else 1))
    return out
