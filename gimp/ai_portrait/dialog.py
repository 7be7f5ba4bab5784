"""The procedure's dialog: GimpUi.ProcedureDialog built from the generated arguments (GIMP keeps last values).

Layout: the input layers and files, the parameters, each repeatable parameter as rows with 'Add another'
(rows.py, bound to its text argument), the parameters declared advanced under an 'Advanced' expander, then
the seed and the layer-mask switch. GimpUi (GTK) is imported only here, only for interactive runs: batch and
non-interactive calls never need a display.
"""
import json
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import GLib  # noqa: E402

import arguments  # noqa: E402


def run(procedure, config, op, note="", image=None, preview=None) -> bool:
    """Show the dialog; True when the user pressed OK (the config then holds their values). note: what the run
    works on (a burst's layers), shown at the top; image: where 'From the canvas' takes points from; preview:
    the live preview's source (ai_portrait._Preview), shown under a 'Preview' toggle."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi
    GimpUi.init("ai_portrait")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, op.get("title", op["name"]))
    arguments.shape_dialog(dialog, config, op)
    editors, expander, main_box = _layout(dialog, config, op)
    autos = _show_auto(dialog, config, op)
    if note:
        _add_note(main_box, note)
    picks = _point_pickers(main_box, config, op, image) if image is not None else []
    pane = PreviewPane(main_box, config, preview) if preview is not None and preview.available() else None
    _auto_ok_for_tests(dialog, editors, expander, autos, note, picks, pane)
    try:
        return bool(dialog.run())
    finally:
        if pane is not None:
            pane.close()
        dialog.destroy()


class PreviewPane:
    """'Preview' (off at first) and the proxy's result under it, updated after every change of a setting: the
    layers are read on GTK's thread, the worker runs on another, a newer change cancels the job still running
    (its late result is dropped). The applied run is always computed at full size."""

    def __init__(self, box, config, source):
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
        self.config, self.source = config, source
        self.toggle = Gtk.CheckButton.new_with_label("Preview")
        self.toggle.set_tooltip_text("show the result of these settings on a small copy of the selection (about "
                                     "400 × 400 pixels), updated as you change them")
        self.image = Gtk.Image()
        self.status = Gtk.Label(label="")
        self.status.set_xalign(0.0)
        for w in (self.toggle, self.image, self.status):
            box.pack_start(w, False, False, 0)
            w.show()
        self.toggle.connect("toggled", lambda *_: self.changed())
        self.handler = config.connect("notify", lambda *_: self.changed())
        self.gen = 0
        self.cancel = None
        self.pending = None
        self.changed_at = 0.0
        self.stats = {"started": 0, "cancelled": 0, "shown": 0, "seconds": [], "errors": [], "last": None}
        self.on_shown = None   # tests: called after each preview is drawn

    def changed(self):
        if not self.toggle.get_active():
            self._cancel()
            self.image.clear()
            return
        if self.pending is None:   # settings change in bursts (a slider drag): start once they pause briefly
            import time
            self.changed_at = time.monotonic()   # the preview's delay is counted from the first change
            self.pending = GLib.timeout_add(120, self._start)

    def _cancel(self):
        if self.cancel is not None:
            self.cancel.set()
            self.stats["cancelled"] += 1
            self.cancel = None
        self.gen += 1

    def _start(self):
        import threading
        self.pending = None
        self._cancel()
        gen = self.gen
        try:
            job = self.source.prepare(self.config)
        except Exception as exc:  # noqa: BLE001 - a setting that cannot run yet: say so, keep the dialog
            self.status.set_text(f"preview: {getattr(exc, 'message', None) or exc}")
            self.stats["errors"].append(str(exc))
            return False
        cancel = threading.Event()
        self.cancel = cancel
        self.stats["started"] += 1
        self.status.set_text("preview: computing…")

        def work():
            try:
                out = self.source.compute(job, cancel)
            except Exception as exc:  # noqa: BLE001
                if not cancel.is_set():
                    GLib.idle_add(self._failed, gen, exc)
                return
            GLib.idle_add(self._show, gen, out)
        threading.Thread(target=work, daemon=True, name="ai-portrait-preview").start()
        return False

    def _failed(self, gen, exc):
        if gen == self.gen:
            self.status.set_text(f"preview: {getattr(exc, 'message', None) or exc}")
            self.stats["errors"].append(str(getattr(exc, "message", None) or exc))
        return False

    def _show(self, gen, out):
        import time
        if gen != self.gen or not self.toggle.get_active():
            return False   # a newer change is being computed: this one is stale
        gi.require_version("GdkPixbuf", "2.0")
        from gi.repository import GdkPixbuf
        w, h, data = out
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(data), GdkPixbuf.Colorspace.RGB, True, 8, w, h,
                                                 w * 4)
        self.image.set_from_pixbuf(pixbuf)
        self.cancel = None
        self.stats["shown"] += 1
        self.stats["seconds"].append(round(time.monotonic() - self.changed_at, 3))
        self.stats["last"] = (w, h, data)
        self.status.set_text(f"preview: {w} × {h} (OK computes it at full size)")
        if self.on_shown is not None:
            self.on_shown(self)
        return False

    def close(self):
        self._cancel()
        try:
            self.config.disconnect(self.handler)
        except Exception:  # noqa: BLE001
            pass
        self.source.close()


def _layout(dialog, config, op):
    """Fill the dialog; returns (the RepeatRows editors it holds, the Advanced expander or None).

    The ProcedureDialog places the property widgets; the rows are GTK widgets of ours, so they go into boxes
    the dialog made for us (fill_box returns the box, whose children are exactly its properties, in order)."""
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    import describe
    import rows

    main, advanced, rep_main, rep_adv = arguments.dialog_groups(op)
    tail = ["rerun", "seed", "selection-as-mask"]
    head = [n for n in main if n not in tail]
    if not head:  # fill_box needs at least one property (none would mean all of them)
        head, tail = ["rerun"], ["seed", "selection-as-mask"]
    main_box = dialog.fill_box("aip-main", head)
    editors = []
    for p in rep_main:
        editor = rows.RepeatRows(config, describe.param_arg(p["name"]), p)
        main_box.pack_start(editor, False, False, 0)
        editors.append(editor)
    expander = None
    if advanced:
        adv_box = dialog.fill_box("aip-advanced-box", advanced)
        dialog.get_label("aip-advanced-title", "Advanced", False, False)
        expander = dialog.fill_expander("aip-advanced", "aip-advanced-title", False, "aip-advanced-box")
        dialog.fill(["aip-main", "aip-advanced"] + tail)
    else:
        dialog.fill(["aip-main"] + tail)
        if rep_adv:  # only repeatable parameters are advanced: an expander of our own, last in the main box
            expander = Gtk.Expander(label="Advanced")
            adv_box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
            expander.add(adv_box)
            main_box.pack_start(expander, False, False, 0)
            expander.show_all()
    for p in rep_adv:
        editor = rows.RepeatRows(config, describe.param_arg(p["name"]), p)
        adv_box.pack_start(editor, False, False, 0)
        editors.append(editor)
    for editor in editors:
        p = editor.p
        if arguments.has_auto(p):  # the rows are greyed out while 'Automatic' is ticked
            auto = describe.param_arg(p["name"] + "-auto")
            editor.set_sensitive(not config.get_property(auto))
            config.connect(f"notify::{auto}", lambda cfg, _s, e=editor, a=auto: e.set_sensitive(
                not cfg.get_property(a)))
    return editors, expander, main_box


def _add_note(box, text):
    """A line at the top of the dialog saying what the run works on."""
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk
    label = Gtk.Label(label=text)
    label.set_xalign(0.0)
    label.set_line_wrap(True)
    label.set_max_width_chars(60)
    label.set_name("aip-note")
    box.pack_start(label, False, False, 0)
    box.reorder_child(label, 0)
    label.show()
    return label


def _point_pickers(box, config, op, image):
    """A 'From the canvas' button for each point (and each coordinate vector that is not a list): it sets the
    numbers to the selected path's first anchor or the selection's centre (canvas.py), in image pixels, and
    unticks 'Automatic'. Returns the buttons."""
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    import canvas
    import describe
    from plugin import params as hp

    found = canvas.point(image)
    buttons = []
    for p in op.get("params", []):
        if p.get("repeat") or not hp.has_coordinates(p):
            continue
        x_arg, y_arg = describe.component_args(p)[:2]
        title = describe.param_title(p)
        where = f"{found[2]}: {found[0]:.1f}, {found[1]:.1f}" if found else \
            "draw a path (one click) or select around the spot first"
        button = Gtk.Button.new_with_label(f"{title}: from the canvas ({where})")
        button.set_tooltip_text(f"set {title.lower()} to the first point of the selected path, or else to the "
                                f"centre of the selection, in image pixels")
        button.set_sensitive(found is not None)

        def take(_b, x_arg=x_arg, y_arg=y_arg, p=p):
            if found is None:
                return
            config.set_property(x_arg, float(found[0]))
            config.set_property(y_arg, float(found[1]))
            if arguments.has_auto(p):
                config.set_property(describe.param_arg(p["name"] + "-auto"), False)
        button.connect("clicked", take)
        box.pack_start(button, False, False, 0)
        button.show()
        buttons.append(button)
    return buttons


def _show_auto(dialog, config, op):
    """A value left to the filter reads 'auto' in its field (greyed), not a placeholder number: each number of
    a parameter with an 'Automatic' box formats itself through its spin button's 'output' signal. Returns
    {argument name: spin button} for the tests."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GObject

    import describe
    from plugin import words

    spins = {}
    for p in op.get("params", []):
        if not arguments.has_auto(p) or p.get("repeat"):
            continue
        auto = describe.param_arg(p["name"] + "-auto")
        bounded = p.get("min") is not None and p.get("max") is not None
        scale = bounded and p["type"] in ("float", "int", "vector")   # shape_dialog made those scale entries
        for name in arguments.value_args(p):
            widget = dialog.get_scale_entry(name, 1.0) if scale else dialog.get_widget(name, GObject.TYPE_NONE)
            spin = widget.get_spin_button() if hasattr(widget, "get_spin_button") else widget
            if not hasattr(spin, "set_text") or not hasattr(spin, "get_adjustment"):
                continue

            def output(button, auto=auto):
                if config.get_property(auto):
                    button.set_text(words.AUTO)
                    return True
                return False
            spin.set_numeric(False)   # a numeric spin button refuses the letters of 'auto'
            spin.connect("output", output)
            config.connect(f"notify::{auto}", lambda *_a, s=spin: s.get_adjustment().emit("value-changed"))
            spin.get_adjustment().emit("value-changed")
            spins[name] = spin
    return spins


def _auto_ok_for_tests(dialog, editors=(), expander=None, autos=None, note="", picks=(), pane=None) -> None:
    """Test aid: AI_PORTRAIT_DIALOG_AUTO_OK_MS=N presses OK after N ms (how the headless tests drive the real
    dialog under Xvfb); AI_PORTRAIT_DIALOG_SNAPSHOT_DIR=DIR also saves a picture of the dialog there, and
    AI_PORTRAIT_DIALOG_ADD_ROWS=TITLE[,TITLE...] presses every 'Add another' button of those dialogs once first
    (a user adding an item) and opens the Advanced section; AI_PORTRAIT_DIALOG_PICK_POINTS=1 presses every
    'From the canvas' button; AI_PORTRAIT_DIALOG_HELP=TITLE[,...] presses Help in those dialogs, then
    Cancel. What the dialog showed (the note, the canvas points, the 'auto' fields) is written to stderr."""
    ms = os.environ.get("AI_PORTRAIT_DIALOG_AUTO_OK_MS")
    if not ms:
        return
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    def pick():
        for button in picks:
            button.clicked()
        return False

    if os.environ.get("AI_PORTRAIT_DIALOG_PICK_POINTS") == "1":
        GLib.timeout_add(max(int(ms) // 3, 1), pick)

    def add_rows():
        for editor in editors:
            editor.add_button.clicked()
        if expander is not None and hasattr(expander, "set_expanded"):
            expander.set_expanded(True)
        return False

    if dialog.get_title() in os.environ.get("AI_PORTRAIT_DIALOG_ADD_ROWS", "").split(","):
        GLib.timeout_add(max(int(ms) // 2, 1), add_rows)

    def press_ok():
        if note:
            sys.stderr.write("ai_portrait: note: %s\n" % note)
        if picks:
            sys.stderr.write("ai_portrait: canvas points: %s\n" % " | ".join(b.get_label() for b in picks))
        if autos:
            sys.stderr.write("ai_portrait: auto fields: %s\n" % ", ".join(
                "%s=%s" % (name, spin.get_text()) for name, spin in sorted(autos.items())))
        sys.stderr.write("ai_portrait: dialog shown with %d widgets (%d repeat editors, %s rows); pressing OK\n"
                         % (_count_widgets(dialog), len(editors), [len(e.rows) for e in editors]))
        folder = os.environ.get("AI_PORTRAIT_DIALOG_SNAPSHOT_DIR")
        if folder:
            gi.require_version("Gdk", "3.0")
            from gi.repository import Gdk
            win = dialog.get_window()
            shot = Gdk.pixbuf_get_from_window(win, 0, 0, win.get_width(), win.get_height())
            shot.savev(os.path.join(folder, dialog.get_title().replace(" ", "_") + ".png"), "png", [], [])
        dialog.response(Gtk.ResponseType.OK)
        return False

    if dialog.get_title() in os.environ.get("AI_PORTRAIT_DIALOG_HELP", "").split(","):
        def press_help():   # the Help button, then Cancel (GIMP opens the page by itself)
            sys.stderr.write("ai_portrait: pressing Help in '%s'\n" % dialog.get_title())
            dialog.response(Gtk.ResponseType.HELP)
            GLib.timeout_add(4000, lambda: dialog.response(Gtk.ResponseType.CANCEL) and False)
            return False
        GLib.timeout_add(int(ms), press_help)
        return
    for entry in os.environ.get("AI_PORTRAIT_DIALOG_PREVIEW", "").split("|"):
        title, _, plan = entry.partition(":")
        if plan and pane is not None and title == dialog.get_title():
            _preview_for_tests(pane, plan, press_ok, title)
            return
    GLib.timeout_add(int(ms), press_ok)


def _preview_for_tests(pane, plan, press_ok, title=""):
    """AI_PORTRAIT_DIALOG_PREVIEW=TITLE:NAME=V,NAME=V,...[|TITLE:...]: in that dialog tick 'Preview', then after each
    preview is shown set the next number argument (a slider moved); after the last, report the previews on
    stderr (count, seconds from the change, each one's mean level of R, G, B) and press OK. 'NAME=V!' is
    followed 0.7 s later by the next change, while its job runs: that job must be cancelled and never shown."""
    steps = [item.strip() for item in plan.split(",") if item.strip()]
    means = []

    def mean(data):
        total = sum(data[k] + data[k + 1] + data[k + 2] for k in range(0, len(data), 4))
        return total / (3.0 * 255.0 * (len(data) // 4))

    def advance():
        if steps:
            item = steps.pop(0)
            name, _, v = item.partition("=")
            pane.config.set_property(name, float(v.rstrip("!")))
            if v.endswith("!"):   # change again while its job runs: that job must be cancelled
                GLib.timeout_add(700, lambda: advance() and False)
            return
        sys.stderr.write("ai_portrait: preview (%s): %s\n" % (title, json.dumps(dict(pane.stats, last=None,
                                                                                  means=means))))
        GLib.timeout_add(200, press_ok)

    def next_step(p):
        means.append(round(mean(p.stats["last"][2]), 4))
        advance()
    pane.on_shown = next_step
    GLib.timeout_add(300, lambda: pane.toggle.set_active(True) and False)


def _count_widgets(widget) -> int:
    children = widget.get_children() if hasattr(widget, "get_children") else []
    return 1 + sum(_count_widgets(c) for c in children)
