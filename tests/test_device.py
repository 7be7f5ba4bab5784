"""Device choice honours the override order (argument > environment > auto) and refuses what is absent."""
import numpy as np
import pytest
import torch

from core import device
from core.errors import UserError


def test_auto_picks_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv(device.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device.select_device().type == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv(device.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.select_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.select_device("auto").type == "mps"


def test_environment_variable_and_argument_override(monkeypatch):
    monkeypatch.setenv(device.ENV_VAR, "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.select_device().type == "cpu"          # environment beats auto
    assert device.select_device("cuda").type == "cuda"   # argument beats environment


def test_absent_or_unknown_device_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        device.select_device("cuda")
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        device.select_device("tpu")


def test_seeded_sources_repeat():
    assert np.array_equal(device.numpy_rng(5).random(4), device.numpy_rng(5).random(4))
    a = torch.rand(4, generator=device.torch_generator(5))
    b = torch.rand(4, generator=device.torch_generator(5))
    assert torch.equal(a, b)
