"""The one small settings file both host adapters read (and install.py writes): standard library only.

Location: $AI_PORTRAIT_CONFIG if set; otherwise %APPDATA%/ai-portrait/config.json on Windows,
~/Library/Application Support/ai-portrait/config.json on macOS, $XDG_CONFIG_HOME (or ~/.config)/ai-portrait/
config.json elsewhere. Keys (all optional; missing ones take the defaults below):

    python            the worker's interpreter (the project's environment with torch); hosts' own Python can't
    core_root         the folder holding the `core` package: the worker's working folder and only sys.path entry
    device            'auto', 'cpu', 'cuda', 'cuda:1', 'mps'
    memory_budget_mb  a hint for operators' tiling (AI_PORTRAIT_MEMORY_BUDGET_MB in the worker); null = auto
    server            null for a local worker the host spawns, or 'tcp://HOST:PORT' or 'unix:/path/to/socket'
    token             the shared secret a TCP server requires (the file is written owner-readable only)
    idle_timeout_s    how long a spawned worker stays alive, models warm, after its last request
    max_request_mb    the largest request the client sends (the worker has its own limit too)
    shared_worker     true: the hosts (GIMP, Krita) keep ONE local worker per user warm and share it, a server on
                      a Unix socket in an owner-only folder, started on demand, ending after idle_timeout_s
                      without a request (plugin.local); false: each host spawns its own worker over pipes
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

APP = "ai-portrait"
ENV_VAR = "AI_PORTRAIT_CONFIG"
DEFAULTS = {
    "python": None,
    "core_root": None,
    "device": "auto",
    "memory_budget_mb": None,
    "server": None,
    "token": None,
    "idle_timeout_s": 600,
    "max_request_mb": 4096,
    "shared_worker": True,
}


class ConfigError(ValueError):
    """The settings file exists but cannot be used; the message says which file and what to do."""


def config_dir():
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Roaming")
    elif sys.platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, APP)


def config_path():
    override = os.environ.get(ENV_VAR)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    return os.path.join(config_dir(), "config.json")


def default_core_root():
    """The folder beside this `plugin` package when it holds `core` (a checkout or an unpacked release)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root if os.path.isfile(os.path.join(root, "core", "__init__.py")) else None


def load_config(path=None):
    """The settings as a dict with every key present (defaults filled in). A missing file is not an error."""
    path = path or config_path()
    cfg = dict(DEFAULTS)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            stored = json.load(fh)
    except FileNotFoundError:
        stored = {}
    except (OSError, ValueError) as exc:
        raise ConfigError("AI Portrait settings file %s cannot be read (%s): fix it or run install.py again"
                          % (path, exc)) from None
    if not isinstance(stored, dict):
        raise ConfigError("AI Portrait settings file %s must hold a JSON object: run install.py again" % path)
    cfg.update(stored)
    if not cfg.get("core_root"):
        cfg["core_root"] = default_core_root()
    return cfg


def save_config(cfg, path=None):
    """Write `cfg` (merged over the defaults) atomically, readable by its owner only; returns the path."""
    path = path or config_path()
    merged = dict(DEFAULTS)
    merged.update(cfg)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(merged, fh, indent=1, sort_keys=True)
            fh.write("\n")
        if hasattr(os, "chmod"):
            os.chmod(tmp, 0o600)  # it may hold the server token
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def parse_server(address):
    """'tcp://HOST:PORT' -> ('tcp', host, port); 'unix:/path' -> ('unix', path, None); None/'' -> None."""
    if not address:
        return None
    address = str(address).strip()
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ConfigError("server address %r names no socket path" % address)
        return ("unix", path, None)
    if address.startswith("tcp://"):
        rest = address[len("tcp://"):].rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not (0 < int(port) < 65536):
            raise ConfigError("server address %r must look like tcp://HOST:PORT" % address)
        host = host.strip("[]") or "127.0.0.1"
        return ("tcp", host, int(port))
    raise ConfigError("server address %r must start with tcp:// or unix:" % address)
