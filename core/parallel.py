"""Coarse-grained parallelism on a CPU: independent pieces of work (frames, runs of strips) on one thread each.

torch and OpenCV parallelise every operation internally; on images cut into many small pieces that costs a
thread synchronisation per operation and splits each piece's cache between cores. Running the pieces
themselves in parallel, each with single-threaded kernels, avoids both (measured on 2 cores against the same
work with 2-thread kernels: burst denoise's alignment 1.3-1.5×, its merge about 1.5× faster). Kernels release
the GIL, so Python threads suffice.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, List, Optional, Sequence, TypeVar

import torch

from .jobs import Job

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_depth = 0  # nested use (a parallel piece calling parallel code) runs inline


def workers_for(device, pieces: int) -> int:
    """How many threads to use: one per core torch may use (the job's thread policy, core.device: the cores other
    programs leave free), never more than the pieces, one off the CPU."""
    if torch.device(device or "cpu").type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), pieces))


@contextmanager
def single_threaded_kernels():
    """torch and OpenCV kernels on one thread each while pieces run in parallel (restored afterwards). Yields a
    function that gives the kernels their threads back early: called when a worker runs out of pieces, so the
    last piece still running (one frame's alignment, say) uses the idle core too."""
    global _depth
    import cv2
    with _lock:
        _depth += 1
        outer = _depth == 1
        saved = torch.get_num_threads(), cv2.getNumThreads()
        if outer:
            torch.set_num_threads(1)
            cv2.setNumThreads(1)

    def widen() -> None:
        if outer:
            torch.set_num_threads(saved[0])
            cv2.setNumThreads(saved[1])

    try:
        yield widen
    finally:
        with _lock:
            _depth -= 1
            if outer:
                torch.set_num_threads(saved[0])
                cv2.setNumThreads(saved[1])


def cpu_map(fn: Callable[[T], R], items: Sequence[T], device=None, job: Optional[Job] = None,
            message: str = "") -> List[R]:
    """[fn(item) for item in items], on up to one thread per core on a CPU; results in order.

    Progress (the fraction of items done) and cancel go through `job` on the calling thread; a cancel stops
    pieces not yet started, and the first error of any piece is raised here after all threads have stopped."""
    job = job or Job()
    n = len(items)
    workers = workers_for(device, n) if _depth == 0 else 1
    if workers == 1:
        out = []
        for i, item in enumerate(items):
            job.progress(i / max(n, 1), message)
            out.append(fn(item))
        return out
    cancel = job.cancel_event
    done, started = [0], [0]
    counter = threading.Lock()

    def run(item):
        if cancel.is_set():
            return None
        with counter:
            started[0] += 1
        result = fn(item)
        with counter:
            done[0] += 1
            if started[0] == n and done[0] < n:
                widen()  # nothing left to start: the pieces still running may use this core
        return result

    with single_threaded_kernels() as widen, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run, item) for item in items]
        try:
            while wait(futures, timeout=0.2).not_done:
                job.progress(done[0] / n, message)
        except BaseException:
            for f in futures:
                f.cancel()  # pieces not yet started are dropped
            raise
        finally:
            wait(futures)
        results = [f.result() for f in futures]
    job.progress(1.0, message)
    return results
