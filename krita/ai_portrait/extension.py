"""Menu actions (Tools > Scripts > AI Portrait: …), one per operator, so users can assign shortcuts.

An action shows the docker with that operator selected and applies it with the docker's current settings.
Krita creates actions at start-up, before the worker (and so the live registry) is available without
blocking start-up; the operator list comes from the docker's cache (written by install_krita and refreshed
whenever the docker talks to the worker), so an operator added later gets its action at the next start.
"""
from functools import partial

from krita import Extension, Krita

from .docker import DOCKER_ID, cached_operators
from .document import log

ACTION_PREFIX = "ai_portrait_"


def find_docker(window=None):
    """Our docker in `window` (default: the active one); Krita lists the dockers of all windows together."""
    app = Krita.instance()
    window = window or app.activeWindow()
    ours = [d for d in app.dockers() if d.objectName() == DOCKER_ID]
    if window is not None:
        qwin = window.qwindow()
        for d in ours:
            if d.window() is qwin or d.window() == qwin:
                return d
    return ours[0] if ours else None


class AIPortraitExtension(Extension):
    def __init__(self, parent):
        super().__init__(parent)

    def setup(self):
        pass

    def createActions(self, window):
        try:
            for op in cached_operators():
                action = window.createAction(ACTION_PREFIX + op["name"],
                                             f"AI Portrait: {op.get('title') or op['name']}", "tools/scripts")
                action.setToolTip(op.get("help", ""))
                action.triggered.connect(partial(self.run_operator, op["name"]))
            show = window.createAction(ACTION_PREFIX + "show_docker", "AI Portrait: Show Docker", "tools/scripts")
            show.triggered.connect(self.show_docker)
        except Exception as exc:  # noqa: BLE001 - never let Krita show a modal error
            log(f"could not create the menu actions: {exc}")

    def show_docker(self, *_):
        try:
            d = find_docker()
            if d is not None:
                d.setVisible(True)
                d.raise_()
            return d
        except Exception as exc:  # noqa: BLE001
            log(f"could not show the docker: {exc}")
            return None

    def run_operator(self, name, *_):
        try:
            d = self.show_docker()
            if d is None:
                log("the AI Portrait docker is not available in this window")
                return
            if not d.select_operator(name):
                d._say(f"operator '{name}' is not offered by the worker any more", error=True)
                return
            d.apply()
        except Exception as exc:  # noqa: BLE001
            log(f"{name}: {exc}")
