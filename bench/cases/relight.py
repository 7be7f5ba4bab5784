"""Relight on a 12 MP portrait (one light; three lights with cast shadows) and a 1 MP preview, on the chosen
device, through the whole default path: faces, person mask, face-mesh geometry, the old light's SH fit, the new
lights, the ratio image.

The portrait is scikit-image's astronaut upscaled into a 4000×3000 frame (as bench/cases/faces.py). No peer:
no open tool relights from face geometry offline. The runner gives the CPU seconds used (cpu_s: on a shared
machine the wall time overstates the cost); each row adds, as a sanity figure, how the image-right cheek
changed under a light from the right (> 1 = brighter).
"""
from __future__ import annotations

import numpy as np

from bench.runner import Case

ONE_LIGHT = {"preset": "none", "light": [[60, 20, 1.0, 5600, 10]]}
THREE_LIGHTS = {"preset": "none", "light": [[60, 20, 1.0, 5600, 10], [-40, 5, 0.25, 6504, 30],
                                            [150, 15, 0.8, 3200, 8]], "shadows": 0.8, "specular": 0.5}


def _portrait(long_side: int):
    import cv2
    from skimage import data

    side = int(round(long_side * 0.75))
    img = cv2.resize(data.astronaut().astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = (long_side - side) // 2
    frame = cv2.copyMakeBorder(np.clip(img, 0, 1), 0, 0, pad, long_side - side - pad, cv2.BORDER_REPLICATE)
    return frame, side / 512.0, pad


def cases(quick: bool):
    from core import face, registry
    from core.device import select_device

    if not (face.available() and face.available((face.SELFIE,))):
        print("relight: MediaPipe weights not installed (python -m core models fetch all); skipped")
        return []
    device = str(select_device())
    face.detect_faces(np.zeros((256, 256, 3), np.float32), device=device)   # networks loaded once (warm worker)
    face.person_mask(np.zeros((64, 64, 3), np.float32), device=device)
    from core.operators.relight import lights
    for item in ONE_LIGHT["light"] + THREE_LIGHTS["light"]:
        lights.kelvin_rgb(item[3])      # colour-science's first import (0.7 s) happens once in a warm worker
    sizes = [("1 MP preview", 1155)] + ([] if quick else [("12 MP", 4000)])
    out = []
    for label, long_side in sizes:
        img, scale, pad = _portrait(long_side)
        # The image-right cheek of the astronaut (about x 235-262, y 125-160 at 512 px).
        x0, x1 = int(pad + 235 * scale), int(pad + 262 * scale)
        y0, y1 = int(125 * scale), int(160 * scale)
        for what, params in (("one light", ONE_LIGHT), ("three lights + shadows + specular", THREE_LIGHTS)):
            if "preview" in label and what != "one light":
                continue
            def ours(params=params, img=img):
                return registry.run("relight", {"image": img}, params, device=device)

            def quality(result, _peer, x0=x0, x1=x1, y0=y0, y1=y1, img=img):
                from core.imaging.color import srgb_to_linear
                before = srgb_to_linear(img[y0:y1, x0:x1]).mean()
                after = srgb_to_linear(result.image[y0:y1, x0:x1]).mean()
                return {"right_cheek_gain": round(float(after / before), 3),
                        "geometry": result.info.get("geometry", "")[:40]}

            out.append(Case("relight", f"{label}, {what}", f"{img.shape[1]}x{img.shape[0]}", ours,
                            device=device, quality=quality, repeat=3 if "preview" in label else 2))
    return out
