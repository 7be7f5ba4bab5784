"""Burst denoise vs OpenCV's multi-frame non-local means on the same synthetic hand-held bursts.

Each burst: 8 frames of a detailed picture (the astronaut scaled up, modulated by a band-limited texture so
that there is detail at every scale), hand shake of ±8 px with ±1° roll, Poisson-Gaussian noise σ 0.05 at mid
grey. Frame 0 is the unmoved one, so its ground truth is the clean picture: we merge onto frame 0 with all 8
frames; OpenCV needs an odd temporal window centred on its reference, so it gets frame 0 in the middle of 7
frames (one frame fewer: the row says so). Its filter strength h = 9 was its best on the test burst.

At 12 MP OpenCV takes many minutes: it is timed on a centred 2 MP crop (7 frames) and its full-frame time is
extrapolated by area (`peer_seconds_extrapolated`, `speed_ratio_extrapolated`); its PSNR is the crop's.
"""
from __future__ import annotations

import time

import numpy as np

from bench.runner import Case
from tests.scenes import psnr

FRAMES = 8
PEER_H = 9
PEER_CROP_PIXELS = 2_000_000


def _scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    import cv2

    from tests import scenes
    base = cv2.resize(scenes.portrait(), (width, height), interpolation=cv2.INTER_CUBIC)
    detail = scenes.texture(max(height // 2, 8), max(width // 2, 8), seed=seed, channels=1)
    detail = cv2.resize(detail, (width, height), interpolation=cv2.INTER_CUBIC)[:, :, None]
    return np.clip(base * (0.7 + 0.6 * (detail - 0.5)), 0.0, 1.0).astype(np.float32)


def _burst(width: int, height: int):
    from core.operators.denoise.synth import hand_held_burst
    clean = _scene(width, height)
    frames = hand_held_burst(clean, FRAMES, seed=0, shift_px=8.0, roll_deg=1.0, sigma_mid_grey=0.05,
                             read_sigma=0.005)
    return clean, frames


def _peer_inputs(frames, crop=None):
    """uint8 frames for OpenCV with frame 0 in the middle of a 7-frame window."""
    order = [1, 2, 3, 0, 4, 5, 6]
    out = []
    for k in order:
        f = frames[k] if crop is None else frames[k][crop]
        out.append(np.ascontiguousarray(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8)))
    return out


def _case(label: str, width: int, height: int, peer_crop: bool, repeat: int = 1) -> Case:
    import cv2

    from core import registry

    state = {}

    def prepare():
        if not state:
            state["clean"], state["frames"] = _burst(width, height)
            if peer_crop:
                ch = int(round((PEER_CROP_PIXELS * height / width) ** 0.5))
                cw = int(round(PEER_CROP_PIXELS / ch))
                y0, x0 = (height - ch) // 2, (width - cw) // 2
                state["crop"] = (slice(y0, y0 + ch), slice(x0, x0 + cw))
            else:
                state["crop"] = None
            state["peer_in"] = _peer_inputs(state["frames"], state["crop"])
        return state

    def ours():
        st = prepare()
        t0 = time.perf_counter()
        out = registry.run("denoise", {"frames": st["frames"]}, {"reference": 0}).image
        st["ours_s"] = min(st.get("ours_s", float("inf")), time.perf_counter() - t0)   # best of the repeats
        return out

    def peer():
        import torch
        st = prepare()
        # Same number of threads for both sides (OpenCV defaults to all cores, torch to its own setting).
        cv2.setNumThreads(torch.get_num_threads())
        t0 = time.perf_counter()
        out = cv2.fastNlMeansDenoisingColoredMulti(st["peer_in"], 3, 7, None, PEER_H, PEER_H, 7, 21)
        st["peer_s"] = min(st.get("peer_s", float("inf")), time.perf_counter() - t0)
        return out

    def quality(ours_img, peer_img):
        st = prepare()
        clean, crop = st["clean"], st["crop"]
        import torch
        figures = {"threads": torch.get_num_threads(), "psnr_single": psnr(st["frames"][0], clean),
                   "psnr_ours": psnr(ours_img, clean)}
        if peer_img is not None:
            truth = clean if crop is None else clean[crop]
            figures["psnr_peer"] = psnr(peer_img / 255.0, truth)
            if crop is not None:
                figures["psnr_ours_on_peer_crop"] = psnr(ours_img[crop], truth)
                scale = (width * height) / float(peer_img.shape[0] * peer_img.shape[1])
                figures["peer_seconds_extrapolated"] = st["peer_s"] * scale
                figures["speed_ratio_extrapolated"] = st["peer_s"] * scale / st["ours_s"]
                figures["peer_note"] = "peer timed on a 2 MP crop (7 frames); speed_ratio compares crop to full"
        return figures

    prepare()  # synthesis is not part of either timing
    return Case(operator="denoise", name=label, size=f"{FRAMES}x{width}x{height}", ours=ours, peer=peer,
                peer_name="cv2.fastNlMeansDenoisingColoredMulti (7 frames)", quality=quality, repeat=repeat)


def cases(quick: bool):
    if quick:
        return [_case("burst 0.25 MP", 576, 432, False)]
    # Best of two runs on each side: both timed warm, and a shared machine's hiccups count less.
    return [_case("burst 2 MP", 1632, 1224, False, repeat=2), _case("burst 12 MP", 4000, 3000, True, repeat=2)]
