"""Hardening of the wire (issue 22): mutual authentication, memory that grows only as bytes arrive, malformed
requests answered with clean error frames, shared payload files that do not outlive a killed host."""
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from plugin import protocol
from plugin.client import Client, WorkerError
from plugin.pixels import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "0123456789abcdef-test-token"


def image(h, w, seed):
    return Image.from_numpy(np.random.default_rng(seed).random((h, w, 4)).astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------
# Item 2: a client with a token requires the server's proof before it sends a byte of image data


class FakeServer:
    """A loopback impostor: sends `hello`, answers an auth frame with `pong` (None: never), echoes any request
    as a result, and records every request it receives."""

    def __init__(self, hello, pong=None):
        self.hello, self.pong = hello, pong
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.address = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        ch = protocol.SocketChannel(conn)
        try:
            protocol.write_frame(ch, dict(self.hello, type="hello", id=None, version=1))
            while True:
                frame = protocol.read_frame(ch)
                if frame is None:
                    return
                header, payload = frame
                self.requests.append((header, len(payload)))
                if header.get("op") == "auth":
                    if self.pong is not None:
                        protocol.write_frame(ch, dict(self.pong(header), type="pong", id=header.get("id")))
                    continue
                views = protocol.split_payload(header, payload)
                protocol.write_frame(ch, {"type": "result", "id": header.get("id"), "info": {},
                                          "buffers": header.get("buffers") or []}, views[:1])
        except (OSError, protocol.ProtocolError):
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


NONCE = "ab" * 16


@pytest.mark.parametrize("case", ["says-no-auth", "accepts-anything-without-proof", "wrong-proof"])
def test_a_client_with_a_token_sends_no_pixels_to_a_server_that_cannot_prove_it_knows_the_token(case):
    if case == "says-no-auth":
        fake = FakeServer({"auth": False, "nonce": None, "pid": 1, "max_request_bytes": 1 << 30})
    elif case == "accepts-anything-without-proof":
        fake = FakeServer({"auth": True, "nonce": NONCE, "max_request_bytes": 1 << 30}, pong=lambda h: {})
    else:
        fake = FakeServer({"auth": True, "nonce": NONCE, "max_request_bytes": 1 << 30},
                          pong=lambda h: {"proof": protocol.server_proof("another-token-0123456", NONCE,
                                                                         h.get("cnonce") or "00" * 16)})
    try:
        c = Client(config={}, server=fake.address, token=TOKEN)
        with pytest.raises(WorkerError) as err:
            c.run("test_scale", {"image": image(8, 8, 1)})
        assert err.value.code == "bad-token" and "prove" in err.value.message
        assert [h.get("op") for h, _ in fake.requests if h.get("op") != "auth"] == []  # no run, no pixels
        assert all(n == 0 for _, n in fake.requests)
        c.close()
    finally:
        fake.close()


def test_the_proof_is_bound_to_both_nonces_and_never_equals_a_client_mac():
    c1, c2 = protocol.new_nonce(), protocol.new_nonce()
    proof = protocol.server_proof(TOKEN, NONCE, c1)
    assert protocol.check_proof(TOKEN, NONCE, c1, proof)
    assert not protocol.check_proof(TOKEN, NONCE, c2, proof)
    assert not protocol.check_proof("x" + TOKEN, NONCE, c1, proof)
    assert proof != protocol.auth_mac(TOKEN, NONCE + c1) and proof != protocol.auth_mac(TOKEN, c1)
    assert not protocol.check_proof(TOKEN, NONCE, c1, "é" * 64) and not protocol.check_proof(TOKEN, NONCE, c1, None)


# ---------------------------------------------------------------------------------------------------------------
# Item 3: a declaration reserves nothing; memory grows with the bytes that really arrive


def _peak_while(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_frame_declaring_gigabytes_costs_only_what_arrives():
    a, b = socket.socketpair()
    head = protocol.encode_header({"op": "echo", "id": 1})

    def send():
        a.sendall(protocol.PREFIX.pack(protocol.MAGIC, len(head), 1500 << 20) + head + b"x" * (1 << 20))
        a.close()
    threading.Thread(target=send).start()

    def read():
        with pytest.raises(protocol.Truncated):
            protocol.read_frame(protocol.SocketChannel(b), max_payload=2 << 30, alloc=protocol.BufferPool())
    peak = _peak_while(read)
    b.close()
    assert peak < 64 << 20, "reserved %.0f MB for a 1.5 GB declaration" % (peak / 1e6)


def test_growing_payloads_stay_bit_exact_and_reuse_the_pool():
    pool = protocol.BufferPool()
    payload = np.random.default_rng(3).integers(0, 256, 40 << 20, dtype=np.uint8).tobytes()  # 40 MB
    a, b = socket.socketpair()
    ca, cb = protocol.SocketChannel(a), protocol.SocketChannel(b)
    try:
        for _ in range(2):
            t = threading.Thread(target=protocol.write_frame, args=(ca, {"id": 1}, [payload]))
            t.start()
            header, got = protocol.read_frame(cb, alloc=pool)
            t.join()
            assert bytes(got) == payload
            first = pool._buf
            got = None
        assert pool._buf is first  # the second frame went into the kept buffer, no new memory
    finally:
        a.close(), b.close()


def test_the_client_survives_a_server_that_declares_a_huge_reply():
    """A 3 GB declaration once took a host to 2.9 GB; now it costs what arrives (1 MB) and a clean error."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)

    def serve():
        conn, _ = sock.accept()
        ch = protocol.SocketChannel(conn)
        protocol.write_frame(ch, {"type": "hello", "id": None, "auth": False, "max_request_bytes": 1 << 30})
        header, _ = protocol.read_frame(ch)
        head = protocol.encode_header({"type": "result", "id": header["id"]})
        conn.sendall(protocol.PREFIX.pack(protocol.MAGIC, len(head), 1500 << 20) + head + b"x" * (1 << 20))
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    c = Client(config={}, server="tcp://127.0.0.1:%d" % sock.getsockname()[1])
    errors = []
    peak = _peak_while(lambda: errors.append(pytest.raises(WorkerError, c.ping).value))
    c.close()
    sock.close()
    assert errors[0].code in ("connection-lost", "bad-output")
    assert peak < 64 << 20, "the client reserved %.0f MB for a 1.5 GB declaration" % (peak / 1e6)


# ---------------------------------------------------------------------------------------------------------------
# Item 6: malformed requests get clean error frames (never 'internal', never a dead worker)


def test_deeply_nested_json_is_a_clean_recoverable_error_and_the_stream_stays_in_step():
    a, b = socket.socketpair()
    ca, cb = protocol.SocketChannel(a), protocol.SocketChannel(b)
    deep = ("[" * 100000 + "]" * 100000).encode()
    deep_obj = '{"id": 1, "params": {"a": %s1%s}}' % ("[" * 40, "]" * 40)  # parses, but 42 levels
    try:
        for head in (deep, deep_obj.encode()):
            a.sendall(protocol.PREFIX.pack(protocol.MAGIC, len(head), 3) + head + b"abc")
            with pytest.raises(protocol.ProtocolError) as err:
                protocol.read_frame(cb)
            assert err.value.recoverable and err.value.code == "bad-request"
        protocol.write_frame(ca, {"id": 2}, [b"ok"])
        h, p = protocol.read_frame(cb)
        assert h["id"] == 2 and bytes(p) == b"ok"
    finally:
        a.close(), b.close()


def test_a_non_ascii_mac_is_a_wrong_mac():
    assert protocol.check_mac(TOKEN, NONCE, "é" * 64) is False
    assert protocol.check_mac(TOKEN, NONCE, protocol.auth_mac(TOKEN, NONCE)) is True


def _raw_worker():
    proc = subprocess.Popen([sys.executable, "-m", "core", "worker", "--stdio", "--test-ops", "--idle-timeout",
                             "60"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    ch = protocol.PipeChannel(proc.stdout, proc.stdin)
    assert protocol.read_frame(ch)[0]["type"] == "hello"
    return proc, ch


def test_malformed_requests_to_the_stdio_worker_are_clean_user_errors():
    img = np.ones((4, 4, 4), np.float32)
    desc = [protocol.describe("image", 4, 4, 4, "f32")]
    run = {"op": "run", "operator": "test_scale", "params": {}, "buffers": desc}
    cases = {
        "device cpu:zz": dict(run, device="cpu:zz"),
        "factor 10**400": dict(run, params={"factor": 10 ** 400}),
        "f_number 10**400": dict(run, operator="refocus", params={"f_number": 10 ** 400}),
        "seed 10**400": dict(run, seed=10 ** 400),
        "output_dtype a list": dict(run, output_dtype=["f32"]),
        "one image then a list": dict(run, buffers=desc + [dict(desc[0], list=True)]),
        "non-ASCII MAC": {"op": "auth", "mac": "é" * 64},
    }
    proc, ch = _raw_worker()
    try:
        for k, (name, header) in enumerate(cases.items()):
            n = len(header.get("buffers") or [])
            protocol.write_frame(ch, dict(header, id=k), [img] * n)
            while True:
                reply = protocol.read_frame(ch)
                assert reply is not None, "the worker died on: %s\n%s" % (name, proc.stderr.read1().decode())
                if reply[0].get("type") != "progress":
                    break
            r = reply[0]
            assert r["type"] == "error" and r["id"] == k, (name, r)
            assert r["code"] not in ("internal", "out-of-memory"), (name, r)
        head = ("[" * 50000 + "]" * 50000).encode()  # deep JSON: the parser's stack, not ours
        ch.write_all(protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head)
        r = protocol.read_frame(ch)[0]
        assert r["type"] == "error" and r["code"] == "bad-request"
        protocol.write_frame(ch, {"op": "echo", "id": 99, "buffers": desc}, [img])
        h, p = protocol.read_frame(ch)
        assert h["id"] == 99 and bytes(p) == img.tobytes()  # alive and in step
    finally:
        proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()


# ---------------------------------------------------------------------------------------------------------------
# Item 9: shared payload files do not outlive a killed host


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_removes_only_our_files_of_dead_processes(tmp_path):
    ns = protocol._pid_namespace()
    dead = _dead_pid()
    names = {
        "dead": "%s%d-%s-abc" % (protocol.SHARED_PREFIX, dead, ns),
        "mine": "%s%d-%s-abc" % (protocol.SHARED_PREFIX, os.getpid(), ns),
        "live": "%s%d-%s-abc" % (protocol.SHARED_PREFIX, os.getppid(), ns),
        "other-namespace": "%s%d-%s-abc" % (protocol.SHARED_PREFIX, dead, "f" + ns),
        "old-style": protocol.SHARED_PREFIX + "x8y2k1",
        "not-ours": "somebody-else-%d-%s-abc" % (dead, ns),
    }
    for n in names.values():
        (tmp_path / n).write_bytes(b"x")
    assert protocol.sweep_stale_shared(str(tmp_path)) == [names["dead"]]
    assert sorted(os.listdir(tmp_path)) == sorted(v for k, v in names.items() if k != "dead")


def test_our_shared_files_name_their_creator():
    f = protocol.SharedFile()
    try:
        f.put([b"x" * 10], 10)
        m = protocol._SHARED_NAME.match(os.path.basename(f.path))
        assert m and int(m.group(1)) == os.getpid() and m.group(2) == protocol._pid_namespace()
    finally:
        f.close()


def shared_files():
    d = protocol.shared_dir()
    return {n for n in os.listdir(d) if n.startswith(protocol.SHARED_PREFIX)}


def test_a_killed_host_leaves_no_shared_file_and_a_new_worker_sweeps_stale_ones(tmp_path):
    ns = getattr(protocol, "_pid_namespace", lambda: "0")()
    stale = os.path.join(protocol.shared_dir(), "%s%d-%s-stale" % (protocol.SHARED_PREFIX, _dead_pid(), ns))
    before = shared_files()
    script = tmp_path / "host.py"
    script.write_text(
        "import os, signal, sys, numpy as np\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from plugin.client import Client\nfrom plugin.pixels import Image\n"
        f"c = Client(config={{}}, python={sys.executable!r}, core_root={ROOT!r}, device='cpu')\n"
        "img = Image.from_numpy(np.ones((1024, 1024, 4), np.float32))\n"
        "assert c.echo([img])[0].tobytes() == img.tobytes()\n"
        "print(c.worker_pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    open(stale, "wb").close()  # what an earlier killed process left (its pid is dead)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode == -9, res.stderr
    worker = int(res.stdout.split()[0])
    deadline = time.monotonic() + 20  # the worker sees its stdin close and cleans up
    while time.monotonic() < deadline and (os.path.exists("/proc/%d" % worker) or shared_files() - before):
        time.sleep(0.1)
    assert shared_files() - before - {os.path.basename(stale)} == set(), "a killed host left its file"
    assert not os.path.exists(stale), "the stale file of a dead process was not swept"
