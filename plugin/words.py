"""Plain words for settings, the same in both hosts (standard library only): units, values, tooltips, 'auto'.

Units come from the registry's closed list (mm, m, deg, K, f-number, px, stops, ratio, fraction, µm, s, %);
each has a short form for a spin box or a layer name ('85 mm', 'f/1.4', '5600 K', '1.5×') and a written-out
one for tooltips ('millimetres'). A unit outside the list is never shown as a symbol nobody reads
('signal²'): its written-out form says what the number measures, or the tooltip says nothing about it.

A parameter left to the filter (optional, value None) reads `AUTO` ("auto"), never a greyed placeholder number;
an empty text or list reads "none".

The one source of these words: the dialogs and tooltips of both hosts, the layer names (results.py) and the
help pages (core/commands/help_pages.py, the one place in core besides the worker that imports plugin/).
"""
from __future__ import annotations

AUTO = "auto"
NONE = "none"   # an empty text or list

# unit -> (prefix, suffix, written out). The suffix follows the number directly ('°', '×') or after a space.
UNITS = {
    "mm": ("", " mm", "millimetres"),
    "m": ("", " m", "metres"),
    "deg": ("", "°", "degrees"),
    "degrees": ("", "°", "degrees"),
    "K": ("", " K", "kelvin"),
    "kelvin": ("", " K", "kelvin"),
    "f-number": ("f/", "", "f-number"),
    "px": ("", " px", "pixels of this image"),
    "stops": ("", " stops", "stops (one stop doubles or halves the light)"),
    "ratio": ("", "×", "times"),
    "fraction": ("", "", "a fraction (0 = none, 1 = all)"),
    "µm": ("", " µm", "micrometres on the film (thousandths of a millimetre)"),
    "um": ("", " µm", "micrometres"),
    "s": ("", " s", "seconds"),
    "%": ("", " %", "percent"),
    # the noise model's terms, on the picture's own brightness scale (linear light, 0 black ... 1 white)
    "signal": ("", "", "brightness (0 = black, 1 = white)"),
    "signal²": ("", "", "brightness squared (0 = black, 1 = white)"),
}
# What a tooltip says about the unit, where "In <unit written out>." would not help a photographer.
UNIT_SENTENCES = {
    "K": "Colour temperature in kelvin: 3200 K is warm tungsten light, 5600 K daylight, 6500 K neutral.",
    "f-number": "As on a lens: f/1.4 is wide open (most blur), f/16 stopped down (least).",
    "ratio": "",
    "fraction": "",
    "signal": "Measured on the picture's linear brightness scale, 0 = black, 1 = white.",
    "signal²": "A variance on the picture's linear brightness scale (0 = black, 1 = white), so brightness "
               "squared.",
}


# A value to start from when a setting left on 'auto' is switched to a number of one's own: what a portrait
# photographer would try first in that unit (never the range's minimum, 0.01 m or f/0.5, which means nothing).
TYPICAL = {"m": 2.0, "mm": 50.0, "f-number": 2.8, "K": 5600.0, "deg": 40.0, "stops": 0.0, "µm": 10.0,
           "px": 10.0, "ratio": 1.0, "fraction": 0.5}


def typical(p):
    """Where an optional number starts once 'auto' is unticked: the default, else the unit's TYPICAL value, else
    0, kept inside the declared range (the middle of a range that excludes it)."""
    lo, hi = p.get("min"), p.get("max")
    v = p.get("default")
    if v is None:
        v = TYPICAL.get(p.get("unit") or "", 0.0)
    if lo is not None and v < lo or hi is not None and v > hi:
        if lo is not None and hi is not None:
            v = (lo * hi) ** 0.5 if lo > 0 and hi / lo >= 100 else (lo + hi) / 2.0
        else:
            v = lo if lo is not None else hi
    return int(round(v)) if p.get("type") == "int" else float(v)


def unit_parts(unit):
    """(prefix, suffix) for a number in this unit; an unknown unit gets no symbol at all."""
    prefix, suffix, _ = UNITS.get(unit or "", ("", "", ""))
    return prefix, suffix


def unit_words(unit):
    """The unit written out ('millimetres'), or '' when there is none."""
    return UNITS.get(unit or "", ("", "", ""))[2]


def short_unit(unit):
    """What a label puts in brackets: 'mm', '°', 'K', 'f/', 'px'; '' for none or an unknown unit."""
    prefix, suffix = unit_parts(unit)
    return (prefix or suffix).strip()


def num(v):
    """A number as people write it: 85, 1.4, 0.05, 2.5e+03 only when it must."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    if isinstance(v, float):
        return "%.3g" % v
    return str(v)


def format_value(p, v):
    """One setting as the user reads it: 'f/1.4', '50 mm', '5600 K', '1.5×', 'portrait', 'auto'."""
    if v is None:
        return AUTO
    if p.get("repeat"):
        return "; ".join(format_value(dict(p, repeat=False), item) for item in v) or NONE
    t = p.get("type")
    if t in ("point", "vector"):
        return "(" + ", ".join(num(c) for c in v) + ")"
    if t == "bool":
        return "on" if v else "off"
    if t == "choice":
        return str(v).replace("_", " ")
    if t not in ("float", "int"):
        return str(v) or NONE
    prefix, suffix = unit_parts(p.get("unit"))
    return "%s%s%s" % (prefix, num(v), suffix)


def sentence(text):
    """'smaller = more blur' -> 'Smaller = more blur.'"""
    text = (text or "").strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def unit_sentence(p):
    """What a tooltip or a help page says about a number's unit: 'In millimetres.', a sentence of its own
    (UNIT_SENTENCES), or '' (no unit, not a number, a unit outside the list)."""
    unit = p.get("unit") or ""
    if not unit or p.get("type") not in ("float", "int", "vector"):
        return ""
    words = unit_words(unit)
    return UNIT_SENTENCES.get(unit, "In %s." % words if words else "")


def range_text(p):
    """'From f/0.5 to f/64; normally f/2.' for a bounded number (unbounded ends are left out)."""
    if p.get("type") not in ("float", "int") or p.get("repeat"):
        return ""
    lo, hi = p.get("min"), p.get("max")
    bits = []
    if lo is not None and hi is not None:
        bits.append("From %s to %s" % (format_value(p, lo), format_value(p, hi)))
    elif lo is not None:
        bits.append("At least %s" % format_value(p, lo))
    elif hi is not None:
        bits.append("At most %s" % format_value(p, hi))
    d = p.get("default")
    if d is not None:
        bits.append("normally %s" % format_value(p, d))
    return "; ".join(bits) + "." if bits else ""


def tooltip(p, auto_hint="Tick 'auto' to let the filter choose."):
    """What a setting does, for a tooltip: the filter's own sentence, then the range and default in the
    setting's unit, the unit written out, and how 'auto' works."""
    lines = [sentence(p.get("help"))]
    lines.append(range_text(p))
    lines.append(unit_sentence(p))
    if p.get("coordinates") or p.get("type") == "point":
        lines.append("A position in the picture, in pixels from its top-left corner.")
    if p.get("optional") and p.get("default") is None:
        lines.append(auto_hint)
    if p.get("advanced"):
        lines.append("An expert setting: the default suits most pictures.")
    return "\n".join(line for line in lines if line)
