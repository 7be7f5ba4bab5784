"""Film look: 12 MP and a 1 MP preview through Kodak Portra 400 (printed on Endura) with grain and halation, the
LUT already baked; the same without a stock (grain and halation only); and the bake of one stock's 65³ LUT.

The portrait is the astronaut scaled up to the frame (a real picture's spread of colours and levels); 35 mm
format, grain and halation at their defaults (the datasheet's granularity, a film with an anti-halation layer).
No peer: nothing else installable renders datasheet stocks offline (G'MIC's film emulation downloads its LUTs).
cpu_seconds is the process's CPU time: on a shared, oversubscribed machine wall time overstates the cost.
"""
from __future__ import annotations

import time

import numpy as np

from bench.runner import Case

STOCK = "portra-400"


def _frame(h: int, w: int) -> np.ndarray:
    import cv2
    from skimage import data
    img = data.astronaut().astype(np.float32) / 255.0
    side = max(h, w)
    big = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (side - h) // 2, (side - w) // 2
    return np.ascontiguousarray(np.clip(big[y0:y0 + h, x0:x0 + w], 0.0, 1.0))


def _render_case(label: str, h: int, w: int, stock: str, device: str, repeat: int) -> Case:
    from core import registry
    from core.operators.film import cache

    img = _frame(h, w)
    if stock != "none":
        cache.look(stock)                      # baked (or read) before timing: the cached-LUT case
    best = {"cpu": float("inf")}
    params = {"stock": stock, "grain": 1.0, "halation": 1.0}

    def ours():
        c0 = time.process_time()
        out = registry.run("film", {"image": img}, params, device=device)
        best["cpu"] = min(best["cpu"], time.process_time() - c0)
        return out

    def quality(result, _peer):
        return {"cpu_seconds": round(best["cpu"], 2), "stock": stock, "pitch_um": result.info.get("pitch_um"),
                "grain_sigma_out": round(float(result.image[:, :, :3].std()), 4)}

    return Case("film", label, f"{w}x{h}", ours, device=device, quality=quality, repeat=repeat)


def _bake_case(stock: str) -> Case:
    from core.operators.film import bake, stocks

    stocks.camera_datasheet(stock)                            # data modules imported before timing
    if stocks.stock(stock).print_id:
        stocks.print_datasheet(stocks.stock(stock).print_id)
    best = {"cpu": float("inf")}

    def ours():
        c0 = time.process_time()
        look = bake.bake(stock)                             # the bake itself, not the cache
        best["cpu"] = min(best["cpu"], time.process_time() - c0)
        return look

    def quality(look, _peer):
        return {"cpu_seconds": round(best["cpu"], 2), "lut": f"{look.lut.shape[0]}^3",
                "grey_balance_max_density": look.info.get("grey_balance_max_density")}

    return Case("film", f"LUT bake, {stock}", "65^3", ours, device="cpu", quality=quality)


def cases(quick: bool):
    from core.device import select_device

    device = str(select_device(None))
    out = [_render_case(f"1 MP preview, {STOCK}, grain + halation", 866, 1155, STOCK, device, repeat=3),
           _render_case("1 MP preview, stock none (grain + halation)", 866, 1155, "none", device, repeat=3),
           _bake_case(STOCK)]
    if not quick:
        out += [_render_case(f"12 MP, {STOCK}, grain + halation", 3000, 4000, STOCK, device, repeat=2),
                _render_case("12 MP, stock none (grain + halation)", 3000, 4000, "none", device, repeat=2),
                _bake_case("vision3-500t"), _bake_case("velvia-50")]
    return out
