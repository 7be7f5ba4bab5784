"""Expression on a 12 MP portrait and a 1 MP preview, on the chosen device, through the whole default path: faces,
the 478-point mesh, the blendshape coefficients, the solve, the warp (and its one correction), the verification.

The portrait is scikit-image's astronaut upscaled into a 4000×3000 frame (as bench/cases/faces.py and relight.py):
the face is then about 630 px tall (182 px at 1 MP). No peer: no open tool edits an expression offline. Each row
adds what the verification measured (the share of the asked smile change the landmark and blendshape models see on
the result, the largest change of any other coefficient) and how the time splits: the warp's work grows with the
face's area in pixels, the networks' does not. Three repeats each: the machine is shared, and the row keeps CPU
seconds too.

Measured on the shared 2-core machine, CPU-s (wall) over 4 repeats, before → after the speed pass of issue 17:
1 MP 1.06-1.48 (1.2-2.6) → 0.58-0.71 (0.58-0.71); 12 MP 1.38-2.34 (1.4-3.8) → 1.01-1.47 (0.9-2.3). What is left
at 1 MP: the free part's L-BFGS solve (30 iterations of forward and backward, 0.3 s), the faces and landmarks
(0.07-0.1 s), two fields (0.06 s each) and two landmark passes (0.04 s each).
"""
from __future__ import annotations

import numpy as np

from bench.runner import Case

PARAMS = {"smile": 0.6}


def _portrait(long_side: int):
    import cv2
    from skimage import data

    side = int(round(long_side * 0.75))
    img = cv2.resize(data.astronaut().astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = (long_side - side) // 2
    return cv2.copyMakeBorder(np.clip(img, 0, 1), 0, 0, pad, long_side - side - pad, cv2.BORDER_REPLICATE)


def cases(quick: bool):
    from core import face, registry
    from core.device import select_device
    from core.models import blendshapes

    if not (face.available() and blendshapes.available()):
        print("expression: face or blendshape weights not installed (python -m core models fetch all); skipped")
        return []
    device = str(select_device())
    face.detect_faces(np.zeros((256, 256, 3), np.float32), device=device)   # networks loaded once (warm worker)
    blendshapes.network()
    sizes = [("1 MP preview", 1155)] + ([] if quick else [("12 MP", 4000)])
    out = []
    for label, long_side in sizes:
        img = _portrait(long_side)

        def ours(img=img):
            return registry.run("expression", {"image": img}, PARAMS, device=device)

        def quality(result, _peer):
            f = result.info["faces"]
            return {"achieved_fraction": f.get("achieved_fraction"),
                    "largest_unintended": abs(f.get("largest_unintended", {}).get("change", 0.0)),
                    "face_px": f["face_px"], "correction": f.get("correction"), "min_jacobian": f["min_jacobian"]}

        out.append(Case("expression", f"{label}, smile 0.6", f"{img.shape[1]}x{img.shape[0]}", ours,
                        device=device, quality=quality, repeat=3))
    return out
