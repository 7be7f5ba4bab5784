"""The device a caller chooses reaches the network loading of every service (face, depth network, depth proxy,
refocus through the depth service), networks are cached per device, and the faces/mask commands pass
--device down instead of writing it into the environment. No weights needed: the loaders are replaced by
recorders that stop the run once they were reached."""
import os

import cv2
import numpy as np
import pytest

from core import depth, face, registry
from core.cli import main
from core.depth import network
from core.device import ENV_VAR
from core.face import networks
from tests import scenes


class Reached(Exception):
    """Raised by a recording loader: the device got this far, nothing more to run."""


@pytest.fixture
def fake_devices(monkeypatch):
    """select_device without the availability checks, so 'cuda:1' can be named on a machine without it; the
    default (None) stays the CPU, as tests/conftest.py sets it."""
    import torch

    from core import device as device_module

    monkeypatch.setattr(device_module, "select_device",
                        lambda pref=None: torch.device(pref) if pref is not None else torch.device("cpu"))
    return torch.device("cuda:1")


@pytest.fixture
def face_loader(monkeypatch, fake_devices):
    """Record (network name, device) at the face service's one loading point, then stop."""
    calls = []

    def record(name, dev):
        calls.append((name, dev))
        raise Reached(name)

    networks.clear_cache()
    monkeypatch.setattr(networks, "load", record)
    yield calls
    networks.clear_cache()


@pytest.fixture
def depth_loader(monkeypatch, fake_devices):
    """The depth network counts as installed; its loader records the device, then stops."""
    calls = []

    def record(device=None):
        calls.append(device)
        raise Reached("depth network")

    monkeypatch.setattr(network, "available", lambda: True)
    monkeypatch.setattr(network, "load_model", record)
    depth.clear_cache()
    yield calls
    depth.clear_cache()


def test_every_face_function_passes_the_device_to_the_loader(face_loader, fake_devices):
    img = scenes.portrait()
    some_face = face.Face(box=(178.0, 83.0, 273.0, 178.0), score=1.0,
                          keypoints=np.array([[200, 105], [246, 105], [223, 130], [223, 150], [180, 110],
                                              [270, 110]], np.float32))
    for call, name in ((lambda: face.detect_faces(img, device="cuda:1"), face.DETECTOR),
                       (lambda: face.face_landmarks(img, some_face, device="cuda:1"), face.MESH),
                       (lambda: face.person_mask(img, device="cuda:1"), face.SELFIE),
                       (lambda: face.region_mask(img, "person", device="cuda:1"), face.SELFIE),
                       (lambda: face.region_mask(img, "skin", device="cuda:1"), face.DETECTOR)):
        face_loader.clear()
        with pytest.raises(Reached):
            call()
        assert face_loader == [(name, fake_devices)]
    # No device: the default choice (the CPU here).
    face_loader.clear()
    with pytest.raises(Reached):
        face.detect_faces(img)
    assert face_loader == [(face.DETECTOR, networks.select_device(None))]


def test_face_networks_are_cached_per_device(monkeypatch, fake_devices):
    import torch

    built = []

    def build(name, dev):
        built.append((name, str(dev)))
        return object()

    networks.clear_cache()
    monkeypatch.setattr(networks, "load", build)
    try:
        a = networks.network(face.MESH, "cuda:1")
        assert networks.network(face.MESH, torch.device("cuda:1")) is a   # same device, however it is named
        b = networks.network(face.MESH, "cpu")
        assert b is not a
        assert built == [(face.MESH, "cuda:1"), (face.MESH, "cpu")]
    finally:
        networks.clear_cache()


def test_depth_service_passes_the_device_to_the_network_loader(depth_loader, fake_devices):
    with pytest.raises(Reached):
        depth.estimate(scenes.portrait(), device="cuda:1")
    assert depth_loader == [fake_devices]


def test_depth_proxy_passes_the_device_to_the_face_networks(face_loader, fake_devices, monkeypatch):
    monkeypatch.setattr(network, "available", lambda: False)
    monkeypatch.setattr(face, "available", lambda *a: True)  # the proxy asks the face package
    depth.clear_cache()
    with pytest.raises(Reached):
        depth.estimate(scenes.portrait(), method="proxy", device="cuda:1")
    assert face_loader == [(face.DETECTOR, fake_devices)]
    depth.clear_cache()


def test_refocus_passes_its_device_to_the_depth_service(depth_loader, fake_devices):
    with pytest.raises(Reached):
        registry.run("refocus", {"image": scenes.portrait()}, {}, device="cuda:1")
    assert depth_loader == [fake_devices]


@pytest.fixture
def astronaut_png(tmp_path):
    path = tmp_path / "astro.png"
    cv2.imwrite(str(path), (scenes.portrait()[:, :, ::-1] * 255).round().astype(np.uint8))
    return path


def test_faces_and_mask_commands_pass_the_device_and_leave_the_environment_alone(astronaut_png, tmp_path,
                                                                                 monkeypatch, capsys):
    seen = []

    def detect(image, device=None, **kw):
        seen.append(("detect", device))
        return [face.Face(box=(0.0, 0.0, 8.0, 8.0), score=1.0, keypoints=np.zeros((6, 2), np.float32))]

    def region(image, region, faces=None, device=None):
        seen.append((region, device))
        return np.zeros(image.shape[:2], np.float32)

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(face, "detect_faces", detect)
    monkeypatch.setattr(face, "region_mask", region)
    before = dict(os.environ)
    assert main(["faces", str(astronaut_png), "--device", "cpu"]) == 0
    assert main(["mask", str(astronaut_png), "--region", "skin", "-o", str(tmp_path / "m.png"), "--device",
                 "cpu", "-q"]) == 0
    assert main(["mask", str(astronaut_png), "--region", "person", "-o", str(tmp_path / "p.png"), "--device",
                 "cpu", "-q"]) == 0
    capsys.readouterr()
    assert dict(os.environ) == before and ENV_VAR not in os.environ
    assert seen == [("detect", "cpu"), ("detect", "cpu"), ("skin", "cpu"), ("person", "cpu")]
    # An unknown device is refused before any work, still without touching the environment.
    assert main(["faces", str(astronaut_png), "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err and dict(os.environ) == before
