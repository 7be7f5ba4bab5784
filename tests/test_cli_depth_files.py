"""On the command line a depth file's type decides what it holds: float = metres, 8/16-bit = disparity."""
import numpy as np
import pytest

from core import cli
from core.imaging import io
from tests.scenes import texture


@pytest.mark.parametrize("ext,depth,expected", [(".tif", "f32", "distance"), (".png", "u16", "disparity")])
def test_depth_file_type_sets_the_kind(tmp_path, capsys, ext, depth, expected):
    img = texture(48, 64, seed=2)
    io.write_image(tmp_path / "img.png", img, "u8")
    # Values inside 0..1 on purpose: the value rule alone would call both of these disparity.
    d = np.full((48, 64), 0.9, np.float32)
    d[:, 32:] = 0.6
    io.write_image(tmp_path / f"d{ext}", d, depth)
    code = cli.main(["refocus", str(tmp_path / "img.png"), "--depth", str(tmp_path / f"d{ext}"),
                     "-o", str(tmp_path / "out.png"), "--focus-at", "10,10", "--focal-length", "50",
                     "--f-number", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"depth_kind={expected}" in err
