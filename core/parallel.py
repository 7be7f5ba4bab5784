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

from .device import kernel_threads, policy_threads, set_kernel_threads
from .jobs import Job

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_cv2_users = [0, None]  # pools running now, in every job of this process, and OpenCV's count before the first
_local = threading.local()  # .depth: nested use on this thread (a parallel piece calling parallel code) runs inline


def workers_for(device, pieces: int) -> int:
    """How many threads to use: one per core torch may use (the job's thread policy, core.device: the cores other
    programs leave free), never more than the pieces, one off the CPU."""
    if torch.device(device or "cpu").type != "cpu":
        return 1
    return max(1, min(policy_threads(), pieces))


def _one_kernel_thread() -> None:
    """A pool thread's kernels on one thread, set on that thread itself (core.device.set_kernel_threads): a count
    it inherited would be whatever any job in the process set last, and some kernels' bytes depend on it."""
    set_kernel_threads(1)


@contextmanager
def single_threaded_kernels():
    """OpenCV on one thread while pieces run in parallel (each piece's torch kernels are on one thread anyway:
    set per pool thread). OpenCV's count is process-wide: it goes back only when the last pool of any concurrent
    job ends (its results do not depend on it, only its speed). Yields a function that gives OpenCV its threads
    back early: called when a worker runs out of pieces, so the last piece still running may use the idle core."""
    import cv2
    with _lock:
        _cv2_users[0] += 1
        if _cv2_users[0] == 1:
            _cv2_users[1] = cv2.getNumThreads()
            cv2.setNumThreads(1)
    released = [False]

    def release() -> None:
        with _lock:
            if released[0]:
                return
            released[0] = True
            _cv2_users[0] -= 1
            if _cv2_users[0] == 0:
                cv2.setNumThreads(_cv2_users[1])

    try:
        yield release
    finally:
        release()


def cpu_map(fn: Callable[[T], R], items: Sequence[T], device=None, job: Optional[Job] = None,
            message: str = "") -> List[R]:
    """[fn(item) for item in items], on up to one thread per core on a CPU; results in order.

    Progress (the fraction of items done) and cancel go through `job` on the calling thread; a cancel stops
    pieces not yet started, and the first error of any piece is raised here after all threads have stopped."""
    job = job or Job()
    n = len(items)
    depth = getattr(_local, "depth", 0)
    workers = workers_for(device, n) if depth == 0 else 1
    if workers == 1:
        out = []
        # Inline pieces run at one kernel thread too (nested ones already do): the same bytes as in a pool.
        _local.depth = depth + 1
        try:
            with kernel_threads(1) if torch.device(device or "cpu").type == "cpu" else _nothing():
                for i, item in enumerate(items):
                    job.progress(i / max(n, 1), message)
                    out.append(fn(item))
        finally:
            _local.depth = depth
        return out
    cancel = job.cancel_event
    done, started = [0], [0]
    counter = threading.Lock()

    def run(item):
        if cancel.is_set():
            return None
        with counter:
            started[0] += 1
        _local.depth = 1
        try:
            result = fn(item)
        finally:
            _local.depth = 0
        with counter:
            done[0] += 1
            if started[0] == n and done[0] < n:
                widen()  # nothing left to start: the pieces still running may use this core
        return result

    with single_threaded_kernels() as widen, ThreadPoolExecutor(workers, initializer=_one_kernel_thread) as pool:
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


@contextmanager
def _nothing():
    yield


ELEMENT_PIECE = 1 << 18  # values per piece: a multiple of every vector loop's width, so pieces give the whole's bytes


def elementwise(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
    """fn(*tensors) for an elementwise fn of same-shaped tensors, in pieces of their flattened values on one kernel
    thread each: the bytes of fn on the whole at one thread, whatever the thread count (see
    core.device.kernel_threads), with the cores still used. Off the CPU: fn on the whole."""
    first = tensors[0]
    if first.device.type != "cpu":
        return fn(*tensors)
    flats = [t.contiguous().reshape(-1) for t in tensors]
    parts = cpu_map(lambda i: fn(*(f[i:i + ELEMENT_PIECE] for f in flats)), range(0, first.numel(), ELEMENT_PIECE))
    return torch.cat(parts).reshape(first.shape)


def per_plane(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """fn on each plane x[i:i+1] of a C×H×W tensor (fn acting on planes independently: a filter, a resampling),
    one kernel thread per plane, planes in parallel; concatenated. The bytes of fn(x) at one thread."""
    return torch.cat(cpu_map(lambda i: fn(x[i:i + 1]), range(x.shape[0]), x.device))
