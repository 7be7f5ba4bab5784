"""One import point for Qt, so the plugin loads in Krita 5 (PyQt5) and Krita 6 (PyQt6).

Krita's own `krita` module has already imported the binding it was built with, so that one is preferred; the
other is only a fallback. PyQt6 accepts scoped enums only (Qt.Orientation.Horizontal), PyQt5 mostly flat ones
(Qt.Horizontal): `enum()` resolves either spelling, and the few moved classes are re-exported from here.
"""
import sys

if "PyQt6.QtCore" in sys.modules:
    _ORDER = ("PyQt6", "PyQt5")
else:
    _ORDER = ("PyQt5", "PyQt6")

QT_API = None
for _name in _ORDER:
    try:
        if _name == "PyQt6":
            from PyQt6 import QtCore, QtGui, QtWidgets  # noqa: F401
        else:
            from PyQt5 import QtCore, QtGui, QtWidgets  # noqa: F401
        QT_API = _name
        break
    except ImportError:
        continue
if QT_API is None:
    raise ImportError("AI Portrait needs PyQt5 (Krita 5) or PyQt6 (Krita 6); neither is importable")

Qt = QtCore.Qt
QByteArray = QtCore.QByteArray
QObject = QtCore.QObject
QThread = QtCore.QThread
QTimer = QtCore.QTimer
Signal = QtCore.pyqtSignal
Slot = QtCore.pyqtSlot
# QAction moved from QtWidgets to QtGui in Qt 6.
QAction = getattr(QtGui, "QAction", None) or getattr(QtWidgets, "QAction")


def enum(owner, scope: str, member: str):
    """`enum(Qt, "Orientation", "Horizontal")` -> Qt.Orientation.Horizontal (PyQt6) or Qt.Horizontal (PyQt5)."""
    scoped = getattr(owner, scope, None)
    if scoped is not None and hasattr(scoped, member):
        return getattr(scoped, member)
    return getattr(owner, member)


def exec_(obj, *args):
    """QDialog/QEventLoop exec: `exec_` in PyQt5, `exec` in PyQt6."""
    fn = getattr(obj, "exec", None) or getattr(obj, "exec_")
    return fn(*args)
