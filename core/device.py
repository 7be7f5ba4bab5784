"""Device choice (CUDA > MPS > CPU) and seeded random sources.

The environment variable AI_PORTRAIT_DEVICE or an explicit `--device` overrides the automatic choice.
The CPU thread policy (passive OpenMP wait, one thread per free core, per job; AI_PORTRAIT_THREADS overrides) is
at the end: `configure_threads` at process start, `apply_thread_policy` per job.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

from .errors import UserError  # (numpy is imported where used: set_wait_policy must run before it loads)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
ENV_VAR = "AI_PORTRAIT_DEVICE"


def select_device(preference: str | None = None):
    """Return a torch.device for `preference` ('auto', 'cpu', 'cuda', 'cuda:1', 'mps'; a torch.device, already
    chosen, is returned as it is)."""
    import torch

    if isinstance(preference, torch.device):
        return preference
    pref = (preference or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = pref.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise UserError(f"unknown device '{pref}': choose one of {', '.join(DEVICE_CHOICES)}", "bad-parameter")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but no CUDA GPU is available here", "no-device")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError("device 'mps' was asked for but Apple MPS is not available here", "no-device")
    return torch.device(pref)


def numpy_rng(seed: int):
    """A numpy Generator seeded with `seed`."""
    import numpy as np
    return np.random.default_rng(int(seed))


def torch_generator(seed: int, device=None):
    """A torch.Generator on `device` seeded with `seed` (CPU generator if the device has none)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator(device=dev if dev.type in ("cpu", "cuda") else "cpu")
    gen.manual_seed(int(seed))
    return gen


# ---- Thread policy -------------------------------------------------------------------------------------------
# On a shared CPU (GIMP or Krita themselves are busy) OpenMP's default wait spins a worker thread for about 3 ms
# after every parallel region (libgomp: 300,000 spins), stealing the core the other thread is waiting for: on 2
# busy cores 2-thread torch runs took 2-8x longer and more CPU time than 1-thread runs. Hence: threads that
# sleep as soon as they wait (passive), and one thread per core the other programs leave free, chosen per job.

THREADS_ENV = "AI_PORTRAIT_THREADS"  # a number of threads, or 'auto' (the default)
# Read once, when the OpenMP runtime loads (with torch): they must be in os.environ before torch is imported.
OPENMP_WAIT_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",  # libgomp (torch's Linux wheels, MKL's GNU layer): spin count 0
    "KMP_BLOCKTIME": "0",          # LLVM/Intel OpenMP (macOS, conda builds): sleep 0 ms after a region
}
# Any of these set by the user is their wait policy: then none of OPENMP_WAIT_ENV is added.
OPENMP_USER_VARS = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT", "KMP_LIBRARY")
# OpenCV's pthreads pool spins 2,000 (workers) and 10,000 (caller) iterations before sleeping; read when cv2 loads.
OPENCV_WAIT_ENV = {"OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER": "0", "OPENCV_THREAD_POOL_ACTIVE_WAIT_MAIN": "0"}
# numpy's OpenBLAS spins its threads too (measured: a thin-plate-spline solve in core.imaging.warp 10-20x slower on
# two busy cores) and its count cannot follow the per-job policy once loaded; the parallel work is torch's, OpenCV's
# and core.parallel's, so numpy's BLAS runs on one thread. Read when numpy loads.
BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1"}
# A CPU counts as free when other programs leave at least 75% of it idle: threads = floor(free + 0.25).
FREE_SLACK = 0.25
LOAD_WINDOW_S = 0.03  # /proc/stat sampling per job: 3 ticks per CPU at USER_HZ 100

_configured = False
_torch_default: "int | None" = None


class ThreadChoice:
    """What the policy chose: `threads`, of `cpus` this process may run on, with `busy` CPUs used by other work
    (None when not measured) and `source` 'override' or 'auto'."""

    def __init__(self, threads: int, cpus: int, busy, source: str):
        self.threads, self.cpus, self.busy, self.source = threads, cpus, busy, source

    def __repr__(self):
        busy = "unmeasured" if self.busy is None else f"{self.busy:.2f} busy"
        return f"ThreadChoice({self.threads} threads of {self.cpus} CPUs, {busy}, {self.source})"


def set_wait_policy(environ=None) -> dict:
    """Put the passive wait policy into `environ` (os.environ by default) where the user has set none; returns
    the variables added. Only effective before the OpenMP runtime and cv2 load: call before importing torch."""
    env = os.environ if environ is None else environ
    added = {}
    if not any(k in env for k in OPENMP_USER_VARS):
        added.update(OPENMP_WAIT_ENV)
    added.update({k: v for k, v in OPENCV_WAIT_ENV.items() if k not in env})
    if not any(k in env for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        added.update(BLAS_ENV)
    env.update(added)
    return added


def parse_threads(value) -> "int | None":
    """AI_PORTRAIT_THREADS or --threads: a positive whole number, or None for 'auto' (or unset/empty)."""
    text = str(value if value is not None else "").strip().lower()
    if text in ("", "auto"):
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UserError(f"{THREADS_ENV} (or --threads) must be a number of threads, 1 or more, or 'auto', "
                    f"not '{value}'", "bad-parameter")


def affinity_cpus() -> "set[int]":
    """The CPUs this process may run on (all of os.cpu_count() where the OS cannot say)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _read(path: str) -> "str | None":
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def cgroup_cpu_limit(read=_read) -> "float | None":
    """CPUs a container's CFS quota allows (cgroup v2 cpu.max or v1 cfs_quota_us / cfs_period_us), None if
    unlimited or unknown."""
    v2 = read("/sys/fs/cgroup/cpu.max")
    if v2:
        quota, _, period = v2.strip().partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
            return int(quota) / int(period)
        return None
    quota, period = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    try:
        q, p = int(quota), int(period)
    except (TypeError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def _cpu_ticks(text: str) -> dict:
    """{cpu index: (busy ticks, total ticks)} from /proc/stat's per-CPU lines (user nice system idle iowait irq
    softirq steal ...; guest time is already inside user and nice). Busy = all but idle and iowait."""
    out = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()) or len(fields) < 4:
            continue
        t = [int(f) for f in fields[:8]] + [0] * (8 - min(len(fields), 8))
        idle = t[3] + t[4]
        busy = t[0] + t[1] + t[2] + t[5] + t[6] + t[7]
        out[int(name[3:])] = (busy, busy + idle)
    return out


def busy_cpus(cpus=None, window: float = LOAD_WINDOW_S, read=_read, sleep=None) -> "float | None":
    """CPUs in use among `cpus` (default: this process's), summed busy fractions over `window` seconds of
    /proc/stat (Linux); elsewhere the 1-minute load average (which also counts this process's own past work),
    capped at len(cpus); None where neither exists (Windows)."""
    import time

    cpus = affinity_cpus() if cpus is None else set(cpus)
    first = read("/proc/stat")
    if first:
        (sleep or time.sleep)(window)
        a, b = _cpu_ticks(first), _cpu_ticks(read("/proc/stat") or "")
        total = 0.0
        for c in cpus & a.keys() & b.keys():
            d_busy, d_all = b[c][0] - a[c][0], b[c][1] - a[c][1]
            total += min(max(d_busy / d_all, 0.0), 1.0) if d_all > 0 else 0.0
        return total
    try:
        return min(os.getloadavg()[0], float(len(cpus)))
    except (AttributeError, OSError):
        return None


def choose_threads(cpus: int, busy, limit: int) -> int:
    """Threads for one job: floor(cpus - busy + FREE_SLACK), at least 1, at most `limit` (torch's own default,
    i.e. physical cores or OMP_NUM_THREADS, and any container quota). busy=None (not measurable) gives `limit`."""
    if busy is None:
        return max(1, min(cpus, limit))
    return max(1, min(int(cpus - busy + FREE_SLACK), limit))


def _default_threads() -> int:
    """torch's thread count before this policy first set it (physical cores, or OMP_NUM_THREADS if set)."""
    global _torch_default
    if _torch_default is None:
        import torch
        _torch_default = torch.get_num_threads()
    return _torch_default


def thread_count(environ=None, measure=None, cpus=None, limit=None) -> ThreadChoice:
    """The policy's choice now: the THREADS_ENV override if set, else the free CPUs (measure() -> busy CPUs,
    default busy_cpus) within `limit` (default torch's own default and the container quota)."""
    env = os.environ if environ is None else environ
    cpu_set = affinity_cpus() if cpus is None else set(cpus)
    forced = parse_threads(env.get(THREADS_ENV))
    if forced is not None:
        return ThreadChoice(forced, len(cpu_set), None, "override")
    busy = (measure or (lambda: busy_cpus(cpu_set)))()  # before importing torch: its import would count
    if limit is None:
        quota = cgroup_cpu_limit()
        limit = min(_default_threads(), max(1, int(quota)) if quota else len(cpu_set))
    return ThreadChoice(choose_threads(len(cpu_set), busy, limit), len(cpu_set), busy, "auto")


def set_kernel_threads(n: int) -> None:
    """torch's kernel threads for the calling thread only. torch keeps the count per thread (OpenMP), but a thread
    takes the process-wide last-set value at its first parallel kernel, over any count it set before: so the
    thread is initialised first (get_num_threads), then set, and no other thread's setting can reach it."""
    import torch
    torch.get_num_threads()
    torch.set_num_threads(int(n))


@contextmanager
def kernel_threads(n: int = 1):
    """torch kernels on `n` threads on this thread for the block, the previous count back afterwards.

    Work that must give the same bytes whatever the machine runs at one: torch splits an elementwise kernel into
    ceil(size / threads) chunks and each chunk's last < 32 values go through the scalar code, whose pow, sigmoid
    and atan2 round differently from the vector code; bilinear resampling, sums and (from 5 threads) the FFT differ
    with the thread count too. Parallelism then comes from independent pieces (core.parallel), each on one
    thread, which gives the one-thread bytes."""
    import torch
    saved = torch.get_num_threads()
    outermost = getattr(_kernel_local, "policy", None) is None
    if outermost:
        _kernel_local.policy = saved  # the job's count, for core.parallel to size its pools by
    if saved != n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != saved:
            torch.set_num_threads(saved)
        if outermost:
            _kernel_local.policy = None


_kernel_local = threading.local()


def policy_threads() -> int:
    """The job's thread count on this thread: torch's, or inside kernel_threads the count in force outside it."""
    import torch
    return getattr(_kernel_local, "policy", None) or torch.get_num_threads()


def _set_counts(torch_threads: int, cv2_threads: "int | None") -> None:
    """OpenCV only once loaded: importing it here would rewrite LD_LIBRARY_PATH for every child process (its
    bootstrap does); a job that loads it first runs it at its default count, every later job at the policy's."""
    set_kernel_threads(torch_threads)
    cv2 = sys.modules.get("cv2")
    if cv2_threads is not None and cv2 is not None:
        cv2.setNumThreads(cv2_threads)


def apply_thread_policy(environ=None, measure=None) -> ThreadChoice:
    """Choose (thread_count) and set torch's and OpenCV's thread counts for the job about to start on this
    thread. torch's count is per thread once a thread has used it: call on the thread that runs the job."""
    choice = thread_count(environ, measure)
    _set_counts(choice.threads, choice.threads)
    return choice


@contextmanager
def thread_policy(environ=None, measure=None):
    """`with thread_policy() as choice:` apply_thread_policy for the block, then torch's and OpenCV's previous
    counts back (also on error)."""
    import torch
    cv2 = sys.modules.get("cv2")
    saved, saved_cv2 = torch.get_num_threads(), (cv2.getNumThreads() if cv2 is not None else None)
    try:
        yield apply_thread_policy(environ, measure)
    finally:
        _set_counts(saved, saved_cv2)


def configure_threads() -> "ThreadChoice | None":
    """Process start (CLI, worker, bench): the passive wait policy, then this process's thread counts. Only in a
    fresh process (torch not yet imported); in a library or test process it changes nothing and returns None.
    Runs once; the worker re-applies the count per job (apply_thread_policy)."""
    global _configured
    if _configured or "torch" in sys.modules:
        _configured = True
        return None
    _configured = True
    set_wait_policy()
    choice = thread_count()  # measured before our own imports load the CPU
    _import_cv2()
    _set_counts(choice.threads, choice.threads)
    return choice


def _import_cv2() -> None:
    """Load OpenCV (the operators do anyway) so that its count can be set, keeping LD_LIBRARY_PATH as it was:
    cv2's bootstrap prepends its folder, which only child processes would read (the loader read it at start)."""
    saved = os.environ.get("LD_LIBRARY_PATH")
    try:
        import cv2  # noqa: F401
    except ImportError:
        pass
    finally:
        if saved is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved
