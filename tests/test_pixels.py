"""Host-side pixel conversions: the pure-Python path gives the same bytes as the numpy path, and the rules hold."""
import ast
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from plugin import pixels
from plugin.pixels import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = pixels.DTYPES


@pytest.fixture
def pure(monkeypatch):
    monkeypatch.setattr(pixels, "_np", None)


def sample(dtype, n=4000, seed=1):
    """Values that exercise every rule: random, exact ties, edges, out of range, NaN and infinities."""
    rng = np.random.default_rng(seed)
    if dtype == "u8":
        return np.concatenate([np.arange(256), rng.integers(0, 256, n)]).astype("<u1")
    if dtype == "u16":
        return np.concatenate([np.arange(0, 65536, 7), [65535], rng.integers(0, 65536, n)]).astype("<u2")
    ties = (np.arange(256) + 0.5) / 255.0
    special = [0.0, -0.0, 1.0, -1e-8, 1.0000001, 2.0, -3.0, 65504.0, 65519.0, 65520.0, -65520.0, 1e9, np.inf,
               -np.inf, np.nan, 6e-8, 1e-45]
    vals = np.concatenate([rng.random(n) * 1.2 - 0.1, ties, ties.astype(np.float32), special,
                           (np.arange(65536) + 0.5) / 65535.0])
    with np.errstate(over="ignore"):
        return vals.astype("<f4" if dtype == "f32" else "<f2")


def as_bytes(data):
    return bytes(memoryview(data).cast("B"))


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_pure_python_equals_numpy(src, dst, monkeypatch):
    raw = sample(src).tobytes()
    fast = as_bytes(pixels.convert(raw, src, dst))
    monkeypatch.setattr(pixels, "_np", None)
    slow = as_bytes(pixels.convert(raw, src, dst))
    assert len(fast) == len(slow)
    if fast != slow:  # say where, to make a failure readable
        code = {"u8": "<u1", "u16": "<u2", "f16": "<f2", "f32": "<f4"}[dst]
        a, b = np.frombuffer(fast, code), np.frombuffer(slow, code)
        bad = np.nonzero(a.view(np.uint8 if dst == "u8" else f"<u{a.itemsize}")
                         != b.view(np.uint8 if dst == "u8" else f"<u{b.itemsize}"))[0]
        src_vals = np.frombuffer(raw, {"u8": "<u1", "u16": "<u2", "f16": "<f2", "f32": "<f4"}[src])
        pytest.fail(f"{len(bad)} differ, e.g. {src_vals[bad[:3]]} -> numpy {a[bad[:3]]} python {b[bad[:3]]}")


def test_integer_to_float_is_v_over_max_in_float32():
    u8 = np.frombuffer(as_bytes(pixels.convert(bytes(range(256)), "u8", "f32")), "<f4")
    assert np.array_equal(u8, (np.arange(256, dtype=np.float64) / 255).astype(np.float32))
    u16 = np.arange(65536, dtype="<u2")
    f = np.frombuffer(as_bytes(pixels.convert(u16.tobytes(), "u16", "f32")), "<f4")
    assert np.array_equal(f, (u16 / 65535.0).astype(np.float32))


@pytest.mark.parametrize("mode", ["numpy", "python"])
@pytest.mark.parametrize("dtype", ["u8", "u16", "f16"])
def test_round_trip_through_float32_is_identity(dtype, mode, monkeypatch):
    if mode == "python":
        monkeypatch.setattr(pixels, "_np", None)
    if dtype == "f16":
        raw = np.arange(65536, dtype="<u2").view("<f2")
        raw = raw[np.isfinite(raw)].tobytes()  # every finite half value
    else:
        raw = sample(dtype).tobytes()
    back = as_bytes(pixels.convert(pixels.convert(raw, dtype, "f32"), "f32", dtype))
    assert back == raw


def test_float_to_integer_rules():
    vals = np.array([-1, 0, 0.5 / 255, 1.5 / 255, 0.5, 1, 7, np.nan, np.inf, -np.inf], "<f4")
    u8 = np.frombuffer(as_bytes(pixels.convert(vals.tobytes(), "f32", "u8")), np.uint8)
    expected = np.rint(np.float32(np.clip(np.nan_to_num(vals, nan=0, posinf=1, neginf=0), 0, 1)) * np.float32(255))
    assert u8.tolist() == expected.astype(np.uint8).tolist()
    assert u8[[0, 1, 5, 6, 7, 8, 9]].tolist() == [0, 0, 255, 255, 0, 255, 0]


def test_half_overflow_becomes_infinity(pure):
    raw = struct.pack("<4f", 65519.0, 65520.0, -1e6, 70000.0)
    half = struct.unpack("<4e", as_bytes(pixels.convert(raw, "f32", "f16")))
    assert half[0] == 65504.0 and half[1] == float("inf") and half[2] == float("-inf")


@pytest.mark.parametrize("mode", ["numpy", "python"])
@pytest.mark.parametrize("depth", ["U8", "U16"])
def test_krita_integer_layout_is_bgra(depth, mode, monkeypatch):
    if mode == "python":
        monkeypatch.setattr(pixels, "_np", None)
    dtype = pixels.KRITA_DEPTHS[depth]
    code = "<u1" if dtype == "u8" else "<u2"
    rgba = np.random.default_rng(3).integers(0, 255 if dtype == "u8" else 65535, (5, 7, 4)).astype(code)
    bgra = rgba[:, :, [2, 1, 0, 3]].copy()
    img = Image.from_krita(bgra.tobytes(), 7, 5, depth)
    assert img.dtype == dtype and img.tobytes() == rgba.tobytes()
    assert img.to_krita(depth) == bgra.tobytes()
    # and through float32, the exchange format, back into Krita's layout
    assert img.to("f32").to_krita(depth) == bgra.tobytes()


def test_krita_float_layouts_are_rgba():
    rgba = np.random.default_rng(4).random((3, 4, 4)).astype("<f2")
    img = Image.from_krita(rgba.tobytes(), 4, 3, "F16")
    assert img.tobytes() == rgba.tobytes()
    f32 = img.to("f32")
    assert np.array_equal(f32.to_numpy(), rgba.astype(np.float32))
    assert f32.to_krita("F16") == rgba.tobytes()


@pytest.mark.parametrize("mode", ["numpy", "python"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_big_endian_buffers(dtype, mode, monkeypatch):
    if mode == "python":
        monkeypatch.setattr(pixels, "_np", None)
    little = sample(dtype, 50)
    little = little[np.isfinite(little)] if dtype.startswith("f") else little
    big = little.astype(little.dtype.newbyteorder(">"))
    img = Image(len(little), 1, 1, dtype, big.tobytes(), byteorder="big")
    assert img.to(dtype).tobytes() == little.tobytes()
    assert img.to("f32").tobytes() == as_bytes(pixels.convert(little.tobytes(), dtype, "f32"))


def test_image_checks_its_size():
    with pytest.raises(ValueError):
        Image(2, 2, 4, "f32", bytes(63))
    with pytest.raises(ValueError):
        Image(2, 2, 4, "f64", bytes(128))
    with pytest.raises(ValueError):
        Image(0, 2, 4, "u8", b"")
    img = Image.from_numpy(np.zeros((3, 5, 4), np.float32))
    assert (img.width, img.height, img.channels, img.dtype, img.nbytes) == (5, 3, 4, "f32", 240)


def test_plugin_is_python38_syntax_and_stdlib_only():
    folder = os.path.join(ROOT, "plugin")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                ast.parse(fh.read(), filename=name, feature_version=(3, 8))
    code = ("import sys; sys.modules['numpy'] = None; sys.modules['torch'] = None\n"
            "import plugin, plugin.client, plugin.pixels, plugin.protocol, plugin.config, plugin.params\n"
            "assert not plugin.pixels.have_numpy()\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('core', 'numpy', 'torch', 'cv2')"
            " and sys.modules[m] is not None]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {ROOT!r}); " + code],
                   check=True, cwd="/", timeout=60)


# ---------------------------------------------------------------------------------------------------------------
# Channels, data kinds and parameter values on the host side (plugin.params)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_to_rgba_keeps_every_stored_value_and_adds_opaque_alpha(dtype, channels):
    """Gray is copied into R, G, B; a missing alpha is the dtype's 1.0; no value is converted (byte copies)."""
    rng = np.random.default_rng(channels)
    code = {"u8": "u1", "u16": "<u2", "f16": "<f2", "f32": "<f4"}[dtype]
    a = (rng.integers(0, 256 if dtype == "u8" else 65536, (5, 7, channels)) if dtype in ("u8", "u16")
         else rng.normal(0, 30, (5, 7, channels))).astype(code)
    out = pixels.to_rgba(Image.from_numpy(a), gray=channels in (1, 2)).to_numpy()
    assert out.shape == (5, 7, 4) and out.dtype == np.dtype(code)
    color = a[:, :, :1].repeat(3, axis=2) if channels in (1, 2) else a[:, :, :3]
    assert np.array_equal(out[:, :, :3].view(np.uint8), np.ascontiguousarray(color).view(np.uint8))
    one = {"u8": 255, "u16": 65535}.get(dtype, 1.0)
    alpha = a[:, :, 1] if channels == 2 else a[:, :, 3] if channels == 4 else np.full((5, 7), one, code)
    assert np.array_equal(out[:, :, 3], alpha)


def test_host_data_kinds_and_storages_are_the_cores():
    """plugin/ cannot import the core, so it mirrors these lists: they must agree."""
    from core import registry
    from plugin import client, params
    assert params.DATA_KINDS == registry.DATA_KINDS
    assert client.STORED_AS == registry.STORED_AS


def test_shift_coordinates_moves_every_item_of_every_coordinate_parameter():
    from plugin.params import shift_coordinates
    decls = [{"name": "at", "type": "point"},
             {"name": "marks", "type": "vector", "size": 3, "repeat": True, "coordinates": True},
             {"name": "spots", "type": "point", "repeat": True},
             {"name": "light", "type": "vector", "size": 3, "repeat": True, "coordinates": False},
             {"name": "auto_at", "type": "point", "optional": True},
             {"name": "amount", "type": "float"}]
    values = {"at": [10, 20], "marks": [[5, 6, 0.5], [100.5, 7.25, 1]], "spots": [[1, 2]],
              "light": [[60, 20, 1]], "auto_at": None, "amount": 3.0}
    out = shift_coordinates(decls, values, 4, 5)
    assert out == {"at": [6.0, 15.0], "marks": [[1.0, 1.0, 0.5], [96.5, 2.25, 1.0]], "spots": [[-3.0, -3.0]],
                   "light": [[60, 20, 1]], "auto_at": None, "amount": 3.0}
    assert values["marks"] == [[5, 6, 0.5], [100.5, 7.25, 1]]   # the caller's values are left alone


def test_list_text_reads_and_writes_back_and_names_the_parameter_when_wrong():
    from plugin.params import ParamTextError, format_items, parse_items
    marks = {"name": "marks", "title": "Marks", "type": "vector", "size": 3, "repeat": True, "coordinates": True}
    items = parse_items(marks, " 60,20,1; -30 , 10, 0.5 ;")
    assert items == [[60.0, 20.0, 1.0], [-30.0, 10.0, 0.5]]
    assert parse_items(marks, format_items(marks, items)) == items
    assert format_items(marks, items) == "60,20,1; -30,10,0.5" and parse_items(marks, "") == []
    levels = {"name": "levels", "type": "float", "repeat": True}
    assert parse_items(levels, "0.1; 0.2") == [0.1, 0.2] and format_items(levels, [0.1, 2.0]) == "0.1; 2"
    kinds = {"name": "kinds", "type": "choice", "choices": ["a", "b"], "repeat": True}
    assert parse_items(kinds, "a;b;a") == ["a", "b", "a"]
    for decl, text, words in ((marks, "60,20", "Marks: '60,20' is not 3 numbers separated by commas (x, y, 3)"),
                              (kinds, "c", "one of a, b"), (levels, "x", "a number")):
        with pytest.raises(ParamTextError, match=words.replace("(", r"\(").replace(")", r"\)")):
            parse_items(decl, text)


# ---------------------------------------------------------------------------------------------------------------
# plugin.words and plugin.results: the words both hosts show, where results go


def test_words_write_units_out_and_never_show_an_unreadable_symbol():
    from plugin import words
    from core import registry
    for op in registry.as_json():
        for p in op["params"]:
            tip = words.tooltip(p)
            assert "signal²" not in tip, (op["name"], p["name"], tip)
            prefix, suffix = words.unit_parts(p.get("unit"))
            assert "signal" not in prefix + suffix
            if p.get("unit") in ("mm", "m", "deg", "px") and p["type"] in ("float", "int"):
                assert words.unit_words(p["unit"]) in tip, (p["name"], tip)
            if p.get("optional") and p["default"] is None:
                assert "auto" in tip
    p = {"name": "f_number", "type": "float", "unit": "f-number", "default": 2.0, "min": 0.5, "max": 64.0,
         "help": "aperture of the simulated lens (smaller = more blur)"}
    assert words.tooltip(p).splitlines()[:2] == ["Aperture of the simulated lens (smaller = more blur).",
                                                  "From f/0.5 to f/64; normally f/2."]
    assert words.format_value(p, 1.4) == "f/1.4" and words.format_value(p, None) == "auto"
    assert words.format_value({"type": "float", "unit": "K"}, 5600.0) == "5600 K"


def test_an_optional_number_starts_where_a_photographer_would_not_at_its_minimum():
    from plugin import words
    dist = {"type": "float", "unit": "m", "min": 0.01, "max": 100000.0, "default": None}
    assert words.typical(dist) == 2.0
    assert words.typical({"type": "float", "unit": "f-number", "min": 0.5, "max": 64.0, "default": None}) == 2.8
    assert words.typical({"type": "float", "unit": "m", "min": 5.0, "max": 10.0, "default": None}) == 7.5
    assert words.typical({"type": "int", "min": 3, "max": 9, "default": None}) == 6


def test_results_stack_rerun_and_names():
    from plugin import results
    op = {"name": "f", "title": "F", "params": [{"name": "k", "type": "float", "default": 1.0}]}
    src = [7]
    r1 = {"operator": "f", "source_ids": src}
    other = {"operator": "g", "source_ids": src}
    foreign = {"operator": "f", "source_ids": [8]}
    # a result of the same filter stands for its sources; another filter's result is a picture of its own
    assert results.rerun_sources("f", r1) == [7] and results.rerun_sources("g", r1) is None
    assert results.rerun_sources("f", None) is None
    # the stack: consecutive results of these sources directly above them, by any filter
    above = [r1, other, r1, None, r1]
    assert results.stack_top(above, src) == 3
    assert results.stack_top([foreign, r1], src) == 0
    assert results.previous_result(above, src, "f") == 2          # the topmost result of f in the stack
    assert results.previous_result(above, src, "f", selected=0) == 0
    assert results.previous_result(above, src, "g") == 1
    assert results.previous_result([None, r1], src, "f") is None  # not in the stack: not replaced
    assert results.made_from({"operator": "f", "source_ids": [2, 1]}, [1, 2])
    assert results.result_name(op, {"k": 2.0}) == "F (k 2)"
    assert results.result_name(op, {"k": 1.0}, ["F"]) == "F #2"
