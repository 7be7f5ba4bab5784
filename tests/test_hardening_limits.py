"""Issue 22, item 7: the memory budget (memory_budget_mb / AI_PORTRAIT_MEMORY_BUDGET_MB) limits the pixels.

A file is refused from its header before it is decoded, an operator before it runs (its measured bytes per pixel
times the pixels over the budget), with a message naming the size, the limit and the setting; the command line
exits 2, the worker answers an error frame; an operator that declares itself local runs tiled instead.
"""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from core import registry
from core.errors import UserError
from core.imaging import io
from core.registry import Input, Operator

try:
    from core.imaging import limits
except ImportError:  # the code before issue 22: every test below then fails on its own, not at collection
    limits = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
ENV = "AI_PORTRAIT_MEMORY_BUDGET_MB"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(path, width, height, colour_type=2, rows=None):
    """A PNG whose header says width x height; `rows` of zero pixels are really stored (a valid bomb when all)."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    z = zlib.compressobj(9)
    row = b"\0" * (1 + width * channels)
    body = b"".join(z.compress(row) for _ in range(height if rows is None else rows)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    return path


def peak_rss_of(args, budget_mb):
    """The command line in a fresh process: exit status, stderr, and that process's own peak resident memory
    (RUSAGE_CHILDREN would mix in every earlier child)."""
    env = dict(os.environ, PYTHONPATH=ROOT, **{ENV: str(budget_mb)})
    proc = subprocess.Popen([PY, "-m", "core"] + args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err, usage.ru_maxrss * 1024


class Counter:
    calls = 0
    tiles = []


def _local_op(inputs, params, ctx):
    """A 3x3 box blur times 2 (support radius 1) that records the size of what it was given."""
    import cv2
    img = inputs["image"]
    Counter.calls += 1
    Counter.tiles.append(img.shape[:2])
    out = cv2.blur(img, (3, 3), borderType=cv2.BORDER_REFLECT_101).reshape(img.shape) * 2.0
    if ctx.mask is not None:
        assert ctx.mask.shape == img.shape[:2]
    return out


@pytest.fixture
def ops():
    Counter.calls, Counter.tiles = 0, []
    whole = registry.register(Operator("limits_whole", "Whole", "needs the whole image (tests only)",
                                       (Input("image", "image", "picture"),), (), _local_op,
                                       bytes_per_pixel=1000.0))
    local = registry.register(Operator("limits_local", "Local", "local within 1 px (tests only)",
                                       (Input("image", "image", "picture"),), (), _local_op,
                                       bytes_per_pixel=1000.0, tile_halo=2))
    yield whole, local
    registry.unregister("limits_whole")
    registry.unregister("limits_local")


def picture(h, w, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def test_the_budget_comes_from_the_setting_or_from_the_free_memory(monkeypatch):
    monkeypatch.setenv(ENV, "1500")
    assert limits.budget_bytes() == 1_500_000_000
    for bad in ("abc", "-5", "0", "inf"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(UserError) as e:
            limits.budget_bytes()
        assert ENV in str(e.value) and "memory_budget_mb" in str(e.value)
    monkeypatch.delenv(ENV)
    assert 0 < limits.budget_bytes() <= limits.available_bytes()


def test_every_operator_declares_its_measured_bytes_per_pixel():
    for op in registry.operators():
        assert op.bytes_per_pixel is not None or op.name in limits.MEASURED_BYTES_PER_PIXEL, op.name
        assert 10 <= op.peak_bytes_per_pixel <= 2000, op.name


def test_a_png_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    # 12000 x 12000 grey, every row stored: 150 KB on disk, 144 MP (576 MB as float32) once decoded
    bomb = png_declaring(tmp_path / "bomb.png", 12000, 12000, colour_type=0)
    assert bomb.stat().st_size < 1_000_000
    assert io.probe_header(bomb) == (12000, 12000, 1, 1)
    monkeypatch.setenv(ENV, "256")
    with pytest.raises(UserError) as e:
        io.read_image(bomb)
    msg = str(e.value)
    assert e.value.code == "too-large"
    assert "bomb.png" in msg and "12000x12000" in msg and "256 MB" in msg and "memory_budget_mb" in msg


def test_headers_of_every_format_are_read_without_decoding(tmp_path):
    import tifffile
    a = (np.arange(5 * 7 * 4) % 251).astype(np.uint16).reshape(5, 7, 4)
    io.write_image(tmp_path / "a.png", a / 65535.0, "u16")
    io.write_image(tmp_path / "a.jpg", a[:, :, :3] / 255.0, "u8")
    tifffile.imwrite(tmp_path / "a.tif", a.astype(np.float32), photometric="rgb", extrasamples=["unassalpha"])
    np.save(tmp_path / "a.npy", a[:, :, :2].astype(np.float64))
    assert io.probe_header(tmp_path / "a.png") == (7, 5, 4, 2)
    assert io.probe_header(tmp_path / "a.jpg")[:3] == (7, 5, 3)
    assert io.probe_header(tmp_path / "a.tif") == (7, 5, 4, 4)
    assert io.probe_header(tmp_path / "a.npy") == (7, 5, 2, 8)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert io.probe_header(tmp_path / "junk.png") is None


def test_the_cli_refuses_a_30000x30000_png_with_exit_2_in_bounded_memory(tmp_path):
    # the case: a small file declaring 30000 x 30000 (900 MP, over 8 GB decoded); the budget is set so
    # that the check does not depend on this machine's memory
    bomb = png_declaring(tmp_path / "big.png", 30000, 30000, rows=50)
    rc, err, peak = peak_rss_of(["film", str(bomb), "-o", str(tmp_path / "out.png"), "-q"], 8000)
    assert rc == 2, err
    assert "Traceback" not in err and "30000x30000" in err and "900.0 MP" in err
    assert "memory_budget_mb" in err and ENV in err and "film" in err
    assert peak < 1_500_000_000  # nothing the size of the image was allocated
    assert not (tmp_path / "out.png").exists()


def test_the_cli_refuses_an_operator_over_budget_with_exit_2(tmp_path):
    io.write_image(tmp_path / "in.png", picture(256, 256), "u8")
    rc, err, _ = peak_rss_of(["film", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "-q"], 1)
    assert rc == 2, err
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "256x256" in line and "bytes per pixel" in line and "1 MB" in line
    assert "memory_budget_mb" in line
    assert not (tmp_path / "out.png").exists()


def test_an_operator_over_budget_is_refused_before_it_runs(ops, monkeypatch):
    monkeypatch.setenv(ENV, "10")  # 10 MB: 100 x 100 at 1000 B/px fits, 200 x 200 does not
    registry.run("limits_whole", {"image": picture(100, 100)})
    assert Counter.calls == 1
    with pytest.raises(UserError) as e:
        registry.run("limits_whole", {"image": picture(200, 200)})
    assert e.value.code == "too-large" and Counter.calls == 1
    assert "200x200" in str(e.value) and "1000 bytes per pixel" in str(e.value) and "10 MB" in str(e.value)
    # a real operator's measured figure applies the same way, and a burst counts all its frames
    with pytest.raises(UserError) as e:
        registry.run("film", {"image": picture(300, 300)})
    assert e.value.code == "too-large" and "film" in str(e.value)
    with pytest.raises(UserError) as e:
        registry.run("denoise", {"frames": [picture(300, 300, k) for k in range(6)]})
    assert e.value.code == "too-large" and "300x300 x 6 frames" in str(e.value)


def test_a_local_operator_runs_tiled_within_the_budget(ops, monkeypatch):
    img = picture(300, 260, seed=3)
    mask = np.random.default_rng(4).random((300, 260)).astype(np.float32)
    whole = registry.run("limits_local", {"image": img}, mask=mask)  # the automatic budget: in one piece
    assert Counter.tiles == [(300, 260)]
    monkeypatch.setenv(ENV, "30")
    Counter.tiles = []
    tiled = registry.run("limits_local", {"image": img}, mask=mask)
    assert len(Counter.tiles) > 1
    assert max(h * w for h, w in Counter.tiles) * 1000.0 <= 30e6 - 300 * 260 * registry.TILED_FULL_BYTES_PER_PIXEL
    assert tiled.info["tiled"]["halo"] == 2
    np.testing.assert_allclose(tiled.image, whole.image, rtol=0, atol=2e-6)


def test_a_request_over_the_worker_protocol_gets_the_same_limit():
    from plugin.client import Client, WorkerError
    from plugin.pixels import Image

    img = Image.from_numpy(np.zeros((512, 512, 4), "<f4"))
    c = Client(config={}, python=PY, core_root=ROOT, device="cpu", extra_args=["--test-ops"],
               memory_budget_mb=1, cancel_grace_s=3.0)
    try:
        with pytest.raises(WorkerError) as e:
            c.run("test_scale", {"image": img})
        assert e.value.code == "too-large"
        assert "512x512" in e.value.message and "memory_budget_mb" in e.value.message
        assert c.run("test_scale", {"image": Image.from_numpy(np.zeros((8, 8, 4), "<f4"))}).info  # still serving
    finally:
        c.close()
