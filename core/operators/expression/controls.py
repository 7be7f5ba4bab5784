"""The user's controls as target expression coefficients.

Each control v in [-1, 1] pulls one set of coefficients toward 1 and its opposite toward 0, by the fraction |v| of
the way that is left (0 = unchanged, 1 = all the way):
    v > 0:  t_k = b_k + v (1 - b_k) for k in RAISE,   t_k = b_k (1 - v) for k in LOWER
    v < 0:  the same with RAISE and LOWER swapped and |v|.
b_k is the face's measured coefficient. So --smile 0.5 on a neutral face (mouthSmile ≈ 0.05) asks for 0.52, and
on a broad smile (0.92) for 0.96: the coefficient's own scale, where 1 is the full expression.

    control     RAISE (v > 0)                                   LOWER (v > 0)
    smile       mouthSmileLeft/Right                            mouthFrownLeft/Right
    brows       browInnerUp, browOuterUpLeft/Right              browDownLeft/Right
    eyes        eyeWideLeft/Right (open)                        eyeSquintLeft/Right (lid tightener: relaxed)
    gaze_x      eyeLookInRight, eyeLookOutLeft                  eyeLookOutRight, eyeLookInLeft
    gaze_y      eyeLookUpLeft/Right                             eyeLookDownLeft/Right
    jaw         jawOpen                                         (none: jaw < 0 lowers jawOpen toward 0)
"Left"/"Right" are the subject's (measured on the astronaut: closing the image-left eye raises eyeBlinkRight), so
gaze_x > 0 turns the eyes toward the image's right (the subject's left), gaze_y > 0 upward.

neutralize v > 0 moves every coefficient toward 0 by the fraction v (t = (1 - v) b); v < 0 exaggerates the
present expression (t = min(1, (1 + |v|) b)). It applies first; the controls above then set their own
coefficients; `--blendshape NAME=V` items last, as a change: t = clip(t + V, 0, 1).

Every coefficient whose target differs from its measured value is "targeted"; the others are held.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ...errors import UserError
from .coefficients import INDEX, NAMES

CONTROLS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "smile": (("mouthSmileLeft", "mouthSmileRight"), ("mouthFrownLeft", "mouthFrownRight")),
    "brows": (("browInnerUp", "browOuterUpLeft", "browOuterUpRight"), ("browDownLeft", "browDownRight")),
    "eyes": (("eyeWideLeft", "eyeWideRight"), ("eyeSquintLeft", "eyeSquintRight")),
    "gaze_x": (("eyeLookInRight", "eyeLookOutLeft"), ("eyeLookOutRight", "eyeLookInLeft")),
    "gaze_y": (("eyeLookUpLeft", "eyeLookUpRight"), ("eyeLookDownLeft", "eyeLookDownRight")),
    "jaw": (("jawOpen",), ()),
}
CONTROL_NAMES = tuple(CONTROLS) + ("neutralize",)
CHANGED = 1e-4        # a target this close to the measured value is no change


@dataclass
class Request:
    """What the user asked, in coefficient terms."""
    target: np.ndarray            # 52 target coefficients
    targeted: np.ndarray          # 52 bools: coefficients to move (the others are held)
    controls: Dict[str, float]    # the non-zero controls (name -> value), for the regions they may move
    named: List[str]              # coefficients named with --blendshape

    def requested(self, measured: np.ndarray) -> Dict[str, float]:
        return {NAMES[k]: float(self.target[k] - measured[k]) for k in np.flatnonzero(self.targeted)}


def parse_blendshapes(items: Sequence[str]) -> List[Tuple[str, float]]:
    """'NAME=VALUE' items (VALUE a change in [-1, 1]) → [(name, value)]; clear errors for anything else."""
    out = []
    lower = {n.lower(): n for n in NAMES if not n.startswith("_")}
    for item in items or ():
        text = str(item).strip()
        if "=" not in text:
            raise UserError(f"--blendshape takes NAME=VALUE (e.g. mouthSmileLeft=0.2), not '{text}'",
                            "bad-parameter")
        name, _, value = text.partition("=")
        key = lower.get(name.strip().lower())
        if key is None:
            raise UserError(f"unknown blendshape '{name.strip()}': one of {', '.join(lower.values())}",
                            "bad-parameter")
        try:
            v = float(value)
        except ValueError:
            raise UserError(f"--blendshape {key}: '{value.strip()}' is not a number", "bad-parameter") from None
        if not (-1.0 <= v <= 1.0):
            raise UserError(f"--blendshape {key}={v:g}: a change must be within [-1, 1]", "bad-parameter")
        out.append((key, v))
    return out


def is_identity(params) -> bool:
    return all(float(params.get(c) or 0.0) == 0.0 for c in CONTROL_NAMES) and \
        all(v == 0.0 for _, v in parse_blendshapes(params.get("blendshape") or []))


def request(measured: np.ndarray, params) -> Request:
    """Targets for the measured coefficients `measured` (52) from the operator's parameters."""
    b = np.asarray(measured, np.float64)
    t = b.copy()
    n = float(params.get("neutralize") or 0.0)
    if n > 0:
        t[1:] = (1.0 - n) * b[1:]
    elif n < 0:
        t[1:] = np.minimum(1.0, (1.0 - n) * b[1:])
    active = {"neutralize": n} if n else {}
    for name, (raise_, lower) in CONTROLS.items():
        v = float(params.get(name) or 0.0)
        if v == 0.0:
            continue
        active[name] = v
        up, down = (raise_, lower) if v > 0 else (lower, raise_)
        a = abs(v)
        for k in (INDEX[x] for x in up):
            t[k] = t[k] + a * (1.0 - t[k])
        for k in (INDEX[x] for x in down):
            t[k] = t[k] * (1.0 - a)
    named = []
    for key, v in parse_blendshapes(params.get("blendshape") or []):
        k = INDEX[key]
        t[k] = float(np.clip(t[k] + v, 0.0, 1.0))
        named.append(key)
    targeted = np.abs(t - b) > CHANGED
    targeted[0] = False   # '_neutral' is not an expression
    return Request(t, targeted, active, named)
