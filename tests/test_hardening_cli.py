"""Hardening of the command line (issue 22, items 11, 15, 16, 17): exit status 2 with one line, never a traceback;
every check that can be made before the work is made before it; an output never silently replaces an input;
the C decoders' own messages do not reach the terminal ahead of ours."""
import os
import subprocess
import sys

import numpy as np
import pytest

from core import cli, registry
from core.imaging import io
from core.registry import Input, Operator
from tests import toy_operator
from tests.scenes import texture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A fresh process with the tests' toy operator registered: exit status and stderr as a user sees them.
RUNNER = ("import sys; from tests import toy_operator; toy_operator.install(); from core.cli import main; "
          "sys.exit(main(sys.argv[1:]))")


FRAMES_TOY = Operator(
    name="toyframes", title="Toy frames", help="mean of frames (tests only)",
    inputs=(Input("frames", "frames", "the frames"),),
    params=(),
    run=lambda inputs, p, ctx: np.mean(np.stack(inputs["frames"]), axis=0),
)


def run_cli(*args):
    return subprocess.run([sys.executable, "-c", RUNNER, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)


def one_error_line(stderr: str, fragment: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], stderr


@pytest.fixture(autouse=True)
def toy():
    toy_operator.install()
    yield
    toy_operator.uninstall()


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "in.png"
    io.write_image(path, texture(12, 16, seed=5), "u8")
    return path


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody can create files in; as root (which ignores permission bits) an immutable one."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: no folder is read-only to this process")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


@pytest.fixture
def runs(monkeypatch):
    """Counts the operators' own runs (the work), to show a check came before it."""
    calls = []
    for op in (toy_operator.TOY, FRAMES_TOY):
        def spy(inputs, p, ctx, _real=op.run, _name=op.name):
            calls.append(_name)
            return _real(inputs, p, ctx)
        monkeypatch.setattr(op, "run", spy)
    return calls


# Item 11: values and paths that raised a traceback.

@pytest.mark.parametrize("seed", ["18446744073709551616", "-1", "1e3", "9" * 5000])
def test_out_of_range_seed_is_exit_2(picture, tmp_path, seed):
    res = run_cli("toy", picture, "-o", tmp_path / "out.png", "--noise", "0.1", "--seed", seed, "-q")
    assert res.returncode == 2, res.stderr
    one_error_line(res.stderr, "--seed: must be a whole number from 0 to")
    assert not (tmp_path / "out.png").exists()


def test_largest_seed_runs(picture, tmp_path):
    out = tmp_path / "out.png"
    assert cli.main(["toy", str(picture), "-o", str(out), "--noise", "0.1", "--seed", str(cli.SEED_MAX), "-q"]) == 0
    assert out.exists()


def test_demo_out_on_a_file_or_read_only_path_is_exit_2(tmp_path, readonly_dir):
    (tmp_path / "a_file").write_bytes(b"x")
    cases = [(tmp_path / "a_file", "is a file, not a folder"),
             (tmp_path / "a_file" / "sub", "cannot create the folder"),
             (readonly_dir / "sub", "cannot create the folder"),
             (readonly_dir, "cannot write in")]
    for out, fragment in cases:
        res = subprocess.run([sys.executable, "-m", "core", "demo", "--out", str(out), "--only", "film"], cwd=ROOT,
                             capture_output=True, text=True, timeout=180)
        assert res.returncode == 2, (out, res.stderr)
        one_error_line(res.stderr, fragment)
    assert (tmp_path / "a_file").read_bytes() == b"x"


def test_demo_refuses_unknown_names_and_seeds_before_running(tmp_path, runs, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--only", "toy,nope"]) == 2
    assert "no operator 'nope'" in capsys.readouterr().err
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--seed", "-5"]) == 2
    assert runs == [] and not (tmp_path / "d").exists()


# Item 15: everything that can be checked is checked before the operator runs.

@pytest.mark.parametrize("case", ["missing folder", "folder is a file", "output is a folder", "read-only folder",
                                  "name too long", "unsupported type", "mask of the wrong size"])
def test_checks_come_before_the_work(tmp_path, picture, readonly_dir, runs, capsys, case):
    (tmp_path / "a_file").write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    io.write_image(tmp_path / "small.png", np.ones((3, 3), np.float32), "u8")
    out, extra, fragment = {
        "missing folder": (tmp_path / "nowhere" / "o.png", [], "output folder does not exist"),
        "folder is a file": (tmp_path / "a_file" / "o.png", [], "is a file, not a folder"),
        "output is a folder": (tmp_path / "folder.png", [], "is a folder"),
        "read-only folder": (readonly_dir / "o.png", [], "cannot write in"),
        "name too long": (tmp_path / ("n" * 252 + ".png"), [], "bytes long"),
        "unsupported type": (tmp_path / "o.gif", [], "cannot write '.gif'"),
        "mask of the wrong size": (tmp_path / "o.png", ["--mask", str(tmp_path / "small.png")], "mask is 3x3"),
    }[case]
    code = cli.main(["toy", str(picture), "-o", str(out), "-q"] + extra)
    err = capsys.readouterr().err
    assert code == 2
    one_error_line(err, fragment)
    assert runs == []  # refused before the operator ran


# Item 16: the output is none of the inputs unless --overwrite says so.

@pytest.fixture
def frames_toy():
    registry.register(FRAMES_TOY)
    yield
    registry.unregister("toyframes")


@pytest.mark.parametrize("case", ["same path", "other spelling", "symlink", "hard link", "depth input",
                                  "mask input", "second frame"])
def test_output_that_is_an_input_is_refused(tmp_path, picture, frames_toy, runs, capsys, monkeypatch, case):
    depth = tmp_path / "depth.png"
    mask = tmp_path / "mask.png"
    frame2 = tmp_path / "frame2.png"
    io.write_image(depth, np.full((12, 16), 0.5, np.float32), "u8")
    io.write_image(mask, np.ones((12, 16), np.float32), "u8")
    io.write_image(frame2, texture(12, 16, seed=6), "u8")
    os.symlink(picture, tmp_path / "link.png")
    os.link(picture, tmp_path / "hard.png")
    monkeypatch.chdir(tmp_path)
    base = ["toy", str(picture)]
    argv, victim = {
        "same path": (base + ["-o", str(picture)], picture),
        "other spelling": (base + ["-o", "./sub/../in.png"], picture),
        "symlink": (base + ["-o", str(tmp_path / "link.png")], picture),
        "hard link": (base + ["-o", str(tmp_path / "hard.png")], picture),
        "depth input": (base + ["--depth", str(depth), "-o", str(depth)], depth),
        "mask input": (base + ["--mask", str(mask), "-o", str(mask)], mask),
        "second frame": (["toyframes", str(picture), str(frame2), "-o", str(frame2)], frame2),
    }[case]
    (tmp_path / "sub").mkdir()
    before = victim.read_bytes()
    assert cli.main(argv + ["-q"]) == 2
    one_error_line(capsys.readouterr().err, "is the input")
    assert victim.read_bytes() == before and runs == []
    assert cli.main(argv + ["-q", "--overwrite"]) == 0  # said on purpose: done
    assert len(runs) == 1


# Item 17: the decoders' messages go into our one line, not ahead of it.

def test_damaged_png_gives_one_line_with_the_decoders_reason(tmp_path, picture):
    data = bytearray(picture.read_bytes())
    data[60] ^= 0xFF  # inside the compressed pixels
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    res = run_cli("toy", bad, "-o", tmp_path / "out.png", "-q")
    assert res.returncode == 2
    one_error_line(res.stderr, "cannot read bad.png")
    assert "libpng" in res.stderr  # the reason is kept, inside the one line


def test_decoder_warning_on_a_readable_file_is_one_line_of_ours(tmp_path):
    from PIL import Image, PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "hello")
    path = tmp_path / "warn.png"
    Image.fromarray((texture(8, 8, seed=2) * 255).astype(np.uint8)).save(path, pnginfo=info)
    data = bytearray(path.read_bytes())
    at = data.index(b"tEXt")
    data[at + 4 + int.from_bytes(data[at - 4:at], "big")] ^= 0xFF  # a bad CRC on an optional chunk: a warning
    path.write_bytes(bytes(data))
    res = run_cli("toy", path, "-o", tmp_path / "out.png", "-q")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: warn.png: ") and "CRC" in lines[0], res.stderr
