"""The highlight boost before a defocus blur, shared by refocus and background replacement.

A clipped highlight (a lamp, a specular glint) was brighter than the sensor could record. Blurred as stored it
spreads into a dim grey disc; a real lens spreads its true, much larger energy into a bright disc. So, in linear
light, pixels near clipping are multiplied by a gain before the blur, only where the pixel will be blurred (an
in-focus highlight must stay as it was):

    factor = 1 + (g − 1) · t² · u,   t = clip((peak − KNEE) / (1 − KNEE), 0, 1),   u = clip((|c| − 1) / 3, 0, 1)

peak: the pixel's brightest sRGB channel; g: the gain (1 = off); |c|: its CoC diameter in px (no boost at 1 px or
less, full from 4 px). The operators pick the pixels above KNEE in their own layout (refocus: a 3×H×W tensor,
background: an H×W×3 array) and multiply them by `factor`.
"""
from __future__ import annotations

KNEE = 0.92  # sRGB value where the boost starts; full boost at 1.0 (clipped)


def factor(peak, coc_abs, gain: float):
    """The linear gain for pixels whose brightest sRGB channel is `peak` and whose |CoC| is `coc_abs` px.

    peak, coc_abs: same-shape float32 numpy arrays or torch tensors (the result is of the same kind);
    gain: the highlight boost (> 1). Element-wise only, so it is exact whatever the layout or device."""
    ramp = ((peak - KNEE) / (1.0 - KNEE)).clip(0.0, 1.0) ** 2
    blurred = ((coc_abs - 1.0) / 3.0).clip(0.0, 1.0)
    return 1.0 + (gain - 1.0) * ramp * blurred
