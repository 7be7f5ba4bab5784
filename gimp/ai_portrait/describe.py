"""Words for GIMP from the registry's declarations: argument names, labels with units, layer names.

Pure functions on the registry JSON (no GIMP import), so they are unit-tested outside GIMP.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List

PROC_PREFIX = "plug-in-ai-portrait-"
MENU_PATH = "<Image>/Filters/AI Portrait"
# Arguments every procedure has besides the operator's own; operator names that collide get 'op-' prepended.
RESERVED = {"run-mode", "image", "drawables", "seed", "selection-as-mask"}

# How a unit reads after a number (and in a label).
UNIT_TEXT = {"mm": "mm", "m": "m", "deg": "°", "degrees": "°", "px": "px", "K": "K", "kelvin": "K",
             "stops": "stops", "ratio": "×", "f-number": "f/", "%": "%", "s": "s"}


def proc_name(op_name: str) -> str:
    return PROC_PREFIX + arg_name(op_name)


def arg_name(name: str) -> str:
    """A GParamSpec name: letters, digits and '-', starting with a letter."""
    s = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-").lower()
    if not s or not s[0].isalpha():
        s = "p-" + s
    return s


def param_arg(name: str) -> str:
    s = arg_name(name)
    return "op-" + s if s in RESERVED else s


def input_arg(name: str) -> str:
    return param_arg(name + "-layer")


def input_file_arg(name: str) -> str:
    return param_arg(name + "-file")


def unit_text(unit: str) -> str:
    return UNIT_TEXT.get(unit, unit)


def param_title(p: Dict[str, Any]) -> str:
    return p.get("title") or p["name"].replace("_", " ").capitalize()


def param_label(p: Dict[str, Any]) -> str:
    """'Focus distance (m)', 'Blade rotation (°)': the unit is in the label because GIMP's widgets show none."""
    title = param_title(p)
    unit = p.get("unit") or ""
    if not unit or unit == "ratio" or unit.lower() in title.lower():
        return title
    return f"{title} ({unit_text(unit)})"


def param_blurb(p: Dict[str, Any]) -> str:
    bits = [p.get("help") or ""]
    if p.get("type") in ("float", "int") and (p.get("min") is not None or p.get("max") is not None):
        lo = "−∞" if p.get("min") is None else _num(p["min"])
        hi = "∞" if p.get("max") is None else _num(p["max"])
        bits.append(f"range {lo}…{hi} {unit_text(p.get('unit') or '')}".rstrip())
    if p.get("optional"):
        bits.append("leave on Auto to let the operator choose")
    return "; ".join(b for b in bits if b)


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def format_value(p: Dict[str, Any], v: Any) -> str:
    """One setting as the user reads it: 'f/1.4', '50 mm', '5600 K', 'portrait'."""
    unit = p.get("unit") or ""
    if v is None:
        return "auto"
    if p.get("type") == "point":
        return f"({_num(v[0])}, {_num(v[1])})"
    if p.get("type") == "bool":
        return "on" if v else "off"
    if unit == "f-number":
        return f"f/{_num(v)}"
    if unit == "ratio":
        return f"{_num(v)}×"
    if unit in UNIT_TEXT and unit_text(unit) in ("°", "%"):
        return f"{_num(v)}{unit_text(unit)}"
    return f"{_num(v)} {unit_text(unit)}".rstrip()


def layer_name(op: Dict[str, Any], params: Dict[str, Any], max_settings: int = 3) -> str:
    """'Refocus (f/1.4, 1.2 m, disk)': the operator's title and its first few numeric or choice settings."""
    shown: List[str] = []
    for p in op.get("params", []):
        if len(shown) >= max_settings:
            break
        if p.get("type") not in ("float", "int", "choice"):
            continue
        v = params.get(p["name"], p.get("default"))
        if v is None:
            continue
        shown.append(format_value(p, v))
    title = op.get("title") or op["name"]
    return f"{title} ({', '.join(shown)})" if shown else title


KIND_WORDS = {"depth": "Depth map", "normals": "Normal map", "reference": "Reference",
              "background": "New background", "mask": "Mask", "image": "Image"}


def input_word(inp: Dict[str, Any]) -> str:
    return KIND_WORDS.get(inp.get("kind"), inp["name"].replace("_", " ").capitalize())


def input_label(inp: Dict[str, Any]) -> str:
    return f"{input_word(inp)} layer" + ("" if inp.get("required", True) else " (optional)")


def input_file_label(inp: Dict[str, Any]) -> str:
    return f"…or {input_word(inp)[0].lower() + input_word(inp)[1:]} file"
