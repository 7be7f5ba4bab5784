"""Procedure arguments generated from one operator's registry declaration, and the values read back.

  float / int   a double / int argument with the declared range; the unit is in the label
  bool          a boolean argument
  choice        a Gimp.Choice argument (the registry's strings are the choice nicks)
  point         two doubles NAME-x, NAME-y in image pixels (translated to the processed region by the caller)
  string        a string argument
  optional      (default None = "let the operator decide") an extra boolean NAME-auto, on by default
  inputs        every input besides the primary one is a layer argument NAME-layer, or else a file NAME-file
                (scaled to the image when its size differs); frames are the selected layers
Plus 'seed' and 'selection-as-mask' on every procedure. GIMP remembers the last values itself.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, GObject  # noqa: E402

import describe  # noqa: E402

RW = GObject.ParamFlags.READWRITE
INT_MIN, INT_MAX = -(2 ** 31) + 1, 2 ** 31 - 1
BIG = 1.0e9  # an unbounded float range still needs finite GParamSpec limits
POINT_RANGE = 1.0e6
AUTO_CHOICE = "auto"


def _auto_name(p):
    return describe.param_arg(p["name"] + "-auto")


def _float_range(p) -> Tuple[float, float]:
    lo = -BIG if p.get("min") is None else float(p["min"])
    hi = BIG if p.get("max") is None else float(p["max"])
    return lo, hi


def _int_range(p) -> Tuple[int, int]:
    lo = INT_MIN if p.get("min") is None else max(INT_MIN, int(p["min"]))
    hi = INT_MAX if p.get("max") is None else min(INT_MAX, int(p["max"]))
    return lo, hi


def _clamp(v, lo, hi):
    return min(max(v, lo), hi)


def add_param(proc, p: Dict[str, Any]) -> None:
    name, label, blurb = describe.param_arg(p["name"]), describe.param_label(p), describe.param_blurb(p)
    t, default = p["type"], p.get("default")
    if p.get("optional") and default is None and t in ("float", "int", "point"):
        title = describe.param_title(p)
        proc.add_boolean_argument(_auto_name(p), f"Automatic {title[0].lower() + title[1:]}",
                                  f"let the operator choose {p['name'].replace('_', ' ')}", True, RW)
    if t == "float":
        lo, hi = _float_range(p)
        start = _clamp(float(default if default is not None else (0.0 if lo <= 0.0 <= hi else lo)), lo, hi)
        proc.add_double_argument(name, label, blurb, lo, hi, start, RW)
    elif t == "int":
        lo, hi = _int_range(p)
        start = _clamp(int(default if default is not None else (0 if lo <= 0 <= hi else lo)), lo, hi)
        proc.add_int_argument(name, label, blurb, lo, hi, start, RW)
    elif t == "bool":
        proc.add_boolean_argument(name, label, blurb, bool(default), RW)
    elif t == "choice":
        choice = Gimp.Choice.new()
        nicks = list(p["choices"])
        if p.get("optional") and default is None and AUTO_CHOICE not in nicks:
            nicks.insert(0, AUTO_CHOICE)
        for k, nick in enumerate(nicks):
            choice.add(nick, k, nick.replace("_", " ").replace("-", " ").capitalize(), "")
        start = default if default is not None else nicks[0]
        proc.add_choice_argument(name, label, blurb, choice, start, RW)
    elif t == "point":
        d = default if default is not None else (0.0, 0.0)
        for axis, v in zip(("x", "y"), d):
            proc.add_double_argument(describe.param_arg(f"{p['name']}-{axis}"),
                                     f"{describe.param_title(p)}: {axis} (px)",
                                     f"{p.get('help', '')} ({axis} in image pixels)", -POINT_RANGE,
                                     POINT_RANGE, float(v), RW)
    else:  # string
        proc.add_string_argument(name, label, blurb, "" if default is None else str(default), RW)


def add_arguments(proc, op: Dict[str, Any]) -> None:
    primary = primary_input(op)
    for inp in op.get("inputs", []):
        if inp is primary:
            continue
        proc.add_layer_argument(describe.input_arg(inp["name"]), describe.input_label(inp),
                                inp.get("help", ""), True, RW)  # none_ok: a missing one gets our own message
        proc.add_file_argument(describe.input_file_arg(inp["name"]),
                               describe.input_file_label(inp),
                               "used when no layer is chosen; scaled to the image if its size differs",
                               Gimp.FileChooserAction.OPEN, True, None, RW)
    for p in op.get("params", []):
        add_param(proc, p)
    proc.add_int_argument("seed", "Random seed", "same seed, same result", 0, INT_MAX, 0, RW)
    proc.add_boolean_argument("selection-as-mask", "Add a layer mask from the selection",
                              "give the new layer a mask made from the selection (the pixels are blended with "
                              "the selection either way)", False, RW)


def primary_input(op: Dict[str, Any]) -> Dict[str, Any]:
    for inp in op.get("inputs", []):
        if inp.get("kind") in ("image", "frames"):
            return inp
    raise ValueError(f"operator {op.get('name')} has no image or frames input")


def read_params(config, op: Dict[str, Any], origin: Tuple[float, float]) -> Dict[str, Any]:
    """Parameter values from the procedure's config; points move from image pixels to the region's."""
    values: Dict[str, Any] = {}
    for p in op.get("params", []):
        t = p["type"]
        if p.get("optional") and p.get("default") is None and t in ("float", "int", "point"):
            if config.get_property(_auto_name(p)):
                values[p["name"]] = None
                continue
        if t == "point":
            x = config.get_property(describe.param_arg(f"{p['name']}-x"))
            y = config.get_property(describe.param_arg(f"{p['name']}-y"))
            values[p["name"]] = [x - origin[0], y - origin[1]]
            continue
        v = config.get_property(describe.param_arg(p["name"]))
        if t == "choice" and v == AUTO_CHOICE and AUTO_CHOICE not in p["choices"]:
            v = None
        if t == "string" and v == "" and p.get("optional"):
            v = None
        values[p["name"]] = v
    return values


def read_input_layers(config, op: Dict[str, Any]) -> List[Tuple[Dict[str, Any], Any, Any]]:
    """[(input declaration, Gimp.Layer or None, Gio.File or None)] for the non-primary inputs."""
    primary = primary_input(op)
    return [(inp, config.get_property(describe.input_arg(inp["name"])),
             config.get_property(describe.input_file_arg(inp["name"])))
            for inp in op.get("inputs", []) if inp is not primary]


def shape_dialog(dialog, config, op: Dict[str, Any]) -> None:
    """Before dialog.fill(): sliders for bounded numbers, and each value greyed out while its Auto box is on."""
    for p in op.get("params", []):
        t = p["type"]
        auto = p.get("optional") and p.get("default") is None and t in ("float", "int", "point")
        if t in ("float", "int") and p.get("min") is not None and p.get("max") is not None:
            dialog.get_scale_entry(describe.param_arg(p["name"]), 1.0)
        if auto:
            names = ([describe.param_arg(f"{p['name']}-{a}") for a in ("x", "y")] if t == "point"
                     else [describe.param_arg(p["name"])])
            for name in names:
                dialog.set_sensitive(name, True, config, _auto_name(p), True)
