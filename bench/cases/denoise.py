"""Burst denoise against two baselines on the same synthetic hand-held bursts, each at its best.

Each burst: 8 frames of a detailed picture (the astronaut scaled up, modulated by a band-limited texture so that
there is detail at every scale), hand shake of ±8 px with ±1° roll, Poisson-Gaussian noise σ 0.05 at mid grey,
clipped at black and white as every export is. Frame 0 is the unmoved one, so its ground truth is the clean
picture: we merge onto frame 0 with all 8 frames.

Baselines:
- OpenCV's multi-frame non-local means (`fastNlMeansDenoisingColoredMulti`). It needs an odd temporal window
  centred on its reference, so it gets frame 0 in the middle of 7 frames (one frame fewer: the row says so). Its
  filter strength h is swept over PEER_H (6…21) on a centred crop of at most SWEEP_PIXELS of its input (the
  row's `peer_h_sweep`, PSNR on that crop per h) and the best h is the one timed and scored on the whole input
  (`peer_h`). At 12 MP it takes many minutes: it is timed on a centred 2 MP crop and its full-frame time is
  extrapolated by area (`peer_seconds_extrapolated`, `speed_ratio_extrapolated`); its PSNR is the crop's.
- Global alignment plus mean (`ECC + mean`): OpenCV's ECC (a Euclidean motion: shift and roll) of each frame's
  grey onto the reference's, on a copy at most ECC_SIDE px wide; each frame warped by it (bilinear), the mean
  taken in linear light. It is what a simple stacker does; it knows nothing of clipping or of moving subjects.

The motion burst adds a textured disc moving by 1 % of the width per frame (tests/scenes.burst): its rows give
PSNR over the static area, over the object in the reference and where the object was in other frames only
(`elsewhere`: a ghost shows there), for us and the baseline.
"""
from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from bench.runner import Case
from tests.scenes import psnr

FRAMES = 8
PEER_H = (6, 9, 12, 15, 18, 21)
SWEEP_PIXELS = 500_000
PEER_CROP_PIXELS = 2_000_000
ECC_SIDE = 1024
ECC_ITERATIONS = 60


def _scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    import cv2

    from tests import scenes
    base = cv2.resize(scenes.portrait(), (width, height), interpolation=cv2.INTER_CUBIC)
    detail = scenes.texture(max(height // 2, 8), max(width // 2, 8), seed=seed, channels=1)
    detail = cv2.resize(detail, (width, height), interpolation=cv2.INTER_CUBIC)[:, :, None]
    return np.clip(base * (0.7 + 0.6 * (detail - 0.5)), 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=2)
def _burst(width: int, height: int, motion: bool = False):
    """(clean truth of frame 0, frames, masks or None): masks = (static, object in frame 0, elsewhere)."""
    clean = _scene(width, height)
    if not motion:
        from core.operators.denoise.synth import hand_held_burst
        frames = hand_held_burst(clean, FRAMES, seed=0, shift_px=8.0, roll_deg=1.0, sigma_mid_grey=0.05,
                                 read_sigma=0.005)
        return clean, frames, None
    from tests import scenes
    b = scenes.burst(clean, n=FRAMES, seed=0, max_shift_px=8.0, max_rotation_deg=1.0, sigma_mid_grey=0.05,
                     read_sigma=0.005, object_step_px=0.01 * width)
    obj = b.object_masks[0]
    elsewhere = np.any(np.stack(b.object_masks), axis=0) & ~obj
    return b.truths[0], b.frames, (b.static_mask, obj, elsewhere)


def _centre_crop(height: int, width: int, pixels: int):
    if height * width <= pixels:
        return (slice(0, height), slice(0, width))
    ch = int(round((pixels * height / width) ** 0.5))
    cw = int(round(pixels / ch))
    y0, x0 = (height - ch) // 2, (width - cw) // 2
    return (slice(y0, y0 + ch), slice(x0, x0 + cw))


def _peer_inputs(frames, crop=None):
    """uint8 frames for OpenCV with frame 0 in the middle of a 7-frame window."""
    order = [1, 2, 3, 0, 4, 5, 6]
    out = []
    for k in order:
        f = frames[k] if crop is None else frames[k][crop]
        out.append(np.ascontiguousarray(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8)))
    return out


def _nl_means(u8, h: int) -> np.ndarray:
    import cv2
    return cv2.fastNlMeansDenoisingColoredMulti(u8, 3, 7, None, h, h, 7, 21)


def _sweep_h(peer_in, truth):
    """{h: PSNR} of NL-means on a centred crop of at most SWEEP_PIXELS, and the best h."""
    crop = _centre_crop(truth.shape[0], truth.shape[1], SWEEP_PIXELS)
    small = [np.ascontiguousarray(f[crop]) for f in peer_in]
    scores = {h: psnr(_nl_means(small, h) / 255.0, truth[crop]) for h in PEER_H}
    return scores, max(scores, key=scores.get)


def align_and_mean(frames, reference: int = 0) -> np.ndarray:
    """Global ECC alignment (Euclidean) of every frame onto the reference, then the mean in linear light."""
    import cv2

    from core.imaging.color import linear_to_srgb, srgb_to_linear
    h, w = frames[reference].shape[:2]
    scale = min(1.0, ECC_SIDE / w)
    size = (max(int(round(w * scale)), 16), max(int(round(h * scale)), 16))

    def grey(f):
        g = cv2.cvtColor(np.ascontiguousarray(f[:, :, :3]), cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, size, interpolation=cv2.INTER_AREA) if scale < 1 else g

    template = grey(frames[reference])
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-5)
    total = srgb_to_linear(np.ascontiguousarray(frames[reference][:, :, :3], np.float32)).astype(np.float32)
    for k, f in enumerate(frames):
        if k == reference:
            continue
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(template, grey(f), warp, cv2.MOTION_EUCLIDEAN, criteria, None, 5)
        except cv2.error:
            pass                                  # not converged: the identity, as a simple stacker would
        warp[:, 2] /= scale                       # the motion found on the small copy, at full size
        lin = srgb_to_linear(np.ascontiguousarray(f[:, :, :3], np.float32))
        total += cv2.warpAffine(lin, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
    return np.clip(linear_to_srgb(total / np.float32(len(frames))), 0.0, 1.0)


def _case(label: str, width: int, height: int, peer: str, repeat: int = 1, motion: bool = False) -> Case:
    """peer: "nlmeans" (h swept; timed on a 2 MP crop above 2 MP) or "ecc" (align + mean, full size)."""
    from core import registry

    state = {}

    def prepare():
        if not state:
            state["clean"], state["frames"], state["masks"] = _burst(width, height, motion)
            if peer == "nlmeans":
                state["crop"] = _centre_crop(height, width, PEER_CROP_PIXELS) \
                    if width * height > PEER_CROP_PIXELS else None
                state["peer_in"] = _peer_inputs(state["frames"], state["crop"])
                truth = state["clean"] if state["crop"] is None else state["clean"][state["crop"]]
                state["sweep"], state["h"] = _sweep_h(state["peer_in"], truth)   # not timed
        return state

    def timed(key, fn):
        """fn's result; the best wall time of the repeats and that run's CPU time (all threads) in `state`."""
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if wall < state.get(key + "_s", float("inf")):
            state[key + "_s"], state[key + "_cpu_s"] = wall, cpu
        return out

    def ours():
        st = prepare()
        return timed("ours", lambda: registry.run("denoise", {"frames": st["frames"]}, {"reference": 0}).image)

    def run_peer():
        import cv2
        import torch
        st = prepare()
        # Same number of threads for both sides (OpenCV defaults to all cores, torch to its own setting).
        cv2.setNumThreads(torch.get_num_threads())
        if peer == "nlmeans":
            return timed("peer", lambda: _nl_means(st["peer_in"], st["h"]) / 255.0)
        return timed("peer", lambda: align_and_mean(st["frames"]))

    def quality(ours_img, peer_img):
        import torch
        st = prepare()
        clean, crop = st["clean"], st.get("crop")
        figures = {"threads": torch.get_num_threads(), "psnr_single": psnr(st["frames"][0], clean),
                   "psnr_ours": psnr(ours_img, clean)}
        if peer_img is None:
            return figures
        truth = clean if crop is None else clean[crop]
        figures["psnr_peer"] = psnr(peer_img, truth)
        area = (width * height) / float(peer_img.shape[0] * peer_img.shape[1])   # 1 unless timed on a crop
        figures["ours_cpu_s"], figures["peer_cpu_s"] = st["ours_cpu_s"], st["peer_cpu_s"]
        figures["cpu_ratio" if area == 1 else "cpu_ratio_extrapolated"] = st["peer_cpu_s"] * area / st["ours_cpu_s"]
        if peer == "nlmeans":
            figures["peer_h"] = st["h"]
            figures["peer_h_sweep"] = {h: float(round(v, 2)) for h, v in st["sweep"].items()}
        if st["masks"] is not None:
            for name, where in zip(("static", "object", "elsewhere"), st["masks"]):
                figures[f"{name}_single"] = psnr(st["frames"][0], clean, where=where)
                figures[f"{name}_ours"] = psnr(ours_img, clean, where=where)
                if crop is None:
                    figures[f"{name}_peer"] = psnr(peer_img, clean, where=where)
        if crop is not None:
            figures["psnr_ours_on_peer_crop"] = psnr(ours_img[crop], truth)
            figures["peer_seconds_extrapolated"] = st["peer_s"] * area
            figures["speed_ratio_extrapolated"] = st["peer_s"] * area / st["ours_s"]
            figures["peer_note"] = "peer timed on a 2 MP crop (7 frames); speed_ratio compares crop to full"
        return figures

    prepare()  # synthesis (and the peer's h sweep) is not part of either timing
    name = "cv2.fastNlMeansDenoisingColoredMulti (7 frames, best h)" if peer == "nlmeans" else \
        "ECC global alignment + mean in linear light (8 frames)"
    return Case(operator="denoise", name=label, size=f"{FRAMES}x{width}x{height}", ours=ours, peer=run_peer,
                peer_name=name, quality=quality, repeat=repeat)


def cases(quick: bool):
    if quick:
        return [_case("burst 0.25 MP", 576, 432, peer) for peer in ("nlmeans", "ecc")] + \
               [_case("motion 0.25 MP", 576, 432, peer, motion=True) for peer in ("nlmeans", "ecc")]
    # Best of two runs on each side: both timed warm, and a shared machine's hiccups count less.
    return [_case(f"{kind} {mp}", w, h, peer, repeat=2, motion=kind == "motion")
            for kind, mp, w, h in (("burst", "2 MP", 1632, 1224), ("motion", "2 MP", 1632, 1224),
                                   ("burst", "12 MP", 4000, 3000))
            for peer in ("nlmeans", "ecc")]
