"""What the real-GIMP tests share (test_gimp.py, test_gimp_retouch.py): the Debian 13 GIMP 3 chroot, a fresh
GIMP profile inside it with the plug-in installed, the TCP test worker, one GIMP batch session over a plan, and
the scene's geometry.

Import it after putting tests/hosts on sys.path; the fixtures are imported by name into each test module
(`from gimp_harness import chroot, registry_with_test_ops`), so each module gets its own.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CHROOT = os.environ.get("AI_PORTRAIT_GIMP_CHROOT", "/var/cache/ai-portrait/gimp-trixie")
SETUP = os.path.join(HERE, "setup_gimp.sh")
GIMP_TIMEOUT_S = 480
WORKER_START_S = 120

PORTRAIT_CROP = (slice(40, 264), slice(114, 338))  # 224×224 around the astronaut's face (x 64-159, y 43-138)
CANVAS = (260, 250)         # w, h
SOURCE_OFFSET = (21, 13)    # the source layer's offset on the canvas
SELECTION = (60, 30, 150, 150)  # ellipse x, y, w, h on the canvas, around the face
FEATHER_PX = 12.0
TEST_OPS = ("test_scale", "test_mean", "test_fail", "test_inputs", "gimptest_mix")


def proc_name(op_name):
    """The GIMP procedure of an operator, as the plug-in names it."""
    from ai_portrait import describe
    return describe.proc_name(op_name)


def rgba(rgb, alpha=None):
    """H×W×3 (and an optional H×W×1 alpha, else opaque) -> contiguous float32 H×W×4."""
    h, w = rgb.shape[:2]
    a = np.ones((h, w, 1), np.float32) if alpha is None else alpha
    return np.ascontiguousarray(np.concatenate([rgb[:, :, :3], a], axis=2), dtype=np.float32)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: the chroot, the registry with the test operators


@pytest.fixture(scope="module")
def chroot():
    if shutil.which("chroot") is None or os.geteuid() != 0:
        pytest.skip("real-GIMP tests need root and chroot (for the Debian 13 GIMP 3 chroot)")
    res = subprocess.run(["sh", SETUP], capture_output=True, text=True, timeout=1500,
                         env=dict(os.environ, AI_PORTRAIT_GIMP_CHROOT=CHROOT))
    if res.returncode == 3:
        pytest.skip("GIMP 3 chroot could not be set up (Debian 13 unreachable?): " + res.stderr.strip()[-400:])
    assert res.returncode == 0, f"setup_gimp.sh failed:\n{res.stdout}\n{res.stderr}"
    return CHROOT


@pytest.fixture(scope="module")
def registry_with_test_ops():
    from core import registry
    from core.worker.testops import register_test_ops
    import gimp_test_operators
    added = [n for n in TEST_OPS if n not in {o.name for o in registry.operators()}]
    if "test_scale" in added:  # another test module may have registered the bridge's test operators already
        register_test_ops()
    if "gimptest_mix" in added:
        gimp_test_operators.install()
    yield {op["name"]: op for op in registry.as_json()}
    for name in added:
        registry.unregister(name)


# ---------------------------------------------------------------------------------------------------------------
# A profile, the worker, a GIMP session


@contextmanager
def gimp_profile(chroot, tag, more=()):
    """A fresh folder /tmp/<tag> inside the chroot with in/, out/, profile/plug-ins/, config/ (and `more`):
    yields (its path inside the chroot, its path here); removed afterwards unless AI_PORTRAIT_KEEP_GIMP_OUT=1."""
    inside, work = f"/tmp/{tag}", os.path.join(chroot, "tmp", tag)
    shutil.rmtree(work, ignore_errors=True)
    for sub in ("in", "out", "profile/plug-ins", "config") + tuple(more):
        os.makedirs(os.path.join(work, sub))
    try:
        yield inside, work
    finally:
        if os.environ.get("AI_PORTRAIT_KEEP_GIMP_OUT") != "1":
            shutil.rmtree(work, ignore_errors=True)


def write_config(work, settings):
    with open(os.path.join(work, "config", "config.json"), "w") as fh:
        json.dump(settings, fh)


def install_plugin(work, inside):
    """The plug-in into the profile, reading config/config.json, and gimp_batch.py beside it; returns the
    installed files."""
    from install_gimp import install_into
    installed = install_into(os.path.join(work, "profile", "plug-ins"), ROOT,
                             config_path=f"{inside}/config/config.json")
    shutil.copy(os.path.join(HERE, "gimp_batch.py"), os.path.join(work, "gimp_batch.py"))
    return installed


@contextmanager
def tcp_worker(folder, work):
    """The test worker (gimp_worker.py: `serve --test-ops` plus gimptest_mix) on a free loopback port with a
    token, outside the chroot; once it is ready, the profile's config points the plug-in at it. Yields the path
    of its log; stopped afterwards."""
    token = secrets.token_hex(24)
    (folder / "token").write_text(token)
    port = free_port()
    log = open(folder / "worker.log", "w+")
    worker = subprocess.Popen([sys.executable, os.path.join(HERE, "gimp_worker.py"), "--tcp", f"127.0.0.1:{port}",
                               "--token-file", str(folder / "token"), "--ready-file", str(folder / "ready")],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, HF_HUB_OFFLINE="1", AI_PORTRAIT_DEVICE="cpu"))
    try:
        deadline = time.monotonic() + WORKER_START_S
        while not (folder / "ready").exists():
            assert worker.poll() is None, "worker exited: " + open(log.name).read()
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.2)
        write_config(work, {"server": f"tcp://127.0.0.1:{port}", "token": token})
        yield log.name
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def run_gimp(chroot, work, inside, plan, plan_name, gui=False, extra_env=(), binds=()):
    """One GIMP batch session over `plan`; returns (results, seconds, stderr).

    GIMP's messages go to its stderr (--console-messages), where the tests read them, instead of dialogs.
    extra_env: more NAME=VALUE for GIMP (and so for the plug-in). binds: host folders made visible at the same
    path inside the chroot for this session only (a private mount namespace), e.g. the worker's environment,
    so the plug-in can start a worker itself."""
    os.makedirs(os.path.join(chroot, plan["out_dir"].lstrip("/")), exist_ok=True)
    with open(os.path.join(work, plan_name), "w") as fh:
        json.dump(plan, fh)
    env = ["env", "-i", "HOME=/root", "LANG=C.UTF-8", "PATH=/usr/bin:/bin", f"GIMP3_DIRECTORY={inside}/profile"]
    env += list(extra_env)
    batch = ["--batch-interpreter=python-fu-eval",
             "-b", f'PLAN="{inside}/{plan_name}"; exec(open("{inside}/gimp_batch.py").read())', "--quit"]
    if gui:  # the real GUI on a virtual display, so the plug-in's dialogs are built and shown
        gimp = env + ["AI_PORTRAIT_DIALOG_AUTO_OK_MS=1500", f"AI_PORTRAIT_DIALOG_SNAPSHOT_DIR={plan['out_dir']}",
                      "AI_PORTRAIT_DIALOG_ADD_ROWS=Test inputs",
                      "xvfb-run", "-a", "-n", str(800 + os.getpid() % 100), "-s", "-screen 0 1400x1500x24", "gimp-3.0", "-df", "--no-splash",
                      "--console-messages"]
    else:
        gimp = env + ["gimp-console-3.0", "-i", "-df", "--console-messages"]
    cmd = ["timeout", str(GIMP_TIMEOUT_S), "chroot", chroot] + gimp + batch
    if binds:
        import shlex
        mounts = " && ".join(f"mkdir -p {shlex.quote(chroot + b)} && mount --bind {shlex.quote(b)} "
                             f"{shlex.quote(chroot + b)}" for b in binds)
        cmd = ["unshare", "-m", "sh", "-c", f"{mounts} && exec " + " ".join(shlex.quote(c) for c in cmd)]
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=GIMP_TIMEOUT_S + 30)
    seconds = time.monotonic() - started
    assert res.returncode == 0, (f"{gimp[-3:]} exited {res.returncode}\n{res.stdout[-3000:]}\n"
                                 f"{res.stderr[-6000:]}")
    with open(os.path.join(chroot, plan["out_dir"].lstrip("/"), "results.json")) as fh:
        return json.load(fh), seconds, res.stderr


def has_gui(chroot):
    """Whether the chroot can show GIMP's GUI on a virtual display and drive it (xvfb-run, xdotool)."""
    return all(os.path.exists(os.path.join(chroot, "usr", "bin", b)) for b in ("xvfb-run", "xdotool"))
