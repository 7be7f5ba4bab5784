"""Pixel buffers on the host side: 8/16-bit integers, half and single floats, and Krita's BGRA integer layouts.

Standard library only; numpy is used when importable, for speed, and both paths give the same bytes:
  integer -> float: v / max, rounded once to float32 (max = 255 or 65535);
  float -> integer: round-half-even(float32(clip(v, 0, 1) * max)), NaN -> 0;
  float32 <-> float16: IEEE round-half-even, overflow -> infinity;
  u8 <-> u16: v * 257 and round(v / 257).
Buffers are little-endian unless an Image says byteorder='big'; channels are interleaved R, G, B(, A).
"""
from __future__ import annotations

import struct
import sys
from array import array

try:  # numpy is a speed-up only; GIMP's and Krita's Python may or may not have it
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the no-numpy subprocess tests
    _np = None

DTYPES = ("u8", "u16", "f16", "f32")
ITEMSIZE = {"u8": 1, "u16": 2, "f16": 2, "f32": 4}
MAXVAL = {"u8": 255, "u16": 65535}
KRITA_DEPTHS = {"U8": "u8", "U16": "u16", "F16": "f16", "F32": "f32"}
_NP_CODES = {"u8": "u1", "u16": "u2", "f16": "f2", "f32": "f4"}
_CHUNK = 1 << 20  # elements per conversion step: bounds the temporary memory of both paths
_BIG_HOST = sys.byteorder == "big"
_HALF_OVERFLOW = 65520.0  # the smallest magnitude that rounds to infinity in float16


def have_numpy():
    return _np is not None


class Image:
    """A width × height × channels raster: `data` is any bytes-like object of exactly the announced size."""

    __slots__ = ("width", "height", "channels", "dtype", "data", "byteorder")

    def __init__(self, width, height, channels, dtype, data, byteorder="little"):
        if dtype not in ITEMSIZE:
            raise ValueError("dtype must be one of %s, not %r" % (", ".join(DTYPES), dtype))
        if byteorder not in ("little", "big"):
            raise ValueError("byteorder must be 'little' or 'big'")
        self.width, self.height, self.channels = int(width), int(height), int(channels)
        if self.width < 1 or self.height < 1 or self.channels not in (1, 2, 3, 4):
            raise ValueError("an image needs a positive size and 1-4 channels, not %dx%dx%d"
                             % (self.width, self.height, self.channels))
        self.dtype = dtype
        self.byteorder = byteorder
        self.data = data
        have = memoryview(data).nbytes
        if have != self.nbytes:
            raise ValueError("%dx%dx%d %s needs %d bytes, got %d"
                             % (self.width, self.height, self.channels, dtype, self.nbytes, have))

    @property
    def nbytes(self):
        return self.width * self.height * self.channels * ITEMSIZE[self.dtype]

    @property
    def count(self):
        return self.width * self.height * self.channels

    def __repr__(self):
        return "Image(%d, %d, %d, %r)" % (self.width, self.height, self.channels, self.dtype)

    def tobytes(self):
        return bytes(memoryview(self.data).cast("B"))

    def to(self, dtype):
        """This image in `dtype`, little-endian (self when nothing changes)."""
        if dtype == self.dtype and self.byteorder == "little":
            return self
        data = convert(self.data, self.dtype, dtype, self.byteorder)
        return Image(self.width, self.height, self.channels, dtype, data)

    def to_numpy(self):
        """H×W×C numpy array viewing (not copying) the data; needs numpy."""
        if _np is None:
            raise RuntimeError("numpy is not available in this Python")
        code = ("<" if self.byteorder == "little" else ">") + _NP_CODES[self.dtype]
        return _np.frombuffer(self.data, dtype=code).reshape(self.height, self.width, self.channels)

    @classmethod
    def from_numpy(cls, arr):
        """From an H×W(×C) numpy array of uint8, uint16, float16 or float32."""
        if arr.ndim == 2:
            arr = arr[:, :, None]
        kinds = {"uint8": "u8", "uint16": "u16", "float16": "f16", "float32": "f32"}
        dtype = kinds.get(arr.dtype.name)
        if dtype is None:
            raise ValueError("unsupported array dtype %s" % arr.dtype)
        arr = _np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        return cls(arr.shape[1], arr.shape[0], arr.shape[2], dtype, arr.reshape(-1))

    @classmethod
    def from_krita(cls, data, width, height, depth, channels=4):
        """From Krita's `Node.pixelData()` bytes: integer RGBA depths are stored B, G, R, A; floats R, G, B, A.
        `depth` is Krita's colorDepth(): 'U8', 'U16', 'F16' or 'F32'."""
        dtype = _krita_dtype(depth)
        raw = memoryview(data).cast("B")
        if dtype in MAXVAL and channels >= 3:
            raw = swap_red_blue(raw, channels, ITEMSIZE[dtype])
        return cls(width, height, channels, dtype, raw)

    def to_krita(self, depth):
        """Bytes for Krita's `Node.setPixelData()` at colour depth `depth` (BGRA order for U8/U16)."""
        dtype = _krita_dtype(depth)
        img = self.to(dtype)
        raw = memoryview(img.data).cast("B")
        if dtype in MAXVAL and img.channels >= 3:
            raw = swap_red_blue(raw, img.channels, ITEMSIZE[dtype])
        return bytes(raw)


_OPAQUE = {"u8": b"\xff", "u16": b"\xff\xff", "f16": struct.pack("<e", 1.0), "f32": struct.pack("<f", 1.0)}


def to_rgba(img, gray=False):
    """`img` with 4 interleaved channels R, G, B, A in its own dtype (little-endian), values untouched: gray
    (1 channel Y, or 2 channels Y, A when `gray`) is copied into R, G and B; a missing alpha is opaque (the
    dtype's 1.0: 255, 65535, 1.0). Byte slicing only, so it is exact and fast without numpy too."""
    if img.byteorder != "little":
        img = img.to(img.dtype)
    c, size = img.channels, ITEMSIZE[img.dtype]
    if c == 4:
        return img
    if c == 2 and not gray:
        raise ValueError("a 2-channel image is gray + alpha: say gray=True")
    src = memoryview(img.data).cast("B")
    n = img.width * img.height
    out = bytearray(n * 4 * size)
    color = [0, 0, 0] if c in (1, 2) else [0, 1, 2]
    alpha = 1 if c == 2 else None
    for dst_ch, src_ch in enumerate(color + [alpha]):
        for k in range(size):
            if src_ch is None:
                out[dst_ch * size + k::4 * size] = _OPAQUE[img.dtype][k:k + 1] * n
            else:
                out[dst_ch * size + k::4 * size] = src[src_ch * size + k::c * size]
    return Image(img.width, img.height, 4, img.dtype, out)


def _krita_dtype(depth):
    try:
        return KRITA_DEPTHS[str(depth).upper()]
    except KeyError:
        raise ValueError("unsupported Krita colour depth %r (expected U8, U16, F16 or F32)" % (depth,)) from None


def swap_red_blue(data, channels, itemsize):
    """Exchange channels 0 and 2 of interleaved pixels (RGBA <-> BGRA); returns a new bytearray."""
    src = memoryview(data).cast("B")
    if _np is not None:
        a = _np.frombuffer(src, dtype=_np.uint8).reshape(-1, channels, itemsize)
        out = _np.empty_like(a)
        out[:, 0], out[:, 1:], out[:, 2] = a[:, 2], a[:, 1:], a[:, 0]
        return bytearray(out.tobytes())
    out = bytearray(src)
    step = channels * itemsize
    for k in range(itemsize):
        out[k::step] = src[2 * itemsize + k::step]
        out[2 * itemsize + k::step] = src[k::step]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Conversions


def convert(data, src, dst, byteorder="little"):
    """Convert a flat buffer of `src` values to `dst` (little-endian). Returns a bytes-like object."""
    if src not in ITEMSIZE or dst not in ITEMSIZE:
        raise ValueError("dtypes must be among %s" % ", ".join(DTYPES))
    raw = memoryview(data).cast("B")
    if raw.nbytes % ITEMSIZE[src]:
        raise ValueError("buffer length %d is not a multiple of %s's item size" % (raw.nbytes, src))
    if _np is not None:
        return _np_convert(raw, src, dst, byteorder)
    return _py_convert(raw, src, dst, byteorder)


def _np_convert(raw, src, dst, byteorder):
    order = "<" if byteorder == "little" else ">"
    a = _np.frombuffer(raw, dtype=order + _NP_CODES[src])
    out = _np.empty(a.size, dtype="<" + _NP_CODES[dst])
    for s in range(0, a.size, _CHUNK):
        out[s:s + _CHUNK] = _np_values(a[s:s + _CHUNK], src, dst)
    return out


def _np_values(a, src, dst):
    if src == dst:
        return a
    if src == "u8" and dst == "u16":
        return a.astype(_np.uint16) * _np.uint16(257)
    if src == "u16" and dst == "u8":
        return ((a.astype(_np.uint32) + 128) // 257).astype(_np.uint8)
    if src in MAXVAL:
        f = a.astype(_np.float32) / _np.float32(MAXVAL[src])
    else:
        f = a.astype(_np.float32)
    if dst == "f32":
        return f
    if dst == "f16":
        with _np.errstate(over="ignore"):
            return f.astype(_np.float16)
    f = _np.nan_to_num(f, nan=0.0, posinf=1.0, neginf=0.0)
    _np.clip(f, 0.0, 1.0, out=f)
    f *= _np.float32(MAXVAL[dst])
    return _np.rint(f).astype(_np.uint8 if dst == "u8" else _np.uint16)


_TABLES = {}


def _to_f32_table(src):
    """Packed float32 bytes of v / max for every integer v (built once)."""
    table = _TABLES.get(src)
    if table is None:
        m = float(MAXVAL[src])
        pack = struct.Struct("<f").pack
        table = [pack(v / m) for v in range(MAXVAL[src] + 1)]
        _TABLES[src] = table
    return table


def _py_ints(raw, dtype, byteorder):
    if dtype == "u8":
        return raw
    a = array("H")
    a.frombytes(raw)
    if (byteorder == "big") != _BIG_HOST:
        a.byteswap()
    return a


def _py_floats(raw, dtype, byteorder):
    """A sequence of Python floats from f16/f32 bytes."""
    if dtype == "f32":
        a = array("f")
        a.frombytes(raw)
        if (byteorder == "big") != _BIG_HOST:
            a.byteswap()
        return a
    n = raw.nbytes // 2
    return struct.unpack(("<" if byteorder == "little" else ">") + "%de" % n, raw)


def _py_convert(raw, src, dst, byteorder):
    size = ITEMSIZE[src]
    parts = []
    step = _CHUNK * size
    for s in range(0, raw.nbytes, step):
        parts.append(_py_chunk(raw[s:s + step], src, dst, byteorder))
    return b"".join(parts)


def _py_chunk(raw, src, dst, byteorder):
    if src == dst:
        if src == "u8" or byteorder == "little":
            return bytes(raw)
        return _swap_items(raw, ITEMSIZE[src])
    if src in MAXVAL and dst in MAXVAL:
        ints = _py_ints(raw, src, byteorder)
        if src == "u8":
            out = array("H", [v * 257 for v in ints])
        else:
            return bytes([(v + 128) // 257 for v in ints])
        return _little(out)
    if src in MAXVAL:
        f32 = b"".join(map(_to_f32_table(src).__getitem__, _py_ints(raw, src, byteorder)))
        if dst == "f32":
            return f32
        return _py_chunk(memoryview(f32), "f32", dst, "little")
    values = _py_floats(raw, src, byteorder)
    if dst == "f32":
        return _little(array("f", values))
    if dst == "f16":
        inf = float("inf")
        safe = [v if -_HALF_OVERFLOW < v < _HALF_OVERFLOW or v != v else (inf if v > 0 else -inf) for v in values]
        return struct.pack("<%de" % len(safe), *safe)
    m = float(MAXVAL[dst])
    # clip, scale in double (exact), round to float32 like numpy's float32 multiply, then round half even
    scaled = array("f", [(v * m if v < 1.0 else m) if v > 0.0 else 0.0 for v in values])
    ints = [round(v) for v in scaled]
    if dst == "u8":
        return bytes(ints)
    return _little(array("H", ints))


def _swap_items(raw, size):
    """Big-endian items to little-endian: reverse the bytes of each `size`-byte item."""
    out = bytearray(raw.nbytes)
    for k in range(size):
        out[k::size] = raw[size - 1 - k::size]
    return bytes(out)


def _little(a):
    if _BIG_HOST:
        a.byteswap()
    return a.tobytes()
