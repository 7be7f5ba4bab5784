"""Time operators against a baseline or peer in one run and save the table as JSON.

Each module in `bench/cases/` defines `cases(quick: bool) -> list[Case]`. A case times our function and,
optionally, a peer's on the same input, in the same process and run, and reports seconds, peak memory (resident
set growth on CPU, allocator peak on CUDA), their ratio and any quality figures (PSNR...) the case computes.

Each case runs under the worker's thread policy (core.device.thread_policy, chosen as the case starts): the row
gives `threads`, `busy_cpus` (what other work used then) and `cpu_s` (this process's CPU seconds, all threads: on
a shared machine the steadier cost). `--load N` runs the selected cases twice, quiet and then beside N busy
background processes (pure CPU spinners, started before that pass and killed after it, also on error or Ctrl-C),
and prints each case's quiet row then its loaded row (`load` = N).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional


@dataclass
class Case:
    operator: str
    name: str
    size: str
    ours: Callable[[], Any]
    peer: Optional[Callable[[], Any]] = None
    peer_name: str = ""
    device: str = "cpu"
    # Called with (our result, peer result or None); returns extra figures, e.g. {"psnr_ours": 38.1}.
    quality: Optional[Callable[[Any, Any], Dict[str, float]]] = None
    repeat: int = 1


@dataclass
class Timing:
    seconds: float
    peak_mb: float
    result: Any = field(repr=False, default=None)
    cpu_seconds: float = 0.0  # this process's CPU time (all threads) in the best repeat


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(fn: Callable[[], Any], device: str = "cpu", repeat: int = 1) -> Timing:
    """Best-of-`repeat` wall time and the peak memory growth while `fn` ran."""
    cuda = device.startswith("cuda")
    if cuda:
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    start_rss = _rss_bytes()
    peak = [start_rss]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    best, best_cpu, result = float("inf"), 0.0, None
    try:
        for _ in range(max(repeat, 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            if cuda:
                import torch
                torch.cuda.synchronize()
            if time.perf_counter() - t0 < best:
                best, best_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        stop.set()
        sampler.join()
    if cuda:
        import torch
        peak_mb = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:
        peak_mb = (max(peak[0], _rss_bytes()) - start_rss) / 2**20
    return Timing(best, peak_mb, result, best_cpu)


# A pure CPU spinner that also stops by itself once its parent is gone (killed without cleaning up).
_SPIN = ("import os, sys\nparent = int(sys.argv[1])\nwhile os.getppid() == parent:\n"
         "    for _ in range(200000):\n        pass\n")


@contextmanager
def background_load(n: int, settle_s: float = 0.5):
    """`n` busy processes (one CPU each) for the block; killed on leaving it, whatever the reason. `settle_s`
    lets them start before the timed work (and the thread policy's measurement) begins. Yields their Popens."""
    procs: List[subprocess.Popen] = []
    try:
        for _ in range(max(n, 0)):
            procs.append(subprocess.Popen([sys.executable, "-S", "-c", _SPIN, str(os.getpid())],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        if procs:
            time.sleep(settle_s)
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()


def run_case(case: Case, load: int = 0) -> Dict[str, Any]:
    from core.device import thread_policy

    peer = None
    with thread_policy() as choice:  # ours and the peer on the same threads
        ours = measure(case.ours, case.device, case.repeat)
        if case.peer is not None:
            peer = measure(case.peer, "cpu", case.repeat)
    row: Dict[str, Any] = {"operator": case.operator, "case": case.name, "size": case.size, "device": case.device,
                           "load": load, "busy_cpus": None if choice.busy is None else round(choice.busy, 2),
                           "threads": choice.threads, "seconds": round(ours.seconds, 4),
                           "cpu_s": round(ours.cpu_seconds, 2), "peak_mb": round(ours.peak_mb, 1)}
    if peer is not None:
        row.update({"peer": case.peer_name, "peer_seconds": round(peer.seconds, 4),
                    "peer_peak_mb": round(peer.peak_mb, 1),
                    "speed_ratio": round(peer.seconds / max(ours.seconds, 1e-9), 2)})
    if case.quality is not None:
        figures = case.quality(ours.result, peer.result if peer else None)
        row.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()})
    return row


def discover(quick: bool, only: Optional[str]) -> List[Case]:
    from . import cases as pkg
    found: List[Case] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if only and only not in info.name:
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        found.extend(module.cases(quick))
    return found


def print_table(rows: List[Dict[str, Any]]) -> None:
    if not rows:
        print("no benchmark cases")
        return
    keys: List[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    ap.add_argument("--only", help="run only case modules whose name contains this")
    ap.add_argument("--json", default="bench/results/latest.json", help="where to save the table")
    ap.add_argument("--load", type=int, default=0, metavar="N",
                    help="also run every case beside N busy background processes (a row each, quiet and loaded)")
    args = ap.parse_args(argv)
    if args.load < 0:
        ap.error("--load must be 0 or more")
    passes = []
    for load in ([0, args.load] if args.load else [0]):
        cases = discover(args.quick, args.only)  # afresh: a case may keep figures from its last run
        rows = []
        with background_load(load):
            for case in cases:
                print(f"... {case.operator} {case.name} {case.size} on {case.device}, load {load}",
                      file=sys.stderr, flush=True)
                rows.append(run_case(case, load))
        del cases
        passes.append(rows)
    rows = [row for pair in zip(*passes) for row in pair]  # each case quiet, then loaded
    print_table(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    import torch
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "load": args.load,
            "thread_env": {k: os.environ.get(k) for k in ("AI_PORTRAIT_THREADS", "OMP_NUM_THREADS",
                                                            "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")},
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    with open(args.json, "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    print(f"saved {args.json}", file=sys.stderr)
    return 0
