"""Outside Krita: build every operator page with the named Qt binding (PyQt5 = Krita 5, PyQt6 = Krita 6).

    python qt_controls_check.py PyQt6 registry.json

Exercises the Qt shim and every control type (sliders, spin boxes, auto switches, pickers, frames list) the
way the docker does; prints one JSON line with the values read back. Exit status 0 on success.
"""
import importlib
import json
import os
import sys

binding, registry_path = sys.argv[1], sys.argv[2]
QtWidgets = importlib.import_module(f"{binding}.QtWidgets")   # loaded first, as Krita itself would have
app = QtWidgets.QApplication([])
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(_REPO, "krita"))
os.environ.setdefault("AI_PORTRAIT_ROOT", _REPO)   # where the bridge (plugin/) is, as in a checkout
from ai_portrait import controls, qt  # noqa: E402

assert qt.QT_API == binding, qt.QT_API
with open(registry_path, encoding="utf-8") as fh:
    ops = json.load(fh)
report = {"api": qt.QT_API, "ops": {}}
for op in ops:
    page = controls.OperatorPage(op)
    for picker in page.pickers.values():
        picker.refresh([("id1", "Depth"), ("id2", "Portrait")])
    if page.frames is not None:
        page.frames.set_layers([("a", "Frame 1"), ("b", "Frame 2")])
    for ctl in page.params.values():
        if getattr(ctl, "slider", None) is not None:
            ctl.slider.setValue(700)
        ctl.reset()
    autos = {name: [s.text() for s in ctl._spin_boxes()] for name, ctl in page.params.items()
             if ctl.auto is not None and ctl.auto.isChecked()}
    report["ops"][op["name"]] = {"params": page.param_values(), "pickers": {k: p.value() for k, p in
                                                                             page.pickers.items()},
                                 "auto_text": autos,
                                 "frames": page.frames.value() if page.frames is not None else None}

# the docker itself, with a stand-in for Krita's module (only what the docker touches without a document)
import types  # noqa: E402

fake = types.ModuleType("krita")


class _App:
    settings = {}

    def readSetting(self, group, name, default):
        return self.settings.get((group, name), default)

    def writeSetting(self, group, name, value):
        self.settings[(group, name)] = value

    def activeDocument(self):
        return None

    def activeWindow(self):
        return None


fake.DockWidget = QtWidgets.QDockWidget
_APP = _App()
fake.Krita = types.SimpleNamespace(instance=lambda: _APP)
sys.modules["krita"] = fake
from ai_portrait import docker as docker_mod  # noqa: E402

docker_mod.cached_operators = lambda: ops
dock = docker_mod.AIPortraitDocker()
dock.select_operator(ops[-1]["name"])
dock.reset_button.click()
dock.apply_button.click()          # no document: a message in the status line, nothing raised
report["docker"] = {"pages": len(dock.pages), "status": dock.status.text(), "error": dock.last_error}
print(json.dumps(report, default=str))
