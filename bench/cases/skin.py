"""Skin texture: a 12 MP portrait and a 1 MP preview, no mask (the face's skin found by the face service).

The portrait is the astronaut's head and shoulders (a 280×210 window) scaled up to the size, with a fine
multiplicative grain so there is texture at the pixel scale (a plain upscale has none); her face is then about
1530 px tall at 12 MP (a close head-and-shoulders portrait) and 440 px at 1 MP. The 1 MP preview is timed twice:
the first run on a picture (faces and skin found), and a re-run with new settings on the same picture, as a
dialog's preview does (the operator keeps the last picture's faces and skin mask: `core/operators/skin/region.py`,
pictures up to 4 MP). CPU seconds are reported beside the wall time (`cpu_seconds`).

Peer for speed: the retoucher's plain Gaussian frequency separation (low = G_r, high = x − G_r, out = G_R(low) +
high) on the whole frame, at its best healing setting on the procedural skin (r = 1 px, R = 16 px at a 560 px
face), both radii scaled with the face. Quality (`tests.scenes.skin_scene`, 256², 14 planted spots of 6-24 px):
ours against that separation and OpenCV's bilateral filter, each peer at its best PSNR inside the spots over a
sweep, with the texture ratios (output over truth, clean skin and inside the spots; goal 0.85-1.15 and 0.7-1.3)
that say why that PSNR is bought with flat skin.
"""
from __future__ import annotations

import time

import numpy as np

from bench.runner import Case

SCENE_FACE_PX = 563.2      # the procedural skin's face-equivalent height at blemish size 0.11 (see tests)


def _portrait(width: int, height: int, seed: int = 0) -> np.ndarray:
    import cv2

    from tests.scenes import portrait
    base = cv2.resize(portrait()[30:240, 85:365], (width, height), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    grain = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 1.2) * 0.03
    return np.clip(base * (1.0 + grain[:, :, None]), 0.0, 1.0).astype(np.float32)


def _energy(rgb, where):
    import cv2
    y = np.ascontiguousarray(rgb[:, :, :3]) @ np.float32([0.2126, 0.7152, 0.0722])
    return float(np.var((y - cv2.GaussianBlur(y, (0, 0), 1.0))[where]))


def _figures(result, sc):
    from tests.scenes import psnr
    inside, clean = sc.spot_mask(), ~sc.spot_mask(grow=3)
    p = psnr(result, sc.truth, where=inside)
    return {"psnr": p, "gain": p - psnr(sc.image, sc.truth, where=inside),
            "tex_clean": _energy(result, clean) / _energy(sc.truth, clean),
            "tex_in": _energy(result, inside) / _energy(sc.truth, inside)}


def _frequency_separation(img, r, big):
    import cv2
    low = cv2.GaussianBlur(img, (0, 0), r)
    return cv2.GaussianBlur(low, (0, 0), big) + (img - low)


def scene_quality():
    """Ours and the two peers (best PSNR over their sweeps) on the procedural skin."""
    import cv2

    from core import registry
    from tests.scenes import skin_scene
    sc = skin_scene(256, 1)
    ours = registry.run("skin", {"image": sc.image}, {"blemish_size": 0.11},
                        mask=np.ones(sc.image.shape[:2], np.float32)).image
    out = {f"ours_{k}": round(v, 3) for k, v in _figures(ours, sc).items()}
    sweeps = {
        "bilateral": [(f"sc={c},ss={s}", lambda c=c, s=s: cv2.bilateralFilter(sc.image, -1, c, s))
                      for c in (0.03, 0.1, 0.2, 0.4) for s in (2, 4, 8)],
        "freqsep": [(f"r={r},R={b}", lambda r=r, b=b: _frequency_separation(sc.image, r, b))
                    for r in (1, 2, 3, 4) for b in (4, 8, 16)],
    }
    for name, sweep in sweeps.items():
        scored = [(label, _figures(fn(), sc)) for label, fn in sweep]
        label, best = max(scored, key=lambda t: t[1]["psnr"])
        out[f"{name}_best"] = label
        out.update({f"{name}_{k}": round(v, 3) for k, v in best.items()})
        out[f"{name}_settings_passing_texture"] = sum(
            0.85 <= f["tex_clean"] <= 1.15 and 0.7 <= f["tex_in"] <= 1.3 for _, f in scored)
    return out


def _cases_for(name: str, w: int, h: int, device: str):
    from core import registry
    from core.operators.skin import region

    img = _portrait(w, h)
    face_px = 1530.0 * w / 4000.0
    cpu = {"first": float("inf"), "again": float("inf")}

    def timed(which, fn):
        # CPU seconds (all threads) beside the wall time: on a shared, oversubscribed machine the wall time
        # overstates the cost.
        c0 = time.process_time()
        result = fn()
        cpu[which] = min(cpu[which], time.process_time() - c0)
        return result

    def peer():
        k = face_px / SCENE_FACE_PX
        return _frequency_separation(img, 1.0 * k, 16.0 * k)

    def first():
        with region._CACHE_LOCK:
            region._CACHE.clear()        # a new picture: faces and skin found again
        return timed("first", lambda: registry.run("skin", {"image": img}, {}, device=device))

    def again():
        return timed("again", lambda: registry.run("skin", {"image": img}, {"strength": 0.6}, device=device))

    def quality(result, _peer, which="first"):
        figures = {"cpu_seconds": round(cpu[which], 3), "blemishes": result.info["blemishes"],
                   "face_px": result.info["face_px"], "grid_factor": result.info["grid_factor"]}
        if which == "first" and "preview" in name:
            figures.update(scene_quality())
        return figures

    out = [Case("skin", f"{name}, first run", f"{w}x{h}", first, peer=peer,
                peer_name="Gaussian frequency separation (r 1, R 16 px at a 560 px face)", device=device,
                quality=quality, repeat=2)]
    if "preview" in name:
        out.append(Case("skin", f"{name}, re-run (same picture, new settings)", f"{w}x{h}", again, device=device,
                        repeat=3, quality=lambda result, p: quality(result, p, which="again")))
    return out


def cases(quick: bool):
    from core.device import select_device

    device = str(select_device(None))
    sizes = [("1 MP preview", 1155, 866)] + ([] if quick else [("12 MP", 4000, 3000)])
    return [case for name, w, h in sizes for case in _cases_for(name, w, h, device)]
