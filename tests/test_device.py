"""Device choice honours the override order (argument > environment > auto) and refuses what is absent."""
import os

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


def _files(**content):
    return lambda path: content.get(path)


def test_container_cpu_quota_v2_and_v1():
    v2 = "/sys/fs/cgroup/cpu.max"
    assert device.cgroup_cpu_limit(_files(**{v2: "150000 100000\n"})) == 1.5
    assert device.cgroup_cpu_limit(_files(**{v2: "max 100000\n"})) is None
    v1q, v1p = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"
    assert device.cgroup_cpu_limit(_files(**{v1q: "200000\n", v1p: "100000\n"})) == 2.0
    assert device.cgroup_cpu_limit(_files(**{v1q: "-1\n", v1p: "100000\n"})) is None
    assert device.cgroup_cpu_limit(_files()) is None


def test_affinity_is_what_the_process_may_run_on():
    cpus = device.affinity_cpus()
    assert cpus and len(cpus) <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cpus == set(os.sched_getaffinity(0))


def test_busy_cpus_falls_back_to_the_load_average_capped_at_the_cpus(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 1.0, 1.0), raising=False)
    assert device.busy_cpus({0, 1}, read=_files()) == 2.0
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 1.0, 1.0), raising=False)
    assert device.busy_cpus({0, 1}, read=_files()) == 0.5
