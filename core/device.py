"""Device choice (CUDA > MPS > CPU) and seeded random sources.

The environment variable AI_PORTRAIT_DEVICE or an explicit `--device` overrides the automatic choice.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
ENV_VAR = "AI_PORTRAIT_DEVICE"


def select_device(preference: str | None = None):
    """Return a torch.device for `preference` ('auto', 'cpu', 'cuda', 'cuda:1', 'mps'; a torch.device, already
    chosen, is returned as it is)."""
    import torch

    if isinstance(preference, torch.device):
        return preference
    pref = (preference or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = pref.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise UserError(f"unknown device '{pref}': choose one of {', '.join(DEVICE_CHOICES)}", "bad-parameter")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but no CUDA GPU is available here", "no-device")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError("device 'mps' was asked for but Apple MPS is not available here", "no-device")
    return torch.device(pref)


def numpy_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed))


def torch_generator(seed: int, device=None):
    """A torch.Generator on `device` seeded with `seed` (CPU generator if the device has none)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator(device=dev if dev.type in ("cpu", "cuda") else "cpu")
    gen.manual_seed(int(seed))
    return gen
