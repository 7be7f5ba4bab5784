"""Parameter values and inputs on the host side, from the registry's JSON (standard library only).

The fields of a parameter declaration (`python -m core list --json`) used here:
  type         'float' | 'int' | 'bool' | 'choice' | 'point' | 'vector' | 'string'
  size         how many numbers one item of a 'point' (always 2) or a 'vector' holds
  repeat       the value is a list of items (possibly empty): several lights, several control points
  coordinates  an item's first two numbers are an x, y position in image pixels (origin top-left, y down);
               always so for 'point'
  advanced     the hosts show it under an 'Advanced' group

Text form of a value, where a host can only hold text (a GIMP procedure argument): the numbers of one item
separated by ',' and the items of a repeatable parameter by ';', e.g. "60,20,1; -30,10,0.5" (the command line
and the worker accept the same).

A host that sends only part of the image (GIMP sends the selection's bounds) must move every pixel
coordinate into that part: `shift_coordinates` subtracts the part's origin from the first two numbers of each
item of every parameter that declares coordinates.
"""
from __future__ import annotations

# Mirrors core.registry.DATA_KINDS (the hosts cannot import the core; tests/test_pixels.py checks they agree):
# inputs of these kinds hold data (depth, normal vectors, a matte), not colour, so the hosts send their stored
# values unchanged: no tone curve, no colour management.
DATA_KINDS = ("depth", "normals", "mask")
NUMBER_TYPES = ("point", "vector")


class ParamTextError(ValueError):
    """A parameter's text could not be read; the message names the parameter and says what was expected."""


def is_data_input(inp):
    """True for an input declaration whose pixels are data (depth, normals, mask), not colour."""
    return inp.get("kind") in DATA_KINDS


def item_size(p):
    """Numbers in one item: 2 for a point, `size` for a vector, 0 for a scalar (float, int, choice, ...)."""
    if p.get("type") == "point":
        return 2
    if p.get("type") == "vector":
        return int(p.get("size") or 0)
    return 0


def has_coordinates(p):
    return p.get("type") == "point" or bool(p.get("coordinates") and p.get("type") == "vector")


def title(p):
    return p.get("title") or p["name"].replace("_", " ").capitalize()


def component_labels(p):
    """What each number of an item is called in a form: the names the operator declares ('components'), else x and
    y for coordinates, then 1, 2, 3, ..."""
    n = item_size(p)
    named = [str(c) for c in (p.get("components") or [])]
    if len(named) == n:
        return named
    first = ["x", "y"] if has_coordinates(p) else []
    return (first + [str(k + 1) for k in range(len(first), n)])[:n]


def shift_coordinates(decls, values, dx, dy):
    """A copy of `values` ({name: value}) with every coordinate moved by (-dx, -dy): the values were given in
    image pixels and the worker receives a part of the image whose top-left corner is (dx, dy). Each item of a
    repeatable parameter moves; None (automatic) and parameters without coordinates stay as they are."""
    out = dict(values)
    for p in decls:
        name = p["name"]
        v = out.get(name)
        if v is None or not has_coordinates(p):
            continue
        if p.get("repeat"):
            out[name] = [_shift_item(item, dx, dy) for item in v]
        else:
            out[name] = _shift_item(v, dx, dy)
    return out


def _shift_item(item, dx, dy):
    item = list(item)
    return [float(item[0]) - dx, float(item[1]) - dy] + [float(c) for c in item[2:]]


# ---------------------------------------------------------------------------------------------------------------
# Text form


def parse_item(p, text):
    """One item of parameter `p` from its text ('60,20,1' for a 3-vector, '0.5' for a float)."""
    s = str(text).strip()
    t = p.get("type")
    n = item_size(p)
    try:
        if n:
            parts = [c for c in s.replace(" ", "").split(",") if c != ""]
            if len(parts) != n:
                raise ValueError
            nums = [float(c) for c in parts]
            if any(c != c or c in (float("inf"), float("-inf")) for c in nums):
                raise ValueError
            return nums
        if t == "float":
            return float(s)
        if t == "int":
            f = float(s)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if t == "bool":
            low = s.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if t == "choice":
            if s not in (p.get("choices") or []):
                raise ValueError
            return s
    except ValueError:
        raise ParamTextError("%s: '%s' is not %s" % (title(p), s, expected(p))) from None
    return s


def parse_items(p, text):
    """The items of a repeatable parameter from its text: items separated by ';' (empty text = no items)."""
    if text is None:
        return []
    return [parse_item(p, part) for part in str(text).split(";") if part.strip()]


def format_item(p, v):
    if item_size(p):
        return ",".join(_num(c) for c in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _num(v)
    return str(v)


def format_items(p, items):
    return "; ".join(format_item(p, v) for v in (items or []))


def expected(p):
    """How one item is written, for messages and tooltips."""
    n = item_size(p)
    if n:
        names = component_labels(p)
        return "%d numbers separated by commas (%s)" % (n, ", ".join(names)) if has_coordinates(p) else \
            "%d numbers separated by commas" % n
    if p.get("type") == "choice":
        return "one of %s" % ", ".join(p.get("choices") or [])
    return {"float": "a number", "int": "a whole number", "bool": "true or false"}.get(p.get("type"), "text")


def _num(x):
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)
