"""Issue 22, item 10: no silent NaN. Input beyond what float32 arithmetic survives (|colour| > 1e6, NaN, inf)
is refused as bad input (exit 2, naming the value and the limit); NaN or inf in an operator's result is a bug,
raised by registry.run as an internal error before anything is written."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from core import registry
from core.errors import UserError
from core.imaging import io
from core.registry import Input, Operator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def picture(h, w, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("AI_PORTRAIT_MEMORY_BUDGET_MB", None)
    proc = subprocess.run([sys.executable, "-m", "core", *args, "-q"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    return proc.returncode, proc.stderr


@pytest.fixture
def broken_op():
    def run(inputs, params, ctx):
        out = inputs["image"].copy()
        out[1, 2, 0] = np.nan
        out[3, 3, 1] = np.inf
        return out

    registry.register(Operator("nonfinite_bug", "Bug", "returns NaN (tests only)",
                               (Input("image", "image", "picture"),), (), run))
    yield "nonfinite_bug"
    registry.unregister("nonfinite_bug")


def test_a_nan_result_is_an_internal_error_not_a_silent_output(broken_op):
    with pytest.raises(RuntimeError) as e:
        registry.run(broken_op, {"image": picture(8, 8)})
    assert not isinstance(e.value, UserError)  # a bug, reported as one (exit 1, 'internal' error frame)
    assert type(e.value).__name__ == "NonFiniteResult"
    assert "nonfinite_bug" in str(e.value) and "2 NaN or infinite samples" in str(e.value)
    # also where a mask would have hidden it: the bug is caught before the blend
    mask = np.zeros((8, 8), np.float32)
    with pytest.raises(RuntimeError):
        registry.run(broken_op, {"image": picture(8, 8)}, mask=mask)


def disparity(h, w):
    """Near on the left, far on the right (relative disparity, near = large): refocus runs without a person."""
    return np.repeat(np.linspace(1.0, 0.0, w, dtype=np.float32)[None, :, None], h, axis=0)


def test_refocus_refuses_a_3e38_patch_instead_of_returning_nan():
    # before: every output value NaN, and success
    img = picture(48, 48)
    img[10:20, 10:20] = 3e38
    with pytest.raises(UserError) as e:
        registry.run("refocus", {"image": img, "depth": disparity(48, 48)}, {})
    assert e.value.code == "bad-input" and "3e+38" in str(e.value) and "1e+06" in str(e.value)
    img[10:20, 10:20] = -2e7  # negative overflow too
    with pytest.raises(UserError):
        registry.run("refocus", {"image": img, "depth": disparity(48, 48)}, {})


def test_the_cli_exits_2_on_a_float_tiff_with_a_3e38_patch(tmp_path):
    img = picture(48, 48)
    img[10:20, 10:20] = 3e38
    tifffile.imwrite(tmp_path / "hot.tif", img, photometric="rgb")
    io.write_image(tmp_path / "depth.png", disparity(48, 48), "u16")
    rc, err = cli("refocus", str(tmp_path / "hot.tif"), "--depth", str(tmp_path / "depth.png"),
                  "-o", str(tmp_path / "out.tif"))
    assert rc == 2, err
    assert "Traceback" not in err and "3e+38" in err and "rescale or clip" in err
    assert not (tmp_path / "out.tif").exists()


def test_a_burst_frame_holding_3e38_exits_2_not_a_traceback(tmp_path):
    names = []
    for k in range(3):
        f = picture(40, 40, k)
        if k == 1:
            f[5:9, 5:9] = 3e38
        names.append(str(tmp_path / f"f{k}.tif"))
        tifffile.imwrite(names[-1], f, photometric="rgb")
    rc, err = cli("denoise", *names, "-o", str(tmp_path / "out.tif"))
    assert rc == 2, err
    assert "Traceback" not in err and "frames[1]" in err and "3e+38" in err


def test_values_beyond_float32_and_nan_in_files_are_bad_input(tmp_path):
    np.save(tmp_path / "wide.npy", np.full((4, 4, 3), 1e300))  # float64: inf once in float32
    with pytest.raises(UserError) as e:
        io.read_image(tmp_path / "wide.npy")
    assert e.value.code == "bad-file" and "float32" in str(e.value)
    bad = picture(4, 4)
    bad[0, 0, 0] = np.nan
    with pytest.raises(UserError) as e:
        registry.run("film", {"image": bad})
    assert e.value.code == "bad-input" and "NaN" in str(e.value)


def test_data_inputs_keep_their_own_range():
    # a distance map may hold Blender's 1e10 m sky, and a mask any finite value (it is clipped to 0..1)
    from core.imaging import limits
    limits.check_values("depth", np.array([[2.0, 1e10]], np.float32), "depth")
    limits.check_values("mask", np.array([[5e30]], np.float32), "mask")
    with pytest.raises(UserError):
        limits.check_values("depth", np.array([[2.0, 1e20]], np.float32), "depth")
    with pytest.raises(UserError):
        limits.check_values("image", np.array([[2.0, 2e6]], np.float32), "image")
