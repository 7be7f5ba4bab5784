"""Finding the host bridge (`plugin/`, standard library only) from inside Krita.

Krita's Python sees only system packages and its own pykrita folder, never the project's checkout. So the
installer (krita/install_krita.py) and the zip builder (krita/build_zip.py) put a copy of `plugin/` inside this
package, at `ai_portrait/vendor/plugin/`: the plugin is self-contained and its bridge always matches the version
it was installed with. `settings.json` beside this file (optional) names the worker's settings file when it
is not at plugin.config's default place. The worker itself (torch, `core`) is found through plugin.config (interpreter + checkout
root, written by install.py), never imported here.

Search order: the vendored copy; then the checkout named by $AI_PORTRAIT_ROOT (development); then whatever
`plugin` is importable, provided it is AI Portrait's (its docstring says so).
"""
import importlib
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
VENDOR_DIR = os.path.join(_HERE, "vendor")
_loaded = None


class BridgeMissing(ImportError):
    pass


def _is_ours(mod) -> bool:
    return "AI Portrait" in (getattr(mod, "__doc__", "") or "")


def _candidates():
    yield VENDOR_DIR
    root = os.environ.get("AI_PORTRAIT_ROOT")
    if root:
        yield root


def _apply_settings():
    """install_krita writes settings.json when the worker's settings file is not at its default place."""
    try:
        with open(os.path.join(_HERE, "settings.json"), "r", encoding="utf-8") as fh:
            path = json.load(fh).get("config_path")
    except (OSError, ValueError, AttributeError):
        return
    if path and not os.environ.get("AI_PORTRAIT_CONFIG"):
        os.environ["AI_PORTRAIT_CONFIG"] = path


def load():
    """The `plugin` package with its submodules client, pixels, config, params imported."""
    global _loaded
    if _loaded is not None:
        return _loaded
    _apply_settings()
    mod = sys.modules.get("plugin")
    if mod is None or not _is_ours(mod):
        for folder in _candidates():
            if os.path.isfile(os.path.join(folder, "plugin", "__init__.py")):
                if folder not in sys.path:
                    sys.path.insert(0, folder)
                if mod is not None and not _is_ours(mod):
                    del sys.modules["plugin"]   # a foreign 'plugin' would shadow ours
                break
        try:
            mod = importlib.import_module("plugin")
        except ImportError:
            mod = None
    if mod is None or not _is_ours(mod):
        raise BridgeMissing("AI Portrait's bridge (plugin/) is missing from the Krita plugin folder; reinstall with "
                            "'python3 install.py --hosts-only' from the AI Portrait checkout")
    for sub in ("client", "pixels", "config", "params", "results", "words", "preview"):
        importlib.import_module(f"plugin.{sub}")
    _loaded = mod
    return mod


def pixels_module():
    return load().pixels


def client_module():
    return load().client
