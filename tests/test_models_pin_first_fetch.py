"""A Hub model the manifest could not pin is pinned at its first fetch: checked against the Hub's published
sha256, written to a lock file, and from then on verified before every load like any pinned model.

No network: the Hub's metadata and download are replaced by a fake that writes the cache layout."""
import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from core.errors import UserError
from core.models import store

REVISION = "a" * 40


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    weights = tmp_path / "w.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32)}, str(weights))
    blobs = {"model.safetensors": weights.read_bytes(), "config.json": b'{"a": 1}'}
    published = {"model.safetensors": hashlib.sha256(blobs["model.safetensors"]).hexdigest(),
                 "config.json": None}  # not an LFS file: the Hub publishes no sha256 for it
    calls = []

    def resolve(repo_id):
        return REVISION, dict(published)

    def download(repo_id, filename, revision):
        calls.append((filename, revision))
        e = store.entry("tofu-test")
        folder = e.folder / "snapshots" / revision
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_bytes(blobs[filename])

    monkeypatch.setattr(store, "_hub_resolve", resolve)
    monkeypatch.setattr(store, "_hub_download", download)
    store.register(dict(name="tofu-test", repo_id="someone/tofu-test", revision=None,
                        files={"model.safetensors": None, "config.json": None}, licence="Apache-2.0",
                        commercial=True))
    yield blobs, published, calls
    store.unregister("tofu-test")


def test_unpinned_model_is_missing_until_fetched_then_pinned_by_a_lock(fake_hub):
    blobs, published, calls = fake_hub
    assert store.model_state(store.entry("tofu-test")) == "missing"
    assert [r["revision"] for r in store.status() if r["name"] == "tofu-test"] == ["pinned at first fetch"]
    with pytest.raises(UserError, match="not installed"):
        store.model_path("tofu-test", "model.safetensors")
    assert store.fetch("tofu-test") == "fetched"
    lock = json.loads(store.lock_path(store.entry("tofu-test")).read_text())
    assert lock["revision"] == REVISION
    assert lock["files"]["model.safetensors"] == published["model.safetensors"]
    assert lock["files"]["config.json"] == hashlib.sha256(blobs["config.json"]).hexdigest()
    assert torch.equal(store.load_safetensors("tofu-test")["w"], torch.arange(6, dtype=torch.float32))
    assert store.fetch("tofu-test") == "present" and len(calls) == 2  # nothing downloaded twice


def test_a_changed_file_after_pinning_is_refused(fake_hub):
    store.fetch("tofu-test")
    path = store.entry("tofu-test").snapshot / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert store.model_state(store.entry("tofu-test")) == "corrupt"
    with pytest.raises(UserError, match="sha256 does not match"):
        store.load_safetensors("tofu-test")


def test_a_download_that_differs_from_the_hubs_sha256_is_not_pinned(fake_hub, monkeypatch):
    blobs, published, calls = fake_hub
    monkeypatch.setattr(store, "_hub_resolve", lambda repo: (REVISION, dict(published, **{
        "model.safetensors": "0" * 64})))
    with pytest.raises(UserError, match="not the 000000000000... the Hub publishes"):
        store.fetch("tofu-test")
    assert not store.lock_path(store.entry("tofu-test")).exists()
    assert store.model_state(store.entry("tofu-test")) == "missing"


def test_offline_first_fetch_says_so(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set"):
        store.fetch("tofu-test")


def test_damaged_lock_is_a_clear_error(fake_hub):
    store.fetch("tofu-test")
    store.lock_path(store.entry("tofu-test")).write_text("{not json")
    with pytest.raises(UserError, match="lock file .* is damaged"):
        store.entry("tofu-test")


def test_only_hub_models_may_be_unpinned():
    with pytest.raises(ValueError):
        store.register(dict(name="x", repo_id="a/x", revision=None, files={"m": "1" * 64}, licence="MIT",
                            commercial=True))
    with pytest.raises(ValueError):
        store.register(dict(name="x", repo_id="a/x", revision="b" * 40, files={"m": None}, licence="MIT",
                            commercial=True))


def test_depth_network_is_listed_unpinned_with_its_licence():
    e = store.entry("depth-anything-v2-small") if not store.lock_path(
        store._ENTRIES["depth-anything-v2-small"]).exists() else store._ENTRIES["depth-anything-v2-small"]
    assert e.repo_id == "depth-anything/Depth-Anything-V2-Small-hf"
    assert e.licence == "Apache-2.0" and e.commercial
