"""Hardening of file writes (issue 22, items 12, 13, 14): no temporary left by SIGTERM, the next write sweeps
what SIGKILL left (only our own, of dead processes), modes as any program's (umask for a new file, an existing
file keeps its own), and any name the file system accepts can be written."""
import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

from core import cli
from core.errors import UserError
from core.imaging import io
from tests import toy_operator
from tests.scenes import texture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The CLI in a fresh process with the toy operator, held inside the write (fsync) until a signal comes.
HELD_IN_WRITE = (
    "import os, sys, time\n"
    "def held(fd):\n"
    "    print('WRITING', flush=True)\n"
    "    time.sleep(120)\n"
    "os.fsync = held\n"
    "from tests import toy_operator\n"
    "toy_operator.install()\n"
    "from core.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "in.png"
    io.write_image(path, texture(12, 16, seed=4), "u8")
    return path


def _stopped_in_write(picture, out, sig):
    """Start a CLI run, wait until it is writing `out`, send `sig`; returns (exit status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", HELD_IN_WRITE, "toy", str(picture), "-o", str(out), "-q"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING", proc.stderr.read()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".part"))


# Item 12: signals during a write.

def test_sigterm_during_a_write_cleans_up_like_ctrl_c(tmp_path, picture):
    out = tmp_path / "out.png"
    code, err = _stopped_in_write(picture, out, signal.SIGTERM)
    assert code == cli.EXIT_TERMINATED, err
    assert err.strip() == "terminated" and "Traceback" not in err
    assert _leftovers(tmp_path) == [] and not out.exists()


def test_next_write_sweeps_what_sigkill_left_and_only_that(tmp_path, picture):
    out = tmp_path / "out.png"
    code, _ = _stopped_in_write(picture, out, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = _leftovers(tmp_path)
    assert len(left) == 1 and len(left[0]) < 40  # the killed write's temporary is there...
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = io._host_tag()
    other_host = "0000" if host != "0000" else "ffff"
    ours_dead = f".aip-{host}-{dead.pid}-0123abcd.part"
    kept = [f".aip-{host}-1-0123abcd.part",             # a live process (init) of this host
            f".aip-{host}-{os.getpid()}-0123abcd.part",  # this very process
            f".aip-{other_host}-{dead.pid}-0123abcd.part",  # another host's, on a shared folder
            ".out.png.x1y2z3.part", "notes.part"]         # not our pattern
    for name in [ours_dead] + kept:
        (tmp_path / name).write_bytes(b"x")
    io.write_image(tmp_path / "other.png", np.zeros((2, 2, 3), np.float32), "u8")
    assert _leftovers(tmp_path) == sorted(kept)  # ...and gone after the next write, with only its kind


# Item 13: modes.

@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_follows_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        io.write_image(tmp_path / "new.png", np.zeros((2, 2, 3), np.float32), "u8")
        io.write_bytes_atomic(tmp_path / "new.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.png").st_mode) == expected
    assert stat.S_IMODE(os.stat(tmp_path / "new.json").st_mode) == expected


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o666])
def test_replaced_file_keeps_its_mode(tmp_path, mode):
    path = tmp_path / "old.png"
    io.write_image(path, np.ones((2, 2, 3), np.float32), "u8")
    os.chmod(path, mode)
    old = os.umask(0o077)  # stricter than the file: the file's own mode still wins
    try:
        io.write_image(path, np.zeros((2, 2, 3), np.float32), "u8")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert io.read_image(path).pixels.max() == 0.0


def test_explicit_mode_for_a_secret(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    io.write_bytes_atomic(path, b"s3cret", mode=0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_bytes() == b"s3cret"


# Item 14: name lengths.

@pytest.mark.parametrize("length", [241, 250, 255])
def test_names_up_to_the_file_system_limit_can_be_written(tmp_path, length):
    name = "n" * (length - 4) + ".png"
    img = np.full((3, 4, 3), 102 / 255, np.float32)
    assert io.write_image(tmp_path / name, img, "u8") == "u8"
    assert np.array_equal(io.read_image(tmp_path / name).pixels, img)
    assert _leftovers(tmp_path) == []


def test_cli_writes_a_255_character_name(tmp_path, picture):
    toy_operator.install()
    try:
        out = tmp_path / ("r" * 251 + ".tif")
        assert cli.main(["toy", str(picture), "-o", str(out), "-q"]) == 0
    finally:
        toy_operator.uninstall()
    assert io.read_image(out).pixels.shape == (12, 16, 3)


def test_a_name_past_the_limit_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="256 bytes long but this file system allows 255"):
        io.check_output(tmp_path / ("n" * 252 + ".png"))
