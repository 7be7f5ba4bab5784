"""Put the AI Portrait plug-in where GIMP 3 finds it (standard library only; called by the project's install.py).

GIMP 3 runs every `plug-ins/NAME/NAME.py` in the user's profile that is executable. The profile is
`$GIMP3_DIRECTORY` when set, else per platform:

    Linux      $XDG_CONFIG_HOME/GIMP/3.x (default ~/.config/GIMP/3.x)
    Flatpak    ~/.var/app/org.gimp.GIMP/config/GIMP/3.x
    Snap       ~/snap/gimp/current/.config/GIMP/3.x
    Windows    %APPDATA%\\GIMP\\3.x
    macOS      ~/Library/Application Support/GIMP/3.x

What is installed, in `plug-ins/ai_portrait/`: the adapter (`gimp/ai_portrait/*.py`), the filters' help pages
(`docs/filters` -> `help/en/`, GIMP's help domain for the Help buttons) and a copy of the
stdlib-only host bridge (`plugin/`) so the plug-in is self-contained: a Flatpak or a moved checkout cannot see
the source tree, and GIMP's own Python must not depend on the project's virtual environment. The plug-in
finds the worker through the bridge's config file (`plugin.config`); `config_path`, when given, is written
next to the plug-in as `config_path.txt`, so GIMP's process reads the very file install.py wrote even where
its own default differs (a Flatpak GIMP has its own XDG_CONFIG_HOME). $AI_PORTRAIT_CONFIG still wins.

Reinstalling rewrites the files, which changes their modification time: GIMP then queries the plug-in again
at its next start and picks up new operators.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional

PLUGIN_NAME = "ai_portrait"
# The filters' help pages (docs/filters, made by `python -m core help-pages`), bundled as the plug-in's GIMP
# help domain: HELP_DIR/<locale>/gimp-help.xml maps each procedure's help id to its page.
HELP_DIR = "help"
HELP_LOCALE = "en"
HELP_SUFFIXES = (".html", ".jpg", ".png", ".xml")
# Copied as a package next to the plug-in; only these (plain Python, no compiled files).
_BRIDGE_PACKAGE = "plugin"


def _profile_roots() -> List[Path]:
    """Folders that hold GIMP's versioned profiles ('3.0', '3.2', ...) on this platform, most likely first."""
    home = Path.home()
    roots: List[Path] = []
    if sys.platform.startswith("win"):
        appdata = os.environ.get("APPDATA")
        roots.append(Path(appdata) / "GIMP" if appdata else home / "AppData" / "Roaming" / "GIMP")
    elif sys.platform == "darwin":
        roots.append(home / "Library" / "Application Support" / "GIMP")
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        roots.append(Path(xdg) / "GIMP" if xdg else home / ".config" / "GIMP")
        roots.append(home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP")  # Flatpak
        roots.append(home / "snap" / "gimp" / "current" / ".config" / "GIMP")        # Snap
    return roots


def _version_key(name: str):
    try:
        return tuple(int(p) for p in name.split("."))
    except ValueError:
        return (0,)


def gimp_plugin_dirs() -> List[Path]:
    """The `plug-ins` folders of every GIMP 3 profile found on this machine.

    `$GIMP3_DIRECTORY` wins when set. Otherwise every existing `GIMP/3.*` profile (newest first); when GIMP 3
    has never been started, the platform's default `GIMP/3.0/plug-ins` so the plug-in is there at first start.
    """
    override = os.environ.get("GIMP3_DIRECTORY")
    if override:
        return [Path(override) / "plug-ins"]
    found: List[Path] = []
    for root in _profile_roots():
        if not root.is_dir():
            continue
        versions = [d for d in root.iterdir() if d.is_dir() and d.name.startswith("3.")]
        for d in sorted(versions, key=lambda d: _version_key(d.name), reverse=True):
            found.append(d / "plug-ins")
    if not found:
        found.append(_profile_roots()[0] / "3.0" / "plug-ins")
    return found


def install_into(plugins_dir: Path, plugin_source_root: Path, config_path: Optional[Path] = None) -> List[str]:
    """Install the plug-in into one `plug-ins` folder; returns the files written."""
    src_root = Path(plugin_source_root)
    adapter = src_root / "gimp" / PLUGIN_NAME
    bridge = src_root / _BRIDGE_PACKAGE
    if not (adapter / f"{PLUGIN_NAME}.py").is_file():
        raise FileNotFoundError(f"no GIMP adapter at {adapter}")
    if not (bridge / "__init__.py").is_file():
        raise FileNotFoundError(f"no host bridge package at {bridge}")
    dest = Path(plugins_dir) / PLUGIN_NAME
    # Write next to the old copy, then swap: GIMP never sees a half-installed plug-in.
    staging = dest.with_name(dest.name + ".installing")
    if staging.exists():
        shutil.rmtree(staging)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "tests")
    shutil.copytree(adapter, staging, ignore=ignore)
    shutil.copytree(bridge, staging / _BRIDGE_PACKAGE, ignore=ignore)
    copy_help(src_root / "docs" / "filters", staging / HELP_DIR / HELP_LOCALE)
    if config_path is not None:
        (staging / "config_path.txt").write_text(os.path.abspath(str(config_path)) + "\n", encoding="utf-8")
    main = staging / f"{PLUGIN_NAME}.py"
    main.chmod(main.stat().st_mode | 0o755)  # GIMP only runs executable plug-ins (ignored on Windows)
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return sorted(str(p) for p in dest.rglob("*") if p.is_file())


def copy_help(pages: Path, dest: Path) -> List[Path]:
    """Copy the generated help pages (HTML, pictures, gimp-help.xml) into `dest`; nothing when there are none."""
    if not (pages / "gimp-help.xml").is_file():
        return []
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in sorted(pages.iterdir()):
        if f.is_file() and f.suffix in HELP_SUFFIXES:
            shutil.copy2(f, dest / f.name)
            copied.append(dest / f.name)
    return copied


def install(plugin_source_root, config_path=None) -> List[str]:
    """Install the plug-in for every GIMP 3 profile on this machine; returns the installed file paths.

    plugin_source_root: the project checkout (holding `gimp/` and `plugin/`). config_path: the bridge's config
    file when it is not at the bridge's default location. Also caches the operator registry next to the
    config when a worker answers, so GIMP can register the menus without starting one.
    """
    installed: List[str] = []
    for plugins_dir in gimp_plugin_dirs():
        plugins_dir.mkdir(parents=True, exist_ok=True)
        installed += install_into(plugins_dir, Path(plugin_source_root), config_path)
    _prime_registry_cache(Path(plugin_source_root), config_path)
    return installed


def _prime_registry_cache(src_root: Path, config_path) -> Optional[str]:
    """Best effort: ask the worker for the registry now (GIMP then starts without waiting for one); the
    plug-in does it at GIMP's next start otherwise. Returns the cache file written, or None."""
    paths = [str(src_root / "gimp" / PLUGIN_NAME), str(src_root)]
    sys.path[:0] = paths
    try:
        import registry_cache  # the plug-in's own stdlib-only helper
        registry_cache.load(str(config_path) if config_path else None, refresh=True)
        return registry_cache.cache_path(str(config_path) if config_path else None)
    except Exception as exc:  # a worker that cannot start yet is not an install failure
        sys.stderr.write(f"note: GIMP plug-in installed; its operator list is not cached yet ({exc})\n")
        return None
    finally:
        for p in paths:
            if p in sys.path:
                sys.path.remove(p)
