"""A bounded soak of the socket server (issue 22): 200 loopback connections of good and hostile clients at once
(wrong tokens, garbage, slowloris, huge headers and declarations, deep JSON, disconnects and cancels mid-job),
then: the server never exited, good clients got the same bytes as before, and nothing leaked (descriptors,
threads, processes, shared memory files)."""
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from plugin import protocol
from plugin.client import Client, WorkerCancelled, WorkerError
from plugin.pixels import Image
from tests.test_hardening_server import _authed, _closed_by_peer, _fds, _start
from tests.test_worker_server import TOKEN

CONNECTIONS = 200
IMG = Image.from_numpy(np.random.default_rng(7).random((24, 20, 4)).astype(np.float32))


def _threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def _children(pid):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(e))
            except OSError:
                pass
    return out


def _shm():
    d = protocol.shared_dir()
    return {n for n in os.listdir(d) if n.startswith(protocol.SHARED_PREFIX)}


def _run_good(address):
    with Client(config={}, server=address, token=TOKEN) as c:
        return c.run("test_scale", {"image": IMG}, {"factor": 2.0}, seed=3).image.tobytes()


def _settle(check, wait=15.0):
    end = time.monotonic() + wait
    while time.monotonic() < end and not check():
        time.sleep(0.2)
    return check()


def test_soak_of_mixed_good_and_hostile_clients(tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    proc, address = _start(tmp_path, "--tcp", "127.0.0.1:0", "--token-file", str(tmp_path / "token"),
                           "--jobs", "2", "--max-request-mb", "200",
                           new_flags=["--max-connections", "48", "--handshake-timeout", "2"])
    host, port = address[len("tcp://"):].rsplit(":", 1)
    where = (host, int(port))
    log = []  # drained so that a chatty server never blocks on a full pipe
    drain = threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, b"")), daemon=True)
    drain.start()
    try:
        reference = _run_good(address)
        expect = IMG.to_numpy() * np.float32([2, 2, 2, 1])
        assert reference == expect.astype("<f4").tobytes()
        base_fds, base_threads, shm_before = _fds(proc.pid), _threads(proc.pid), _shm()

        def good_echo():
            with Client(config={}, server=address, token=TOKEN) as c:
                return c.echo([IMG])[0].tobytes() == IMG.tobytes()

        def good_run():
            return _run_good(address) == reference

        def wrong_token():
            try:
                Client(config={}, server=address, token="wrong-token-0123456789").ping()
            except WorkerError as exc:
                return exc.code == "bad-token"
            return False

        def garbage():
            with socket.create_connection(where, timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
                return _closed_by_peer(s, 10)

        def slowloris():
            with socket.create_connection(where, timeout=10) as s:
                for _ in range(40):
                    try:
                        s.sendall(b"A")
                    except OSError:
                        return True
                    if _closed_by_peer(s, 0.3):
                        return True
                return False

        def huge_header():
            with socket.create_connection(where, timeout=10) as s:
                s.sendall(protocol.PREFIX.pack(protocol.MAGIC, 50 << 20, 0) + b"{" * 1000)
                return _closed_by_peer(s, 10)

        def huge_declaration():
            s, ch, *_ = _authed(where)
            with s:
                head = protocol.encode_header({"op": "echo", "id": 1})
                s.sendall(protocol.PREFIX.pack(protocol.MAGIC, len(head), 150 << 20) + head + b"x" * 1024)
                time.sleep(0.1)
            return True

        def deep_json():
            s, ch, *_ = _authed(where)
            with s:
                head = ("[" * 30000 + "]" * 30000).encode()
                s.sendall(protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head)
                bad = protocol.read_frame(ch)[0]
                protocol.write_frame(ch, {"op": "echo", "id": 2, "buffers": [
                    protocol.describe("e", IMG.width, IMG.height, 4, "f32")]}, [IMG.data])
                back = protocol.read_frame(ch)
            return bad["code"] == "bad-request" and bytes(back[1]) == IMG.tobytes()

        def disconnect_mid_job():
            s, ch, *_ = _authed(where)
            with s:
                protocol.write_frame(ch, {"op": "run", "id": 1, "operator": "test_scale",
                                          "params": {"steps": 40, "step_seconds": 0.05},
                                          "buffers": [protocol.describe("image", IMG.width, IMG.height, 4,
                                                                        "f32")]}, [IMG.data])
                frame = protocol.read_frame(ch)
            return frame is not None and frame[0]["type"] in ("progress", "result")

        def cancel_mid_job():
            cancel = threading.Event()
            with Client(config={}, server=address, token=TOKEN) as c:
                try:
                    c.run("test_scale", {"image": IMG}, {"steps": 40, "step_seconds": 0.05},
                          progress=lambda f, m: cancel.set(), cancel=cancel)
                except WorkerCancelled:
                    return c.ping()["busy"] is False
            return False

        kinds = [good_echo, good_run, wrong_token, garbage, slowloris, huge_header, huge_declaration,
                 deep_json, disconnect_mid_job, cancel_mid_job]
        plan = [kinds[k % len(kinds)] for k in range(CONNECTIONS)]

        def one(fn):
            try:
                return fn.__name__, bool(fn())
            except Exception as exc:  # noqa: BLE001 - reported as a failed case below
                return fn.__name__, "%s: %s" % (type(exc).__name__, exc)

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(one, plan))
        counts = {}
        for name, r in outcomes:
            counts[name] = counts.get(name, 0) + (r is True)
        print("soak: %d connections, passed per kind %s; fds %d, threads %d at rest"
              % (len(outcomes), counts, base_fds, base_threads))
        failed = [(name, r) for name, r in outcomes if r is not True]
        assert not failed, failed[:10]
        assert proc.poll() is None, "the server exited"
        assert _run_good(address) == reference  # unchanged bytes after the storm
        assert _settle(lambda: _fds(proc.pid) <= base_fds), (_fds(proc.pid), base_fds)
        assert _settle(lambda: _threads(proc.pid) <= base_threads), (_threads(proc.pid), base_threads)
        assert _children(proc.pid) == []
        assert _shm() - shm_before == set()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        drain.join(5)
        proc.stderr.close()
    assert rc == 0, b"".join(log).decode()[-3000:]
    assert b"Traceback" not in b"".join(log), b"".join(log).decode()[-3000:]
