"""Widgets generated from the registry's JSON declarations: one control per parameter, one picker per input.

Nothing here knows any operator: a float with a range becomes a slider plus a spin box showing its unit, an int
the same with whole steps, a choice a combo box, a bool a check box, a point two pixel spin boxes, a vector one
spin box per number (x and y in pixels first when it holds coordinates), an optional parameter (None = derive it
automatically) gets an 'auto' check box. A repeatable parameter (its value a list of items) is a column of
rows, one control of its type per item with a '−' button, and an 'Add another' button under them. Parameters
declared advanced sit in a collapsed 'Advanced' section at the end of the page. Auxiliary inputs (depth,
normals, reference, background, mask) become layer pickers and a 'frames' input the list of the selected layers.

Every control carries objectName 'param:<name>' or 'input:<name>' so tests (and styles) can find them; the
item controls inside a repeatable one are 'item:<name>:<k>'.
"""
import math

from .qt import Qt, QtWidgets, enum

SLIDER_STEPS = 1000
NO_LAYER = "(none)"


def _words():
    from .bridge import load
    return load().words


def describe(p: dict) -> str:
    """Tooltip in a photographer's words (plugin.words): what the setting does, its range and default in its
    unit, the unit written out, how 'auto' works."""
    return _words().tooltip(p)


def unit_affixes(unit):
    """(prefix, suffix) of a spin box: 'f/' for an f-number, ' mm', '°', ' K'; nothing for an unknown unit."""
    return _words().unit_parts(unit)


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _places(x) -> int:
    """Decimal places needed to show x exactly (0.01 -> 2, 85.0 -> 0), at most 6."""
    text = f"{float(x):.6f}".rstrip("0")
    return min(len(text.split(".")[1]), 6) if "." in text else 0


def _decimals(p: dict) -> int:
    """Enough places for the bounds, step and default (Qt rounds the range to them), plus a sensible minimum
    for the span (a 0..1 ratio gets 3 places, a 0..2000 px range 1)."""
    lo, hi = p.get("min"), p.get("max")
    span = (hi - lo) if lo is not None and hi is not None else 100.0
    base = 3 if span <= 2 else 2 if span <= 50 else 1
    need = [_places(x) for x in (lo, hi, p.get("step"), p.get("default")) if isinstance(x, (int, float))]
    return max([base] + need)


class _Base(QtWidgets.QWidget):
    """A control with value()/set_value()/reset(); `auto` is the optional parameter's None switch."""

    def __init__(self, decl: dict, parent=None):
        super().__init__(parent)
        self.decl = decl
        self.setObjectName(f"param:{decl['name']}")
        self.setToolTip(describe(decl))
        self._row = QtWidgets.QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self.auto = None
        if decl.get("optional"):
            self.auto = QtWidgets.QCheckBox("auto", self)
            self.auto.setToolTip("derive this value automatically")
            self.auto.toggled.connect(self._auto_toggled)

    def _finish(self):
        if self.auto is not None:
            self._row.addWidget(self.auto)
        self.reset()

    def _auto_toggled(self, on: bool):
        """With 'auto' ticked the fields read 'auto' (greyed): the value is the filter's to choose, and a number
        there (the range's minimum, 0.01 m or f/0.5) would mean nothing. Unticked, they show the number set
        before, or a typical one (plugin.words.typical)."""
        for w in self._editors():
            w.setEnabled(not on)
        spins = self._spin_boxes()
        if on:
            kept = [s.value() for s in spins]
            if spins and not any(s.specialValueText() for s in spins):
                self._manual = kept
            for s in spins:
                s.setSpecialValueText(_words().AUTO)
                s.setValue(s.minimum())
        elif spins and any(s.specialValueText() for s in spins):
            for s in spins:
                s.setSpecialValueText("")
            manual = getattr(self, "_manual", None)
            if manual is None or all(v == s.minimum() for v, s in zip(manual, spins)):
                start = _words().typical(self.decl)
                manual = [start if not self._coordinates(k) else 0.0 for k in range(len(spins))]
            for s, v in zip(spins, manual):
                s.setValue(v)

    def _coordinates(self, k):
        return k < 2 and (self.decl.get("type") == "point" or bool(self.decl.get("coordinates")))

    def _editors(self):
        return []

    def _spin_boxes(self):
        """The number fields that read 'auto' while the value is left to the filter."""
        return []

    def reset(self):
        d = self.decl.get("default")
        if d is None and self.auto is not None:
            self.auto.setChecked(True)
            self._auto_toggled(True)
        else:
            if self.auto is not None:
                self.auto.setChecked(False)
            if d is not None:
                self._set(d)

    def value(self):
        if self.auto is not None and self.auto.isChecked():
            return None
        return self._get()

    def set_value(self, v):
        if v is None and self.auto is not None:
            self.auto.setChecked(True)
            return
        if self.auto is not None:
            self.auto.setChecked(False)
        self._set(v)


class NumberControl(_Base):
    """Slider + spin box; the spin box shows the unit. Unbounded numbers get the spin box only."""

    def __init__(self, decl: dict, parent=None):
        super().__init__(decl, parent)
        is_int = decl["type"] == "int"
        lo, hi = decl.get("min"), decl.get("max")
        if is_int:
            self.spin = QtWidgets.QSpinBox(self)
            self.spin.setRange(int(lo) if lo is not None else -2 ** 31 + 1, int(hi) if hi is not None else 2 ** 31 - 1)
            self.spin.setSingleStep(int(decl.get("step") or 1))
        else:
            self.spin = QtWidgets.QDoubleSpinBox(self)
            self.spin.setDecimals(_decimals(decl))
            self.spin.setRange(float(lo) if lo is not None else -1e9, float(hi) if hi is not None else 1e9)
            if decl.get("step"):
                self.spin.setSingleStep(float(decl["step"]))
            else:
                span = (hi - lo) if lo is not None and hi is not None else 1.0
                self.spin.setSingleStep(max(span / 100.0, 10.0 ** -self.spin.decimals()))
        prefix, suffix = unit_affixes(decl.get("unit"))
        self.spin.setSuffix(suffix)
        self.spin.setPrefix(prefix)
        self.spin.setObjectName(f"spin:{decl['name']}")
        self.slider = None
        # a range over several decades (0.01 m .. 100 km) gets a logarithmic slider: equal travel per decade
        self.log = (not is_int and lo is not None and hi is not None and lo > 0 and hi / lo >= 100)
        if lo is not None and hi is not None and hi > lo:
            self.slider = QtWidgets.QSlider(enum(Qt, "Orientation", "Horizontal"), self)
            self.slider.setObjectName(f"slider:{decl['name']}")
            self.slider.setRange(0, SLIDER_STEPS)
            self.slider.valueChanged.connect(self._from_slider)
            self.spin.valueChanged.connect(self._to_slider)
            self._row.addWidget(self.slider, 3)
        self._row.addWidget(self.spin, 2)
        self._syncing = False
        self._finish()

    def _editors(self):
        return [w for w in (self.slider, self.spin) if w is not None]

    def _spin_boxes(self):
        return [self.spin]

    def _from_slider(self, pos: int):
        if self._syncing:
            return
        lo, hi = float(self.decl["min"]), float(self.decl["max"])
        t = pos / SLIDER_STEPS
        v = lo * (hi / lo) ** t if self.log else lo + (hi - lo) * t
        self._syncing = True
        self.spin.setValue(int(round(v)) if self.decl["type"] == "int" else v)
        self._syncing = False

    def _to_slider(self, v):
        if self._syncing or self.slider is None:
            return
        lo, hi = float(self.decl["min"]), float(self.decl["max"])
        if self.log:
            t = math.log(max(float(v), lo) / lo) / math.log(hi / lo)
        else:
            t = (float(v) - lo) / (hi - lo)
        self._syncing = True
        self.slider.setValue(int(round(t * SLIDER_STEPS)))
        self._syncing = False

    def _get(self):
        v = self.spin.value()
        return int(v) if self.decl["type"] == "int" else float(v)

    def _set(self, v):
        self.spin.setValue(int(v) if self.decl["type"] == "int" else float(v))
        self._to_slider(self.spin.value())


class BoolControl(_Base):
    def __init__(self, decl: dict, parent=None):
        super().__init__(decl, parent)
        self.box = QtWidgets.QCheckBox(self)
        self._row.addWidget(self.box)
        self._row.addStretch(1)
        self._finish()

    def _editors(self):
        return [self.box]

    def _get(self):
        return bool(self.box.isChecked())

    def _set(self, v):
        self.box.setChecked(bool(v))


class ChoiceControl(_Base):
    def __init__(self, decl: dict, parent=None):
        super().__init__(decl, parent)
        self.combo = QtWidgets.QComboBox(self)
        for c in decl.get("choices") or []:
            self.combo.addItem(str(c).replace("_", " "), c)
        self._row.addWidget(self.combo, 1)
        self._finish()

    def _editors(self):
        return [self.combo]

    def _get(self):
        return self.combo.currentData()

    def _set(self, v):
        i = self.combo.findData(v)
        if i >= 0:
            self.combo.setCurrentIndex(i)


def _pick_button(ctl):
    """The checkable button that takes the next click on the canvas as this point (docker.py, canvas.py)."""
    b = QtWidgets.QToolButton(ctl)
    b.setObjectName(f"pick:{ctl.decl['name']}")
    b.setText("Pick")
    b.setCheckable(True)
    b.setToolTip("Click here, then click the spot in the picture (Esc cancels): its position becomes this "
                 "point, in pixels from the top-left corner")
    return b


class PointControl(_Base):
    """x, y in image pixels (origin top-left, y down); 'Pick' takes them from a click on the canvas."""

    def __init__(self, decl: dict, parent=None):
        super().__init__(decl, parent)
        self.xs, self.ys = QtWidgets.QDoubleSpinBox(self), QtWidgets.QDoubleSpinBox(self)
        for axis, s in (("x", self.xs), ("y", self.ys)):
            s.setRange(-1e6, 1e6)
            s.setDecimals(1)
            s.setPrefix(f"{axis} ")
            s.setSuffix(" px")
            self._row.addWidget(s, 1)
        self.pick = _pick_button(self)
        self._row.addWidget(self.pick)
        self._finish()

    def set_point(self, x, y):
        """A point picked on the canvas: the numbers, with 'auto' off."""
        self.set_value([x, y])

    def _editors(self):
        return [self.xs, self.ys]

    def _spin_boxes(self):
        return [self.xs, self.ys]

    def _get(self):
        return [float(self.xs.value()), float(self.ys.value())]

    def _set(self, v):
        if isinstance(v, str):
            v = [float(c) for c in v.split(",")]
        self.xs.setValue(float(v[0]))
        self.ys.setValue(float(v[1]))


class VectorControl(_Base):
    """`size` numbers in one row; when the vector holds coordinates its first two are x, y in image pixels."""

    def __init__(self, decl: dict, parent=None):
        super().__init__(decl, parent)
        n = 2 if decl.get("type") == "point" else int(decl.get("size") or 0)
        coords = bool(decl.get("coordinates"))
        lo, hi = decl.get("min"), decl.get("max")
        self.spins = []
        names = decl.get("components") or []
        # more than three named numbers do not fit one docker row with their names inside the fields (a light's
        # "azimuth (deg)" read "zimuth -"): a grid of three per line, each name written above its field
        grid = None
        if len(names) == n and n > 3 and not coords:
            box = QtWidgets.QWidget(self)
            grid = QtWidgets.QGridLayout(box)
            grid.setContentsMargins(0, 0, 0, 0)
            grid.setHorizontalSpacing(4)
            grid.setVerticalSpacing(0)
            self._row.addWidget(box, 1)
        for k in range(n):
            s = QtWidgets.QDoubleSpinBox(self)
            s.setObjectName(f"spin:{decl['name']}:{k}")
            if coords and k < 2:
                s.setRange(float(lo) if lo is not None else -1e6, float(hi) if hi is not None else 1e6)
                s.setDecimals(2)   # sub-pixel positions
                s.setPrefix(f"{'xy'[k]} ")
                s.setSuffix(" px")
            else:
                s.setRange(float(lo) if lo is not None else -1e9, float(hi) if hi is not None else 1e9)
                s.setDecimals(max(_decimals(decl), 3))
                if len(names) == n and grid is None:
                    s.setPrefix(f"{names[k]} ")
                if decl.get("step"):
                    s.setSingleStep(float(decl["step"]))
                elif lo is not None and hi is not None:
                    s.setSingleStep(max((hi - lo) / 100.0, 10.0 ** -s.decimals()))
            s.setToolTip(f"{names[k]} ({k + 1} of {n})" if len(names) == n else f"number {k + 1} of {n}")
            # a spin box asks for the width of its widest possible text (±1e9): let the row share the docker's
            # width instead, down to a readable minimum
            s.setSizePolicy(enum(QtWidgets.QSizePolicy, "Policy", "Ignored"),
                            enum(QtWidgets.QSizePolicy, "Policy", "Fixed"))
            s.setMinimumWidth(64)
            self.spins.append(s)
            if grid is not None:
                label = QtWidgets.QLabel(names[k], self)
                label.setToolTip(s.toolTip())
                font = label.font()
                font.setPointSizeF(font.pointSizeF() * 0.85)
                label.setFont(font)
                grid.addWidget(label, 2 * (k // 3), k % 3)
                grid.addWidget(s, 2 * (k // 3) + 1, k % 3)
            else:
                self._row.addWidget(s, 1)
        self.pick = _pick_button(self) if coords and n >= 2 else None
        if self.pick is not None:
            self._row.addWidget(self.pick)
        self._finish()

    def set_point(self, x, y):
        v = self._get() if not (self.auto is not None and self.auto.isChecked()) else [0.0] * len(self.spins)
        v[0], v[1] = float(x), float(y)
        self.set_value(v)

    def _editors(self):
        return list(self.spins)

    def _spin_boxes(self):
        return list(self.spins)

    def _get(self):
        return [float(s.value()) for s in self.spins]

    def _set(self, v):
        if isinstance(v, str):
            v = [float(c) for c in v.replace(" ", "").split(",") if c]
        for s, c in zip(self.spins, v):
            s.setValue(float(c))


class RepeatControl(_Base):
    """A list of items: one control of the parameter's type per row, '−' to remove a row, 'Add another' to
    append one (a copy of the last row, so a second light starts where the first is)."""

    def __init__(self, decl: dict, parent=None):
        super().__init__(decl, parent)
        # each row edits one item: the same declaration, not repeatable, always holding a value
        self.item_decl = dict(decl, repeat=False, optional=False, default=None, advanced=False)
        box = QtWidgets.QWidget(self)
        col = QtWidgets.QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        self.rows_box = QtWidgets.QWidget(box)
        self.rows_layout = QtWidgets.QVBoxLayout(self.rows_box)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(2)
        self.empty = QtWidgets.QLabel("(none)", box)
        self.add_button = QtWidgets.QPushButton("Add another", box)
        self.add_button.setObjectName(f"add:{decl['name']}")
        self.add_button.setToolTip("add one more item")
        self.add_button.clicked.connect(lambda *_: self.add_row())
        col.addWidget(self.rows_box)
        col.addWidget(self.empty)
        col.addWidget(self.add_button)
        self._row.addWidget(box, 1)
        self.rows = []   # [(row widget, item control)]
        self.on_item = None   # called with each new row's control (the docker wires its 'Pick' button)
        self._finish()

    def add_row(self, value=None):
        """Append a row holding `value` (None: a copy of the last row, or the control's blank value)."""
        line = QtWidgets.QWidget(self.rows_box)
        row = QtWidgets.QHBoxLayout(line)
        row.setContentsMargins(0, 0, 0, 0)
        ctl = make_param_control(self.item_decl, line)
        ctl.setObjectName(f"item:{self.decl['name']}:{len(self.rows)}")
        if value is None and self.rows:
            value = self.rows[-1][1].value()
        if value is not None:
            ctl.set_value(value)
        remove = QtWidgets.QToolButton(line)
        remove.setText("−")
        remove.setToolTip("remove this item")
        remove.clicked.connect(lambda *_: self.remove_row(line))
        row.addWidget(ctl, 1)
        row.addWidget(remove)
        self.rows_layout.addWidget(line)
        self.rows.append((line, ctl))
        self._update()
        if self.on_item is not None:
            self.on_item(ctl)
        return ctl

    def remove_row(self, line):
        self.rows = [(w, c) for w, c in self.rows if w is not line]
        self.rows_layout.removeWidget(line)
        line.setParent(None)
        line.deleteLater()
        for k, (_w, c) in enumerate(self.rows):
            c.setObjectName(f"item:{self.decl['name']}:{k}")
        self._update()

    def clear(self):
        for line, _c in list(self.rows):
            self.remove_row(line)

    def _update(self):
        self.empty.setVisible(not self.rows)

    def _editors(self):
        return [self.rows_box, self.add_button]

    def _get(self):
        return [c.value() for _w, c in self.rows]

    def _set(self, v):
        if isinstance(v, str):   # "60,20,1; -30,10,0.5": the text form hosts and the CLI share
            from .bridge import load
            v = load().params.parse_items(self.decl, v)
        self.clear()
        for item in v or []:
            self.add_row(item)


class StringControl(_Base):
    def __init__(self, decl: dict, parent=None):
        super().__init__(decl, parent)
        self.edit = QtWidgets.QLineEdit(self)
        self._row.addWidget(self.edit, 1)
        self._finish()

    def _editors(self):
        return [self.edit]

    def _get(self):
        return self.edit.text()

    def _set(self, v):
        self.edit.setText(str(v))


PARAM_CONTROLS = {"float": NumberControl, "int": NumberControl, "bool": BoolControl, "choice": ChoiceControl,
                  "point": PointControl, "vector": VectorControl, "string": StringControl}


def make_param_control(decl: dict, parent=None):
    if decl.get("repeat"):
        return RepeatControl(decl, parent)
    cls = PARAM_CONTROLS.get(decl.get("type"), StringControl)  # an unknown future type still gets a text box
    return cls(decl, parent)


# ---------------------------------------------------------------------------------------------------------------
# Inputs: layers of the active document.


class LayerPicker(QtWidgets.QComboBox):
    """Pick one layer of the document (by unique id) for an auxiliary input: depth, normals, reference, ..."""

    def __init__(self, decl: dict, parent=None):
        super().__init__(parent)
        self.decl = decl
        self.setObjectName(f"input:{decl['name']}")
        req = "" if decl.get("required", True) else " (optional)"
        self.setToolTip(f"{decl.get('help', '')}\nlayer used as {decl['kind']}{req}")

    def refresh(self, layers):
        """layers: [(id, label)] in stacking order. Keeps the current choice when that layer still exists."""
        keep = self.currentData()
        self.blockSignals(True)
        self.clear()
        if not self.decl.get("required", True):
            self.addItem(NO_LAYER, None)
        for lid, label in layers:
            self.addItem(label, lid)
        i = self.findData(keep) if keep is not None else -1
        if i < 0 and self.decl.get("required", True):
            i = self._guess(layers)
        self.setCurrentIndex(max(i, 0))
        self.blockSignals(False)

    def _guess(self, layers) -> int:
        """A required picker defaults to a layer whose name mentions its kind ('Depth', 'normals'), else none."""
        for k, (lid, label) in enumerate(layers):
            if self.decl["kind"] in label.lower() or self.decl["name"] in label.lower():
                return k
        return -1

    def value(self):
        return self.currentData()


class FramesList(QtWidgets.QWidget):
    """The frames of a burst: the layers selected in the Layers docker, each can be unticked."""

    def __init__(self, decl: dict, parent=None):
        super().__init__(parent)
        self.decl = decl
        self.setObjectName(f"input:{decl['name']}")
        self.setToolTip(f"{decl.get('help', '')}\nThe layers selected in the Layers docker (the active one first: "
                        f"the reference); untick a layer to leave it out.")
        col = QtWidgets.QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        self.list = QtWidgets.QListWidget(self)
        self.list.setMaximumHeight(110)
        self.unticked = set()   # layer ids the user unticked
        self.ids = []
        self.button = QtWidgets.QPushButton("Use selected layers", self)
        col.addWidget(self.list)
        col.addWidget(self.button)

    def set_layers(self, layers):
        """layers: [(id, label)], ticked, except those the user unticked earlier (kept while listed)."""
        role = enum(Qt, "ItemDataRole", "UserRole")
        checked = enum(Qt, "CheckState", "Checked")
        unchecked = enum(Qt, "CheckState", "Unchecked")
        for i in range(self.list.count()):
            item = self.list.item(i)
            (self.unticked.discard if item.checkState() == checked else self.unticked.add)(item.data(role))
        self.list.clear()
        for lid, label in layers:
            item = QtWidgets.QListWidgetItem(label, self.list)
            item.setData(role, lid)
            item.setFlags(item.flags() | enum(Qt, "ItemFlag", "ItemIsUserCheckable"))
            item.setCheckState(unchecked if lid in self.unticked else checked)
        self.ids = [lid for lid, _ in layers]

    def value(self):
        checked = enum(Qt, "CheckState", "Checked")
        role = enum(Qt, "ItemDataRole", "UserRole")
        return [self.list.item(i).data(role) for i in range(self.list.count())
                if self.list.item(i).checkState() == checked]


class OperatorPage(QtWidgets.QWidget):
    """All controls of one operator, laid out as a form, built from its JSON declaration."""

    def __init__(self, op: dict, parent=None):
        super().__init__(parent)
        self.op = op
        self.setObjectName(f"page:{op['name']}")
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.help = QtWidgets.QLabel(op.get("help", ""), self)
        self.help.setWordWrap(True)
        form.addRow(self.help)
        self.params = {}
        self.pickers = {}
        self.frames = None
        for inp in op.get("inputs", []):
            if inp["kind"] == "image":
                continue  # the primary picture is the active layer
            if inp["kind"] == "frames":
                self.frames = FramesList(inp, self)
                self.frames.inp_name = inp["name"]
                form.addRow(_label(inp["name"], "frames"), self.frames)
            else:
                picker = LayerPicker(inp, self)
                self.pickers[inp["name"]] = picker
                form.addRow(_label(inp["name"], inp["kind"]), picker)
        self.advanced = None
        advanced_form = None
        # the main settings first, then the collapsed 'Advanced' section with the expert ones
        for p in sorted(op.get("params", []), key=lambda p: bool(p.get("advanced"))):
            where = form
            if p.get("advanced"):
                if advanced_form is None:
                    advanced_form = self._advanced_section(form)
                where = advanced_form
            ctl = make_param_control(p, self.advanced if p.get("advanced") else self)
            self.params[p["name"]] = ctl
            lab = QtWidgets.QLabel(p.get("title") or p["name"].replace("_", " ").capitalize(), ctl.parent())
            lab.setToolTip(ctl.toolTip())
            where.addRow(lab, ctl)

    def _advanced_section(self, form):
        """A collapsed 'Advanced' section at the end of the page (a toggle button opening a sub-form)."""
        self.advanced_button = QtWidgets.QToolButton(self)
        self.advanced_button.setObjectName("advanced_toggle")
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(enum(Qt, "ToolButtonStyle", "ToolButtonTextBesideIcon"))
        self.advanced_button.setArrowType(enum(Qt, "ArrowType", "RightArrow"))
        self.advanced_button.setAutoRaise(True)
        self.advanced = QtWidgets.QWidget(self)
        self.advanced.setObjectName("advanced")
        sub = QtWidgets.QFormLayout(self.advanced)
        sub.setContentsMargins(12, 0, 0, 0)
        self.advanced.setVisible(False)

        def toggled(on):
            self.advanced.setVisible(bool(on))
            self.advanced_button.setArrowType(enum(Qt, "ArrowType", "DownArrow" if on else "RightArrow"))
        self.advanced_button.toggled.connect(toggled)
        form.addRow(self.advanced_button)
        form.addRow(self.advanced)
        return sub

    def param_values(self) -> dict:
        return {name: ctl.value() for name, ctl in self.params.items()}

    def pick_controls(self):
        """{parameter name: control} for every control with a 'Pick' button (points on the canvas)."""
        return {name: ctl for name, ctl in self.params.items() if getattr(ctl, "pick", None) is not None}

    def reset(self):
        for ctl in self.params.values():
            ctl.reset()


def _label(name: str, kind: str) -> str:
    text = name.replace("_", " ").capitalize()
    return text if name == kind else f"{text} ({kind})"
