"""Frames between a host and the core worker: standard library only, Python 3.8+.

A frame is a fixed 16-byte prefix, a JSON header and a raw payload:

    b"AIP1" | header length (u32, little-endian) | payload length (u64, little-endian) | header | payload

The payload is the concatenation of the buffers the header lists in `buffers`, each described as
{"name", "shape": [height, width, channels], "dtype": "u8"|"u16"|"f16"|"f32", "byteorder": "little"|"big"}.
Both lengths sit in the prefix, so a reader refuses an oversized request before it allocates anything and can
skip the payload of a frame whose header it cannot parse (it stays in step with the stream).

Local pipes can carry large payloads through shared memory instead: a pipe copies every byte through the kernel
twice, about 1 s for a 24 MP float image here. Each side of a local worker keeps one reusable memory-mapped file
(`SharedFile`) for what it sends; a large frame's payload is copied into it and the header says where
({"shm": {"path", "size"}}, payload length 0). A side that can read such frames says so with "shm_ok": true on
every frame it sends, and nobody sends them to a peer that has not said so (older peers keep the plain pipe).
Sockets never use this: a remote peer must not name files on this machine.

Requests (host -> worker) carry "op" and an "id": 'auth', 'list', 'echo', 'run', 'cancel', 'ping', 'shutdown'.
Replies (worker -> host) carry "type" and the request's "id": 'hello' (sent first, unasked), 'progress', 'result',
'cancelled', 'error' (with "code" and "message" fit for a dialog, "detail" for a bug's traceback), 'pong'.

    hello   {"version", "pid", "max_request_bytes", "auth": bool, "nonce"}; with auth the first request must be
            {"op": "auth", "mac": HMAC-SHA256(token, nonce) in hex, "cnonce": the client's own nonce}, answered
            by 'pong' {"proof": server_proof(token, nonce, cnonce)} or 'error' bad-token. A client that has a
            token sends no image data before the proof checks out (a server saying "no auth" is refused).
    run     {"operator", "params": {}, "seed": int, "device", "output_dtype", "buffers": [...]}: a buffer's
            "name" is the operator's input; "list": true appends it to that input's list (frames, in order);
            "role": "mask" makes it the soft selection. Any dtype: the worker converts to float32 itself.
            Answers: 'progress' {"fraction", "message"} (at most ten a second), then one of 'result'
            {"buffers": [image], "info": {...}}, 'cancelled', 'error'.
    cancel  {"target": run id}: the job stops at its next Job.progress checkpoint and answers 'cancelled'
    list    answered by 'result' {"operators": registry JSON};   echo: 'result' with the same buffers
"""
from __future__ import annotations

import hashlib
import hmac
import json
import mmap
import os
import re
import stat
import struct
import sys
import tempfile
import threading
import weakref

MAGIC = b"AIP1"
VERSION = 1
PREFIX = struct.Struct("<4sIQ")
MAX_HEADER_BYTES = 1 << 20           # parameters and info are small; a bigger header is garbage
DEFAULT_MAX_REQUEST_BYTES = 4 << 30  # eight 24 MP float RGBA frames; the worker may be told otherwise
MAX_HEADER_DEPTH = 32                # requests nest three levels; deeper JSON is an attack on the parser
GROW_FROM_BYTES = 16 << 20           # a larger payload's buffer grows as its bytes arrive, never on a promise
ITEMSIZE = {"u8": 1, "u16": 2, "f16": 2, "f32": 4}
BYTEORDERS = ("little", "big")
_CHUNK = 1 << 20


class ProtocolError(Exception):
    """A frame that breaks the protocol. `recoverable`: the stream is still in step after it (the payload was
    consumed), so the reader may answer and carry on; otherwise the connection must be closed."""

    code = "bad-frame"

    def __init__(self, message, recoverable=False, request_id=None):
        super().__init__(message)
        self.recoverable = recoverable
        self.request_id = request_id


class FrameTooLarge(ProtocolError):
    code = "too-large"


class Truncated(ProtocolError):
    code = "truncated"


class BadRequest(ProtocolError):
    """The frame is well formed but its header does not describe a valid request (the stream is in step)."""
    code = "bad-request"

    def __init__(self, message, request_id=None):
        super().__init__(message, recoverable=True, request_id=request_id)


# ---------------------------------------------------------------------------------------------------------------
# Channels: the same frames over a pair of pipes or over a socket.


class BufferPool:
    """Reuses one large receive buffer once nothing refers to it any more.

    The first touch of fresh memory costs page faults (about 1 s per 384 MB in a small VM, against 0.1 s to copy
    it); a warm worker that receives image after image should pay that once. CPython's reference count tells
    whether any view of the buffer (a numpy array of a finished job) is still alive."""

    def __init__(self, min_bytes=1 << 24, max_bytes=1 << 30):
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes  # a long burst is a one-off: don't keep gigabytes for the next call
        self._buf = None
        self._lock = threading.Lock()

    def __call__(self, n):
        if n < self.min_bytes or n > self.max_bytes:
            return bytearray(n)
        warm = self.take_warm(n)
        if warm is not None:
            return warm
        return self.keep(bytearray(n), n)

    def take_warm(self, n):
        """The kept buffer cut to n bytes when it is free and large enough (no new memory), else None."""
        if n < self.min_bytes or n > self.max_bytes:
            return None
        with self._lock:
            buf = self._buf
            # references: self._buf, the local `buf`, getrefcount's argument
            if buf is not None and len(buf) >= n and sys.getrefcount(buf) <= 3:
                return memoryview(buf)[:n]
            return None

    def keep(self, buf, n):
        """Adopt a filled buffer of n bytes as the one to reuse (when its size is worth keeping)."""
        if n < self.min_bytes or n > self.max_bytes:
            return buf
        with self._lock:
            self._buf = buf
        return memoryview(buf)[:n]


SHARED_MIN_BYTES = 4 << 20     # below this a pipe is as fast and needs no file
SHARED_PREFIX = "ai-portrait-shm-"
# Our files are named PREFIX<pid>-<pid namespace>-<random>: a sweep can tell a file whose creator died (a killed
# host leaves its file behind) from a live peer's, and never judges a pid of another namespace (a sandbox).
_SHARED_NAME = re.compile(re.escape(SHARED_PREFIX) + r"(\d+)-([0-9a-f]+)-")


def shared_dir():
    """Where shared payload files live: RAM-backed /dev/shm where there is one, else the temporary folder."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


class SharedFile:
    """The sending side's reusable memory-mapped file. It is grown (replaced) when a payload does not fit and
    removed by close(); reusing it keeps its pages warm, so later frames cost one memory copy."""

    def __init__(self):
        self.path = None
        self._mm = None
        self._remove = None  # removes the file even if close() is never called (a host dropping its client)

    def put(self, views, total):
        if self._mm is None or len(self._mm) < total:
            self.close()
            size = -(-total // (16 << 20)) * (16 << 20)  # round up to 16 MB so small growth reuses the file
            fd, path = tempfile.mkstemp(prefix="%s%d-%s-" % (SHARED_PREFIX, os.getpid(), _pid_namespace()),
                                        dir=shared_dir())
            try:
                os.ftruncate(fd, size)
                self._mm = mmap.mmap(fd, size)
            except (OSError, ValueError):
                os.close(fd)
                _unlink(path)
                raise
            os.close(fd)
            self.path = path
            self._remove = weakref.finalize(self, _unlink, path)
        offset = 0
        for v in views:
            self._mm[offset:offset + len(v)] = v
            offset += len(v)
        return {"path": self.path, "size": total}

    def close(self):
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._remove is not None:
            self._remove()
            self._remove = None
        self.path = None


class SharedFileReader:
    """The receiving side: maps the peer's file (kept mapped while its name stays the same) and copies out."""

    def __init__(self):
        self.path = None
        self._mm = None

    def open(self, path, size):
        """Map the peer's file `path` (checked to be one of ours) and check it holds `size` bytes."""
        folder, name = os.path.split(os.path.abspath(str(path)))
        if not name.startswith(SHARED_PREFIX) or folder != os.path.abspath(shared_dir()):
            raise ProtocolError("refused a shared payload outside AI Portrait's own files", recoverable=True)
        if path != self.path or self._mm is None or len(self._mm) < size:
            self.release()
            try:
                with open(path, "rb") as fh:
                    self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                raise Truncated("the shared payload file is gone") from None
            self.path = path
        if len(self._mm) < size:
            raise Truncated("the shared payload file is shorter than its frame says")

    def read_into(self, path, size, view):
        self.open(path, size)
        with memoryview(self._mm) as mv:
            view[:size] = mv[:size]

    def release(self):
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def close(self, unlink_peer=False):
        """Unmap; with unlink_peer, also remove the peer's file (the peer is gone and cannot)."""
        self.release()
        if unlink_peer and self.path is not None:
            _unlink(self.path)
        self.path = None


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _pid_namespace():
    """The pid namespace's inode in hex on Linux ('0' elsewhere): pids mean something only within one."""
    try:
        return "%x" % os.stat("/proc/self/ns/pid").st_ino
    except (OSError, AttributeError):
        return "0"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's
        return True
    return True


def sweep_stale_shared(folder=None):
    """Remove our shared payload files whose creating process is gone (a host or worker that was killed);
    returns the names removed. Only files of this user, with our prefix, named in this pid namespace."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there; files die with their handles
        return []
    folder = folder or shared_dir()
    ns, me = _pid_namespace(), os.getpid()
    uid = os.getuid() if hasattr(os, "getuid") else None
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _SHARED_NAME.match(name)
        if m is None or m.group(2) != ns:
            continue
        pid = int(m.group(1))
        if pid == me or _pid_alive(pid):
            continue
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or (uid is not None and info.st_uid != uid):
            continue
        _unlink(path)
        removed.append(name)
    return removed


def widen_pipe(fd, size=1 << 20):
    """Grow a Linux pipe from 64 KiB to `size` (fewer system calls for large frames); a no-op elsewhere."""
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError, ValueError):
        pass


class PipeChannel:
    """Unbuffered reads and writes on file objects (a child's stdin/stdout, or the worker's own fds).

    With shared=True large payloads travel through shared memory once the peer has said it reads them."""

    def __init__(self, reader, writer, shared=False):
        self._r = reader
        self._w = writer
        self.shared_out = SharedFile() if shared else None
        self.shared_in = SharedFileReader() if shared else None
        self.peer_reads_shared = False

    def write_all(self, data):
        view = memoryview(data).cast("B")
        while len(view):
            n = self._w.write(view)
            if n is None:  # non-blocking writer had no room; our pipes are blocking, so treat as a stall
                n = 0
            view = view[n:]
        flush = getattr(self._w, "flush", None)
        if flush is not None:
            flush()

    def read_into(self, view):
        return self._r.readinto(view) or 0

    def close(self, peer_gone=True):
        for f in (self._w, self._r):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        self.release_shared(peer_gone)

    def release_shared(self, peer_gone=True):
        """Remove our shared file, and the peer's too when it is gone (a killed worker cannot clean up)."""
        if self.shared_out is not None:
            self.shared_out.close()
        if self.shared_in is not None:
            self.shared_in.close(unlink_peer=peer_gone)


class SocketChannel:
    def __init__(self, sock):
        self.sock = sock

    def write_all(self, data):
        self.sock.sendall(memoryview(data).cast("B"))

    def read_into(self, view):
        return self.sock.recv_into(view)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _read_exact(channel, view):
    """Fill `view`; return the number of bytes read (less than its length only at end of stream)."""
    got = 0
    total = len(view)
    while got < total:
        n = channel.read_into(view[got:])
        if not n:
            return got
        got += n
    return got


def _skip(channel, count):
    scratch = memoryview(bytearray(min(count, _CHUNK) or 1))
    while count > 0:
        n = channel.read_into(scratch[:min(count, len(scratch))])
        if not n:
            return False
        count -= n
    return True


# ---------------------------------------------------------------------------------------------------------------
# Frames


def encode_header(header):
    try:
        text = json.dumps(header, separators=(",", ":"), allow_nan=False, default=_json_default)
    except ValueError:  # NaN or infinity somewhere in an info dict: JSON has no such numbers
        text = json.dumps(_finite(json.loads(json.dumps(header, default=_json_default))), separators=(",", ":"))
    return text.encode("utf-8")


def _finite(value):
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json_default(value):
    # numpy scalars and arrays in an operator's info dict, paths, tuples of odd types
    for attr in ("item", "tolist"):
        fn = getattr(value, attr, None)
        if callable(fn):
            try:
                return fn()
            except (TypeError, ValueError):
                pass
    return str(value)


def write_frame(channel, header, buffers=()):
    """Send one frame. `buffers` are bytes-like objects (bytes, bytearray, array, C-contiguous numpy arrays)."""
    views = [memoryview(b).cast("B") for b in buffers]
    payload = sum(len(v) for v in views)
    if getattr(channel, "shared_in", None) is not None:
        header = dict(header, shm_ok=True)
    shared = getattr(channel, "shared_out", None)
    if shared is not None and getattr(channel, "peer_reads_shared", False) and payload >= SHARED_MIN_BYTES:
        header = dict(header, shm=shared.put(views, payload))
        views, payload = [], 0
    head = encode_header(header)
    if len(head) > MAX_HEADER_BYTES:
        raise ProtocolError("frame header too large (%d bytes)" % len(head))
    channel.write_all(PREFIX.pack(MAGIC, len(head), payload) + head)
    for v in views:
        channel.write_all(v)


def read_frame(channel, max_payload=DEFAULT_MAX_REQUEST_BYTES, alloc=bytearray):
    """Read one frame: (header dict, payload bytearray), or None at a clean end of stream.

    `alloc(n)` returns a writable buffer of n bytes for the payload (a pool may hand out a reused one).
    Raises ProtocolError: bad magic (not recoverable), header or payload over the limits (FrameTooLarge, checked
    from the prefix before any allocation, not recoverable), end of stream inside a frame (Truncated), or a
    header that is not a JSON object (recoverable: the payload was skipped)."""
    prefix = bytearray(PREFIX.size)
    got = _read_exact(channel, memoryview(prefix))
    if got == 0:
        return None
    if got < PREFIX.size:
        raise Truncated("stream ended inside a frame prefix")
    magic, head_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("not an AI Portrait frame (bad magic %r)" % bytes(magic))
    if head_len > MAX_HEADER_BYTES:
        raise FrameTooLarge("frame header of %d bytes is over the %d-byte limit" % (head_len, MAX_HEADER_BYTES))
    if payload_len > max_payload:
        raise FrameTooLarge("request of %s is over this worker's limit of %s"
                            % (_mb(payload_len), _mb(max_payload)))
    head = bytearray(head_len)
    if _read_exact(channel, memoryview(head)) < head_len:
        raise Truncated("stream ended inside a frame header")
    not_json = ProtocolError("frame header is not a JSON object", recoverable=True)
    too_deep = BadRequest("frame header nests deeper than %d levels" % MAX_HEADER_DEPTH)
    problem = None
    try:
        header = json.loads(head.decode("utf-8"))
        if not isinstance(header, dict):
            problem = not_json
        elif not _shallow(header, MAX_HEADER_DEPTH):
            problem = too_deep
    except (UnicodeDecodeError, ValueError):
        problem = not_json
    except RecursionError:  # nesting deep enough to exhaust the parser's stack
        problem = too_deep
    if problem is not None:
        if not _skip(channel, payload_len):
            raise Truncated("stream ended inside a frame payload")
        raise problem
    if header.pop("shm_ok", False) and hasattr(channel, "peer_reads_shared"):
        channel.peer_reads_shared = True
    shared = header.pop("shm", None)
    if shared is not None:
        return header, _read_shared(channel, header, shared, payload_len, max_payload, alloc)
    return header, _read_payload(channel, payload_len, alloc, header.get("id"))


def _shallow(value, limit):
    """No list or object in `value` nests deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return False
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return True


def _read_payload(channel, n, alloc, rid):
    """The payload of n bytes. Up to GROW_FROM_BYTES it goes into alloc(n); a larger one goes into a free
    pooled buffer when there is one, else into a buffer that doubles as the bytes arrive: a peer that declares
    gigabytes and sends a few bytes costs GROW_FROM_BYTES, not what it declared."""
    if n <= GROW_FROM_BYTES:
        payload = alloc(n)
        if _read_exact(channel, memoryview(payload)) < n:
            raise Truncated("stream ended inside a frame payload", request_id=rid)
        return payload
    warm = getattr(alloc, "take_warm", None)
    payload = warm(n) if warm is not None else None
    if payload is not None:
        if _read_exact(channel, payload) < n:
            raise Truncated("stream ended inside a frame payload", request_id=rid)
        return payload
    buf = bytearray(GROW_FROM_BYTES)
    got = 0
    while True:
        view = memoryview(buf)
        try:
            got += _read_exact(channel, view[got:])
        finally:
            try:
                view.release()
            except BufferError:  # an exception's traceback still holds the slice; the buffer is dropped anyway
                pass
        if got < len(buf):
            raise Truncated("stream ended inside a frame payload", request_id=rid)
        if got == n:
            break
        # bytes(k) is calloc'ed (untouched zero pages); realloc of a large block remaps rather than copies
        buf += bytes(min(n, 2 * len(buf)) - len(buf))
    keep = getattr(alloc, "keep", None)
    return keep(buf, n) if keep is not None else buf


def _read_shared(channel, header, shared, payload_len, max_payload, alloc):
    reader = getattr(channel, "shared_in", None)
    rid = header.get("id")
    if payload_len:
        if not _skip(channel, payload_len):
            raise Truncated("stream ended inside a frame payload", request_id=rid)
        raise ProtocolError("a frame cannot carry both a shared and an inline payload", True, rid)
    if reader is None:
        raise ProtocolError("shared payloads are not accepted on this connection", recoverable=True,
                            request_id=rid)
    try:
        size = int(shared["size"])
        path = str(shared["path"])
    except (TypeError, KeyError, ValueError):
        raise ProtocolError("bad shared payload description", recoverable=True, request_id=rid) from None
    if size < 0 or size > max_payload:
        raise FrameTooLarge("request of %s is over this worker's limit of %s" % (_mb(size), _mb(max_payload)))
    reader.open(path, size)  # the file must hold `size` bytes before we reserve memory for them
    payload = alloc(size)
    reader.read_into(path, size, memoryview(payload))
    return payload


def _mb(n):
    return "%.1f MB" % (n / 1e6)


# ---------------------------------------------------------------------------------------------------------------
# Buffer descriptors


def describe(name, width, height, channels, dtype, byteorder="little", **extra):
    d = {"name": name, "shape": [int(height), int(width), int(channels)], "dtype": dtype, "byteorder": byteorder}
    d.update(extra)
    return d


def buffer_nbytes(desc):
    """Bytes a descriptor announces; BadRequest if it is not a valid H×W×C image of a known dtype."""
    if not isinstance(desc, dict):
        raise BadRequest("a buffer descriptor must be an object")
    shape = desc.get("shape")
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)):
        raise BadRequest("buffer '%s': shape must be [height, width, channels]" % desc.get("name"))
    h, w, c = shape
    if h < 1 or w < 1 or c not in (1, 2, 3, 4):
        raise BadRequest("buffer '%s': shape %r is not an image of 1-4 channels" % (desc.get("name"), shape))
    dtype = desc.get("dtype")
    if dtype not in ITEMSIZE:
        raise BadRequest("buffer '%s': dtype must be one of %s" % (desc.get("name"), ", ".join(ITEMSIZE)))
    if desc.get("byteorder", "little") not in BYTEORDERS:
        raise BadRequest("buffer '%s': byteorder must be 'little' or 'big'" % desc.get("name"))
    return h * w * c * ITEMSIZE[dtype]


def split_payload(header, payload):
    """The payload cut into one memoryview per descriptor in header['buffers'] (no copies)."""
    descs = header.get("buffers") or []
    if not isinstance(descs, list):
        raise BadRequest("'buffers' must be a list", request_id=header.get("id"))
    sizes = []
    for d in descs:
        try:
            sizes.append(buffer_nbytes(d))
        except BadRequest as exc:
            exc.request_id = header.get("id")
            raise
    if sum(sizes) != len(payload):
        raise BadRequest("the buffers announce %d bytes but the payload holds %d" % (sum(sizes), len(payload)),
                         request_id=header.get("id"))
    view = memoryview(payload)
    out = []
    pos = 0
    for n in sizes:
        out.append(view[pos:pos + n])
        pos += n
    return out


# ---------------------------------------------------------------------------------------------------------------
# Authentication: the token never crosses the wire; the client answers the server's nonce with an HMAC.


def auth_mac(token, nonce):
    return hmac.new(token.encode("utf-8"), nonce.encode("ascii"), hashlib.sha256).hexdigest()


def new_nonce():
    import secrets
    return secrets.token_hex(16)


def is_nonce(value):
    """A nonce as both sides make them: 16 to 128 hex digits (anything else is refused before hashing)."""
    return (isinstance(value, str) and 16 <= len(value) <= 128
            and all(c in "0123456789abcdefABCDEF" for c in value))


def server_proof(token, nonce, client_nonce):
    """The server's answer to the client's nonce: proves it knows the token too (mutual authentication), so a
    client that has a token sends no pixels to a server that merely says it needs none. The label keeps it
    from ever equalling a client's MAC."""
    msg = b"aip1-server-proof\0" + nonce.encode("ascii") + b"\0" + client_nonce.encode("ascii")
    return hmac.new(token.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def _same_hex(expected, given):
    # compare_digest refuses non-ASCII str with TypeError: a hostile MAC must read as a wrong one
    if not isinstance(given, str) or len(given) > 256 or not given.isascii():
        return False
    return hmac.compare_digest(expected, given)


def check_mac(token, nonce, mac):
    return _same_hex(auth_mac(token, nonce), mac)


def check_proof(token, nonce, client_nonce, proof):
    if not (is_nonce(nonce) and is_nonce(client_nonce)):
        return False
    return _same_hex(server_proof(token, nonce, client_nonce), proof)
