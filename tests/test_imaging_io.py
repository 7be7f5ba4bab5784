"""File I/O keeps every bit: 8/16-bit integers exactly, 32-bit float exactly, alpha untouched, EXIF honoured."""
import os

import numpy as np
import pytest

from core.errors import UserError
from core.imaging import io


def _ints(shape, depth, seed=0):
    rng = np.random.default_rng(seed)
    top = 255 if depth == "u8" else 65535
    return rng.integers(0, top + 1, shape).astype(np.float32) / top


@pytest.mark.parametrize("ext,depth", [(".png", "u8"), (".png", "u16"), (".tif", "u8"), (".tif", "u16"),
                                       (".npy", "u8"), (".npy", "u16")])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_integer_round_trip_is_exact(tmp_path, ext, depth, channels):
    img = _ints((17, 23, channels), depth, seed=channels)
    path = tmp_path / f"x{ext}"
    assert io.write_image(path, img, depth) == depth
    back = io.read_image(path)
    assert back.depth == depth
    assert back.pixels.dtype == np.float32 and back.pixels.shape == img.shape
    assert np.array_equal(back.pixels, img)


@pytest.mark.parametrize("ext", [".tif", ".npy"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_float_round_trip_is_exact_including_hdr(tmp_path, ext, channels):
    img = (np.random.default_rng(3).random((9, 11, channels)) * 4 - 0.5).astype(np.float32)
    path = tmp_path / f"f{ext}"
    assert io.write_image(path, img, "f32") == "f32"
    back = io.read_image(path)
    assert back.depth == "f32"
    assert np.array_equal(back.pixels, img)


def test_jpeg_is_8_bit_and_close(tmp_path):
    from tests.scenes import portrait
    img = portrait()[:128, :128]
    path = tmp_path / "p.jpg"
    assert io.write_image(path, img, "u16") == "u8"
    back = io.read_image(path)
    assert back.depth == "u8"
    err = np.abs(back.pixels - img).mean()
    assert err < 0.01  # quality 95: mean error under 1 % of full scale


def test_float_into_png_becomes_16_bit():
    assert io.output_depth("a.png", "f32") == "u16"
    assert io.output_depth("a.jpg", "u16") == "u8"
    with pytest.raises(UserError, match="cannot write '.gif'"):
        io.output_depth("a.gif", "u8")


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :10] = (255, 0, 0)  # red band on the stored image's left
    pil = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "o.jpg"
    pil.save(path, exif=exif.tobytes(), quality=100)
    back = io.read_image(path).pixels
    assert back.shape[:2] == (40, 20)  # upright: the display is portrait
    # After a 90° clockwise turn the stored left band is at the top.
    assert back[:8, :, 0].mean() > 0.9 and back[-8:, :, 0].mean() < 0.1


def test_orientation_table_matches_pil():
    from PIL import ImageOps
    a = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)
    for o in range(1, 9):
        expected = np.asarray(ImageOps.exif_transpose(_with_exif(a, o)))
        assert np.array_equal(io.apply_orientation(a, o), expected), o


def _with_exif(a, o):
    from PIL import Image
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = o
    im.info["exif"] = exif.tobytes()
    return im


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        io.read_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(UserError, match="cannot read junk.png"):
        io.read_image(junk)
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(UserError):
        io.read_image(empty)
    bad_npy = tmp_path / "bad.npy"
    np.save(bad_npy, np.zeros((2, 2, 2, 2), np.float32))
    with pytest.raises(UserError, match="expected H×W"):
        io.read_image(bad_npy)
    with pytest.raises(UserError, match="is a folder"):
        io.read_image(tmp_path)


def test_atomic_write_never_clobbers_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(UserError, match="No space left"):
        io.write_image(target, np.zeros((4, 4, 3), np.float32), "u8")
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary left behind


def test_missing_output_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="output folder does not exist"):
        io.write_image(tmp_path / "nope" / "x.png", np.zeros((2, 2, 3), np.float32))
