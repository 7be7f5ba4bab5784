"""A point taken from the canvas for a point parameter (a focus point, a light, a face): the first anchor of
the selected path, else the centre of the selection's bounds, in image pixels (origin top-left, y down).

GIMP's plug-in API cannot follow clicks on the canvas while a dialog is open, so the user marks the point the
GIMP way before opening the filter: a path made with the Paths tool (one click is one anchor) or a selection
around the spot. The dialog's "From the canvas" button takes it and says where it came from.
"""
from __future__ import annotations

from typing import Optional, Tuple

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402


def point(image) -> Optional[Tuple[float, float, str]]:
    """(x, y, where it comes from in words) or None when the image has neither a path nor a selection."""
    for path in list(image.get_selected_paths() or []) + list(image.get_paths() or []):
        for stroke in path.get_strokes() or []:
            _kind, pts, _closed = path.stroke_get_points(stroke)
            if len(pts) >= 4:
                # a Bézier stroke lists each anchor as (handle in, anchor, handle out): the anchor is 2nd
                return float(pts[2]), float(pts[3]), f"the first point of path '{path.get_name()}'"
    res = Gimp.Selection.bounds(image)
    non_empty, x1, y1, x2, y2 = res if len(res) == 5 else (True,) + tuple(res)[-4:]
    if non_empty and not Gimp.Selection.is_empty(image):
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0, "the centre of the selection"
    return None
