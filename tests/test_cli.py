"""The command line: generated options, exit status 2 with one clear line on every user error, atomic output."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core import cli
from core.imaging import io
from tests import toy_operator
from tests.scenes import texture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def toy():
    toy_operator.install()
    yield
    toy_operator.uninstall()


@pytest.fixture
def picture(tmp_path):
    img = np.concatenate([texture(24, 32, seed=3), np.full((24, 32, 1), 0.5, np.float32)], axis=2)
    path = tmp_path / "in.png"
    io.write_image(path, img, "u16")
    return path, io.read_image(path).pixels


def test_operator_runs_and_keeps_16_bits(tmp_path, picture, capsys):
    path, pixels = picture
    out = tmp_path / "out.png"
    assert cli.main(["toy", str(path), "-o", str(out), "--gain", "0.5", "-q"]) == 0
    back = io.read_image(out)
    assert back.depth == "u16"
    expected = toy_operator.box3(pixels[:, :, :3]) * 0.5
    assert np.abs(back.pixels[:, :, :3] - expected).max() <= 0.5 / 65535 + 1e-6
    assert np.array_equal(back.pixels[:, :, 3], pixels[:, :, 3])


def test_mask_option_leaves_outside_identical(tmp_path, picture):
    path, pixels = picture
    mask = np.zeros((24, 32), np.float32)
    mask[:, 16:] = 1.0
    io.write_image(tmp_path / "m.png", mask, "u8")
    out = tmp_path / "out.tif"
    assert cli.main(["toy", str(path), "-o", str(out), "--gain", "2", "--mask", str(tmp_path / "m.png"), "-q"]) == 0
    back = io.read_image(out).pixels
    assert np.abs(back[:, :16] - pixels[:, :16]).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize("argv,message", [
    (["toy", "{missing}", "-o", "{out}"], "file not found"),
    (["toy", "{in}", "-o", "{out}", "--gain", "7"], "'gain' = 7.0 ratio is out of range [0, 4] ratio"),
    (["toy", "{in}", "-o", "{out}", "--gain", "x"], "parameter 'gain' must be a float"),
    (["toy", "{in}", "-o", "{out}", "--mode", "zz"], "must be one of a, b"),
    (["toy", "{in}", "-o", "{out}", "--mask", "{small}"], "mask is 3x3 but the image is 32x24"),
    (["toy", "{in}", "-o", "{outdir}/nowhere/x.png"], "output folder does not exist"),
    (["toy", "{in}", "-o", "{out_gif}"], "cannot write '.gif'"),
    (["toy", "{in}", "-o", "{out}", "--bogus", "1"], "unrecognized arguments"),
    (["toy", "{junk}", "-o", "{out}"], "cannot read junk.png"),
    (["nope"], "invalid choice: 'nope'"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, picture, capsys, argv, message):
    path, _ = picture
    io.write_image(tmp_path / "small.png", np.ones((3, 3), np.float32), "u8")
    (tmp_path / "junk.png").write_bytes(b"junk")
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    fill = {"in": str(path), "out": str(out), "missing": str(tmp_path / "missing.png"),
            "small": str(tmp_path / "small.png"), "outdir": str(tmp_path), "out_gif": str(tmp_path / "o.gif"),
            "junk": str(tmp_path / "junk.png")}
    code = cli.main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert message in err[-1] and err[-1].startswith("error: ")
    assert not any("Traceback" in line for line in err)
    assert out.read_bytes() == b"keep me"  # the existing output was not touched


def test_help_lists_units_ranges_and_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["toy", "--help"])
    text = capsys.readouterr().out
    assert "--gain" in text and "unit: ratio" in text and "range 0..4" in text and "default: 1.0" in text
    assert "--no-flag" in text and "--where X,Y" in text and "--depth PATH" in text


def test_list_json_in_a_fresh_process():
    res = subprocess.run([sys.executable, "-m", "core", "list", "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    ops = json.loads(res.stdout)
    assert isinstance(ops, list)
    for op in ops:  # every registered operator declares typed, documented parameters
        assert op["name"] and op["title"] and op["help"]
        assert any(i["kind"] in ("image", "frames") for i in op["inputs"])
        for p in op["params"]:
            assert p["help"] and p["type"] in ("float", "int", "bool", "choice", "point", "vector", "string")
            if p["repeat"]:
                assert isinstance(p["default"], list)
            if p["type"] in ("float", "int") and p["default"] is not None and not p["repeat"]:
                assert p["min"] is None or p["default"] >= p["min"]
                assert p["max"] is None or p["default"] <= p["max"]


def test_unknown_operator_in_a_fresh_process_has_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "core", "frobnicate", "x.png", "-o", str(tmp_path / "y.png")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "invalid choice: 'frobnicate'" in res.stderr


def test_demo_writes_results_and_contact_sheet(tmp_path):
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--only", "toy"]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert "toy" in summary and summary["toy"]["file"] == "toy.png"
    sheet = io.read_image(tmp_path / "demo" / "contact_sheet.png").pixels
    assert sheet.shape[1] > 2 * 512 and sheet.shape[0] > 512  # a labelled before/after pair
    result = io.read_image(tmp_path / "demo" / "toy.png").pixels
    portrait = io.read_image(tmp_path / "demo" / "portrait.png").pixels
    assert np.abs(result - toy_operator.box3(portrait)).max() < 1.5 / 255
