"""Rows for a repeatable parameter in the procedure dialog: one row per item, a '−' button on each, and an
'Add another' button under them.

The value itself stays in the procedure's text argument (arguments.py: items separated by ';', numbers by ','),
so PDB and batch calls, GIMP's remembered values and this editor agree; every edit writes the text back to
the config at once. GTK is imported only here, only for interactive runs.
"""
import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402

import describe  # noqa: E402

COORD_RANGE = 1.0e6
BIG = 1.0e9


def _range(p, k):
    hp = describe.bridge_params()
    if k < 2 and hp.has_coordinates(p) and p.get("min") is None and p.get("max") is None:
        return -COORD_RANGE, COORD_RANGE
    lo = -BIG if p.get("min") is None else float(p["min"])
    hi = BIG if p.get("max") is None else float(p["max"])
    return lo, hi


def _digits(p, k):
    if p.get("type") == "int":
        return 0
    if k < 2 and describe.bridge_params().has_coordinates(p):
        return 1
    return 3


class RepeatRows(Gtk.Frame):
    """The items of one repeatable parameter as rows of spin buttons (a combo box for a choice, an entry for
    text), bound to its text argument `prop` in `config`."""

    def __init__(self, config, prop, p):
        super().__init__(label=describe.param_label(p))
        self.config, self.prop, self.p = config, prop, p
        self.hp = describe.bridge_params()
        self.set_tooltip_text(describe.repeat_blurb(p))
        outer = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        outer.set_border_width(6)
        self.add(outer)
        self.grid = Gtk.Grid(column_spacing=6, row_spacing=4)
        outer.pack_start(self.grid, False, False, 0)
        self.heads = []  # column titles, shown while there are rows
        for col, text in enumerate(self.hp.component_labels(p)):
            unit = " (px)" if col < 2 and self.hp.has_coordinates(p) else ""
            head = Gtk.Label(label=f"{text}{unit}")
            head.set_xalign(0.0)
            self.grid.attach(head, col, 0, 1, 1)
            self.heads.append(head)
        self.empty = Gtk.Label(label="(none: press 'Add another')")
        self.empty.set_xalign(0.0)
        outer.pack_start(self.empty, False, False, 0)
        self.add_button = Gtk.Button.new_with_label("Add another")
        self.add_button.set_tooltip_text(f"add one more item to {describe.param_title(p).lower()}")
        self.add_button.connect("clicked", lambda _b: self.add_row(None))
        box = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL)
        box.pack_start(self.add_button, False, False, 0)
        outer.pack_start(box, False, False, 0)
        self.rows = []
        try:
            items = self.hp.parse_items(p, config.get_property(prop))
        except ValueError:
            items = []  # unreadable text from an earlier run: start afresh rather than fail the dialog
        for item in items:
            self.add_row(item, sync=False)
        self._update_empty()
        self.show_all()
        self._update_empty()

    # -- rows ---------------------------------------------------------------------------------------------------
    def add_row(self, item, sync=True):
        """Append a row holding `item` (None: a copy of the last row, or zeros/the first choice)."""
        if item is None:
            item = self.rows[-1]["get"]() if self.rows else self._blank()
        widgets, getter = self._editors(item)
        remove = Gtk.Button.new_with_label("−")
        remove.set_tooltip_text("remove this item")
        row = {"widgets": widgets + [remove], "get": getter}
        remove.connect("clicked", lambda _b, row=row: self.remove_row(row))
        line = len(self.rows) + 1
        for col, w in enumerate(row["widgets"]):
            self.grid.attach(w, col, line, 1, 1)
            w.show()
        self.rows.append(row)
        self._update_empty()
        if sync:
            self.sync()
        return row

    def remove_row(self, row):
        line = self.rows.index(row) + 1
        self.rows.remove(row)
        self.grid.remove_row(line)
        self._update_empty()
        self.sync()

    def values(self):
        return [row["get"]() for row in self.rows]

    def sync(self, *_):
        """Write the rows back into the procedure's text argument."""
        self.config.set_property(self.prop, self.hp.format_items(self.p, self.values()))

    def _update_empty(self):
        self.empty.set_visible(not self.rows)
        for head in self.heads:
            head.set_visible(bool(self.rows))

    def _blank(self):
        p = self.p
        n = self.hp.item_size(p)
        if n:
            return [min(max(0.0, _range(p, k)[0]), _range(p, k)[1]) for k in range(n)]
        if p.get("type") == "choice":
            return (p.get("choices") or [""])[0]
        if p.get("type") in ("float", "int"):
            lo, hi = _range(p, 0)
            return min(max(0, lo), hi)
        return ""

    def _editors(self, item):
        """(widgets, getter) for one item."""
        p, t = self.p, self.p.get("type")
        n = self.hp.item_size(p)
        if n or t in ("float", "int"):
            values = list(item) if n else [item]
            spins = []
            for k, v in enumerate(values):
                lo, hi = _range(p, k)
                step = float(p.get("step") or (1.0 if t == "int" or (k < 2 and self.hp.has_coordinates(p))
                                               else 0.01 if hi - lo <= 10 else 0.1))
                adj = Gtk.Adjustment(value=min(max(float(v), lo), hi), lower=lo, upper=hi, step_increment=step,
                                     page_increment=step * 10, page_size=0)
                spin = Gtk.SpinButton(adjustment=adj, climb_rate=1.0, digits=_digits(p, k))
                spin.set_numeric(True)
                spin.set_width_chars(7)
                spin.connect("value-changed", self.sync)
                spins.append(spin)
            if n:
                return spins, lambda: [float(s.get_value()) for s in spins]
            if t == "int":
                return spins, lambda: int(round(spins[0].get_value()))
            return spins, lambda: float(spins[0].get_value())
        if t == "choice":
            combo = Gtk.ComboBoxText()
            for c in p.get("choices") or []:
                combo.append(c, c.replace("_", " "))
            combo.set_active_id(item)
            combo.connect("changed", self.sync)
            return [combo], lambda: combo.get_active_id()
        entry = Gtk.Entry()
        entry.set_text(str(item))
        entry.connect("changed", self.sync)
        return [entry], lambda: entry.get_text()
