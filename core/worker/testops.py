"""Deterministic operators for testing the bridge and the hosts (never registered in normal use).

Registered by `python -m core worker --test-ops` / `serve --test-ops` or AI_PORTRAIT_TEST_OPS=1:
  test_scale   image × factor after `steps` sleeps of `step_seconds`, each a progress/cancel checkpoint
  test_mean    the mean of a burst ('frames'), to check that lists of buffers arrive in order
  test_inputs  echoes what arrived: a sha256 of each input's float32 bytes (exactly the array the operator
               sees), its shape, the stored_as the host reported, and the parameters; multiplies the picture by
               `tint` and paints the pixels of `marks` (a repeatable x, y, grey-level vector in image pixels),
               to check that hosts send data layers bit-exact and shift every coordinate of every item; an
               optional distance and point ('auto' in the hosts) are only echoed
  test_fail    fails on purpose: a UserError, a bug, MemoryError, exit, SIGKILL (the OOM killer's way),
               garbage on the protocol pipe, stray prints (must NOT break anything), or a hang that ignores
               cancel while a child process sleeps in the same process group
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from .. import registry
from ..errors import UserError
from ..registry import Input, Operator, Output, Param

FAIL_KINDS = ("user", "bug", "memory", "exit", "kill", "garbage", "hang", "print")


def _scale(inputs, params, ctx):
    image = inputs["image"]
    steps = params["steps"]
    started = time.time()
    for k in range(steps):
        ctx.job.progress(k / steps, f"step {k + 1} of {steps}")
        time.sleep(params["step_seconds"])
    ctx.job.progress(1.0, "scaled")
    out = image if params["factor"] == 1.0 else image * np.float32(params["factor"])
    return Output(out, info={"pid": os.getpid(), "thread": threading.get_ident(), "started": started,
                             "finished": time.time(), "checksum": float(np.float64(image).sum()),
                             # what leaked from the host's environment (the client must scrub these)
                             "env": {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH",
                                                                   "LD_PRELOAD", "QT_PLUGIN_PATH",
                                                                   "AI_PORTRAIT_MEMORY_BUDGET_MB")}})


def _mean(inputs, params, ctx):
    frames = inputs["frames"]
    ctx.job.progress(0.5, "averaging")
    return Output(np.mean(np.stack(frames), axis=0).astype(np.float32), info={"frames": len(frames)})


def _inputs(inputs, params, ctx):
    image = inputs["image"]
    ctx.job.progress(0.5, "echoing the inputs")
    seen = {name: a for name, a in inputs.items() if a is not None}
    hashes = {name: hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()
              for name, a in seen.items()}
    out = image * np.asarray(params["tint"], np.float32)
    h, w = out.shape[:2]
    painted = []
    for x, y, level in params["marks"]:
        # the pixel whose square holds (x, y): pixel (i, j) covers [i, i + 1) × [j, j + 1)
        i, j = int(np.floor(x)), int(np.floor(y))
        if 0 <= i < w and 0 <= j < h:
            out[j, i, :3] = np.float32(level)
            painted.append([i, j])
    return Output(out.astype(np.float32), info={
        "hashes": hashes, "shapes": {name: list(a.shape) for name, a in seen.items()},
        "stored_as": dict(ctx.stored_as), "painted": painted, "mask_seen": ctx.mask is not None})


def _fail(inputs, params, ctx):
    kind = params["kind"]
    ctx.job.progress(0.1, f"about to fail: {kind}")
    if kind == "user":
        raise UserError("the test operator refuses this image on purpose", "test-refusal")
    if kind == "bug":
        raise RuntimeError("deliberate bug for testing")
    if kind == "memory":
        raise MemoryError()
    if kind == "exit":
        sys.stderr.flush()
        os._exit(3)
    if kind == "kill":
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    if kind == "garbage":
        os.write(int(os.environ["AI_PORTRAIT_PROTOCOL_FD"]), b"Warning: this is not a frame\n" * 4)
        time.sleep(30)
    if kind == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(os.path.join(params["note_dir"], "child.pid"), "w") as fh:
            fh.write(str(child.pid))
        time.sleep(300)  # no checkpoint: only a kill stops this
    if kind == "print":
        print("stray print from an operator")
        sys.stdout.flush()
        os.write(1, b"stray bytes written straight to fd 1\n")
    return inputs["image"]


def register_test_ops() -> None:
    img = Input("image", "image", "picture")
    registry.register(Operator(
        "test_scale", "Test scale", "multiply by a factor after some slow steps (tests only)", (img,),
        (Param("factor", "float", 1.0, "multiplier", min=0.0, max=100.0),
         Param("steps", "int", 1, "number of checkpoints", min=1, max=100000),
         Param("step_seconds", "float", 0.0, "sleep per step", unit="s", min=0.0, max=600.0)),
        _scale, order=1000))
    registry.register(Operator(
        "test_mean", "Test mean", "mean of the frames (tests only)",
        (Input("frames", "frames", "burst"),), (), _mean, order=1001))
    registry.register(Operator(
        "test_inputs", "Test inputs", "echo the inputs' hashes and storage, paint marks (tests only)",
        (img, Input("depth", "depth", "a depth layer", required=False),
         Input("normals", "normals", "a normal map layer", required=False),
         Input("matte", "mask", "a matte layer", required=False)),
        (Param("marks", "vector", [], "pixels to paint: x, y in image pixels and a grey level", size=3,
               repeat=True, coordinates=True),
         Param("tint", "vector", (0.5, 0.75, 1.0), "multiply red, green, blue by these", size=3, min=0.0,
               max=4.0),
         Param("levels", "float", [0.25, 0.5], "a list of numbers, only echoed", min=0.0, max=1.0, repeat=True,
               advanced=True),
         Param("distance", "float", None, "how far the subject is (only echoed; auto: none)", unit="m",
               min=0.01, max=100000.0, optional=True),
         Param("spot", "point", None, "a point of the picture (only echoed; auto: none)", optional=True)),
        _inputs, order=1003))
    registry.register(Operator(
        "test_fail", "Test failure", "fail on purpose (tests only)", (img,),
        (Param("kind", "choice", "user", "how to fail", choices=FAIL_KINDS),
         Param("note_dir", "string", "/tmp", "where 'hang' writes its child's pid")),
        _fail, order=1002))
