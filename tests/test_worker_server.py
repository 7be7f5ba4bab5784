"""The socket server: token over TCP, Unix sockets, two clients at once, malformed frames, losing the server."""
import os
import signal
import socket
import stat
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
TOKEN = "0123456789abcdef-test-token"


def start_server(tmp_path, *args):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--test-ops", "--ready-file", str(ready),
                             *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("server did not start: " + proc.stderr.read().decode())
        time.sleep(0.05)
    return proc, ready.read_text().strip()


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    proc.stderr.close()


def image(h, w, seed):
    return Image.from_numpy(np.random.default_rng(seed).random((h, w, 4)).astype(np.float32))


@pytest.fixture(scope="module")
def tcp_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("srv")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    proc, address = start_server(tmp, "--tcp", "127.0.0.1:0", "--token-file", str(token_file), "--jobs", "2")
    yield address
    stop_server(proc)


def client_for(address, token=TOKEN, **kw):
    return Client(config={}, server=address, token=token, **kw)


def test_tcp_binds_loopback_and_serves_with_the_right_token(tcp_server):
    assert tcp_server.startswith("tcp://127.0.0.1:")
    with client_for(tcp_server) as c:
        assert "test_scale" in [o["name"] for o in c.list_operators()]
        imgs = [image(33, 21, 1), Image(3, 2, 4, "u8", bytes(range(24)))]
        assert [b.tobytes() for b in c.echo(imgs)] == [i.tobytes() for i in imgs]
        img = image(16, 16, 2)
        res = c.run("test_scale", {"image": img}, {"factor": 3.0})
        assert np.array_equal(res.image.to_numpy()[..., :3], img.to_numpy()[..., :3] * np.float32(3))


@pytest.mark.parametrize("token", ["wrong-token-0123456789", None])
def test_wrong_or_missing_token_is_refused(tcp_server, token):
    c = client_for(tcp_server, token=token)
    with pytest.raises(WorkerError) as err:
        c.list_operators()
    assert err.value.code == "bad-token" and "token" in err.value.message


def test_unauthenticated_request_is_refused(tcp_server):
    host, port = tcp_server[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        ch = protocol.SocketChannel(s)
        hello = protocol.read_frame(ch)[0]
        assert hello["auth"] is True and len(hello["nonce"]) == 32
        protocol.write_frame(ch, {"op": "list", "id": 1})
        reply = protocol.read_frame(ch)[0]
        assert reply["code"] == "bad-token"
        assert protocol.read_frame(ch) is None  # closed


def test_unauthenticated_peer_cannot_make_the_server_allocate(tcp_server):
    host, port = tcp_server[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        ch = protocol.SocketChannel(s)
        protocol.read_frame(ch)
        s.sendall(protocol.PREFIX.pack(protocol.MAGIC, 2, 100 << 20) + b"{}")  # 100 MB before any auth
        reply = protocol.read_frame(ch)[0]
        assert reply["code"] == "too-large"


def test_oversized_and_garbage_frames_over_tcp(tcp_server):
    host, port = tcp_server[len("tcp://"):].rsplit(":", 1)
    for garbage, code in [(protocol.PREFIX.pack(protocol.MAGIC, 2, 1 << 50) + b"{}", "too-large"),
                          (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad-frame")]:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            ch = protocol.SocketChannel(s)
            hello = protocol.read_frame(ch)[0]
            protocol.write_frame(ch, {"op": "auth", "id": 0, "mac": protocol.auth_mac(TOKEN, hello["nonce"])})
            assert protocol.read_frame(ch)[0]["type"] == "pong"
            s.sendall(garbage)
            reply = protocol.read_frame(ch)[0]
            assert reply["type"] == "error" and reply["code"] == code
            try:  # closed: cleanly, or with a reset when the rest of the garbage was left unread
                assert protocol.read_frame(ch) is None
            except ConnectionResetError:
                pass
    with client_for(tcp_server) as c:  # the server is unharmed
        assert c.ping()["type"] == "pong"


def test_two_clients_at_once_get_their_own_results(tcp_server):
    results, errors = {}, []

    def work(k):
        try:
            img = image(48, 40, 10 + k)
            with client_for(tcp_server) as c:
                res = c.run("test_scale", {"image": img}, {"factor": 1.0 + k, "steps": 8, "step_seconds": 0.2},
                            seed=k)
            results[k] = (img, res)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for k, (img, res) in results.items():
        expected = img.to_numpy()[..., :3] * np.float32(1.0 + k)
        assert np.array_equal(res.image.to_numpy()[..., :3], expected)
        assert res.info["seed"] == k and res.info["params"]["factor"] == 1.0 + k
    a, b = results[0][1].info, results[1][1].info
    assert a["started"] < b["finished"] and b["started"] < a["finished"]  # they really ran at the same time
    assert a["thread"] != b["thread"]


def test_cancel_over_tcp(tcp_server):
    cancel = threading.Event()
    threading.Timer(0.6, cancel.set).start()
    with client_for(tcp_server) as c:
        with pytest.raises(WorkerCancelled):
            c.run("test_scale", {"image": image(8, 8, 3)}, {"steps": 200, "step_seconds": 0.05}, cancel=cancel)
        assert c.ping()["busy"] is False  # same connection, still good, and the job really ended


def test_tcp_without_a_token_file_is_refused():
    out = subprocess.run([sys.executable, "-m", "core", "serve", "--tcp", "127.0.0.1:0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--token-file" in out.stderr


def test_missing_token_file_is_created_owner_only(tmp_path):
    from core.worker import server
    path = str(tmp_path / "token")
    token = server.read_token(path)
    assert len(token) == 64 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert server.read_token(path) == token
    (tmp_path / "short").write_text("abc")
    with pytest.raises(Exception, match="too short"):
        server.read_token(str(tmp_path / "short"))


def test_unix_socket_and_losing_the_server(tmp_path):
    path = str(tmp_path / "w.sock")
    proc, address = start_server(tmp_path, "--unix", path)
    try:
        assert address == "unix:" + path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        c = client_for(address, token=None)
        img = Image(5, 4, 4, "u16", bytes(range(160)))
        assert c.run("test_scale", {"image": img}, output_dtype="u16").image.tobytes() == img.tobytes()
        threading.Timer(0.8, lambda: os.killpg(proc.pid, signal.SIGKILL)).start()
        with pytest.raises(WorkerError) as err:
            c.run("test_scale", {"image": img}, {"steps": 100, "step_seconds": 0.05})
        assert err.value.code == "connection-lost"
        proc.wait(timeout=10)
        with pytest.raises(WorkerError) as err:
            c.ping()
        assert err.value.code == "connection" and address in err.value.message
    finally:
        stop_server(proc)


def test_real_operator_over_tcp_matches_the_in_process_run(tcp_server):
    from core import registry
    if "denoise" not in [o.name for o in registry.operators()]:
        pytest.skip("the denoise operator is not registered in this checkout")
    from tests import scenes
    b = scenes.burst(scenes.portrait()[150:246, 180:276], n=4, seed=2, max_shift_px=2.0)
    frames = [Image.from_numpy(np.ascontiguousarray(f)) for f in b.frames]
    with client_for(tcp_server) as c:
        res = c.run("denoise", {"frames": frames}, seed=1, device="cpu")
    local = registry.run("denoise", {"frames": [f.copy() for f in b.frames]}, seed=1, device="cpu")
    got = res.image.to_numpy()
    assert got.shape == local.image.shape
    assert np.array_equal(got, local.image)  # the bridge changes no bit
    ref = int(res.info.get("reference_index", 0))  # the frame whose geometry the result keeps
    where = b.static_mask
    noisy = scenes.psnr(b.frames[ref], b.truths[ref], where=where)
    clean = scenes.psnr(got, b.truths[ref], where=where)
    print(f"denoise over TCP: reference {ref}, PSNR {noisy:.2f} -> {clean:.2f} dB; info {res.info}")
    assert clean > noisy + 2.0


# ---------------------------------------------------------------------------------------------------------------
# The hosts' shared local worker (plugin.local): one per user, started on demand, reused, owner-only, idle exit


def shared_client(**kw):
    return Client(config={}, python=sys.executable, core_root=ROOT, device="cpu", extra_args=["--test-ops"],
                  shared=True, **kw)


def _wait_gone(pid, timeout):
    from plugin import local
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not local.alive(pid):
            return True
        time.sleep(0.1)
    return False


def _stop_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    _wait_gone(pid, 10)


def test_shared_local_worker_starts_on_demand_is_reused_and_exits_when_idle(tmp_path, monkeypatch):
    """The first host to ask starts one server (its own session, so it outlives that host); a second Client,
    as a second GIMP run would make, reaches the same process with no token; the folder is 0700, the socket
    0600; after idle_timeout_s without a request the server exits, removes its socket, and the next run
    starts a fresh one."""
    from plugin import local
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    img = image(16, 16, 1)
    first = shared_client(idle_timeout_s=4)
    pid = None
    try:
        res = first.run("test_scale", {"image": img}, {"factor": 0.5})
        pid = first.worker_pid
        assert res.info["pid"] == pid and pid != os.getpid()
        first.close()   # a GIMP plug-in process ends after its run
        folder = local.folder()
        assert folder == str(tmp_path / "ai-portrait")
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        socks = [n for n in os.listdir(folder) if n.endswith(".sock")]
        assert len(socks) == 1 and stat.S_IMODE(os.stat(os.path.join(folder, socks[0])).st_mode) == 0o600
        second = shared_client(idle_timeout_s=4)
        res2 = second.run("test_scale", {"image": img}, {"factor": 0.25})
        assert res2.info["pid"] == pid, "the second run did not reuse the warm worker"
        assert np.allclose(res2.image.to_numpy(), img.to_numpy() * np.array([0.25, 0.25, 0.25, 1], np.float32))
        second.close()
        assert _wait_gone(pid, 30), "the idle shared worker did not exit"
        assert not [n for n in os.listdir(folder) if n.endswith(".sock")], "the socket was left behind"
        third = shared_client(idle_timeout_s=4)
        assert third.run("test_scale", {"image": img}).info["pid"] != pid
        pid = third.worker_pid
        third.close()
    finally:
        if pid:
            _stop_pid(pid)


def test_two_hosts_starting_at_once_get_one_shared_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    img = image(8, 8, 2)
    pids, errors = [], []

    def host():
        try:
            c = shared_client(idle_timeout_s=30)
            pids.append(c.run("test_scale", {"image": img}).info["pid"])
            c.close()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=host) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors, errors
        assert len(pids) == 3 and len(set(pids)) == 1, pids
    finally:
        for pid in set(pids):
            _stop_pid(pid)


def test_another_configuration_gets_its_own_worker_and_an_unsafe_folder_is_refused(tmp_path, monkeypatch):
    from plugin import local
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    a = local.key(["py", "/root", None, "--device", "cpu"], {"PYTHONPATH": "/root"})
    b = local.key(["py", "/root", None, "--device", "cuda"], {"PYTHONPATH": "/root"})
    c = local.key(["py", "/root", None, "--device", "cpu"], {"PYTHONPATH": "/root", "AI_PORTRAIT_TEST_OPS": "1"})
    assert len({a, b, c}) == 3
    os.chmod(local.folder(), 0o755)   # someone made it readable for others: refuse it, say what to do
    with pytest.raises(local.LocalWorkerError, match="only you"):
        local.folder()
    c = shared_client()
    with pytest.raises(WorkerError) as err:
        c.ping()
    assert err.value.code == "worker-start" and "remove it" in err.value.message


def test_without_shared_the_client_spawns_its_own_worker_and_the_settings_can_turn_sharing_off(tmp_path,
                                                                                              monkeypatch):
    """The stdio path stays what Client() without shared=True gives, and `shared_worker: false` in the
    settings makes the hosts spawn their own."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert not Client(config={}, python=sys.executable, core_root=ROOT).shared
    assert not Client(config={"shared_worker": False}, python=sys.executable, core_root=ROOT, shared=True).shared
    assert not Client(config={}, server="tcp://127.0.0.1:9", token="t" * 20, shared=True).shared
    c = Client(config={"shared_worker": False}, python=sys.executable, core_root=ROOT, extra_args=["--test-ops"],
               shared=True)
    try:
        pid = c.run("test_scale", {"image": image(4, 4, 3)}).info["pid"]
        assert pid == c.worker_pid and c._link.proc is not None   # a spawned child, over pipes
    finally:
        c.close()
    assert not os.path.exists(tmp_path / "ai-portrait") or not os.listdir(tmp_path / "ai-portrait")


def test_a_live_socket_is_never_taken_over_by_a_second_server(tmp_path):
    path = str(tmp_path / "w.sock")
    proc, _address = start_server(tmp_path, "--unix", path, "--private")
    try:
        res = subprocess.run([sys.executable, "-m", "core", "serve", "--unix", path], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and "another AI Portrait server is listening" in res.stderr, res.stderr
        c = client_for("unix:" + path, token=None)
        assert c.ping()["type"] == "pong"   # the first server still serves
        c.close()
    finally:
        stop_server(proc)
