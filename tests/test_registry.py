import numpy as np
import pytest

from core import registry
from core.errors import Cancelled, UserError
from core.jobs import Job
from tests import toy_operator


@pytest.fixture(autouse=True)
def toy():
    toy_operator.install()
    yield
    toy_operator.uninstall()


def rgba(h=20, w=30, seed=0):
    return np.random.default_rng(seed).random((h, w, 4)).astype(np.float32)


def test_param_validation_messages():
    op = registry.get("toy")
    assert op.validate_params({})["gain"] == 1.0
    with pytest.raises(UserError, match="'gain' = 9.0 ratio is out of range"):
        op.validate_params({"gain": 9})
    with pytest.raises(UserError, match="must be a float"):
        op.validate_params({"gain": "lots"})
    with pytest.raises(UserError, match="must be one of a, b"):
        op.validate_params({"mode": "c"})
    with pytest.raises(UserError, match="unknown parameter 'gian'"):
        op.validate_params({"gian": 1})
    with pytest.raises(UserError, match="x,y in pixels"):
        op.validate_params({"where": "12"})
    assert op.validate_params({"where": "12, 7"})["where"] == (12.0, 7.0)
    assert op.validate_params({"flag": "yes"})["flag"] is True
    with pytest.raises(UserError, match="must be a int"):
        op.validate_params({"count": 2.5})
    with pytest.raises(UserError):
        op.validate_params({"gain": float("nan")})


def test_json_declaration_round_trips():
    entry = [o for o in registry.as_json() if o["name"] == "toy"][0]
    names = [p["name"] for p in entry["params"]]
    assert names == ["gain", "noise", "mode", "flag", "where", "count"]
    gain = entry["params"][0]
    assert (gain["unit"], gain["min"], gain["max"], gain["default"]) == ("ratio", 0.0, 4.0, 1.0)
    assert entry["inputs"][1] == {"name": "depth", "kind": "depth", "help": "unused depth", "required": False}


def test_alpha_is_carried_through_untouched():
    img = rgba()
    out = registry.run("toy", {"image": img}, {"gain": 0.5})
    assert out.image.shape == img.shape
    assert np.array_equal(out.image[:, :, 3], img[:, :, 3])
    expected = toy_operator.box3(img[:, :, :3]) * 0.5
    assert np.abs(out.image[:, :, :3] - expected).max() < 1e-6


def test_mask_blend_keeps_outside_bit_identical():
    img = rgba(seed=1)
    mask = np.zeros((20, 30), np.float32)
    mask[5:15, 10:20] = 1.0
    mask[5:15, 20:25] = 0.5
    out = registry.run("toy", {"image": img}, {"gain": 2.0}, mask=mask).image
    full = registry.run("toy", {"image": img}, {"gain": 2.0}).image
    outside = mask == 0
    assert np.array_equal(out[outside], img[outside])  # bit-identical, not merely close
    assert np.abs(out[5:15, 10:20] - full[5:15, 10:20]).max() < 1e-6
    half = 0.5 * (img[5:15, 20:25, :3] + full[5:15, 20:25, :3])
    assert np.abs(out[5:15, 20:25, :3] - half).max() < 1e-6


def test_mask_of_other_size_is_a_user_error():
    with pytest.raises(UserError, match="mask is 3x3 but the image is 30x20"):
        registry.run("toy", {"image": rgba()}, mask=np.ones((3, 3), np.float32))


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="needs the input 'image'"):
        registry.run("toy", {}, {})
    with pytest.raises(UserError, match="NaN"):
        registry.run("toy", {"image": np.full((4, 4, 3), np.nan, np.float32)})
    with pytest.raises(UserError, match="unknown operator"):
        registry.run("nope", {"image": rgba()})
    with pytest.raises(UserError, match="unknown input"):
        registry.run("toy", {"image": rgba(), "frames": [rgba()]})


def test_seed_makes_results_repeatable():
    img = rgba(seed=2)
    a = registry.run("toy", {"image": img}, {"noise": 0.1}, seed=7).image
    b = registry.run("toy", {"image": img}, {"noise": 0.1}, seed=7).image
    c = registry.run("toy", {"image": img}, {"noise": 0.1}, seed=8).image
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


def test_progress_is_monotonic_and_cancel_stops():
    seen = []
    registry.run("toy", {"image": rgba()}, job=Job(lambda f, m: seen.append(f)))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    job = Job()
    job.cancel()
    with pytest.raises(Cancelled):
        registry.run("toy", {"image": rgba()}, job=job)


def test_sub_job_maps_fractions():
    seen = []
    Job(lambda f, m: seen.append(f)).sub(0.5, 1.0).sub(0.0, 0.5).progress(0.5)
    assert seen == [pytest.approx(0.625)]


def test_every_operator_package_imports():
    from core.operators import BROKEN
    registry.operators()
    assert not BROKEN, "operator packages failed to import:\n" + "\n".join(BROKEN.values())
