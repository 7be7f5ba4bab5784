"""Words for GIMP from the registry's declarations: argument names, labels with units, layer names.

Pure functions on the registry JSON (no GIMP import; only the stdlib bridge's plugin.params), so they are
unit-tested outside GIMP.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List


def bridge_params():
    """The bridge's plugin.params, imported when first needed (GIMP still registers the 'Set Up' entry when
    the bridge is missing)."""
    from plugin import params
    return params

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


def component_args(p: Dict[str, Any]) -> List[str]:
    """One argument per number of a point or vector: NAME-x, NAME-y (then NAME-3, ...) when its first two
    numbers are coordinates, else NAME-1, NAME-2, ..."""
    return [param_arg(f"{p['name']}-{what}") for what in _component_labels(p)]


def _coordinates(p: Dict[str, Any]) -> bool:
    return bridge_params().has_coordinates(p)


def _component_labels(p: Dict[str, Any]) -> List[str]:
    return bridge_params().component_labels(p)


def component_blurb(p: Dict[str, Any], k: int) -> str:
    if k < 2 and _coordinates(p):
        return f"{'xy'[k]} in image pixels"
    n = len(_component_labels(p))
    bits = [f"number {k + 1} of {n}"]
    if p.get("min") is not None or p.get("max") is not None:
        lo = "−∞" if p.get("min") is None else _num(p["min"])
        hi = "∞" if p.get("max") is None else _num(p["max"])
        bits.append(f"range {lo}…{hi}")
    return ", ".join(bits)


def repeat_label(p: Dict[str, Any]) -> str:
    """'Marks (list: x, y, 3; …)': a repeatable parameter's text argument says how it is written."""
    labels = _component_labels(p)
    item = ", ".join(labels) if labels else "value"
    return f"{param_label(p)} (list: {item}; …)"


def repeat_blurb(p: Dict[str, Any]) -> str:
    """How to write the list, with an example: '60,20,1; -30,10,0.5'."""
    labels = _component_labels(p)
    if labels:
        sample = [["120", "80"] + ["1"] * (len(labels) - 2), ["40", "60"] + ["0.5"] * (len(labels) - 2)] \
            if _coordinates(p) else [["1"] * len(labels), ["0.5"] * len(labels)]
        example = "; ".join(",".join(item) for item in sample)
        item = f"{len(labels)} numbers separated by ',' ({', '.join(labels)})"
    elif p.get("type") == "choice":
        example = "; ".join(list(p.get("choices") or [])[:2])
        item = "one of " + ", ".join(p.get("choices") or [])
    else:
        example = "1; 0.5" if p.get("type") == "float" else "1; 2"
        item = "a number"
    bits = [p.get("help") or "", f"any number of items separated by ';', each {item}, e.g. '{example}'"]
    if _coordinates(p):
        bits.append("x, y in image pixels")
    if p.get("type") in ("float", "int", "vector") and (p.get("min") is not None or p.get("max") is not None):
        lo = "−∞" if p.get("min") is None else _num(p["min"])
        hi = "∞" if p.get("max") is None else _num(p["max"])
        bits.append(f"each number within {lo}…{hi}")
    return "; ".join(b for b in bits if b)


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
    if p.get("repeat"):
        return "; ".join(format_value(dict(p, repeat=False), item) for item in v)
    if p.get("type") in ("point", "vector"):
        return "(" + ", ".join(_num(c) for c in v) + ")"
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
        if p.get("type") not in ("float", "int", "choice") or p.get("repeat"):
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
    """'Depth map' for an input named after its kind; else its own name ('Light from normals'), since an
    operator may take two inputs of one kind (a portrait's normal map and a reference's)."""
    if inp["name"] == inp.get("kind") and inp.get("kind") in KIND_WORDS:
        return KIND_WORDS[inp["kind"]]
    return inp["name"].replace("_", " ").capitalize()


def input_label(inp: Dict[str, Any]) -> str:
    """'Depth map layer (optional)', 'Light from normals layer (normal map, optional)'."""
    notes = []
    if inp["name"] != inp.get("kind") and inp.get("kind") in KIND_WORDS:
        notes.append(KIND_WORDS[inp["kind"]].lower())
    if not inp.get("required", True):
        notes.append("optional")
    return f"{input_word(inp)} layer" + (f" ({', '.join(notes)})" if notes else "")


def input_file_label(inp: Dict[str, Any]) -> str:
    return f"…or {input_word(inp)[0].lower() + input_word(inp)[1:]} file"
