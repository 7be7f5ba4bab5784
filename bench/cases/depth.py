"""Depth service: Depth Anything V2 Small at 518 px input (CPU, and CUDA when present), and the portrait proxy.

The network is timed with the real weights when they are installed, else with self-made weights of the same
architecture (24.8 M parameters): the cost is the same, the row says which (`weights`). Timed: resize +
network + edge-aware upsampling to the image's resolution, as the service runs it (the model is built before).
The proxy row times face mesh + person mask + proxy surface on the astronaut (512 × 512).
"""
from __future__ import annotations

import numpy as np

from bench.runner import Case


def _model(device: str):
    import torch

    from core.depth import depth_anything as da
    from core.depth import network

    if network.available():
        return network.load_model(device), "real"
    g = torch.Generator().manual_seed(0)
    model = da.DepthAnything()
    state = {k: torch.randn(v.shape, generator=g) * 0.02 for k, v in model.state_dict().items()}
    return da.build(state, device=device), "self-made"


def _network_case(image: np.ndarray, device: str, quick: bool) -> Case:
    from core.depth import depth_anything as da
    from core.depth import network

    model, which = _model(device)
    h, w = image.shape[:2]
    ih, iw = da.inference_size(h, w, network.INPUT_SIZE)

    def ours():
        raw = da.predict(model, image, input_size=network.INPUT_SIZE)
        return network.normalise(network.to_image_resolution(raw, image))

    def quality(result, _):
        return {"weights": which, "inference_px": f"{iw}x{ih}", "parameters_m": 24.8}

    return Case(operator="depth", name="depth-anything-v2-small", size=f"{w}x{h}", ours=ours, device=device,
                quality=quality, repeat=1 if quick or device == "cpu" else 3)


def cases(quick: bool):
    import torch

    from tests import scenes

    portrait = scenes.portrait()
    wide = scenes.texture(512, 768, seed=0)  # 518 × 784 at inference
    out = [_network_case(portrait if quick else wide, "cpu", quick)]
    if torch.cuda.is_available():
        out.append(_network_case(wide, "cuda", quick))
    try:
        from core import face
        have_faces = face.available() and face.available((face.SELFIE,))
    except ImportError:
        have_faces = False
    if have_faces:
        from core.depth import proxy

        def run_proxy():
            return proxy.estimate(portrait, device="cpu")

        def quality(result, _):
            return {"source": result[1]}

        out.append(Case(operator="depth", name="portrait-proxy", size="512x512", ours=run_proxy, device="cpu",
                        quality=quality))
    return out
