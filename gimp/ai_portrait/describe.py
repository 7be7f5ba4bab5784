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
RESERVED = {"run-mode", "image", "drawables", "seed", "selection-as-mask", "rerun"}

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
    """The unit's short form for a label: 'mm', '°', 'K', 'f/'; nothing for an unknown unit (plugin.words)."""
    return bridge_words().short_unit(unit)


def param_title(p: Dict[str, Any]) -> str:
    return p.get("title") or p["name"].replace("_", " ").capitalize()


def param_label(p: Dict[str, Any]) -> str:
    """'Focus distance (m)', 'Blade rotation (°)': the unit is in the label because GIMP's widgets show none
    (an f-number shows as 'F-number', a ratio as a plain number, an unknown unit not at all)."""
    title = param_title(p)
    unit = p.get("unit") or ""
    short = unit_text(unit)
    if not short or unit in ("ratio", "f-number") or short.lower() in title.lower():
        return title
    return f"{title} ({short})"


def param_blurb(p: Dict[str, Any]) -> str:
    """The tooltip: what the setting does, its range and default in its unit, the unit written out."""
    return bridge_words().tooltip(p, auto_hint="Leave 'Automatic' ticked to let the filter choose.")


def _num(v: Any) -> str:
    return bridge_words().num(v)


def bridge_words():
    from plugin import words
    return words


def format_value(p: Dict[str, Any], v: Any) -> str:
    """One setting as the user reads it: 'f/1.4', '50 mm', '5600 K', 'portrait', 'auto' (plugin.words)."""
    return bridge_words().format_value(p, v)


def layer_name(op: Dict[str, Any], params: Dict[str, Any], taken=()) -> str:
    """'Refocus (f/1.4, focal length 50 mm)': the title and the settings that differ from the defaults, unique
    among `taken` (plugin.results.result_name)."""
    from plugin import results
    return results.result_name(op, params, taken)


def status_text(title: str, message: str) -> str:
    """The progress bar's text: 'Refocus: depth map' (the core's own messages may already carry the title)."""
    message = (message or "").strip()
    if not message:
        return f"{title}…"
    if message.lower().startswith(title.lower()):
        return message
    return f"{title}: {message}"


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
