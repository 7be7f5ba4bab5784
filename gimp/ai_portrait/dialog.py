"""The procedure's dialog: GimpUi.ProcedureDialog built from the generated arguments (GIMP keeps last values).

Layout: the input layers and files, the parameters, each repeatable parameter as rows with 'Add another'
(rows.py, bound to its text argument), the parameters declared advanced under an 'Advanced' expander, then
the seed and the layer-mask switch. GimpUi (GTK) is imported only here, only for interactive runs: batch and
non-interactive calls never need a display.
"""
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import GLib  # noqa: E402

import arguments  # noqa: E402


def run(procedure, config, op) -> bool:
    """Show the dialog; True when the user pressed OK (the config then holds their values)."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi
    GimpUi.init("ai_portrait")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, op.get("title", op["name"]))
    arguments.shape_dialog(dialog, config, op)
    editors, expander = _layout(dialog, config, op)
    _auto_ok_for_tests(dialog, editors, expander)
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()


def _layout(dialog, config, op):
    """Fill the dialog; returns (the RepeatRows editors it holds, the Advanced expander or None).

    The ProcedureDialog places the property widgets; the rows are GTK widgets of ours, so they go into boxes
    the dialog made for us (fill_box returns the box, whose children are exactly its properties, in order)."""
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    import describe
    import rows

    main, advanced, rep_main, rep_adv = arguments.dialog_groups(op)
    tail = ["seed", "selection-as-mask"]
    head = [n for n in main if n not in tail]
    if not head:  # fill_box needs at least one property (none would mean all of them)
        head, tail = ["seed"], ["selection-as-mask"]
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
    return editors, expander


def _auto_ok_for_tests(dialog, editors=(), expander=None) -> None:
    """Test aid: AI_PORTRAIT_DIALOG_AUTO_OK_MS=N presses OK after N ms (how the headless tests drive the real
    dialog under Xvfb); AI_PORTRAIT_DIALOG_SNAPSHOT_DIR=DIR also saves a picture of the dialog there, and
    AI_PORTRAIT_DIALOG_ADD_ROWS=TITLE[,TITLE...] presses every 'Add another' button of those dialogs once first
    (a user adding an item) and opens the Advanced section."""
    ms = os.environ.get("AI_PORTRAIT_DIALOG_AUTO_OK_MS")
    if not ms:
        return
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    def add_rows():
        for editor in editors:
            editor.add_button.clicked()
        if expander is not None and hasattr(expander, "set_expanded"):
            expander.set_expanded(True)
        return False

    if dialog.get_title() in os.environ.get("AI_PORTRAIT_DIALOG_ADD_ROWS", "").split(","):
        GLib.timeout_add(max(int(ms) // 2, 1), add_rows)

    def press_ok():
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

    GLib.timeout_add(int(ms), press_ok)


def _count_widgets(widget) -> int:
    children = widget.get_children() if hasattr(widget, "get_children") else []
    return 1 + sum(_count_widgets(c) for c in children)
