"""The model store with small self-made weights: manifest, sha256 checks, safetensors-only loading, clear errors.

No network and no real weights: every test works in its own temporary cache (AI_PORTRAIT_CACHE)."""
import hashlib
import json

import pytest
import torch
from torch import nn

from core.cli import main
from core.errors import UserError
from core.models import store
from core.models.mediapipe import safetensors_bytes

REV = "0123456789abcdef0123456789abcdef01234567"


class Tiny(nn.Module):
    def __init__(self, cout=4):
        super().__init__()
        self.conv = nn.Conv2d(3, cout, 3)
        self.act = nn.PReLU(cout)


def _state(seed=0, cout=4):
    torch.manual_seed(seed)
    return {k: v.detach().clone() for k, v in Tiny(cout).state_dict().items()}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path))
    names = []

    def make(name="test-tiny", data=None, sha=None, source="test", converter=None):
        data = safetensors_bytes(_state(), {"licence": "MIT"}) if data is None else data
        spec = dict(name=name, repo_id=f"ai-portrait/{name}", revision=REV, licence="MIT", commercial=True,
                    files={"model.safetensors": sha or hashlib.sha256(data).hexdigest()}, source=source,
                    converter=converter)
        e = store.register(spec)
        names.append(name)
        return e, data

    yield make
    for n in names:
        store.unregister(n)


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(store.ENV_CACHE, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hubcache"))
    assert store.cache_dir() == tmp_path / "hubcache"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert store.cache_dir() == tmp_path / "hfhome" / "hub"
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "ours"))
    assert store.cache_dir() == tmp_path / "ours" / "hub"


def test_installed_weights_round_trip_exactly(cache):
    e, data = cache()
    path = store.install_bytes(e, "model.safetensors", data)
    # huggingface_hub's cache layout: models--ORG--NAME/{refs/main, snapshots/REV/FILE}
    assert path == store.cache_dir() / "models--ai-portrait--test-tiny" / "snapshots" / REV / "model.safetensors"
    assert (store.cache_dir() / "models--ai-portrait--test-tiny" / "refs" / "main").read_text() == REV
    assert store.model_path("test-tiny", "model.safetensors") == path
    m = store.load_module(Tiny(), "test-tiny")
    for k, v in _state().items():
        assert torch.equal(m.state_dict()[k], v)
    row = next(r for r in store.status() if r["name"] == "test-tiny")
    assert row["state"] == "present" and row["licence"] == "MIT" and row["bytes"] == len(data)


def test_huggingface_hub_finds_the_snapshot(cache, monkeypatch):
    from huggingface_hub import hf_hub_download

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e, data = cache()
    store.install_bytes(e, "model.safetensors", data)
    got = hf_hub_download(e.repo_id, "model.safetensors", revision=REV, cache_dir=str(store.cache_dir()))
    assert open(got, "rb").read() == data


def test_missing_model_names_the_fetch_command(cache):
    cache()
    with pytest.raises(UserError) as err:
        store.model_path("test-tiny", "model.safetensors")
    assert "python -m core models fetch test-tiny" in str(err.value) and err.value.code == "missing-model"
    with pytest.raises(UserError, match="unknown model 'nope'"):
        store.entry("nope")
    with pytest.raises(UserError, match="has no file"):
        store.model_path("test-tiny", "other.bin")


def test_wrong_hash_is_refused_and_reported_corrupt(cache):
    e, data = cache()
    store.install_bytes(e, "model.safetensors", data)
    state = _state(seed=1)  # same shapes, other values: only the hash can tell
    (e.snapshot / "model.safetensors").write_bytes(safetensors_bytes(state, {}))
    assert store.model_state(e) == "corrupt"
    with pytest.raises(UserError) as err:
        store.load_safetensors("test-tiny")
    assert "sha256" in str(err.value) and "fetch test-tiny" in str(err.value) and err.value.code == "corrupt-model"


def test_truncated_file_is_a_clear_error(cache):
    full = safetensors_bytes(_state(), {})
    cut = full[: len(full) // 2]
    # Hash pinned to the truncated bytes: the hash passes, the reader must still refuse cleanly.
    e, _ = cache(data=cut, sha=hashlib.sha256(cut).hexdigest())
    e.snapshot.mkdir(parents=True)
    (e.snapshot / "model.safetensors").write_bytes(cut)
    with pytest.raises(UserError, match="could not be read"):
        store.load_safetensors("test-tiny")
    # And with the full file's hash, the short file is caught by the hash.
    cache(data=full)
    with pytest.raises(UserError, match="damaged"):
        store.load_safetensors("test-tiny")


def test_pickle_is_never_loaded(cache, tmp_path):
    import io

    buf = io.BytesIO()
    torch.save(_state(), buf)  # a pickle file pretending to be the weights
    data = buf.getvalue()
    e, _ = cache(data=data)
    e.snapshot.mkdir(parents=True)
    (e.snapshot / "model.safetensors").write_bytes(data)
    with pytest.raises(UserError, match="could not be read"):
        store.load_safetensors("test-tiny")


def test_wrong_shapes_do_not_fit_the_network(cache):
    data = safetensors_bytes(_state(cout=6), {})
    e, _ = cache(data=data)
    store.install_bytes(e, "model.safetensors", data)
    with pytest.raises(UserError) as err:
        store.load_module(Tiny(cout=4), "test-tiny")
    assert "does not fit" in str(err.value) and "conv.weight" in str(err.value)


def test_converter_output_with_another_hash_is_not_installed(cache):
    e, data = cache(sha="f" * 64)
    with pytest.raises(UserError, match="manifest pins"):
        store.install_bytes(e, "model.safetensors", data)
    assert not (e.snapshot / "model.safetensors").exists()


def test_canonical_safetensors_bytes_are_deterministic_and_readable():
    from safetensors.torch import load

    a = safetensors_bytes(_state(), {"b": "2", "a": "1"})
    b = safetensors_bytes(dict(reversed(list(_state().items()))), {"a": "1", "b": "2"})
    assert a == b
    back = load(a)
    for k, v in _state().items():
        assert torch.equal(back[k], v)


def test_hub_model_offline_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache(name="test-hub", source="hf")
    with pytest.raises(UserError) as err:
        store.fetch("test-hub")
    assert "HF_HUB_OFFLINE" in str(err.value) and err.value.code == "offline"


def test_fetch_is_a_no_op_when_present(cache):
    e, data = cache(converter="no.such.module:fetch")
    store.install_bytes(e, "model.safetensors", data)
    assert store.fetch("test-tiny") == "present"  # the (broken) converter is never called


def test_models_cli_lists_and_rejects(cache, capsys):
    e, data = cache()
    store.install_bytes(e, "model.safetensors", data)
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    row = next(r for r in doc["models"] if r["name"] == "test-tiny")
    assert row["state"] == "present" and row["commercial"] is True
    names = {r["name"] for r in doc["models"]}
    assert {"mediapipe-blazeface", "mediapipe-facemesh", "mediapipe-iris", "mediapipe-selfie"} <= names
    assert main(["models"]) == 0
    assert "test-tiny" in capsys.readouterr().out
    assert main(["models", "fetch", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["models", "fetch"]) == 2
    assert main(["models", "fetch", "test-tiny"]) == 0
    assert "already present" in capsys.readouterr().err


def test_every_manifest_entry_is_complete():
    for e in store.entries():
        assert e.licence and isinstance(e.commercial, bool)
        assert e.source == "hf" or e.converter
        if e.revision is None:  # a Hub model pinned at its first fetch (test_models_pin_first_fetch.py)
            assert e.source == "hf" and not any(e.files.values())
            continue
        assert len(e.revision) == 40
        assert all(len(s) == 64 and int(s, 16) >= 0 for s in e.files.values())
