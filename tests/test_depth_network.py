"""Depth Anything V2 in plain torch: hub key layout, loading through the model store, shapes, determinism,
edges aligned to the image. Weights are small and self-made (the real ones cannot be fetched in CI); a
real-weights check runs only where the real file is installed."""
import hashlib
import json

import numpy as np
import pytest
import torch

from core import depth
from core.depth import depth_anything as da
from core.depth import network
from core.errors import UserError
from core.models import store
from tests import scenes

REVISION = "0123456789abcdef0123456789abcdef01234567"

# A scaled-down Depth Anything in the hub's config.json format (same key names, smaller sizes).
TINY_HF_CONFIG = {
    "model_type": "depth_anything",
    "backbone_config": {"model_type": "dinov2", "hidden_size": 64, "num_hidden_layers": 4,
                        "num_attention_heads": 2, "mlp_ratio": 4, "patch_size": 14, "image_size": 70,
                        "out_indices": [1, 2, 3, 4], "apply_layernorm": True, "reshape_hidden_states": False},
    "neck_hidden_sizes": [8, 16, 32, 64], "reassemble_factors": [4, 2, 1, 0.5], "fusion_hidden_size": 16,
    "head_hidden_size": 8, "patch_size": 14, "depth_estimation_type": "relative",
}


def tiny_state(seed=0):
    """Self-made weights: the init the real network was trained from (normal, std 0.02), unit norms and layer
    scales, and a positive output bias so the final ReLU is not all zero."""
    cfg = da.DepthAnythingConfig.from_hf_config(TINY_HF_CONFIG)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in da.DepthAnything(cfg).state_dict().items():
        if k.endswith("lambda1") or ("norm" in k and k.endswith("weight")):
            state[k] = torch.ones_like(v)
        elif k.endswith("bias"):
            state[k] = torch.zeros_like(v)
        elif v.ndim >= 2 and k.endswith("weight"):
            fan_in = v[0].numel() if "resize" not in k or v.ndim != 4 else v[:, 0].numel()
            state[k] = torch.randn(v.shape, generator=g) / np.sqrt(fan_in)
        else:
            state[k] = torch.randn(v.shape, generator=g) * 0.02
    state["head.conv3.bias"] = torch.tensor([1.0])
    return cfg, state


def step_state():
    """Hand-made weights whose answer is known: each token says whether its patch is brighter than mid-grey,
    the transformer blocks are identities (layer scale 0) and the DPT decoder passes that sign through every
    scale. The raw output is therefore a step on the patch grid (bright = near), up to half a patch away from
    the image's true edge: what the edge-aware upsampling must put back on the edge. Only the finest DPT scale
    (4 × the patch grid) carries it, as in a trained network where the fine scales carry the edges."""
    cfg = da.DepthAnythingConfig.from_hf_config(TINY_HF_CONFIG)
    state = {k: torch.zeros_like(v) for k, v in da.DepthAnything(cfg).state_dict().items()}
    for k in state:
        if "norm" in k and k.endswith("weight"):
            state[k] = torch.ones_like(state[k])
    luma = torch.tensor([0.299, 0.587, 0.114])
    std, mean = torch.tensor(da.IMAGENET_STD), torch.tensor(da.IMAGENET_MEAN)
    p = cfg.patch_size
    w = state["backbone.embeddings.patch_embeddings.projection.weight"]
    w[0] = (luma * std / (p * p))[:, None, None].expand(3, p, p)  # mean luminance of the patch ...
    w[1] = -w[0]
    bias = state["backbone.embeddings.patch_embeddings.projection.bias"]
    bias[0] = float((luma * mean).sum()) - 0.5                     # ... minus mid-grey, and its negative:
    bias[1] = -bias[0]                                             # the layer norm turns it into ±sqrt(C/2)
    for i, f in enumerate(cfg.reassemble_factors):
        state[f"neck.reassemble_stage.layers.{i}.projection.weight"][0, 0] = 1.0
        if f > 1:
            state[f"neck.reassemble_stage.layers.{i}.resize.weight"][0, 0] = 1.0  # nearest-neighbour x f
        state[f"neck.convs.{i}.weight"][0, 0, 1, 1] = 1.0 if i == 0 else 0.0  # the finest scale only
        state[f"neck.fusion_stage.layers.{i}.projection.weight"][0, 0] = 1.0
    state["head.conv1.weight"][0, 0, 1, 1] = 1.0
    state["head.conv2.weight"][0, 0, 1, 1] = 1.0
    state["head.conv2.bias"][0] = 30.0  # keeps the far side above the final ReLU
    state["head.conv3.weight"][0, 0] = 1.0
    return cfg, state


def _install(tmp_path, state):
    from safetensors.torch import save_file

    snap = tmp_path / "hub" / ("models--" + network.HF_REPO.replace("/", "--")) / "snapshots" / REVISION
    snap.mkdir(parents=True, exist_ok=True)
    (snap.parent.parent / "refs").mkdir(exist_ok=True)
    (snap.parent.parent / "refs" / "main").write_text(REVISION)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snap / network.WEIGHTS_FILE))
    (snap / network.CONFIG_FILE).write_text(json.dumps(TINY_HF_CONFIG))
    sha = hashlib.sha256((snap / network.WEIGHTS_FILE).read_bytes()).hexdigest()
    store.register(dict(name=network.MODEL_NAME, repo_id=network.HF_REPO, revision=REVISION,
                        files={network.WEIGHTS_FILE: sha}, licence="Apache-2.0", commercial=True))
    network.clear_models()
    depth.clear_cache()
    return snap


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """Install self-made weights as a hub snapshot and register them under the real model name."""
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path))
    monkeypatch.setattr(network, "INPUT_SIZE", 224)  # 16 patches: the same code path, a quarter of the work
    previous = store._ENTRIES.get(network.MODEL_NAME)
    yield _install(tmp_path, tiny_state()[1])
    store.unregister(network.MODEL_NAME)
    if previous is not None:
        store._ENTRIES[network.MODEL_NAME] = previous
    network.clear_models()
    depth.clear_cache()


def test_small_architecture_has_the_hub_key_layout():
    sd = da.DepthAnything().state_dict()
    expect = {
        "backbone.embeddings.cls_token": (1, 1, 384),
        "backbone.embeddings.mask_token": (1, 384),
        "backbone.embeddings.position_embeddings": (1, 1370, 384),
        "backbone.embeddings.patch_embeddings.projection.weight": (384, 3, 14, 14),
        "backbone.encoder.layer.0.attention.attention.query.weight": (384, 384),
        "backbone.encoder.layer.11.attention.output.dense.bias": (384,),
        "backbone.encoder.layer.5.layer_scale1.lambda1": (384,),
        "backbone.encoder.layer.7.mlp.fc1.weight": (1536, 384),
        "backbone.encoder.layer.11.norm2.weight": (384,),
        "backbone.layernorm.bias": (384,),
        "neck.reassemble_stage.layers.0.projection.weight": (48, 384, 1, 1),
        "neck.reassemble_stage.layers.0.resize.weight": (48, 48, 4, 4),
        "neck.reassemble_stage.layers.1.resize.weight": (96, 96, 2, 2),
        "neck.reassemble_stage.layers.3.resize.weight": (384, 384, 3, 3),
        "neck.convs.0.weight": (64, 48, 3, 3),
        "neck.fusion_stage.layers.0.projection.weight": (64, 64, 1, 1),
        "neck.fusion_stage.layers.3.residual_layer1.convolution2.bias": (64,),
        "head.conv1.weight": (32, 64, 3, 3),
        "head.conv2.weight": (32, 32, 3, 3),
        "head.conv3.weight": (1, 32, 1, 1),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k
    assert "neck.reassemble_stage.layers.2.resize.weight" not in sd  # factor 1: identity
    assert "neck.convs.0.bias" not in sd
    n = sum(v.numel() for v in sd.values())
    assert 24.5e6 < n < 25.2e6  # "about 25 M parameters"


def test_hub_config_is_read():
    cfg = da.DepthAnythingConfig.from_hf_config(TINY_HF_CONFIG)
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.image_size) == (64, 4, 2, 70)
    assert cfg.out_indices == (1, 2, 3, 4) and cfg.neck_hidden_sizes == (8, 16, 32, 64)
    staged = dict(TINY_HF_CONFIG, backbone_config=dict(TINY_HF_CONFIG["backbone_config"], out_indices=None,
                                                       out_features=["stage2", "stage4", "stage6", "stage8"]))
    assert da.DepthAnythingConfig.from_hf_config(staged).out_indices == (2, 4, 6, 8)


def test_inference_size_keeps_aspect_on_the_patch_grid():
    assert da.inference_size(512, 512) == (518, 518)
    h, w = da.inference_size(1000, 1500)
    assert h == 518 and w % 14 == 0 and abs(w / h - 1.5) < 0.02
    h, w = da.inference_size(300, 200)
    assert w == 518 and h % 14 == 0
    h, w = da.inference_size(100, 4000)  # a panorama: the long side is capped
    assert w <= 2072 and h % 14 == 0 and h >= 14


def test_loads_through_the_store_with_shapes_range_and_determinism(fake_hub):
    assert network.available()
    img = scenes.texture(150, 200, seed=3)
    res = depth.estimate(img, method="network")
    assert res.source == "network:depth-anything-v2-small"
    assert res.disparity.shape == (150, 200) and res.disparity.dtype == np.float32
    assert res.disparity.min() >= 0.0 and res.disparity.max() <= 1.0
    assert res.disparity.max() - res.disparity.min() > 0.5  # normalised over the image, not flat
    # Same pixels, fresh process state: the same bytes.
    depth.clear_cache()
    network.clear_models()
    again = depth.estimate(img, method="network")
    assert np.array_equal(res.disparity, again.disparity)
    # The raw network output at inference resolution has the patch-grid shape.
    raw = da.predict(network.load_model(), img, input_size=network.INPUT_SIZE)
    assert raw.shape == da.inference_size(150, 200, network.INPUT_SIZE) == (224, 294)


def test_cache_computes_once_per_image(fake_hub, monkeypatch):
    calls = []
    real = da.predict

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(da, "predict", counting)
    img = scenes.texture(96, 128, seed=5)
    a = depth.estimate(img)
    a.disparity[:] = 0  # the caller's copy: must not poison the cache
    b = depth.estimate(img.copy())
    assert len(calls) == 1
    assert b.disparity.max() > 0.5
    depth.estimate(scenes.texture(96, 128, seed=6))
    assert len(calls) == 2


def test_upsampled_edges_align_with_the_image(fake_hub, tmp_path):
    """A vertical step between two colours, off the patch grid, through hand-made weights whose raw answer is
    a step on the patch grid: after upsampling, the disparity's jump sits on the image's step."""
    import cv2

    _install(tmp_path, step_state()[1])
    h, w, x0 = 240, 320, 171  # x0 = 157 px at inference: its patch (154-168) is mostly bright
    img = np.empty((h, w, 3), np.float32)
    img[:, :x0] = (0.15, 0.25, 0.2)
    img[:, x0:] = (0.85, 0.75, 0.6)
    res = depth.estimate(img, method="network")
    raw = da.predict(network.load_model(), img, input_size=network.INPUT_SIZE)
    plain = cv2.resize(raw, (w, h), interpolation=cv2.INTER_LINEAR)

    def jumps(m):
        """Per row: the column of the largest jump near the step (the jump between x-1 and x counts as x)."""
        d = np.abs(np.diff(m[:, x0 - 24:x0 + 24], axis=1))
        return np.argmax(d, axis=1) + x0 - 23, d

    # The raw step is on the patch grid, 2 px off the edge and smeared over several pixels.
    cols, d = jumps(plain)
    assert np.median(np.abs(cols - x0)) >= 2
    # Ours: near side bright, every row's jump within 1 px of the edge and made of one or two pixels.
    assert res.disparity[:, x0 + 5:].mean() > res.disparity[:, :x0 - 5].mean() + 0.8
    cols, d = jumps(res.disparity)
    assert np.mean(np.abs(cols - x0) <= 1) > 0.95
    share = d[:, 21:26].sum() / d.sum()
    assert share > 0.9, share
    err_ours = np.abs(res.disparity - (np.arange(w) >= x0)[None, :]).mean()
    lo, hi = plain.min(), plain.max()
    err_plain = np.abs((plain - lo) / (hi - lo) - (np.arange(w) >= x0)[None, :]).mean()
    assert err_ours < 0.5 * err_plain, (err_ours, err_plain)


def test_weights_of_another_network_are_a_clear_error(fake_hub):
    from safetensors.torch import save_file

    _, state = tiny_state()
    state.pop("head.conv3.weight")
    state["head.conv4.weight"] = torch.zeros(1)
    f = fake_hub / network.WEIGHTS_FILE
    save_file({k: v.contiguous() for k, v in state.items()}, str(f))
    e = store.entry(network.MODEL_NAME)
    store.register(dict(name=e.name, repo_id=e.repo_id, revision=e.revision, licence=e.licence,
                        commercial=e.commercial, files={network.WEIGHTS_FILE: store.sha256_file(f)}))
    network.clear_models()
    with pytest.raises(UserError) as err:
        depth.estimate(scenes.texture(64, 64), method="network")
    assert err.value.code == "bad-model" and "head.conv3.weight" in str(err.value)


def test_network_method_without_weights_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path))
    network.clear_models()
    depth.clear_cache()
    with pytest.raises(UserError) as err:
        depth.estimate(scenes.texture(64, 64), method="network")
    assert "not installed" in str(err.value)


def _real_weights_present():
    try:
        return store.model_state(store.entry(network.MODEL_NAME)) == "present"
    except UserError:
        return False


@pytest.mark.skipif(not _real_weights_present(), reason="real Depth Anything V2 Small weights are not installed "
                                                       "(python -m core models fetch depth-anything-v2-small)")
def test_real_weights_put_the_astronaut_in_front():
    network.clear_models()
    depth.clear_cache()
    img = scenes.portrait()
    res = depth.estimate(img, method="network")
    face = res.disparity[110:160, 200:250].mean()
    corners = np.mean([res.disparity[:40, :40].mean(), res.disparity[:40, -40:].mean()])
    assert face > corners + 0.2


def test_matches_transformers_when_it_is_installed():
    """Same weights, same input: our forward equals transformers' DepthAnythingForDepthEstimation exactly.
    transformers is not a dependency; this runs where it happens to be installed (measured: max difference
    0.0 with transformers 4.57.1 on the full Small architecture, square and non-square inputs)."""
    tf = pytest.importorskip("transformers", reason="transformers is not installed (optional cross-check)")
    bb = tf.Dinov2Config(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, patch_size=14, image_size=70,
                         out_indices=[1, 2, 3, 4], apply_layernorm=True, reshape_hidden_states=False)
    cfg = tf.DepthAnythingConfig(backbone_config=bb, fusion_hidden_size=16, neck_hidden_sizes=[8, 16, 32, 64],
                                 reassemble_hidden_size=64, head_hidden_size=8)
    ref = tf.DepthAnythingForDepthEstimation(cfg).eval()
    _, state = tiny_state(seed=7)
    ref.load_state_dict(state, strict=False)
    ours = da.build(state, da.DepthAnythingConfig.from_hf_config(cfg.to_dict()))
    x = torch.randn(1, 3, 140, 196, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(pixel_values=x).predicted_depth
        got = ours(x)
    assert torch.allclose(expected, got, atol=1e-5, rtol=1e-5)
