"""Baked looks on disk: `<cache>/ai-portrait-film/<stock>-<print>-<size>-<key>.npz`, beside the model store's
cache (core.models.store.cache_dir: $AI_PORTRAIT_CACHE/hub, $HF_HUB_CACHE, $HF_HOME/hub or
~/.cache/huggingface/hub; this folder is its sibling). Never the network.

Key: a hash of everything a look depends on: the stock, the print, the LUT size, the installed
spectral-film-lut version and PIPELINE_VERSION (bumped whenever the model here changes what a bake gives).
The camera exposure is not in it: push/pull shifts log exposure before the LUT, so one bake serves every
exposure. Writes go to a temporary file in the same folder, then an atomic rename: two processes baking the
same look at once both write whole files and the last rename wins; a reader never sees half a file. A file
that does not load (truncated by a full disk, another version's layout) is baked again.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from . import bake as baking
from . import stocks

PIPELINE_VERSION = 4
_MEMORY: Dict[str, baking.Look] = {}
_LOCK = threading.Lock()


def folder() -> Path:
    from ...models import store
    return store.cache_dir().parent / "ai-portrait-film"


def key(stock_id: str, print_id: str, size: int) -> str:
    text = json.dumps({"stock": stock_id, "print": print_id, "size": int(size), "pipeline": PIPELINE_VERSION,
                       "data": stocks.package_version()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path_for(stock_id: str, print_id: str, size: int) -> Path:
    return folder() / f"{stock_id}-{print_id or 'slide'}-{int(size)}-{key(stock_id, print_id, size)}.npz"


def _save(path: Path, look: baking.Look) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: getattr(look, k) for k in baking.SCALAR_FIELDS}
    meta["info"] = look.info
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **look.arrays())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load(path: Path) -> Optional[baking.Look]:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            arrays = {k: np.array(z[k]) for k in baking.ARRAY_FIELDS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if not all(np.all(np.isfinite(a)) for a in arrays.values()):
        return None
    info = meta.pop("info", {})
    try:
        return baking.Look(**meta, **arrays, info=info)
    except TypeError:   # another layout of the fields
        return None


def look(stock_id: str, print_choice: str = "auto", size: int = baking.DEFAULT_LUT_SIZE,
         progress: Optional[Callable[[float], None]] = None) -> baking.Look:
    """The baked look, from memory, from disk, or baked now (and saved)."""
    print_id = stocks.resolve_print(stocks.stock(stock_id), print_choice)
    path = path_for(stock_id, print_id, size)
    name = str(path)
    with _LOCK:
        if name in _MEMORY:
            return _MEMORY[name]
    found = _load(path) if path.is_file() else None
    if found is None:
        t0 = time.perf_counter()
        found = baking.bake(stock_id, print_id or "auto", size, progress)
        try:
            _save(path, found)
        except OSError:
            pass   # a read-only cache only costs the next run a bake
        found.bake_seconds = time.perf_counter() - t0
    with _LOCK:
        _MEMORY[name] = found
    return found


def clear_memory() -> None:
    with _LOCK:
        _MEMORY.clear()
