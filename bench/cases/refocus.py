"""Refocus: 12 MP with a maximum circle of confusion of 60 px, and a 1 MP preview, on the available device.

Peer: the naive per-pixel gather blur of the same CoC map (every output pixel averages a disc of its own CoC).
At 12 MP with 60 px discs the gather takes far too long to run whole, so it is timed on a central crop and scaled
by pixel count; the row says so (gather_crop_px, gather_seconds_est).

Without a depth map (issue 19): the astronaut upscaled into a 4:3 frame (as bench/cases/relight.py) at 1 MP and
12 MP, default settings (85 mm f/2, focus on the nearer eye, background at 10 m), a new picture each time (the
depth service's cache cleared before every run: what a first run in a host costs). The row gives the depth
stage's share (wall and CPU seconds until the depth service is done: faces, person mask, metric depth) and the
layers rendered. No peer: no open tool renders thin-lens bokeh from a face-scaled depth.
"""
from __future__ import annotations

import time

import numpy as np

from bench.runner import Case


def _ellipse_alpha(h, w, cx, cy, ax, ay):
    """Anti-aliased ellipse coverage from an approximate signed distance (cheap at 12 MP)."""
    yy, xx = np.ogrid[0:h, 0:w]
    u, v = (xx + 0.5 - cx) / ax, (yy + 0.5 - cy) / ay
    rho = np.sqrt(u * u + v * v).astype(np.float32)
    dist_px = (rho - 1.0) * min(ax, ay)
    return np.clip(0.5 - dist_px, 0.0, 1.0).astype(np.float32)


def portrait_scene(h: int, w: int, max_coc: float = 60.0, seed: int = 0):
    """A portrait-like scene: a wall receding behind (CoC -25..-max), a subject in focus with relief
    (CoC -2..2), a blurred foreground plant (+max/2), point lights on the wall. Returns (image, distance_m)."""
    from core.optics.thin_lens import ThinLens
    from tests.scenes import texture

    focus = 2.0
    k = ThinLens(85.0, 1.4, 36.0).slope_px(focus, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coc = -(max_coc * 25 / 60 + (max_coc * 35 / 60) * xx / w)
    img = texture(h, w, seed) * 0.8
    rng = np.random.default_rng(seed)
    for x, y in zip(rng.uniform(0.65, 0.98, 12) * w, rng.uniform(0.05, 0.6, 12) * h):
        r = max(1.5, w / 1500)
        a = _ellipse_alpha(h, w, x, y, r, r)[:, :, None]
        img = img * (1 - a) + a
    subj = _ellipse_alpha(h, w, 0.45 * w, 0.6 * h, 0.17 * w, 0.42 * h)
    relief = 2.0 * np.cos((xx / w - 0.45) * 9.0) * np.cos((yy / h - 0.6) * 4.0)
    img = img * (1 - subj[:, :, None]) + subj[:, :, None] * texture(h, w, seed + 1) * np.float32([1, .8, .7])
    coc = np.where(subj > 0.5, relief, coc)
    plant = _ellipse_alpha(h, w, 0.08 * w, 0.92 * h, 0.12 * w, 0.12 * w)
    img = img * (1 - plant[:, :, None]) + plant[:, :, None] * np.float32([0.2, 0.5, 0.15])
    coc = np.where(plant > 0.5, max_coc / 2, coc)
    disparity = 1.0 / focus + coc / k
    return img.astype(np.float32), (1.0 / disparity).astype(np.float32), np.abs(coc).astype(np.float32)


def _gather_estimate(img, coc_abs, crop: int):
    """Seconds the naive per-pixel gather would take on the whole image.

    The gather is timed on the crop with the largest CoC (right edge of the wall, the worst case per pixel), which
    gives its speed in disc taps per second; the whole image needs sum(pi (r + 0.5)^2) taps, one disc per pixel.
    """
    from tests.scenes import gather_blur

    h, w = coc_abs.shape
    y0, x0 = (h - crop) // 4, w - crop
    sub = coc_abs[y0:y0 + crop, x0:x0 + crop]
    t0 = time.perf_counter()
    gather_blur(img[y0:y0 + crop, x0:x0 + crop], sub)
    sec = time.perf_counter() - t0
    rmax = int(np.ceil(np.maximum(sub / 2.0, 0.5).max() + 0.5))
    taps_per_second = crop * crop * (2 * rmax + 1) ** 2 / sec
    r = np.maximum(coc_abs / 2.0, 0.5).astype(np.float64)
    total_taps = float(np.sum(np.pi * (r + 0.5) ** 2))
    return sec, total_taps / taps_per_second


def _timed_case(img, dist, coc_abs, params, device, nthreads, crop):
    """(ours, quality) for one Case. nthreads=1 runs torch on one thread: on an oversubscribed shared machine two
    threads contend and the one-thread time is the steadier figure."""
    import torch

    from core import registry

    best = {"s": float("inf"), "cpu": float("inf")}

    def ours():
        before = torch.get_num_threads()
        if nthreads:
            torch.set_num_threads(nthreads)
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            result = registry.run("refocus", {"image": img, "depth": dist}, params, device=device)
            best["s"] = min(best["s"], time.perf_counter() - t0)
            best["cpu"] = min(best["cpu"], time.process_time() - c0)
            return result
        finally:
            torch.set_num_threads(before)

    def quality(result, _peer):
        crop_s, est = _gather_estimate(img, coc_abs, crop)
        return {"coc_max_px": result.info["coc_max_px"], "layers": result.info["layers"],
                "gather_crop": f"{crop}x{crop} in {crop_s:.2f} s", "gather_seconds_est": round(est, 1),
                "speedup_vs_gather": round(est / best["s"], 1),
                # CPU seconds used (all threads): on a shared, oversubscribed machine wall time overstates cost.
                "cpu_seconds": round(best["cpu"], 2)}

    return ours, quality


def cases(quick: bool):
    import torch

    from core import face
    from core.device import select_device

    device = str(select_device(None))
    out = []
    if face.available() and face.available((face.SELFIE,)):
        _warm(device)
        out.append(_no_depth_case("1 MP", 1155, device))
        if not quick:
            out.append(_no_depth_case("12 MP", 4000, device))
    else:
        print("refocus: MediaPipe weights not installed (python -m core models fetch all); no-depth rows skipped")
    sizes = [("1 MP preview", 866, 1155)] + ([] if quick else [("12 MP, max CoC 60 px", 3000, 4000)])
    for name, h, w in sizes:
        max_coc = 60.0 * w / 4000.0 if "preview" in name else 60.0
        img, dist, coc_abs = portrait_scene(h, w, max_coc)
        params = {"focus_distance": 2.0, "f_number": 1.4, "focal_length": 85.0, "grain": True}

        threads = torch.get_num_threads()
        repeat = 2 if "preview" in name else 1  # a dialog's preview runs in a warm worker: best of two
        variants = [(f"{threads} threads", None)]
        if device == "cpu" and threads > 1:
            variants.append(("1 thread", 1))
        for label, nthreads in variants:
            ours, quality = _timed_case(img, dist, coc_abs, params, device, nthreads, 192 if w > 2000 else 256)
            out.append(Case("refocus", f"{name}, {label}", f"{w}x{h}", ours, device=device, quality=quality,
                            repeat=repeat))
    return out


def _astronaut_frame(long_side: int) -> np.ndarray:
    import cv2
    from skimage import data

    side = int(round(long_side * 0.75))
    img = cv2.resize(data.astronaut().astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = (long_side - side) // 2
    return np.ascontiguousarray(cv2.copyMakeBorder(np.clip(img, 0, 1), 0, 0, pad, long_side - side - pad,
                                                   cv2.BORDER_REPLICATE))


def _no_depth_case(label: str, long_side: int, device: str) -> Case:
    from core import depth, registry
    from core.jobs import Job

    img = _astronaut_frame(long_side)
    stage = {}

    def ours():
        depth.clear_cache()
        t0, c0 = time.perf_counter(), time.process_time()
        marks = {}

        def progress(fraction, message):
            # The depth stage is the first tenth of refocus's progress (it ends with "depth: <source>").
            if "wall" not in marks and fraction >= 0.1 - 1e-9:
                marks["wall"], marks["cpu"] = time.perf_counter() - t0, time.process_time() - c0

        result = registry.run("refocus", {"image": img}, {}, device=device, job=Job(progress))
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        if total < stage.get("total", float("inf")):
            stage.update(total=total, total_cpu=total_cpu, depth=marks.get("wall", 0.0),
                         depth_cpu=marks.get("cpu", 0.0))
        return result

    def quality(result, _peer):
        info = result.info
        return {"depth_s": round(stage["depth"], 2), "depth_cpu_s": round(stage["depth_cpu"], 2),
                "depth_share": round(stage["depth"] / stage["total"], 2), "layers": info["layers"],
                "background_coc_px": info["background_coc_px"], "subject_m": info["subject_distance_m"],
                "focus": info["focus_chosen_by"].split(" (")[0]}

    return Case("refocus", f"{label} without depth (astronaut, 85 mm f/2)", f"{img.shape[1]}x{img.shape[0]}",
                ours, device=device, quality=quality, repeat=2)


def _warm(device: str) -> None:
    """The face networks loaded once, as in a warm worker."""
    from core import face
    if face.available() and face.available((face.SELFIE,)):
        face.detect_faces(np.zeros((256, 256, 3), np.float32), device=device)
        face.person_mask(np.zeros((64, 64, 3), np.float32), device=device)
