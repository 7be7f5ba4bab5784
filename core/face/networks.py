"""The face service's networks: built once per (network, device) and kept (the worker stays warm), run on
numpy batches; and the input check every stage shares.

`device` everywhere in `core.face` is what the caller chose (a torch.device, 'cpu', 'cuda', 'cuda:1', 'mps', or
None for the default choice of `core.device.select_device`); it is resolved here, at the one place a network is
loaded, and nowhere else.
"""
from __future__ import annotations

import threading
from typing import Dict, Tuple

import numpy as np

from ..errors import UserError

DETECTOR, MESH, IRIS, SELFIE = "mediapipe-blazeface", "mediapipe-facemesh", "mediapipe-iris", "mediapipe-selfie"

_NETS: Dict[Tuple[str, str], object] = {}
_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()


def select_device(device=None):
    """The torch.device for the caller's choice (see the module docstring)."""
    from ..device import select_device as choose

    return choose(device)


def load(name: str, device):
    """Build network `name` from the store onto `device` (a torch.device). Uncached: see `network`."""
    from ..models import store
    from ..models.blazeface import BlazeFace
    from ..models.facemesh import FaceMesh, IrisLandmark
    from ..models.selfie import SelfieSegmentation

    cls = {DETECTOR: BlazeFace, MESH: FaceMesh, IRIS: IrisLandmark, SELFIE: SelfieSegmentation}[name]
    return store.load_module(cls(), name).to(device)


def network(name: str, device=None):
    """Network `name` on `device`, loaded on first use and cached per (name, device)."""
    dev = select_device(device)
    key = (name, str(dev))
    with _LOCK:
        if key not in _NETS:
            _NETS[key] = load(name, dev)
        return _NETS[key]


def clear_cache() -> None:
    with _LOCK:
        _NETS.clear()


def available(names=(DETECTOR, MESH)) -> bool:
    """True when the networks for faces (default) are installed and intact."""
    from ..models import store

    try:
        return all(store.model_state(store.entry(n)) == "present" for n in names)
    except UserError:
        return False


def run(name: str, batch: np.ndarray, device=None):
    """batch: N×H×W×3 float32 → the network's outputs as numpy arrays."""
    import torch

    net = network(name, device)
    dev = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(dev)
    # These networks are tiny (30-120 ms on one core): extra CPU threads gain little and, on a busy machine,
    # OpenMP threads spinning against each other made them 20-50× slower. One thread, restored afterwards;
    # the lock keeps concurrent worker threads from restoring each other's setting.
    with _RUN_LOCK:
        threads = torch.get_num_threads()
        if dev.type == "cpu" and threads > 1:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                out = net(x)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
    out = out if isinstance(out, tuple) else (out,)
    return [o.float().cpu().numpy() for o in out]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """H×W, H×W×1..4 → H×W×3 float32 (grey repeated, alpha dropped); UserError below 8×8 pixels."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] < 1 or min(image.shape[:2]) < 8:
        raise UserError(f"expected an image of at least 8×8 pixels (H×W×C), got shape {tuple(image.shape)}",
                        "bad-input")
    rgb = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, axis=2)  # grey(+alpha)
    # No clip here: a full-resolution copy costs more than the networks on 12 MP; patches are clipped instead.
    return rgb.astype(np.float32, copy=False)
