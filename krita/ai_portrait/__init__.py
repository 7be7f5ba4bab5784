"""AI Portrait for Krita 5 (and 6): a docker whose controls are generated from the operator registry, plus one
menu action per operator. Pixels go to the `core` worker through the bundled bridge (vendor/plugin, standard
library only); Krita's own Python never imports torch. See bridge.py for how the bridge is found.
"""
import sys

try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

    from .docker import DOCKER_ID, AIPortraitDocker
    from .extension import AIPortraitExtension

    _app = Krita.instance()
    _app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, AIPortraitDocker))
    _app.addExtension(AIPortraitExtension(_app))
except Exception as _exc:  # noqa: BLE001 - an exception here would show a modal dialog at Krita's start
    print(f"[ai_portrait] not loaded: {_exc}", file=sys.stderr, flush=True)
