"""A point taken from a click on the canvas, for a point parameter (a focus point, a light, a face).

While a control's pick button is on, a Qt event filter sits on the active view's canvas widget: the next left
click is not passed on to the tool (nothing gets painted), its position becomes the parameter's x, y in image
pixels (origin top-left, y down), and the button goes off; Esc cancels.

Widget position -> image pixel. Krita 5.2 and later expose the view's transforms (flakeToCanvasTransform,
flakeToImageTransform): image = flakeToImage(inverse(flakeToCanvas)(widget)), rotation and mirroring included.
Krita 5.1's Python API has no transform: there the canvas widget shows the image scaled by the view's zoom
(Canvas.zoomLevel(): screen pixels per image pixel) and shifted by the document offset, which is the position
of the canvas controller's scroll bars (negative when a small image is centred in the view):
    image = (widget + (horizontal scroll value, vertical scroll value)) / zoom
A rotated or mirrored 5.1 view is refused with a message (its transform is not exposed).
"""
from .qt import QtCore, QtWidgets

CANVAS_CLASSES = ("KisOpenGLCanvas2", "KisQPainterCanvas")


def canvas_widgets(window):
    """The canvas widgets of the window's active view (the active sub-window first)."""
    qwin = window.qwindow()
    mdi = qwin.findChild(QtWidgets.QMdiArea)
    roots = [mdi.activeSubWindow()] if mdi is not None and mdi.activeSubWindow() is not None else [qwin]
    found = []
    for root in roots:
        for w in root.findChildren(QtWidgets.QWidget):
            if w.metaObject().className() in CANVAS_CLASSES and w.isVisible():
                found.append(w)
    return found


def image_position(window, view, widget_pos, widget=None):
    """(x, y) in image pixels of a position in the canvas widget, or None when it cannot be known."""
    p = QtCore.QPointF(widget_pos)
    if hasattr(view, "flakeToCanvasTransform") and hasattr(view, "flakeToImageTransform"):
        inverted, ok = view.flakeToCanvasTransform().inverted()
        if ok:
            q = view.flakeToImageTransform().map(inverted.map(p))
            return float(q.x()), float(q.y())
    canvas = view.canvas() if view is not None else None
    if canvas is None or abs(float(canvas.rotation())) > 1e-6 or canvas.mirror():
        return None
    area = widget.parentWidget() if widget is not None else None
    while area is not None and not isinstance(area, QtWidgets.QAbstractScrollArea):
        area = area.parentWidget()
    zoom = float(canvas.zoomLevel())
    if area is None or zoom <= 0:
        return None
    return ((p.x() + area.horizontalScrollBar().value()) / zoom,
            (p.y() + area.verticalScrollBar().value()) / zoom)


class CanvasPicker(QtCore.QObject):
    """Takes one left click on the active view's canvas and calls on_point(x, y) (image pixels), or
    on_cancel(reason)."""

    def __init__(self, on_point, on_cancel, parent=None):
        super().__init__(parent)
        self.on_point, self.on_cancel = on_point, on_cancel
        self.widgets = []
        self.window = self.view = None

    @property
    def active(self):
        return bool(self.widgets)

    def start(self, window):
        self.stop()
        self.window = window
        self.view = window.activeView() if window is not None else None
        self.widgets = canvas_widgets(window) if self.view is not None else []
        for w in self.widgets:
            w.installEventFilter(self)
        return self.active

    def stop(self):
        for w in self.widgets:
            try:
                w.removeEventFilter(self)
            except RuntimeError:  # the view was closed
                pass
        self.widgets = []

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        try:
            t = event.type()
            if t == _event("MouseButtonPress") and event.button() == _button("LeftButton"):
                where = event.position() if hasattr(event, "position") else event.pos()
                pos = image_position(self.window, self.view, where, obj)
                self.stop()
                if pos is None:
                    self.on_cancel("the point under the pointer is not known in a rotated or mirrored view: reset "
                                   "the view (or type the numbers in)")
                else:
                    self.on_point(*pos)
                return True   # the click picked a point: the tool must not paint with it
            if t == _event("KeyPress") and event.key() == _key("Key_Escape"):
                self.stop()
                self.on_cancel("")
                return True
        except Exception as exc:  # noqa: BLE001 - an exception in an event filter would reach Krita
            self.stop()
            self.on_cancel(f"picking failed: {exc}")
        return False


def _event(name):
    scoped = getattr(QtCore.QEvent, "Type", None)
    return getattr(scoped, name) if scoped is not None and hasattr(scoped, name) else getattr(QtCore.QEvent, name)


def _button(name):
    scoped = getattr(QtCore.Qt, "MouseButton", None)
    return getattr(scoped, name) if scoped is not None and hasattr(scoped, name) else getattr(QtCore.Qt, name)


def _key(name):
    scoped = getattr(QtCore.Qt, "Key", None)
    return getattr(scoped, name) if scoped is not None and hasattr(scoped, name) else getattr(QtCore.Qt, name)
