"""The operator registry as JSON, cached next to the bridge's config file (standard library only).

GIMP asks a plug-in for its procedures at start-up (and again only when the plug-in's file changes), and
builds a procedure again each time it runs one. Starting the torch worker for that would slow GIMP's start, so
the registry (`client.list_operators()`, the same as `python -m core list --json`) is kept in
`<config folder>/registry.json`. It is refreshed when GIMP queries the plug-in, when it is missing or when the
config file is newer than it; a run that finds the worker's registry changed rewrites it and touches the plug-in
file so that GIMP registers the new menus at its next start.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

CACHE_NAME = "registry.json"
FORMAT = 1


def bridge_config_path(config_path: Optional[str] = None) -> str:
    from plugin import config as bridge_config
    return os.path.abspath(config_path) if config_path else bridge_config.config_path()


def cache_path(config_path: Optional[str] = None) -> str:
    return os.path.join(os.path.dirname(bridge_config_path(config_path)), CACHE_NAME)


def _read(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("operators"), list):
        return None
    return data


def is_stale(config_path: Optional[str] = None) -> bool:
    """Missing, unreadable, or older than the config file (a reinstall may point at another worker)."""
    path = cache_path(config_path)
    if _read(path) is None:
        return True
    try:
        return os.path.getmtime(bridge_config_path(config_path)) > os.path.getmtime(path)
    except OSError:
        return False  # no config file: the defaults did not change


def store(operators: List[Dict[str, Any]], config_path: Optional[str] = None) -> bool:
    """Write the registry atomically; returns True when it differs from what was cached."""
    path = cache_path(config_path)
    old = _read(path)
    changed = old is None or old["operators"] != operators
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".registry-", suffix=".json", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "fetched": time.time(), "operators": operators}, fh, indent=1)
    os.replace(tmp, path)
    return changed


def fetch(config_path: Optional[str] = None, shared: bool = False) -> List[Dict[str, Any]]:
    """Ask the worker (spawned or reached over its socket, as the config says) for the registry. shared: the
    user's shared warm worker (plugin.local), which GIMP's query then leaves warm for the first run."""
    from plugin import config as bridge_config
    from plugin.client import Client
    client = Client(bridge_config.load_config(config_path) if config_path else None, shared=shared)
    try:
        ops = client.list_operators()
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    if not isinstance(ops, list):
        raise ValueError("the worker's operator list is not a list")
    return ops


def load(config_path: Optional[str] = None, refresh: bool = False, shared: bool = False) -> List[Dict[str, Any]]:
    """The registry: from the worker when asked to or when the cache is stale, else from the cache.

    Raises the worker's error only when there is no usable cache to fall back on.
    """
    cached = _read(cache_path(config_path))
    if refresh or cached is None or is_stale(config_path):
        try:
            ops = fetch(config_path, shared=shared)
        except Exception:
            if cached is None:
                raise
            return cached["operators"]
        store(ops, config_path)
        return ops
    return cached["operators"]


def cached(config_path: Optional[str] = None) -> Optional[List[Dict[str, Any]]]:
    data = _read(cache_path(config_path))
    return None if data is None else data["operators"]
