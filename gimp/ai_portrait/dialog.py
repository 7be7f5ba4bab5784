"""The procedure's dialog: GimpUi.ProcedureDialog built from the generated arguments (GIMP keeps last values).

GimpUi (GTK) is imported only here, only for interactive runs: batch and non-interactive calls never need a
display.
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
    dialog.fill(None)
    _auto_ok_for_tests(dialog)
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()


def _auto_ok_for_tests(dialog) -> None:
    """Test aid: AI_PORTRAIT_DIALOG_AUTO_OK_MS=N presses OK after N ms (how the headless tests drive the real
    dialog under Xvfb); AI_PORTRAIT_DIALOG_SNAPSHOT_DIR=DIR also saves a picture of the dialog there."""
    ms = os.environ.get("AI_PORTRAIT_DIALOG_AUTO_OK_MS")
    if not ms:
        return
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    def press_ok():
        sys.stderr.write("ai_portrait: dialog shown with %d widgets; pressing OK\n" % _count_widgets(dialog))
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
