"""Colorimetry: our float32 per-pixel paths against colour-science's own functions on the same pixels.

Rows: chromatic adaptation of a whole image (3×3 matrix by cv2.transform vs colour.chromatic_adaptation on XYZ,
including the sRGB <-> XYZ conversions), CIELAB from linear sRGB (vs RGB_to_XYZ + XYZ_to_Lab), ΔE2000 (vs
delta_E_CIE2000), and the illuminant estimate (no peer). Quality: the largest difference from the peer.
"""
from __future__ import annotations

import numpy as np

from bench.runner import Case
from core.imaging import colorimetry as C


def cases(quick: bool):
    h, w = (1000, 1000) if quick else (3000, 4000)
    size = f"{w}x{h}"
    rng = np.random.default_rng(0)
    rgb = rng.random((h, w, 3), dtype=np.float32)
    colour = C.colour_module()
    source_xy, target_xy = C.cct_to_xy(3200.0), C.cct_to_xy(6504.0, "daylight")
    to_xyz, to_rgb = C.linear_srgb_to_xyz_matrix(), C.xyz_to_linear_srgb_matrix()

    def adapt_ours():
        return C.apply_matrix(rgb, C.adaptation_matrix_xy(source_xy, target_xy, "CAT16"))

    def adapt_peer():
        xyz = rgb @ to_xyz.T
        out = colour.adaptation.chromatic_adaptation_VonKries(xyz, C.xy_to_xyz(source_xy), C.xy_to_xyz(target_xy),
                                                              transform="CAT16")
        return out @ to_rgb.T

    lab_a = C.linear_srgb_to_lab(rgb)
    lab_b = lab_a + rng.normal(0.0, 2.0, lab_a.shape).astype(np.float32)

    def max_diff(ours, peer):
        # as text: the runner rounds numbers to 3 decimals, and these differences are float32 rounding
        if peer is None:
            return {"max_abs_diff": "n/a"}
        return {"max_abs_diff": f"{float(np.abs(np.asarray(ours, np.float64) - peer).max()):.1e}"}

    def illuminant_quality(est, _):
        return {"kelvin": round(est.kelvin, 1)}

    return [
        Case("colorimetry", "CAT16 3200 K -> D65", size, adapt_ours, peer=adapt_peer, peer_name="colour-science",
             quality=max_diff),
        Case("colorimetry", "Lab from linear sRGB", size, lambda: C.linear_srgb_to_lab(rgb),
             peer=lambda: C.linear_srgb_to_lab_reference(rgb), peer_name="colour-science", quality=max_diff),
        Case("colorimetry", "delta E 2000", size, lambda: C.delta_e2000(lab_a, lab_b),
             peer=lambda: C.delta_e2000_reference(lab_a, lab_b), peer_name="colour-science", quality=max_diff),
        Case("colorimetry", "illuminant (shades of grey)", size, lambda: C.estimate_illuminant(rgb),
             quality=illuminant_quality),
    ]
