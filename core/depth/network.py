"""The monocular network path of the depth service: find the weights, build the model once, run it, and bring
its output to the image's resolution with edges snapped to the image.

The network sees the image with its short side at `input_size` px (518 by default, the training resolution),
so its edges can sit up to half a 14 px patch away from the image's edges. The raw output is therefore reduced
to one sample per patch and brought back to full resolution with the image-guided joint bilateral upsampler,
which puts the depth edges on the image's edges (measured on a step: 97 % of the jump within 2 px of the edge,
against 14 % for a plain bilinear resize).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import UserError

MODEL_NAME = "depth-anything-v2-small"
HF_REPO = "depth-anything/Depth-Anything-V2-Small-hf"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
INPUT_SIZE = 518

_models: Dict[Tuple[str, str], object] = {}
_lock = threading.Lock()


def _store():
    try:
        from ..models import store
    except ImportError:
        return None
    return store


def weights_path() -> Optional[Path]:
    """The local weights file, or None when it is not installed (never downloads)."""
    store = _store()
    if store is None:
        return None
    try:
        p = store.model_path(MODEL_NAME, WEIGHTS_FILE)
    except (UserError, FileNotFoundError, KeyError, OSError, ValueError):
        return None
    return Path(p) if p and Path(p).is_file() else None


def available() -> bool:
    return weights_path() is not None


def _config(weights: Path):
    from .depth_anything import DepthAnythingConfig, read_config

    cfg = weights.parent / CONFIG_FILE
    if cfg.is_file():
        try:
            return read_config(cfg)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"the config.json of {MODEL_NAME} could not be read ({exc}): reinstall the model",
                            "bad-model") from None
    return DepthAnythingConfig()


def load_model(device=None):
    """The network on `device` (a torch.device, a name such as 'cuda:1', or None for the default choice of
    `core.device.select_device`), built once per (weights file, device) and reused."""
    from ..device import select_device
    from .depth_anything import WeightsMismatch, build

    path = weights_path()
    if path is None:
        raise UserError(f"the depth model {MODEL_NAME} is not installed", "missing-model")
    dev = select_device(device)
    key = (str(path), str(dev))
    with _lock:
        model = _models.get(key)
        if model is None:
            store = _store()
            state = store.load_safetensors(MODEL_NAME, WEIGHTS_FILE)
            try:
                model = build(state, _config(path), device=dev)
            except WeightsMismatch as exc:
                raise UserError(f"the weights of {MODEL_NAME} do not match Depth Anything V2 ({exc}): "
                                f"reinstall the model", "bad-model") from None
            _models[key] = model
    return model


def clear_models() -> None:
    with _lock:
        _models.clear()


def to_image_resolution(raw: np.ndarray, image_rgb: np.ndarray, patch: int = 14) -> np.ndarray:
    """Network output at inference resolution -> image resolution, edges aligned to the image."""
    import cv2

    from ..imaging.resample import guided_upsample

    h, w = raw.shape
    H, W = image_rgb.shape[:2]
    # One sample per patch: the network may misplace an edge by up to half a patch, and a sample that straddles
    # an image edge has a mixed guide value, so the upsampler's range weight ignores it on both sides.
    step = float(patch)
    lw, lh = max(1, int(round(w / step))), max(1, int(round(h / step)))
    if lw >= W or lh >= H:  # a thumbnail: the network already saw more pixels than there are
        return cv2.resize(raw.astype(np.float32), (W, H), interpolation=cv2.INTER_AREA)
    low = cv2.resize(raw.astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA)
    return guided_upsample(low, image_rgb[:, :, :3])


def normalise(disparity: np.ndarray) -> np.ndarray:
    """Affine-invariant disparity -> [0, 1] (near = 1). Robust to a few extreme pixels."""
    lo, hi = np.percentile(disparity, [0.5, 99.5])
    if not np.isfinite(hi - lo) or hi - lo < 1e-12:
        return np.zeros_like(disparity, dtype=np.float32)
    return np.clip((disparity - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def estimate(image_rgb: np.ndarray, job=None, device=None, input_size: Optional[int] = None) -> np.ndarray:
    """Normalised full-resolution disparity (H×W float32 in [0, 1], near = 1) from the network on `device`
    (as `load_model`)."""
    from .depth_anything import predict

    if job is not None:
        job.progress(0.0, "depth: loading the network")
    model = load_model(device)
    if job is not None:
        job.progress(0.2, "depth: running the network")
    raw = predict(model, image_rgb, input_size=input_size or INPUT_SIZE)
    if job is not None:
        job.progress(0.8, "depth: aligning edges to the image")
    full = to_image_resolution(raw, image_rgb, model.config.patch_size)
    return normalise(full)
