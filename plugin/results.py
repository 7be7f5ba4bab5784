"""Where a filter's result goes and what it is called, the same in both hosts (standard library only).

A result is a new layer; its provenance record (GIMP: a parasite on the layer, Krita: a document annotation)
names the filter (`operator`), the settings (`params`) and the layers it was made from: `source_ids` (GIMP:
tattoos, which an XCF keeps; Krita: layer uuids), in the order they were processed (a burst's frames), and
`source_layer` (the name, for people).

Re-running never compounds. A run of filter F on a layer that is itself a result of F processes that result's
sources again (`rerun_sources`): the user tweaks settings with the result selected, as hosts make the newest
result the active layer. Then, by the user's choice (`RERUN_CHOICES`):

    replace    the previous result of F on the same sources (the selected one, else the newest) is replaced,
               in its place in the stack, keeping its opacity, mode and visibility
    new-layer  the new result goes at the top of the sources' stack of results

The stack of results of a source is the run of layers directly above it (same parent) that were made from it,
by any filter; a new result goes above all of them, so it is what the user sees (`stack_top`). A result of
another filter is an ordinary picture: running G on a result of F processes that result (deliberate chaining).

Names tell settings apart (`result_name`): the filter's title and the settings that differ from the defaults,
"Refocus (f/1.4, focal length 50 mm)", made unique among the names given (" #2", " #3", ...).
"""
from __future__ import annotations

RERUN_CHOICES = ("replace", "new-layer")
RERUN_LABELS = {"replace": "Replace the previous result", "new-layer": "Add a new layer each time"}
DEFAULT_RERUN = "replace"
MAX_SETTINGS_IN_NAME = 3


def source_ids(record):
    """The ids of the layers a result was made from ([] for a record that names none)."""
    if not isinstance(record, dict):
        return []
    ids = record.get("source_ids")
    if isinstance(ids, list) and ids:
        return list(ids)
    one = record.get("source_id")
    return [] if one is None else [one]


def is_result_of(record, op_name):
    return isinstance(record, dict) and record.get("operator") == op_name and bool(source_ids(record))


def rerun_sources(op_name, record):
    """The source ids to process instead of a selected layer whose provenance is `record`: its own sources
    when it is a result of `op_name`, else None (the selected layer is the source)."""
    return source_ids(record) if is_result_of(record, op_name) else None


def made_from(record, ids):
    """True when `record` is a result made from exactly the layers `ids` (in any order)."""
    mine = source_ids(record)
    return bool(mine) and sorted(map(str, mine)) == sorted(map(str, ids))


def stack_top(records_above, ids):
    """How many layers directly above the source belong to its stack of results.

    records_above: the provenance records (None for a plain layer) of the layers above the source, nearest
    first. The new result goes above the first `stack_top(...)` of them."""
    n = 0
    for record in records_above:
        if not made_from(record, ids):
            break
        n += 1
    return n


def previous_result(records_above, ids, op_name, selected=None):
    """Index (into records_above) of the result of `op_name` made from `ids` that a 'replace' run replaces, or
    None: `selected` (an index) when it is one, else the topmost such result of the stack."""
    top = stack_top(records_above, ids)
    if selected is not None and 0 <= selected < len(records_above) and made_from(records_above[selected], ids) \
            and is_result_of(records_above[selected], op_name):
        return selected
    found = None
    for k in range(top):
        if is_result_of(records_above[k], op_name):
            found = k
    return found


# ---------------------------------------------------------------------------------------------------------------
# Names


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    return a == b


def setting_text(p, v):
    """One setting for a layer name: 'f/1.4', 'focal length 50 mm', 'blades 6', 'stock kodak portra 400',
    'light ×2' (a list of two), 'focus at 130, 100'."""
    from . import words
    title = (p.get("title") or p["name"].replace("_", " ")).lower()
    if v is None:
        return "%s auto" % title
    if p.get("repeat"):
        return "%s ×%d" % (title, len(v or []))
    if p.get("unit") == "f-number":
        return words.format_value(p, v)
    if p.get("type") == "choice":
        return "%s %s" % (title, str(v).replace("_", " ").replace("-", " "))
    if p.get("type") in ("point", "vector"):
        return "%s %s" % (title, ", ".join(words.num(c) for c in v))
    return "%s %s" % (title, words.format_value(p, v))


def changed_settings(op, params):
    """The settings of a run that differ from the filter's defaults, main ones before advanced ones."""
    main, advanced = [], []
    for p in op.get("params", []):
        if p.get("type") == "string":
            continue
        v = params.get(p["name"], p.get("default"))
        if _same(v, p.get("default")):
            continue
        (advanced if p.get("advanced") else main).append(setting_text(p, v))
    return main + advanced


def result_name(op, params, taken=()):
    """'Refocus (f/1.4, focal length 50 mm)': the title and the first few changed settings, unique among
    `taken` (the names already in use; ' #2' and on are appended when needed)."""
    title = op.get("title") or op["name"]
    shown = changed_settings(op, params)
    more = len(shown) > MAX_SETTINGS_IN_NAME
    shown = shown[:MAX_SETTINGS_IN_NAME]
    name = "%s (%s%s)" % (title, ", ".join(shown), ", …" if more else "") if shown else title
    taken = set(taken)
    if name not in taken:
        return name
    k = 2
    while "%s #%d" % (name, k) in taken:
        k += 1
    return "%s #%d" % (name, k)
