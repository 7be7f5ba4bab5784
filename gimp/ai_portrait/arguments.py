"""Procedure arguments generated from one operator's registry declaration, and the values read back.

  float / int   a double / int argument with the declared range; the unit is in the label
  bool          a boolean argument
  choice        a Gimp.Choice argument (the registry's strings are the choice nicks)
  point         two doubles NAME-x, NAME-y in image pixels
  vector        one double per number: NAME-x, NAME-y, NAME-3, ... when its first two numbers are coordinates
                (image pixels), else NAME-1, NAME-2, ...; min/max apply to each number
  repeat        (a list of items) one string argument NAME: items separated by ';', the numbers of an item by ','
                ("60,20,1; -30,10,0.5"), so PDB and batch calls pass any number of items; the dialog edits it as
                rows with an 'Add another' button (dialog.py). GObject properties cannot hold a list of vectors
                that GIMP's dialogs and last-values know how to show, hence the text
  string        a string argument
  optional      (default None = "let the operator decide") an extra boolean NAME-auto, on by default
  inputs        every input besides the primary one is a layer argument NAME-layer, or else a file NAME-file
                (scaled to the image when its size differs); frames are the selected layers
Plus 'rerun' (replace the previous result or add a new layer: plugin.results), 'seed' and 'selection-as-mask' on
every procedure. GIMP remembers the last values itself.

Coordinates are given in image pixels; the worker gets the processed region (the selection's bounds), so every
coordinate of every item is moved by the region's origin when read (plugin.params.shift_coordinates).
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, GObject  # noqa: E402

import describe  # noqa: E402
from describe import bridge_params  # noqa: E402 - plugin.params, imported when first needed

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


def has_auto(p) -> bool:
    """An optional parameter whose default is None ("let the operator decide") gets an 'Automatic' box."""
    if not p.get("optional") or p.get("default") is not None:
        return False
    return bool(p.get("repeat")) or p["type"] in ("float", "int", "point", "vector")


def value_args(p: Dict[str, Any]) -> List[str]:
    """The argument names that hold the parameter's value (without its Auto box)."""
    if p.get("repeat"):
        return [describe.param_arg(p["name"])]
    if p["type"] in ("point", "vector"):
        return describe.component_args(p)
    return [describe.param_arg(p["name"])]


def add_param(proc, p: Dict[str, Any]) -> None:
    name, label, blurb = describe.param_arg(p["name"]), describe.param_label(p), describe.param_blurb(p)
    t, default = p["type"], p.get("default")
    if has_auto(p):
        title = describe.param_title(p)
        proc.add_boolean_argument(_auto_name(p), f"Automatic {title[0].lower() + title[1:]}",
                                  f"let the filter choose the {title.lower()} (the field then reads 'auto')",
                                  True, RW)
    if p.get("repeat"):
        proc.add_string_argument(name, describe.repeat_label(p), describe.repeat_blurb(p),
                                 bridge_params().format_items(p, default or []), RW)
    elif t == "float":
        lo, hi = _float_range(p)
        # an optional number starts (once 'Automatic' is unticked) where a photographer would, not at its minimum
        start = _clamp(float(default if default is not None else bridge_words().typical(p)), lo, hi)
        proc.add_double_argument(name, label, blurb, lo, hi, start, RW)
    elif t == "int":
        lo, hi = _int_range(p)
        start = _clamp(int(default if default is not None else bridge_words().typical(p)), lo, hi)
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
    elif t in ("point", "vector"):
        n = bridge_params().item_size(p)
        d = list(default) if default is not None else [0.0] * n
        labels = bridge_params().component_labels(p)
        for k, (arg, what) in enumerate(zip(describe.component_args(p), labels)):
            lo, hi = _component_range(p, k)
            unit = " (px)" if k < 2 and bridge_params().has_coordinates(p) else ""
            proc.add_double_argument(arg, f"{describe.param_title(p)}: {what}{unit}",
                                     f"{p.get('help', '')} ({describe.component_blurb(p, k)})", lo, hi,
                                     _clamp(float(d[k]), lo, hi), RW)
    else:  # string
        proc.add_string_argument(name, label, blurb, "" if default is None else str(default), RW)


def _component_range(p, k) -> Tuple[float, float]:
    if k < 2 and bridge_params().has_coordinates(p) and p.get("min") is None and p.get("max") is None:
        return -POINT_RANGE, POINT_RANGE
    return _float_range(p)


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
    rerun = Gimp.Choice.new()
    for k, nick in enumerate(bridge_results().RERUN_CHOICES):
        rerun.add(nick, k, bridge_results().RERUN_LABELS[nick], "")
    proc.add_choice_argument("rerun", "Running again", "with a result of this filter selected, or one already above "
                             "the layer: replace that result (its place, opacity and mode kept) or add a new layer "
                             "at the top of the layer's results; the layer the result was made from is processed "
                             "again either way, never the result itself", rerun, bridge_results().DEFAULT_RERUN, RW)
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
    """Parameter values from the procedure's config; every coordinate moves from image pixels to the region's
    (whose top-left corner is `origin`). Raises plugin.params.ParamTextError for a list that cannot be read."""
    values: Dict[str, Any] = {}
    for p in op.get("params", []):
        t = p["type"]
        if has_auto(p) and config.get_property(_auto_name(p)):
            values[p["name"]] = None
            continue
        if p.get("repeat"):
            values[p["name"]] = bridge_params().parse_items(p, config.get_property(describe.param_arg(p["name"])))
            continue
        if t in ("point", "vector"):
            values[p["name"]] = [float(config.get_property(a)) for a in describe.component_args(p)]
            continue
        v = config.get_property(describe.param_arg(p["name"]))
        if t == "choice" and v == AUTO_CHOICE and AUTO_CHOICE not in p["choices"]:
            v = None
        if t == "string" and v == "" and p.get("optional"):
            v = None
        values[p["name"]] = v
    return bridge_params().shift_coordinates(op.get("params", []), values, float(origin[0]), float(origin[1]))


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
        bounded = p.get("min") is not None and p.get("max") is not None
        if t in ("float", "int") and bounded and not p.get("repeat"):
            dialog.get_scale_entry(describe.param_arg(p["name"]), 1.0)
        if t == "vector" and bounded and not p.get("repeat"):
            for arg in describe.component_args(p):
                dialog.get_scale_entry(arg, 1.0)
        if has_auto(p) and not p.get("repeat"):  # a repeatable one's rows grey themselves (dialog.py)
            for name in value_args(p):
                dialog.set_sensitive(name, True, config, _auto_name(p), True)


def dialog_groups(op: Dict[str, Any]):
    """What the dialog shows, in order: (main argument names, advanced argument names, repeatable parameters
    of the main part, repeatable parameters of the advanced part). A repeatable parameter's text argument is
    not in the name lists: dialog.py edits it as rows."""
    main: List[str] = []
    advanced: List[str] = []
    rep_main: List[Dict[str, Any]] = []
    rep_adv: List[Dict[str, Any]] = []
    primary = primary_input(op)
    for inp in op.get("inputs", []):
        if inp is not primary:
            main += [describe.input_arg(inp["name"]), describe.input_file_arg(inp["name"])]
    for p in op.get("params", []):
        names = [_auto_name(p)] if has_auto(p) else []
        if not p.get("repeat"):
            names += value_args(p)
        (advanced if p.get("advanced") else main).extend(names)
        if p.get("repeat"):
            (rep_adv if p.get("advanced") else rep_main).append(p)
    main += ["rerun", "seed", "selection-as-mask"]
    return main, advanced, rep_main, rep_adv


def bridge_words():
    from plugin import words
    return words


def bridge_results():
    from plugin import results
    return results
