"""The worker's thread policy: one thread per CPU other programs leave free (never below 1), the override, the
passive OpenMP wait set before torch loads, and counts restored after a block. Measurements are injected."""
import json
import os
import subprocess
import sys
import time

import cv2
import pytest
import torch

from core import device
from core.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# /proc/stat per-CPU lines: user nice system idle iowait irq softirq steal guest guest_nice
STAT_A = ("cpu  0 0 0 0 0 0 0 0 0 0\n"
          "cpu0 100 0 50 800 50 0 0 0 0 0\n"
          "cpu1 300 10 40 600 50 0 0 0 7 0\n"
          "cpu2 0 0 0 1000 0 0 0 0 0 0\n"
          "intr 1 2 3\n")
# Over the window: cpu0 40 busy of 100 ticks (user 30, system 5, softirq 5), cpu1 100 of 100 (steal 20 counts:
# another guest had the core), cpu2 0 of 100 (idle 90, iowait 10).
STAT_B = ("cpu  0 0 0 0 0 0 0 0 0 0\n"
          "cpu0 130 0 55 860 50 0 5 0 0 0\n"
          "cpu1 370 10 50 600 50 0 0 20 60 0\n"
          "cpu2 0 0 0 1090 10 0 0 0 0 0\n"
          "intr 1 2 3\n")


def _stat_reader():
    texts = iter([STAT_A, STAT_B])
    return lambda path: next(texts) if path == "/proc/stat" else None


@pytest.mark.parametrize("cpus,busy,limit,expected", [
    (2, 0.0, 2, 2),     # quiet
    (2, 0.2, 2, 2),     # the host idling: both cores still free
    (2, 0.3, 2, 1),     # more than a quarter of a core taken: one thread
    (2, 1.0, 2, 1),     # one spinner
    (2, 2.0, 2, 1),     # both cores busy: never below one
    (2, 5.0, 2, 1),     # more demand than cores (a load average)
    (8, 3.1, 8, 5),     # 4.9 free CPUs: the fifth is 90% idle, so it counts
    (8, 3.5, 8, 4),     # 4.5 free: the fifth is only half idle
    (8, 2.0, 4, 4),     # torch's default (physical cores) caps it
    (8, None, 4, 4),    # nothing measurable (Windows): torch's default
    (4, None, 8, 4),
])
def test_count_for_a_given_load(cpus, busy, limit, expected):
    assert device.choose_threads(cpus, busy, limit) == expected


def test_busy_cpus_from_proc_stat_counts_only_this_process_cpus():
    naps = []
    busy = device.busy_cpus({0, 1, 2}, window=0.02, read=_stat_reader(), sleep=naps.append)
    assert naps == [0.02]
    assert busy == pytest.approx(0.40 + 1.00 + 0.0, abs=1e-12)
    # Affinity to cpu0 and cpu2 (taskset): cpu1's spinner is not in the way.
    assert device.busy_cpus({0, 2}, read=_stat_reader(), sleep=lambda s: None) == pytest.approx(0.40, abs=1e-12)


def test_thread_count_from_measurements_and_affinity():
    env = {}
    choice = device.thread_count(env, measure=lambda: 1.4, cpus={0, 1, 2, 3}, limit=4)
    assert (choice.threads, choice.cpus, choice.busy, choice.source) == (2, 4, 1.4, "auto")
    # The /proc/stat figures above with affinity {0, 1, 2}: 1.4 busy of 3 CPUs leaves 1.6 -> 1 thread.
    meas = lambda: device.busy_cpus({0, 1, 2}, read=_stat_reader(), sleep=lambda s: None)  # noqa: E731
    assert device.thread_count(env, measure=meas, cpus={0, 1, 2}, limit=3).threads == 1
    assert device.thread_count(env, measure=lambda: 0.0, cpus={0, 1, 2}, limit=3).threads == 3


def test_override_beats_the_measurement_and_bad_values_are_refused():
    never = lambda: pytest.fail("an override must not measure")  # noqa: E731
    choice = device.thread_count({device.THREADS_ENV: "3"}, measure=never, cpus={0, 1}, limit=2)
    assert (choice.threads, choice.source) == (3, "override")
    assert device.thread_count({device.THREADS_ENV: " Auto "}, measure=lambda: 2.0, cpus={0, 1},
                               limit=2).source == "auto"
    assert device.parse_threads(None) is None and device.parse_threads("") is None
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(UserError, match="AI_PORTRAIT_THREADS"):
            device.parse_threads(bad)


def test_apply_sets_torch_and_opencv_and_the_block_restores_them():
    saved = torch.get_num_threads(), cv2.getNumThreads()
    try:
        torch.set_num_threads(2)
        cv2.setNumThreads(2)
        with device.thread_policy({}, measure=lambda: 5.0) as choice:  # a machine fully busy
            assert choice.threads == 1
            assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (2, 2)
        with pytest.raises(RuntimeError):
            with device.thread_policy({device.THREADS_ENV: "1"}):
                raise RuntimeError("the job failed")
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (2, 2)
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])


def test_wait_policy_is_added_only_where_the_user_set_none():
    env = {}
    added = device.set_wait_policy(env)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["KMP_BLOCKTIME"] == "0"
    assert env["OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER"] == "0" and added == env
    mine = {"GOMP_SPINCOUNT": "300000", "OPENCV_THREAD_POOL_ACTIVE_WAIT_MAIN": "50"}
    device.set_wait_policy(mine)
    assert "OMP_WAIT_POLICY" not in mine and "KMP_BLOCKTIME" not in mine  # the user's OpenMP choice stands
    assert mine["OPENCV_THREAD_POOL_ACTIVE_WAIT_MAIN"] == "50"
    assert mine["OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER"] == "0"


def test_numpys_blas_runs_on_one_thread_unless_the_user_chose():
    env = {}
    device.set_wait_policy(env)
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    mine = {"OPENBLAS_NUM_THREADS": "4"}
    device.set_wait_policy(mine)
    assert mine["OPENBLAS_NUM_THREADS"] == "4"


def test_the_policy_module_loads_before_numpy():
    """set_wait_policy must run before numpy loads OpenBLAS, so core.device itself may not import numpy."""
    proc = subprocess.run([sys.executable, "-c", "import sys, core.device; print('numpy' in sys.modules)"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def test_configure_in_a_library_process_changes_nothing(monkeypatch):
    monkeypatch.setattr(device, "_configured", False)
    before = torch.get_num_threads()
    assert device.configure_threads() is None  # torch was imported first: its threads are the caller's
    assert torch.get_num_threads() == before


# Runs `python -m core list` in this interpreter, noting the environment at the moment torch is first imported.
_PROBE = r"""
import json, os, runpy, sys
seen = {}
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.update({k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME",
                                                         "OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER")})
        return None
sys.meta_path.insert(0, Probe())
sys.argv = ["core", "list"]
try:
    runpy.run_module("core", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
import torch, cv2
print(json.dumps({"at_torch_import": seen, "torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()}))
"""


def _probe(**env):
    full = dict(os.environ, HF_HUB_OFFLINE="1", OMP_DISPLAY_ENV="VERBOSE", **env)
    for k in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT", "KMP_LIBRARY"):
        if k not in env:
            full.pop(k, None)
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_a_fresh_cli_process_sets_the_wait_policy_before_torch_loads():
    out, err = _probe(AI_PORTRAIT_THREADS="1")
    assert out["at_torch_import"] == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0",
                                      "OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER": "0"}
    assert (out["torch"], out["cv2"]) == (1, 1)  # the count chosen at start (here forced)
    if "OPENMP DISPLAY ENVIRONMENT" in err:  # libgomp (Linux wheels) says what it read: no spinning at all
        assert "GOMP_SPINCOUNT = '0'" in err


def test_the_users_own_openmp_wait_setting_is_kept():
    out, err = _probe(AI_PORTRAIT_THREADS="1", GOMP_SPINCOUNT="300000")
    assert out["at_torch_import"]["OMP_WAIT_POLICY"] is None
    if "OPENMP DISPLAY ENVIRONMENT" in err:
        assert "GOMP_SPINCOUNT = '300000'" in err


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_bench_load_spinners_are_killed_after_the_block_even_on_error():
    from bench.runner import background_load

    with pytest.raises(KeyError):
        with background_load(1, settle_s=0.0) as procs:
            assert len(procs) == 1 and procs[0].poll() is None
            raise KeyError("a case failed")
    assert procs[0].poll() is not None
    # A bench killed outright (no cleanup): its spinner notices the parent is gone and stops by itself.
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from bench.runner import background_load\n"
            "cm = background_load(1, settle_s=0.2); procs = cm.__enter__()\n"
            "print(procs[0].pid, flush=True); import os; os._exit(0)\n" % ROOT)
    pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout)
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
