"""Frames: round trips, limits checked before allocation, truncation, malformed headers, authentication."""
import io
import json
import struct

import pytest

from plugin import protocol


class BytesChannel:
    """A channel over an in-memory byte stream; counts how much was read."""

    def __init__(self, data=b""):
        self.inp = io.BytesIO(data)
        self.out = bytearray()
        self.read_bytes = 0

    def write_all(self, data):
        self.out += memoryview(data).cast("B")

    def read_into(self, view):
        n = self.inp.readinto(view)
        self.read_bytes += n
        return n


def frame_bytes(header, *buffers):
    ch = BytesChannel()
    protocol.write_frame(ch, header, buffers)
    return bytes(ch.out)


def test_round_trip_header_and_buffers():
    a = bytes(range(256)) * 3
    b = struct.pack("<4f", 0.5, -1.0, 1e30, 3.25)
    desc = [protocol.describe("a", 16, 12, 4, "u8"), protocol.describe("b", 1, 1, 4, "f32")]
    data = frame_bytes({"op": "echo", "id": 7, "buffers": desc, "text": "é ✓"}, a, b)
    assert data[:4] == protocol.MAGIC
    header, payload = protocol.read_frame(BytesChannel(data))
    assert header["id"] == 7 and header["text"] == "é ✓"
    views = protocol.split_payload(header, payload)
    assert bytes(views[0]) == a and bytes(views[1]) == b


def test_two_frames_in_a_row_then_clean_end():
    data = frame_bytes({"id": 1}) + frame_bytes({"id": 2}, b"xyz")
    ch = BytesChannel(data)
    assert protocol.read_frame(ch)[0]["id"] == 1
    h, p = protocol.read_frame(ch)
    assert h["id"] == 2 and bytes(p) == b"xyz"
    assert protocol.read_frame(ch) is None


def test_oversized_payload_refused_from_the_prefix_before_reading_or_allocating():
    # a prefix announcing 1 TB: the reader must refuse after the 16-byte prefix, without allocating 1 TB
    prefix = protocol.PREFIX.pack(protocol.MAGIC, 2, 1 << 40) + b"{}"
    ch = BytesChannel(prefix)
    with pytest.raises(protocol.FrameTooLarge) as err:
        protocol.read_frame(ch, max_payload=1 << 20)
    assert ch.read_bytes == protocol.PREFIX.size
    assert err.value.code == "too-large" and not err.value.recoverable


def test_oversized_header_refused():
    ch = BytesChannel(protocol.PREFIX.pack(protocol.MAGIC, protocol.MAX_HEADER_BYTES + 1, 0))
    with pytest.raises(protocol.FrameTooLarge):
        protocol.read_frame(ch)


@pytest.mark.parametrize("cut", [3, 10, 20, 30])
def test_truncated_frames(cut):
    data = frame_bytes({"op": "x", "id": 1}, b"0123456789")
    with pytest.raises(protocol.Truncated):
        protocol.read_frame(BytesChannel(data[:cut]))


def test_bad_magic_is_not_recoverable():
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.read_frame(BytesChannel(b"Traceback (most recent call last):\n"))
    assert err.value.code == "bad-frame" and not err.value.recoverable


def test_bad_json_header_skips_its_payload_and_stays_in_step():
    bad = b"{not json"
    data = protocol.PREFIX.pack(protocol.MAGIC, len(bad), 5) + bad + b"12345" + frame_bytes({"id": 9})
    ch = BytesChannel(data)
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.read_frame(ch)
    assert err.value.recoverable
    assert protocol.read_frame(ch)[0]["id"] == 9


def test_json_array_header_is_rejected():
    head = b"[1, 2]"
    with pytest.raises(protocol.ProtocolError):
        protocol.read_frame(BytesChannel(protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head))


@pytest.mark.parametrize("desc", [
    {"name": "x", "shape": [2, 2], "dtype": "u8"},
    {"name": "x", "shape": [2, 2, 5], "dtype": "u8"},
    {"name": "x", "shape": [0, 2, 3], "dtype": "u8"},
    {"name": "x", "shape": [2, 2, 3], "dtype": "f64"},
    {"name": "x", "shape": [2, 2, 3], "dtype": "u8", "byteorder": "middle"},
    {"name": "x", "shape": [2.0, 2, 3], "dtype": "u8"},
    "not a dict",
])
def test_invalid_descriptors(desc):
    with pytest.raises(protocol.BadRequest):
        protocol.split_payload({"id": 1, "buffers": [desc]}, bytearray(12))


def test_payload_size_must_match_the_descriptors():
    desc = protocol.describe("x", 2, 2, 3, "u16")  # 24 bytes
    assert len(protocol.split_payload({"buffers": [desc]}, bytearray(24))) == 1
    with pytest.raises(protocol.BadRequest):
        protocol.split_payload({"buffers": [desc]}, bytearray(23))


def test_header_with_nan_and_numpy_values_still_encodes():
    np = pytest.importorskip("numpy")
    data = frame_bytes({"info": {"psnr": float("inf"), "x": np.float32(1.5), "v": np.arange(3),
                                 "nested": [float("nan"), 2]}})
    header, _ = protocol.read_frame(BytesChannel(data))
    assert header["info"] == {"psnr": None, "x": 1.5, "v": [0, 1, 2], "nested": [None, 2]}


def test_auth_mac_depends_on_token_and_nonce():
    mac = protocol.auth_mac("secret-token-123456", "abc")
    assert protocol.check_mac("secret-token-123456", "abc", mac)
    assert not protocol.check_mac("secret-token-123457", "abc", mac)
    assert not protocol.check_mac("secret-token-123456", "abd", mac)
    assert not protocol.check_mac("secret-token-123456", "abc", None)
    assert "secret" not in json.dumps({"mac": mac})


def test_buffer_pool_reuses_only_buffers_nobody_holds():
    pool = protocol.BufferPool(min_bytes=1000)
    small = pool(10)
    assert isinstance(small, bytearray) and len(small) == 10
    a = pool(5000)
    a[:3] = b"abc"
    b = pool(4000)  # `a` is still held: a fresh buffer, never an alias
    b[:3] = b"xyz"
    assert bytes(a[:3]) == b"abc" and len(b) == 4000
    del a
    c = pool(3000)  # nothing refers to the 5000-byte buffer any more... but `b` holds the newest one
    c[:3] = b"123"
    assert bytes(b[:3]) == b"xyz"
    del b
    d = pool(4000)
    assert len(d) == 4000
    ref = d
    e = pool(100_000)  # larger than the cached buffer: fresh
    assert len(e) == 100_000 and ref is d
    reused = protocol.BufferPool(min_bytes=1000)
    x = reused(5000)
    base_id = id(x.obj)
    del x
    y = reused(4500)  # free again: the same memory, no new page faults
    assert id(y.obj) == base_id and len(y) == 4500
