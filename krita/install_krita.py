"""Install the AI Portrait Krita plugin into the user's pykrita folder and enable it (standard library only).

    install(repo_root, config_path=None) -> [paths written]

Where Krita keeps its resources and settings:
    Linux (package, AppImage)  $XDG_DATA_HOME/krita/pykrita (~/.local/share/…), $XDG_CONFIG_HOME/kritarc (~/.config)
    Linux Flatpak              ~/.var/app/org.kde.krita/data/krita/pykrita, ~/.var/app/org.kde.krita/config/kritarc
    Windows                    %APPDATA%\\krita\\pykrita, %LOCALAPPDATA%\\kritarc
    macOS                      ~/Library/Application Support/krita/pykrita, ~/Library/Preferences/kritarc

What lands there: `ai_portrait.desktop`, the `ai_portrait/` package, a copy of the stdlib-only bridge `plugin/`
as `ai_portrait/vendor/plugin/` (Krita's Python cannot see the checkout), `ai_portrait/settings.json` naming the
worker's settings file when it is not at plugin.config's default place, and `ai_portrait/operators.json` (the
registry, so menu actions exist at Krita's start without waiting for the worker). `[python] enable_ai_portrait=true`
is set in kritarc. Re-running replaces the plugin and leaves everything else in kritarc as it was.

A Flatpak Krita runs sandboxed and cannot start the worker's interpreter on the host: point it at a worker
server instead (`server` in the settings file, see plugin/config.py).
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

NAME = "ai_portrait"
HERE = os.path.dirname(os.path.abspath(__file__))
FLATPAK_APP = os.path.join("~", ".var", "app", "org.kde.krita")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "operators.json", "settings.json", "vendor")


def krita_locations(env=None, system=None):
    """[(pykrita folder, kritarc path)] for each Krita installation this user may have."""
    env = os.environ if env is None else env
    system = system or platform.system()
    home = env.get("HOME") or os.path.expanduser("~")
    places = []
    if system == "Windows":
        appdata = env.get("APPDATA") or os.path.join(home, "AppData", "Roaming")
        local = env.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        places.append((os.path.join(appdata, "krita", "pykrita"), os.path.join(local, "kritarc")))
    elif system == "Darwin":
        places.append((os.path.join(home, "Library", "Application Support", "krita", "pykrita"),
                       os.path.join(home, "Library", "Preferences", "kritarc")))
    else:
        data = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
        config = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        places.append((os.path.join(data, "krita", "pykrita"), os.path.join(config, "kritarc")))
        flatpak = os.path.join(home, FLATPAK_APP[2:])
        if os.path.isdir(flatpak):
            places.append((os.path.join(flatpak, "data", "krita", "pykrita"),
                           os.path.join(flatpak, "config", "kritarc")))
    return places


def krita_present(pykrita, kritarc, system=None) -> bool:
    """A Krita is installed (or was run) for this location."""
    if os.path.exists(os.path.dirname(pykrita)) or os.path.exists(kritarc):
        return True
    if FLATPAK_APP[2:].replace(os.sep, "/") in pykrita.replace(os.sep, "/"):
        return True
    if shutil.which("krita"):
        return True
    system = system or platform.system()
    if system == "Windows":
        for base in (os.environ.get("ProgramFiles", r"C:\Program Files"), os.environ.get("LOCALAPPDATA", "")):
            if base and os.path.isdir(os.path.join(base, "Krita (x64)")):
                return True
    if system == "Darwin" and os.path.isdir("/Applications/krita.app"):
        return True
    return False


HELP_SUFFIXES = (".html", ".jpg", ".png")


def help_files(repo_root):
    """[(path, name)] of the generated help pages (docs/filters: `python -m core help-pages`), bundled as
    ai_portrait/help/ for the docker's Help button; [] when they were not generated."""
    pages = os.path.join(repo_root, "docs", "filters")
    if not os.path.isfile(os.path.join(pages, "index.html")):
        return []
    return [(os.path.join(pages, f), f) for f in sorted(os.listdir(pages)) if f.endswith(HELP_SUFFIXES)]


def copy_plugin(repo_root, pykrita, config_path=None, operators=None):
    """Copy desktop file, package and vendored bridge into `pykrita`; returns the written paths."""
    src_pkg = os.path.join(repo_root, "krita", NAME)
    src_bridge = os.path.join(repo_root, "plugin")
    if not os.path.isfile(os.path.join(src_bridge, "__init__.py")):
        raise FileNotFoundError(f"{src_bridge} is missing: run from a complete AI Portrait checkout")
    os.makedirs(pykrita, exist_ok=True)
    dest_pkg = os.path.join(pykrita, NAME)
    staging = tempfile.mkdtemp(prefix=f".{NAME}-", dir=pykrita)
    try:
        tmp_pkg = os.path.join(staging, NAME)
        shutil.copytree(src_pkg, tmp_pkg, ignore=IGNORE)
        shutil.copytree(src_bridge, os.path.join(tmp_pkg, "vendor", "plugin"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for src, name in help_files(repo_root):   # the filters' help pages, for the docker's Help button
            os.makedirs(os.path.join(tmp_pkg, "help"), exist_ok=True)
            shutil.copyfile(src, os.path.join(tmp_pkg, "help", name))
        if config_path:
            _write_json(os.path.join(tmp_pkg, "settings.json"), {"config_path": os.path.abspath(config_path)})
        if operators:
            _write_json(os.path.join(tmp_pkg, "operators.json"), operators)
        if os.path.isdir(dest_pkg):
            shutil.rmtree(dest_pkg)
        os.replace(tmp_pkg, dest_pkg)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    desktop = os.path.join(pykrita, f"{NAME}.desktop")
    shutil.copyfile(os.path.join(repo_root, "krita", f"{NAME}.desktop"), desktop)
    return [desktop, dest_pkg]


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")


def enable_in_kritarc(kritarc, name=NAME):
    """Set `[python] enable_<name>=true`, keeping every other line of the KConfig file as it was."""
    key = f"enable_{name}"
    try:
        with open(kritarc, "r", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        lines = []
    out, in_python, done, seen_section = [], False, False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if in_python and not done:
                out.append(f"{key}=true")
                done = True
            in_python = stripped == "[python]"
            seen_section = seen_section or in_python
        elif in_python and stripped.split("=", 1)[0].strip() == key:
            if not done:
                out.append(f"{key}=true")
                done = True
            continue
        out.append(line)
    if in_python and not done:
        out.append(f"{key}=true")
        done = True
    if not seen_section:
        if out and out[-1].strip():
            out.append("")
        out += ["[python]", f"{key}=true"]
    os.makedirs(os.path.dirname(os.path.abspath(kritarc)), exist_ok=True)
    tmp = kritarc + ".ai-portrait-tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")
    os.replace(tmp, kritarc)
    return kritarc


def registry_json(repo_root, config_path=None, timeout=180):
    """The registry from the configured worker interpreter (`python -m core list --json`), or None."""
    python = None
    try:
        sys.path.insert(0, repo_root)
        from plugin import config as plugin_config
        python = plugin_config.load_config(config_path).get("python")
    except Exception:  # noqa: BLE001 - the cache is an optimisation only
        python = None
    finally:
        if sys.path and sys.path[0] == repo_root:
            sys.path.pop(0)
    if not python or not os.path.exists(python):
        return None
    try:
        res = subprocess.run([python, "-m", "core", "list", "--json"], cwd=repo_root, capture_output=True,
                             text=True, timeout=timeout, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        return json.loads(res.stdout) if res.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def install(repo_root, config_path=None, locations=None):
    """Install into every Krita found for this user; returns the paths written ([] when no Krita is found)."""
    repo_root = os.path.abspath(str(repo_root))
    config_path = str(config_path) if config_path else None
    if config_path and os.environ.get("AI_PORTRAIT_CONFIG") is None:
        try:
            sys.path.insert(0, repo_root)
            from plugin import config as plugin_config
            if os.path.abspath(config_path) == os.path.abspath(plugin_config.config_path()):
                config_path = None  # the default place: the plugin finds it on its own
        finally:
            if sys.path and sys.path[0] == repo_root:
                sys.path.pop(0)
    operators = registry_json(repo_root, config_path)
    written = []
    for pykrita, kritarc in (locations or krita_locations()):
        if locations is None and not krita_present(pykrita, kritarc):
            continue
        written += copy_plugin(repo_root, pykrita, config_path, operators)
        written.append(enable_in_kritarc(kritarc))
    return written


if __name__ == "__main__":
    root = os.path.dirname(HERE)
    paths = install(root, sys.argv[1] if len(sys.argv) > 1 else None)
    print("\n".join(paths) if paths else "no Krita found for this user")
