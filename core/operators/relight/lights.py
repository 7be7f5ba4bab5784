"""New lights: directions, colour temperature, presets.

Conventions (camera space: x right, y up, z toward the camera). Azimuth 0 = light from the camera, +90 = from
the image's right, ±180 = from behind; elevation +90 = from above. The unit vector toward the light is

    l = (sin az · cos el,  sin el,  cos az · cos el).

A light is directional (infinitely far) unless the set-up gives a distance, then it is a point (or sphere) light
at `distance_m` from the subject's centre along l, with inverse-square falloff normalised so that its intensity
at the subject's centre is the one given.

Colour: a light of T kelvin has the chromaticity of a black body at T (the Planckian locus, exact Planck
integration in `core.imaging.colorimetry`), seen by a camera white-balanced so that 6504 K is neutral: the
linear-sRGB colour is  A · rgb(xy_planck(T)),  with A the CAT16 von Kries adaptation from the Planckian 6504 K
to sRGB's white (D65, CCT 6504 K, which sits 0.0055 in xy above the locus), scaled to luminance Y = 1. So 6504 K
is (1, 1, 1) exactly, and every other temperature lies within about 0.005 in xy of its own Planckian
chromaticity (the adaptation's unavoidable offset: 0.0049 at 3200 K).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ...errors import UserError

NEUTRAL_KELVIN = 6504.0
KELVIN_RANGE = (1000.0, 40000.0)     # candle flame to deep blue sky; colorimetry's Planckian table covers it
INTENSITY_MAX = 20.0
SIZE_MAX_DEG = 120.0                 # angular diameter; beyond that a light is an ambient dome, not a source

# How one --light item is written (the registry's vector has a fixed size, so every number is given).
LIGHT_FIELDS = ("azimuth_deg", "elevation_deg", "intensity", "kelvin", "size_deg")
# Their names in the hosts' light tables (the registry's vector components: column headers).
LIGHT_COMPONENTS = ("azimuth", "elevation", "intensity", "kelvin", "size")


@dataclass(frozen=True)
class Light:
    azimuth_deg: float
    elevation_deg: float
    intensity: float = 1.0
    kelvin: float = NEUTRAL_KELVIN
    size_deg: float = 0.0            # angular diameter of the source seen from the subject (0 = a hard point)

    @property
    def direction(self) -> np.ndarray:
        """Unit vector toward the light, camera space."""
        return direction(self.azimuth_deg, self.elevation_deg)

    @property
    def colour(self) -> np.ndarray:
        """Linear-sRGB colour, luminance 1, (1, 1, 1) at 6504 K."""
        return kelvin_rgb(self.kelvin)

    @property
    def half_angle_rad(self) -> float:
        return math.radians(0.5 * self.size_deg)

    def as_list(self) -> List[float]:
        return [self.azimuth_deg, self.elevation_deg, self.intensity, self.kelvin, self.size_deg]


def direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)], np.float64)


@functools.lru_cache(maxsize=256)
def _kelvin_rgb(kelvin: float) -> Tuple[float, float, float]:
    from ...imaging import colorimetry as C

    adapt = C.adaptation_matrix_xy(C.cct_to_xy(NEUTRAL_KELVIN), C.srgb_white_xy(), "CAT16")
    rgb = adapt @ C.xy_to_linear_srgb(C.cct_to_xy(float(kelvin)))
    y = float(C.linear_srgb_to_xyz_matrix()[1] @ rgb)
    rgb = np.maximum(rgb / y, 0.0)   # below about 1200 K blue leaves the sRGB gamut: clipped, not negative light
    return tuple(float(v) for v in rgb)


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """Linear-sRGB colour (3,) of a light at `kelvin`, luminance 1 (see the module docstring)."""
    if not (KELVIN_RANGE[0] <= kelvin <= KELVIN_RANGE[1]):
        raise UserError(f"a light's colour temperature must be within {KELVIN_RANGE[0]:g}-{KELVIN_RANGE[1]:g} K, "
                        f"not {kelvin:g} K", "bad-parameter")
    if abs(kelvin - NEUTRAL_KELVIN) < 1e-9:
        return np.ones(3, np.float64)
    return np.asarray(_kelvin_rgb(round(float(kelvin), 3)), np.float64)


def from_item(item: Sequence[float], index: int = 0) -> Light:
    """One --light item (azimuth, elevation, intensity, kelvin, size) checked number by number."""
    if len(item) != len(LIGHT_FIELDS):
        raise UserError(f"light {index + 1}: expected {len(LIGHT_FIELDS)} numbers "
                        f"({', '.join(LIGHT_FIELDS)}), got {len(item)}", "bad-parameter")
    az, el, inten, kel, size = (float(v) for v in item)
    checks = ((-360.0 <= az <= 360.0, f"azimuth {az:g}° is outside -360..360°"),
              (-90.0 <= el <= 90.0, f"elevation {el:g}° is outside -90..90°"),
              (0.0 <= inten <= INTENSITY_MAX, f"intensity {inten:g} is outside 0..{INTENSITY_MAX:g}"),
              (KELVIN_RANGE[0] <= kel <= KELVIN_RANGE[1],
               f"colour temperature {kel:g} K is outside {KELVIN_RANGE[0]:g}-{KELVIN_RANGE[1]:g} K"),
              (0.0 <= size <= SIZE_MAX_DEG, f"size {size:g}° is outside 0..{SIZE_MAX_DEG:g}°"))
    for ok, why in checks:
        if not ok:
            raise UserError(f"light {index + 1} ({','.join(f'{v:g}' for v in item)}): {why}", "bad-parameter")
    return Light(az, el, inten, kel, size)


# ---------------------------------------------------------------------------------------------------- presets
# Each preset is a documented set of lights (azimuth, elevation, intensity, kelvin, size in degrees). The key
# light sits on the image's right (+azimuth); mirror a preset by giving its lights with negated azimuths.
PRESETS: Dict[str, Tuple[Light, ...]] = {
    # Key 45° to the side and 40° up: the far cheek gets the small lit triangle under the eye.
    "rembrandt": (Light(45.0, 40.0, 1.0, NEUTRAL_KELVIN, 12.0), Light(-40.0, 5.0, 0.12, NEUTRAL_KELVIN, 30.0)),
    # Key 30° to the side, 30° up: the nose's shadow makes a small loop toward the mouth corner.
    "loop": (Light(30.0, 30.0, 1.0, NEUTRAL_KELVIN, 12.0), Light(-35.0, 5.0, 0.2, NEUTRAL_KELVIN, 30.0)),
    # Key straight above the camera: a butterfly-shaped shadow under the nose; a little fill from below.
    "butterfly": (Light(0.0, 45.0, 1.0, NEUTRAL_KELVIN, 12.0), Light(0.0, -25.0, 0.15, NEUTRAL_KELVIN, 30.0)),
    # Key at 90°: one half of the face lit, the other in shadow.
    "split": (Light(90.0, 5.0, 1.0, NEUTRAL_KELVIN, 8.0),),
    # Two warm lights from behind outline the face; a soft front fill keeps it readable.
    "rim": (Light(150.0, 20.0, 1.2, 3200.0, 10.0), Light(-150.0, 20.0, 1.2, 3200.0, 10.0),
            Light(0.0, 0.0, 0.35, NEUTRAL_KELVIN, 40.0)),
    # A large soft key above and a reflector below, both near the camera axis: even, glamour light.
    "clamshell": (Light(0.0, 35.0, 0.85, NEUTRAL_KELVIN, 40.0), Light(0.0, -30.0, 0.35, NEUTRAL_KELVIN, 40.0)),
}
PRESET_NAMES = tuple(PRESETS)
DEFAULT_PRESET = "loop"   # what 'auto' means when nothing else says where the light comes from


def describe_presets() -> str:
    parts = []
    for name, lights in PRESETS.items():
        parts.append(f"{name}: " + " + ".join(f"({l.azimuth_deg:g},{l.elevation_deg:g},{l.intensity:g},"
                                              f"{l.kelvin:g},{l.size_deg:g})" for l in lights))
    return "; ".join(parts)
