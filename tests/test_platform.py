"""The operator platform (issue 13): what the registry and the command line give every operator.

Each test here failed on the code before the platform: operators could not see the mask, a repeated option kept
only its last value, a parameter named like a common option broke every command, a new alpha with a mask
crashed, and the depth kind was a special case of the command line.
"""
import json
import sys
import textwrap

import numpy as np
import pytest

from core import cli, registry
from core.errors import UserError
from core.imaging import io
from core.registry import Input, Operator, Output, Param
from tests.scenes import texture

SEEN = {}


def _record(inputs, p, ctx):
    SEEN.clear()
    SEEN.update(params=p, mask=None if ctx.mask is None else ctx.mask.copy(), stored_as=dict(ctx.stored_as))
    img = inputs["image"]
    out = img * np.float32(0.5)
    if p["alpha_out"]:
        # An operator that owns alpha returns a new one (background replacement cuts the subject out).
        alpha = np.zeros(img.shape[:2] + (1,), np.float32)
        alpha[:, : img.shape[1] // 2] = 1.0
        out = np.concatenate([img[:, :, :3], alpha], axis=2)
    for k in range(3):
        ctx.job.progress(k / 3, "recording")
    return Output(out)


RECORDER = Operator(
    name="recorder", title="Recorder", help="records what it was given (tests only)",
    inputs=(Input("image", "image", "the picture"), Input("depth", "depth", "a depth map", required=False)),
    params=(Param("light", "vector", [], "a light: azimuth,elevation,intensity", size=3, repeat=True,
                  min=-360.0, max=360.0),
            Param("marks", "point", [], "pixels to mark", repeat=True),
            Param("gain", "float", 1.0, "a gain", min=0.0, max=4.0),
            Param("alpha_out", "bool", False, "return a new alpha")),
    run=_record, uses_alpha=True, order=1200)


@pytest.fixture(autouse=True)
def recorder():
    registry.register(RECORDER)
    yield
    registry.unregister(RECORDER.name)


def rgb(h=12, w=16, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


# -- the operator sees the mask -----------------------------------------------------------------------------------

def test_the_operator_sees_the_mask_and_the_blend_still_happens():
    img = rgb()
    mask = np.zeros((12, 16, 1), np.float32)
    mask[3:9, 4:12] = 0.75
    out = registry.run("recorder", {"image": img}, {}, mask=mask)
    assert SEEN["mask"].shape == (12, 16) and SEEN["mask"].dtype == np.float32
    assert np.array_equal(SEEN["mask"], mask[:, :, 0])
    outside = mask[:, :, 0] == 0
    assert np.array_equal(out.image[outside], img[outside])  # blended afterwards, bit-identical outside
    inside = mask[:, :, 0] > 0
    assert np.allclose(out.image[inside], img[inside] * (1 - 0.75 * 0.5), atol=1e-6)
    registry.run("recorder", {"image": img}, {})
    assert SEEN["mask"] is None


def test_a_mask_of_the_wrong_size_is_refused_before_the_operator_runs():
    SEEN.clear()
    with pytest.raises(UserError, match="mask is 5x5"):
        registry.run("recorder", {"image": rgb()}, {}, mask=np.ones((5, 5), np.float32))
    assert not SEEN


# -- repeatable parameters ----------------------------------------------------------------------------------------

def test_a_repeated_option_keeps_every_value(tmp_path):
    io.write_image(tmp_path / "in.png", texture(12, 16, seed=1), "u8")
    code = cli.main(["recorder", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "-q",
                     "--light", "60,20,1", "--light=-30,10,0.5", "--marks", "3,4", "--marks", "5,6"])
    assert code == 0
    assert SEEN["params"]["light"] == [(60.0, 20.0, 1.0), (-30.0, 10.0, 0.5)]
    assert SEEN["params"]["marks"] == [(3.0, 4.0), (5.0, 6.0)]


def test_repeatable_values_validate_each_item():
    op = registry.get("recorder")
    assert op.validate_params({})["light"] == []
    assert op.validate_params({"light": "60,20,1; -30,10,0.5"})["light"] == [(60, 20, 1), (-30, 10, 0.5)]
    assert op.validate_params({"light": [[1, 2, 3]]})["light"] == [(1, 2, 3)]
    assert op.validate_params({"marks": [4, 5]})["marks"] == [(4, 5)]  # one bare item
    with pytest.raises(UserError, match="3 numbers separated by commas"):
        op.validate_params({"light": ["60,20"]})
    with pytest.raises(UserError, match="within \\[-360, 360\\]"):
        op.validate_params({"light": ["600,20,1"]})
    with pytest.raises(UserError, match="takes a list"):
        op.validate_params({"light": 5})


def test_list_json_describes_repeatable_and_coordinate_parameters(capsys):
    assert cli.main(["list", "--json"]) == 0
    entry = [o for o in json.loads(capsys.readouterr().out) if o["name"] == "recorder"][0]
    light, marks, gain = entry["params"][:3]
    assert (light["type"], light["repeat"], light["size"], light["coordinates"]) == ("vector", True, 3, False)
    assert (marks["type"], marks["repeat"], marks["size"], marks["coordinates"]) == ("point", True, 2, True)
    assert light["default"] == [] and gain["repeat"] is False


# -- reserved names -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", registry.RESERVED_NAMES)
def test_a_reserved_parameter_name_is_refused_when_the_operator_registers(name):
    bad = Operator(name="badop", title="Bad", help="x", inputs=(Input("image", "image", "x"),),
                   params=(Param(name, "int", 0, "clashes"),), run=_record)
    with pytest.raises(registry.RegistrationError, match=f"'{name}' is a reserved name"):
        registry.register(bad)
    assert "badop" not in [o.name for o in registry.operators()]


def test_an_input_named_mask_is_refused_too():
    bad = Operator(name="badop", title="Bad", help="x",
                   inputs=(Input("image", "image", "x"), Input("mask", "mask", "clashes with --mask")),
                   params=(), run=_record)
    with pytest.raises(registry.RegistrationError, match="rename that input"):
        registry.register(bad)


def test_a_package_declaring_seed_is_isolated_and_every_command_still_works(tmp_path, capsys, monkeypatch):
    from core import operators
    pkg = tmp_path / "seedop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from core import registry
        from core.registry import Input, Operator, Param
        registry.register(Operator(name="seedop", title="Seed", help="declares seed",
                                   inputs=(Input("image", "image", "x"),),
                                   params=(Param("seed", "int", 0, "clashes with --seed"),),
                                   run=lambda i, p, c: i["image"]))
    """))
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    monkeypatch.setattr(operators, "BROKEN", {})
    operators.load_packages([str(tmp_path)], "")
    assert "seedop" in operators.BROKEN and "reserved name" in operators.BROKEN["seedop"]
    assert cli.main(["list"]) == 0
    out, err = capsys.readouterr()
    assert "seedop" in err and "reserved name" in err and "refocus" in out
    assert cli.main(["list", "--json"]) == 0
    io.write_image(tmp_path / "in.png", texture(12, 16, seed=1), "u8")
    assert cli.main(["recorder", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "-q", "--seed", "3"]) == 0


# -- a new alpha with a mask --------------------------------------------------------------------------------------

def test_a_new_alpha_from_an_opaque_picture_blends_by_the_mask():
    img = rgb()
    mask = np.zeros((12, 16, 1), np.float32)
    mask[:, 8:] = 1.0
    out = registry.run("recorder", {"image": img}, {"alpha_out": True}, mask=mask)
    assert out.image.shape == (12, 16, 4)
    assert np.array_equal(out.image[:, :8, :3], img[:, :8]) and np.all(out.image[:, :8, 3] == 1.0)  # outside
    assert np.all(out.image[:, 8:, 3] == 0.0)  # inside: the operator's new alpha (it cut the right half)


# -- how an input was stored travels with it ------------------------------------------------------------------------

@pytest.mark.parametrize("ext,depth", [(".tif", "f32"), (".png", "u16"), (".png", "u8")])
def test_each_file_says_how_it_was_stored(tmp_path, ext, depth):
    io.write_image(tmp_path / "in.png", texture(12, 16, seed=1), "u16")
    io.write_image(tmp_path / f"d{ext}", np.full((12, 16), 0.5, np.float32), depth)
    code = cli.main(["recorder", str(tmp_path / "in.png"), "--depth", str(tmp_path / f"d{ext}"),
                     "-o", str(tmp_path / "out.png"), "-q"])
    assert code == 0
    assert SEEN["stored_as"] == {"image": "u16", "depth": depth}


def test_refocus_reads_the_depth_kind_from_the_inputs_storage():
    from core.imaging import depthmap
    assert depthmap.kind_from_storage("auto", "f32") == "distance"
    assert depthmap.kind_from_storage("auto", "u16") == "disparity"
    assert depthmap.kind_from_storage("disparity", "f32") == "disparity"  # the user's word wins
    assert depthmap.kind_from_storage("auto", None) == "auto"
    img = texture(32, 40, seed=3)
    d = np.full((32, 40, 1), 0.9, np.float32)
    d[:, 20:] = 0.6  # inside 0..1: the value rule alone says disparity
    params = {"focus_at": (5, 5), "focal_length": 50, "f_number": 2}
    as_float = registry.run("refocus", {"image": img, "depth": d}, params, stored_as={"depth": "f32"})
    as_int = registry.run("refocus", {"image": img, "depth": d}, params, stored_as={"depth": "u16"})
    assert as_float.info["depth_kind"] == "distance" and as_int.info["depth_kind"] == "disparity"
    with pytest.raises(UserError, match="unknown storage"):
        registry.run("refocus", {"image": img, "depth": d}, params, stored_as={"depth": "u12"})


def test_the_command_line_has_no_depth_kind_special_case():
    import inspect
    assert "depth_kind" not in inspect.getsource(cli)


def test_vector_numbers_carry_their_names_to_the_hosts():
    from plugin import params as host_params
    p = Param("light", "vector", [], "a light", size=3, repeat=True, components=("azimuth", "elevation", "power"))
    d = p.to_dict()
    assert d["components"] == ["azimuth", "elevation", "power"]
    assert host_params.component_labels(d) == ["azimuth", "elevation", "power"]
    assert host_params.component_labels(dict(d, components=[])) == ["1", "2", "3"]
    with pytest.raises(registry.RegistrationError, match="name each of its 3 numbers"):
        Param("light", "vector", [], "a light", size=3, components=("azimuth", "elevation"))


def test_a_percent_sign_in_help_texts_does_not_break_help(capsys):
    op = Operator(name="pct", title="Pct", help="lifts 50 % of it", inputs=(Input("image", "image", "100 % x"),),
                  params=(Param("amount", "float", 0.5, "how much (0.5 = 50 %)", min=0.0, max=1.0),), run=_record)
    registry.register(op)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["pct", "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert "50 %" in out and "%%" not in out
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        assert "lifts 50 % of it" in capsys.readouterr().out
    finally:
        registry.unregister("pct")
