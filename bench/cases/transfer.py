"""Host <-> worker transfer over the local pipe: a float32 RGBA image each way (goal: under 0.5 s for 24 MP).

upload    host -> worker: the frame is read into the worker's buffer (answered by a tiny pong)
download  worker -> host: round trip of an echo minus the upload
run       an identity operator end to end: upload, decode to float32, registry.run (alpha split and rejoin),
          encode, download — what a host waits for besides the operator's own work
convert   the host-side u8 -> f32 conversion with numpy and in pure Python (hosts without numpy)
"""
from __future__ import annotations

import os
import sys
import time

from bench.runner import Case

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cases(quick: bool):
    import numpy as np

    from plugin import pixels, protocol
    from plugin.client import Client
    from plugin.pixels import Image

    w, h = (1224, 816) if quick else (6000, 4000)
    size = f"{w}x{h} ({w * h / 1e6:.0f} MP) f32 RGBA"
    img = Image.from_numpy(np.random.default_rng(0).random((h, w, 4), dtype=np.float32))
    client = Client(config={}, python=sys.executable, core_root=ROOT, device="cpu", extra_args=["--test-ops"],
                    idle_timeout_s=3600)
    client.ping()  # spawn and warm up before timing
    desc = protocol.describe("image", w, h, 4, "f32")
    timings = {}

    def cpu_seconds():
        """CPU time of host and worker together: on a shared, loaded machine the wall time says more about
        the neighbours than about the transfer; this is what an idle machine's wall time converges to."""
        host = os.times()
        ticks = os.sysconf("SC_CLK_TCK")
        try:
            with open(f"/proc/{client.worker_pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            worker = (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            worker = 0.0
        return host.user + host.system + worker

    def timed(key, fn):
        c0, t0 = cpu_seconds(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if wall < timings.get(key, (1e9, 0))[0]:
            timings[key] = (wall, cpu)
        return out

    def upload():
        timed("upload", lambda: client._request({"op": "ping", "buffers": [desc]}, [img.data]))

    def upload_figures(_result, _peer):
        return {"cpu_seconds": round(timings["upload"][1], 4)}

    expected = img.to_numpy()

    def same(result):  # numpy: memoryview equality compares item by item, seconds for 384 MB
        return bool(np.array_equal(result.to_numpy(), expected))

    # Each returns only a verdict: a host drops a result once applied, and so may the client's buffer pool.
    def echo():
        return same(timed("echo", lambda: client.echo([img])[0]))

    def run():
        return same(client.run("test_scale", {"image": img}, {"factor": 1.0}).image)

    def exact(result, _peer):
        return {"bit_exact": bool(result)}

    def download_figures(result, _peer):
        figures = exact(result, _peer)
        up, echo_t = timings.get("upload", (0.0, 0.0)), timings["echo"]
        figures["cpu_seconds"] = round(echo_t[1], 4)
        figures["download_seconds"] = round(echo_t[0] - up[0], 4)
        figures["download_cpu_seconds"] = round(echo_t[1] - up[1], 4)
        return figures

    u8 = Image.from_numpy(np.random.default_rng(1).integers(0, 256, (h, w, 4), dtype=np.uint8))
    small = Image(1000, 1000, 4, "u8", np.random.default_rng(2).integers(0, 256, 4_000_000, dtype=np.uint8).tobytes())

    def pure_python():
        saved = pixels._np
        pixels._np = None
        try:
            return small.to("f32")
        finally:
            pixels._np = saved

    return [
        Case("bridge", "upload (host -> worker)", size, upload, quality=upload_figures, repeat=3),
        Case("bridge", "echo (both ways)", size, echo, quality=download_figures, repeat=3),
        Case("bridge", "run identity operator", size, run, quality=exact, repeat=3),
        Case("bridge", "convert u8 -> f32 (numpy)", f"{w}x{h} RGBA", lambda: u8.to("f32"), repeat=3),
        Case("bridge", "convert u8 -> f32 (pure Python)", "1000x1000 RGBA", pure_python),
    ]
