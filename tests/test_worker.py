"""The local worker through the real client: round trips, progress, cancel, fault injection, no orphans.

The worker is spawned exactly as a host spawns it (`python -m core worker --stdio`), with the bridge's test
operators (core/worker/testops.py) so that slow jobs, cancels and crashes are deterministic.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from plugin import protocol
from plugin.client import Client, WorkerCancelled, WorkerError
from plugin.pixels import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def make_client(**kw):
    kw.setdefault("extra_args", ["--test-ops"])
    kw.setdefault("cancel_grace_s", 3.0)
    return Client(config={}, python=PY, core_root=ROOT, device="cpu", **kw)


def group_members(pgid):
    """Live (non-zombie) processes in process group `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pgid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.05)
    return False


def rgba(h, w, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "u8":
        a = rng.integers(0, 256, (h, w, 4)).astype("<u1")
    elif dtype == "u16":
        a = rng.integers(0, 65536, (h, w, 4)).astype("<u2")
    else:
        a = rng.random((h, w, 4)).astype("<f2" if dtype == "f16" else "<f4")
    return Image.from_numpy(a)


@pytest.fixture(scope="module")
def client():
    c = make_client()
    c.ping()
    yield c
    pid = c.worker_pid
    c.close()
    if pid:
        assert wait_gone(pid)


# ---------------------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("dtype", ["u8", "u16", "f16", "f32"])
def test_echo_is_bit_exact(client, dtype):
    imgs = [rgba(37, 53, dtype, 1), rgba(5, 3, dtype, 2)]
    back = client.echo(imgs)
    assert [b.tobytes() for b in back] == [i.tobytes() for i in imgs]
    assert [(b.width, b.height, b.channels, b.dtype) for b in back] == [(53, 37, 4, dtype), (3, 5, 4, dtype)]


@pytest.mark.parametrize("dtype", ["u8", "u16", "f16", "f32"])
def test_identity_run_round_trips_each_depth(client, dtype):
    img = rgba(64, 48, dtype, 3)
    res = client.run("test_scale", {"image": img}, {"factor": 1.0}, output_dtype=dtype)
    assert res.image.dtype == dtype and res.image.tobytes() == img.tobytes()
    # and the float32 exchange itself: what the worker computed on is exactly v / max
    res32 = client.run("test_scale", {"image": img}, {"factor": 1.0})
    expected = img.to("f32")
    assert res32.image.dtype == "f32" and res32.image.tobytes() == expected.tobytes()


def test_run_computes_and_keeps_alpha(client):
    img = rgba(20, 30, "f32", 4)
    res = client.run("test_scale", {"image": img}, {"factor": 0.5}, seed=3)
    src, out = img.to_numpy(), res.image.to_numpy()
    assert np.array_equal(out[..., :3], src[..., :3] * np.float32(0.5))
    assert np.array_equal(out[..., 3], src[..., 3])
    assert res.info["operator"] == "test_scale" and res.info["seed"] == 3
    assert res.info["params"]["factor"] == 0.5


def test_mask_and_frames(client):
    frames = [rgba(8, 9, "f32", s) for s in range(3)]
    res = client.run("test_mean", {"frames": frames})
    expected = np.mean(np.stack([f.to_numpy()[..., :3] for f in frames]), axis=0)
    assert np.allclose(res.image.to_numpy()[..., :3], expected, atol=1e-7)
    assert res.info["frames"] == 3
    img = rgba(8, 9, "f32", 5)
    mask = np.zeros((8, 9, 1), np.float32)
    mask[:, :4] = 1.0
    res = client.run("test_scale", {"image": img}, {"factor": 2.0}, mask=Image.from_numpy(mask))
    out, src = res.image.to_numpy(), img.to_numpy()
    assert np.array_equal(out[:, 4:], src[:, 4:])  # outside the selection: bit-identical
    assert np.allclose(out[:, :4, :3], src[:, :4, :3] * 2)


def test_stored_as_and_lists_reach_the_operator(client):
    """Each input's stored_as goes in its buffer descriptors; a 16-bit data input arrives as exactly v / 65535;
    repeatable parameters arrive as whole lists (given as lists or as ';' text)."""
    import hashlib
    img, depth = rgba(6, 9, "u8", 1), rgba(6, 9, "u16", 2)
    res = client.run("test_inputs", {"image": img, "depth": depth},
                     {"marks": [[1, 2, 0.5], [8.5, 5.25, 1.0]], "levels": "0.1; 0.2; 0.3"},
                     stored_as={"image": "u8", "depth": "u16"})
    info = res.info
    assert info["stored_as"] == {"image": "u8", "depth": "u16"}
    assert info["hashes"]["depth"] == hashlib.sha256(depth.to("f32").tobytes()).hexdigest()
    assert info["params"]["marks"] == [[1.0, 2.0, 0.5], [8.5, 5.25, 1.0]]
    assert info["params"]["levels"] == [0.1, 0.2, 0.3]
    assert info["painted"] == [[1, 2], [8, 5]]
    assert client.run("test_inputs", {"image": img}).info["stored_as"] == {}   # unsaid: absent
    with pytest.raises(ValueError, match="stored_as"):
        client.run("test_inputs", {"image": img}, stored_as={"image": "u32"})


def test_reused_result_buffers_never_alias_a_result_the_host_still_holds(client):
    big = [Image.from_numpy(np.full((1024, 1100, 4), k, np.float32)) for k in (1.0, 2.0, 3.0)]
    first = client.echo([big[0]])[0]
    second = client.echo([big[1]])[0]  # `first` is held: must land in another buffer
    assert first.tobytes() == big[0].tobytes() and second.tobytes() == big[1].tobytes()
    del first
    third = client.run("test_scale", {"image": big[2]}, {"factor": 1.0}).image
    assert second.tobytes() == big[1].tobytes() and third.tobytes() == big[2].tobytes()


def test_request_over_the_limit_is_refused_before_sending(client, monkeypatch):
    client.ping()
    pid = client.worker_pid
    monkeypatch.setitem(client.config, "max_request_mb", 1)
    with pytest.raises(WorkerError) as err:
        client.run("test_scale", {"image": rgba(600, 600, "f32")})
    assert err.value.code == "too-large" and "MB" in err.value.message
    monkeypatch.setitem(client.config, "max_request_mb", 4096)
    assert client.run("test_scale", {"image": rgba(2, 2, "u8")}).image.width == 2
    assert client.worker_pid == pid


def test_progress_is_reported_in_order(client):
    seen = []
    client.run("test_scale", {"image": rgba(4, 4, "u8")}, {"steps": 4, "step_seconds": 0.15},
               progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) >= 4
    assert any("step 3 of 4" in m for _, m in seen)


def test_list_operators_matches_the_registry(client):
    ops = {o["name"]: o for o in client.list_operators()}
    assert {"test_scale", "test_mean", "test_fail"} <= set(ops)
    factor = [p for p in ops["test_scale"]["params"] if p["name"] == "factor"][0]
    assert factor["type"] == "float" and factor["max"] == 100.0


# ---------------------------------------------------------------------------------------------------------------
# Errors from the operator


def test_user_error_becomes_a_structured_error_and_the_worker_survives(client):
    pid = client.worker_pid
    with pytest.raises(WorkerError) as err:
        client.run("test_fail", {"image": rgba(4, 4, "u8")}, {"kind": "user"})
    assert err.value.code == "test-refusal" and "on purpose" in err.value.message
    with pytest.raises(WorkerError) as err:
        client.run("test_scale", {"image": rgba(4, 4, "u8")}, {"factor": -1})
    assert err.value.code == "bad-parameter" and "factor" in err.value.message
    with pytest.raises(WorkerError) as err:
        client.run("no_such_operator", {"image": rgba(4, 4, "u8")})
    assert err.value.code == "unknown-operator"
    assert client.worker_pid == pid


def test_bug_is_reported_as_a_bug_with_traceback(client):
    with pytest.raises(WorkerError) as err:
        client.run("test_fail", {"image": rgba(4, 4, "u8")}, {"kind": "bug"})
    assert err.value.code == "internal" and "bug" in err.value.message
    assert "RuntimeError: deliberate bug" in err.value.detail and "Traceback" in err.value.detail


def test_memory_error_is_out_of_memory(client):
    with pytest.raises(WorkerError) as err:
        client.run("test_fail", {"image": rgba(4, 4, "u8")}, {"kind": "memory"})
    assert err.value.code == "out-of-memory"


def test_stray_prints_do_not_corrupt_the_protocol(client):
    img = rgba(6, 6, "u8")
    res = client.run("test_fail", {"image": img}, {"kind": "print"}, output_dtype="u8")
    assert res.image.tobytes() == img.tobytes()


# ---------------------------------------------------------------------------------------------------------------
# Cancel


def test_cancel_stops_at_the_next_checkpoint_and_the_worker_stays(client):
    client.ping()
    pid = client.worker_pid
    cancel = threading.Event()
    seen = []

    def progress(f, m):
        seen.append(f)
        if len(seen) == 3:
            cancel.set()

    with pytest.raises(WorkerCancelled):
        client.run("test_scale", {"image": rgba(8, 8, "f32")}, {"steps": 200, "step_seconds": 0.05},
                   progress=progress, cancel=cancel)
    assert len(seen) < 20                   # it stopped long before its 200 steps
    assert client.ping()["busy"] is False   # the job really ended (not left running in the background)
    assert client.worker_pid == pid         # stopped cooperatively: the warm worker is kept
    assert client.run("test_scale", {"image": rgba(2, 2, "u8")}, {"factor": 1.0}).image.width == 2


def test_cancel_before_start_sends_nothing(client):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(WorkerCancelled):
        client.run("test_scale", {"image": rgba(2, 2, "u8")}, cancel=cancel)


def test_cancel_of_a_stuck_job_kills_the_group_without_orphans(tmp_path):
    c = make_client(cancel_grace_s=1.0)
    try:
        c.ping()
        pid = c.worker_pid
        cancel = threading.Event()
        threading.Timer(1.5, cancel.set).start()
        with pytest.raises(WorkerCancelled) as err:
            c.run("test_fail", {"image": rgba(4, 4, "u8")}, {"kind": "hang", "note_dir": str(tmp_path)},
                  cancel=cancel)
        assert "restarted" in err.value.message
        child = int((tmp_path / "child.pid").read_text())
        assert wait_gone(pid), group_members(pid)
        assert not alive(child)
        # and the next call gets a fresh worker
        assert c.run("test_scale", {"image": rgba(2, 2, "u8")}).image.height == 2
        assert c.worker_pid != pid
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------------------------
# The worker dying


@pytest.mark.parametrize("kind,code", [("kill", "worker-killed"), ("exit", "worker-crashed"),
                                       ("garbage", "bad-output")])
def test_worker_death_or_garbage_gives_a_clear_error_and_a_fresh_worker(kind, code):
    c = make_client()
    try:
        c.ping()
        pid = c.worker_pid
        with pytest.raises(WorkerError) as err:
            c.run("test_fail", {"image": rgba(4, 4, "u8")}, {"kind": kind})
        assert err.value.code == code, err.value.message
        assert "AI Portrait worker" in err.value.message
        assert wait_gone(pid), group_members(pid)
        img = rgba(3, 3, "u16")
        assert c.run("test_scale", {"image": img}, output_dtype="u16").image.tobytes() == img.tobytes()
        assert c.worker_pid != pid
    finally:
        c.close()


def test_killed_from_outside_mid_job(tmp_path):
    c = make_client()
    try:
        c.ping()
        pid = c.worker_pid
        threading.Timer(0.8, lambda: os.killpg(pid, signal.SIGKILL)).start()
        with pytest.raises(WorkerError) as err:
            c.run("test_scale", {"image": rgba(4, 4, "u8")}, {"steps": 100, "step_seconds": 0.05})
        assert err.value.code == "worker-killed"
        assert wait_gone(pid)
        assert c.run("test_scale", {"image": rgba(2, 2, "u8")}).image.width == 2
    finally:
        c.close()


def test_missing_interpreter_and_broken_environment_are_clear():
    c = Client(config={}, python="/nonexistent/python3", core_root=ROOT)
    with pytest.raises(WorkerError) as err:
        c.list_operators()
    assert err.value.code == "worker-start" and "/nonexistent/python3" in err.value.message
    c = Client(config={}, python="/usr/bin/false", core_root=ROOT)
    with pytest.raises(WorkerError) as err:
        c.list_operators()
    assert err.value.code == "worker-start"
    with pytest.raises(WorkerError) as err:
        Client(config={}, python=None, core_root=ROOT).list_operators()
    assert err.value.code == "not-configured"


def test_host_environment_is_scrubbed(monkeypatch):
    # a host's own Python settings would break the worker's interpreter (PYTHONHOME) or shadow its packages
    monkeypatch.setenv("PYTHONHOME", "/nonexistent/krita/python")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent/krita/site-packages")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/nonexistent/krita/lib")
    monkeypatch.setenv("QT_PLUGIN_PATH", "/nonexistent/krita/plugins")
    c = make_client(memory_budget_mb=1500)
    try:
        env = c.run("test_scale", {"image": rgba(2, 2, "u8")}).info["env"]
    finally:
        c.close()
    assert env["PYTHONHOME"] is None and env["LD_LIBRARY_PATH"] is None and env["QT_PLUGIN_PATH"] is None
    assert env["PYTHONPATH"] == ROOT
    assert env["AI_PORTRAIT_MEMORY_BUDGET_MB"] == "1500"


def test_idle_worker_exits_by_itself_and_the_next_call_starts_a_fresh_one():
    c = make_client(idle_timeout_s=1.0)
    try:
        c.ping()
        pid = c.worker_pid
        assert wait_gone(pid, timeout=8.0)
        assert c.run("test_scale", {"image": rgba(2, 2, "u8")}).image.width == 2
        assert c.worker_pid != pid
    finally:
        c.close()


def test_host_crash_mid_job_takes_the_worker_and_its_children_with_it(tmp_path):
    # the host dies without any cleanup (no atexit) while a job that ignores cancel runs a child process
    code = ("import sys, threading, os, time; sys.path.insert(0, %r)\n"
            "from plugin.client import Client\n"
            "from plugin.pixels import Image\n"
            "c = Client(config={}, python=%r, core_root=%r, extra_args=['--test-ops'])\n"
            "c.ping(); print(c.worker_pid, flush=True)\n"
            "threading.Thread(target=c.run, args=('test_fail', {'image': Image(1, 1, 1, 'u8', b'0')},"
            " {'kind': 'hang', 'note_dir': %r}), daemon=True).start()\n"
            "while not os.path.exists(os.path.join(%r, 'child.pid')): time.sleep(0.05)\n"
            "time.sleep(0.2); os._exit(0)\n") % (ROOT, PY, ROOT, str(tmp_path), str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    pid = int(out.stdout.split()[0])
    child = int((tmp_path / "child.pid").read_text())
    assert wait_gone(pid, timeout=10.0), group_members(pid)
    assert not alive(child)


# ---------------------------------------------------------------------------------------------------------------
# Raw frames straight at a worker: malformed input never crashes it


class RawWorker:
    def __init__(self, *extra):
        self.proc = subprocess.Popen([PY, "-m", "core", "worker", "--stdio", "--test-ops", *extra], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0, start_new_session=True)
        self.ch = protocol.PipeChannel(self.proc.stdout, self.proc.stdin)
        self.hello = self.read()

    def read(self):
        frame = protocol.read_frame(self.ch, 1 << 30)
        return None if frame is None else frame[0]

    def send_raw(self, data):
        self.proc.stdin.write(data)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        code = self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def test_malformed_frames_are_answered_and_the_worker_stays_in_step():
    w = RawWorker()
    assert w.hello["type"] == "hello" and w.hello["max_request_bytes"] == protocol.DEFAULT_MAX_REQUEST_BYTES
    bad = b"{oops"
    w.send_raw(protocol.PREFIX.pack(protocol.MAGIC, len(bad), 3) + bad + b"abc")
    assert w.read()["code"] == "bad-frame"
    desc = protocol.describe("x", 2, 2, 4, "f32")  # announces 64 bytes; send 10
    protocol.write_frame(w.ch, {"op": "run", "id": 5, "operator": "test_scale", "buffers": [desc]}, [b"0" * 10])
    reply = w.read()
    assert reply["code"] == "bad-request" and reply["id"] == 5
    protocol.write_frame(w.ch, {"op": "frobnicate", "id": 6})
    assert w.read()["code"] == "bad-request"
    img = protocol.describe("image", 1, 1, 1, "u8")
    protocol.write_frame(w.ch, {"op": "run", "id": 8, "operator": "test_scale", "seed": "x", "buffers": [img]},
                         [b"\x01"])
    assert w.read()["code"] == "bad-request"
    protocol.write_frame(w.ch, {"op": "run", "id": 9, "operator": "test_scale", "params": {"factor": "lots"},
                                "buffers": [img]}, [b"\x01"])
    reply = w.read()
    assert reply["code"] == "bad-parameter" and "factor" in reply["message"]
    protocol.write_frame(w.ch, {"op": "ping", "id": 7})
    assert w.read() == {"type": "pong", "id": 7, "busy": False}
    assert w.close() == 0


def test_oversized_request_is_refused_before_allocation():
    w = RawWorker("--max-request-mb", "1")
    w.send_raw(protocol.PREFIX.pack(protocol.MAGIC, 2, 10 ** 12) + b"{}")  # 1 TB announced, never sent
    reply = w.read()
    assert reply["type"] == "error" and reply["code"] == "too-large"
    assert w.read() is None  # the stream cannot be trusted after that: the worker ended cleanly
    assert w.close() == 0


@pytest.mark.parametrize("garbage", [b"\x00" * 7, b"GET / HTTP/1.1\r\n\r\n", protocol.PREFIX.pack(
    protocol.MAGIC, 10, 100) + b'{"op":"ru'])
def test_truncated_or_garbage_input_ends_the_worker_cleanly(garbage):
    w = RawWorker()
    w.send_raw(garbage)
    w.proc.stdin.close()
    replies = []
    while True:
        r = w.read()
        if r is None:
            break
        replies.append(r)
    assert all(r["type"] == "error" for r in replies)
    assert w.proc.wait(timeout=10) == 0
    w.proc.stdout.close()
    w.proc.stderr.close()


# ---------------------------------------------------------------------------------------------------------------
# A host Python without numpy


NO_NUMPY_SCRIPT = r"""
import sys, json, threading
sys.modules["numpy"] = None  # the host's Python has no numpy
sys.path.insert(0, ROOT)
from array import array
from plugin.client import Client, WorkerCancelled
from plugin.pixels import Image, have_numpy
assert not have_numpy()
c = Client(config={}, python=PY, core_root=ROOT, device="cpu", extra_args=["--test-ops"])
out = {}
w, h = 61, 47
u8 = Image(w, h, 4, "u8", bytes((i * 7 + i // 5) % 256 for i in range(w * h * 4)))
u16 = Image(w, h, 4, "u16", array("H", [(i * 2654435761) % 65536 for i in range(w * h * 4)]).tobytes())
f32 = u16.to("f32")
for img in (u8, u16, f32):
    out["echo_" + img.dtype] = c.echo([img])[0].tobytes() == img.tobytes()
    res = c.run("test_scale", {"image": img}, {"factor": 1.0}, output_dtype=img.dtype)
    out["run_" + img.dtype] = res.image.tobytes() == img.tobytes()
    out["f32_" + img.dtype] = c.run("test_scale", {"image": img}).image.tobytes() == img.to("f32").tobytes()
krita = u8.to_krita("U8")
out["krita"] = Image.from_krita(krita, w, h, "U8").to("f32").to_krita("U8") == krita
ops = {o["name"]: o for o in c.list_operators()}
out["real_ops"] = sorted(n for n in ops if not n.startswith("test_"))
if "denoise" in ops:  # a real operator on a burst made here, in pure Python, with known ground truth
    import math, random
    rnd = random.Random(5)
    W = H = 64
    clean = array("f", [0.2 + 0.6 * ((x + y) % 64) / 64.0 if ch < 3 else 1.0
                        for y in range(H) for x in range(W) for ch in range(3)])
    def psnr(a, b):
        mse = sum((p - q) ** 2 for p, q in zip(a, b)) / len(a)
        return 10 * math.log10(1.0 / mse)
    frames = [array("f", [v + rnd.gauss(0.0, 0.05) for v in clean]) for _ in range(5)]
    res = c.run("denoise", {"frames": [Image(W, H, 3, "f32", f.tobytes()) for f in frames]}, seed=0)
    got = array("f"); got.frombytes(res.image.tobytes())
    out["real_run"] = [res.image.width, res.image.height, res.image.channels, res.image.dtype]
    out["psnr_noisy"], out["psnr_denoised"] = psnr(frames[0], clean), psnr(got, clean)
cancel = threading.Event()
threading.Timer(0.5, cancel.set).start()
try:
    c.run("test_scale", {"image": u8}, {"steps": 100, "step_seconds": 0.05}, cancel=cancel)
except WorkerCancelled:
    out["cancelled"] = True
c.close()
print(json.dumps(out))
"""


def test_client_from_a_plain_python_without_numpy():
    script = "ROOT = %r\nPY = %r\n" % (ROOT, PY) + NO_NUMPY_SCRIPT
    # -I: isolated, like a host's embedded interpreter: no site-packages of ours, no PYTHONPATH
    proc = subprocess.run(["/usr/bin/python3", "-I", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(out)
    for key in ("echo_u8", "echo_u16", "echo_f32", "run_u8", "run_u16", "run_f32", "f32_u8", "f32_u16",
                "f32_f32", "krita", "cancelled"):
        assert out.get(key) is True, (key, out)
    if "denoise" in out["real_ops"]:
        assert out["real_run"] == [64, 64, 3, "f32"], out
        assert out["psnr_denoised"] > out["psnr_noisy"] + 3.0, out
