"""Reading and writing image files without losing bits.

Supported: PNG (8/16-bit), JPEG (8-bit), TIFF (8/16-bit, 32-bit float), and NumPy `.npy`. Pixels come back as
float32 H×W×C in channel order R, G, B(, A), scaled so that integer white is 1.0; float files keep their values
(HDR above 1 included). `ImageFile.depth` remembers the stored depth so that the output can be written at the
same depth: 16-bit in, 16-bit out; float in, float out. EXIF orientation is applied on read.

Writes are atomic: the file is encoded in memory, written to a temporary name beside the target and renamed,
so a failure never leaves a half-written or clobbered file.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

DEPTHS = ("u8", "u16", "f32")
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".webp", ".bmp")
# Which stored depths each output format can hold; the first entry is the fallback.
WRITE_DEPTHS = {
    ".png": ("u16", "u8"),
    ".jpg": ("u8",), ".jpeg": ("u8",),
    ".tif": ("f32", "u16", "u8"), ".tiff": ("f32", "u16", "u8"),
    ".npy": ("f32", "u16", "u8"),
}
_SCALE = {"u8": 255.0, "u16": 65535.0}


@dataclass
class ImageFile:
    pixels: np.ndarray  # float32 H×W×C, C in 1..4
    depth: str          # 'u8', 'u16' or 'f32'
    path: str = ""

    @property
    def size(self):
        return self.pixels.shape[1], self.pixels.shape[0]


def read_image(path: str | os.PathLike) -> ImageFile:
    """Read an image file as float32 H×W×C (RGB order), honouring EXIF orientation."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"file not found: {p}", "bad-file")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an image file", "bad-file")
    ext = p.suffix.lower()
    if ext == ".npy":
        return _read_npy(p)
    if ext in (".tif", ".tiff"):
        raw = _read_tiff(p)
        if raw is not None:
            pixels, depth = _to_float(raw, p.name)
            pixels = apply_orientation(pixels, _exif_orientation(p))
            return ImageFile(np.ascontiguousarray(pixels), depth, str(p))
    import cv2

    data = np.fromfile(str(p), dtype=np.uint8)
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if raw is None:
        raise UserError(f"cannot read {p.name}: not a supported image (PNG, JPEG, TIFF, NPY) or the file is "
                        f"damaged", "bad-file")
    if raw.ndim == 3 and raw.shape[2] >= 3:
        order = [2, 1, 0] + ([3] if raw.shape[2] == 4 else [])
        raw = raw[:, :, order]
    pixels, depth = _to_float(raw, p.name)
    pixels = apply_orientation(pixels, _exif_orientation(p))
    return ImageFile(np.ascontiguousarray(pixels), depth, str(p))


def _read_tiff(p: Path):
    """TIFF samples as stored (RGB order), or None to fall back to OpenCV.

    tifffile is preferred: OpenCV reads 8-bit RGBA TIFF through libtiff's RGBA interface, which premultiplies
    the colour by alpha and so changes the user's pixels.
    """
    try:
        import tifffile
        with tifffile.TiffFile(str(p)) as tif:
            page = tif.pages[0]
            raw = page.asarray()
            separate = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    except Exception:  # damaged file or a compression tifffile cannot decode without extra codecs
        return None
    if raw.ndim == 3 and separate:
        raw = np.moveaxis(raw, 0, -1)
    if raw.ndim == 3 and raw.shape[2] > 4:
        raw = raw[:, :, :4]
    return raw


def _read_npy(p: Path) -> ImageFile:
    try:
        raw = np.load(str(p), allow_pickle=False)
    except Exception as exc:  # numpy raises several types for damaged files
        raise UserError(f"cannot read {p.name}: {exc}", "bad-file") from None
    if raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[2] > 4) or raw.size == 0:
        raise UserError(f"{p.name} holds an array of shape {raw.shape}; expected H×W or H×W×C (C ≤ 4)",
                        "bad-file")
    pixels, depth = _to_float(raw, p.name)
    return ImageFile(np.ascontiguousarray(pixels), depth, str(p))


def _to_float(raw: np.ndarray, name: str):
    if raw.ndim == 2:
        raw = raw[:, :, None]
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0, "u8"
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0, "u16"
    if raw.dtype.kind == "f":
        out = raw.astype(np.float32)
        if not np.isfinite(out).all():
            raise UserError(f"{name} contains NaN or infinite values", "bad-file")
        return out, "f32"
    if raw.dtype == bool:
        return raw.astype(np.float32), "u8"
    raise UserError(f"{name}: unsupported sample type {raw.dtype}", "bad-file")


def _exif_orientation(p: Path) -> int:
    """EXIF orientation tag (1..8), 1 when absent or unreadable."""
    if p.suffix.lower() not in (".jpg", ".jpeg", ".tif", ".tiff", ".png", ".webp"):
        return 1
    try:
        from PIL import Image
        with Image.open(str(p)) as im:
            value = int(im.getexif().get(0x0112, 1))
    except Exception:  # Pillow cannot open every float TIFF; orientation is then the identity
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip stored pixels so they display upright (EXIF orientation semantics)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1, :],
    }
    return ops[orientation](pixels)


def output_depth(path: str | os.PathLike, wanted: str) -> str:
    """The depth a file at `path` will be written at, given the depth we would like to keep."""
    ext = Path(path).suffix.lower()
    if ext not in WRITE_DEPTHS:
        raise UserError(f"cannot write '{ext or Path(path).name}' files: use .png, .jpg, .tif or .npy",
                        "bad-file")
    allowed = WRITE_DEPTHS[ext]
    if wanted in allowed:
        return wanted
    # float into PNG keeps the most precision as 16-bit; anything into JPEG is 8-bit.
    return allowed[0]


def quantize(pixels: np.ndarray, depth: str) -> np.ndarray:
    """float32 -> stored samples at `depth` (round to nearest, clipped for integers)."""
    if depth == "f32":
        return np.asarray(pixels, dtype=np.float32)
    scale = _SCALE[depth]
    dtype = np.uint8 if depth == "u8" else np.uint16
    return np.rint(np.clip(pixels, 0.0, 1.0) * scale).astype(dtype)


def encode_image(pixels: np.ndarray, ext: str, depth: str) -> bytes:
    """Encode float32 H×W×C pixels (RGB order) as the bytes of a file of type `ext` at `depth`."""
    ext = ext.lower()
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    stored = quantize(pixels, depth)
    if ext == ".npy":
        import io as _io
        buf = _io.BytesIO()
        np.save(buf, stored, allow_pickle=False)
        return buf.getvalue()
    c = stored.shape[2]
    if c == 2:  # grey + alpha: not every reader knows this layout; store as RGBA
        stored = np.concatenate([np.repeat(stored[:, :, :1], 3, axis=2), stored[:, :, 1:]], axis=2)
        c = 4
    if ext in (".tif", ".tiff"):
        return _encode_tiff(stored)
    import cv2

    if c >= 3:
        order = [2, 1, 0] + ([3] if c == 4 else [])
        stored = stored[:, :, order]
    if ext in (".jpg", ".jpeg") and c == 4:
        stored = stored[:, :, :3]  # JPEG has no alpha
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(stored), params)
    if not ok:
        raise UserError(f"could not encode the result as {ext}", "bad-file")
    return buf.tobytes()


def _encode_tiff(stored: np.ndarray) -> bytes:
    """TIFF through tifffile: it marks alpha as an extra sample properly (OpenCV's writer does not)."""
    import io as _io

    import tifffile

    c = stored.shape[2]
    if c == 1:
        kw = {"photometric": "minisblack"}
        stored = stored[:, :, 0]
    else:
        kw = {"photometric": "rgb", "planarconfig": "contig"}
        if c == 4:
            kw["extrasamples"] = ["unassalpha"]
    buf = _io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(stored), compression="zlib", **kw)
    return buf.getvalue()


def write_image(path: str | os.PathLike, pixels: np.ndarray, depth: str = "u8") -> str:
    """Write atomically; returns the depth actually written."""
    p = Path(path)
    final_depth = output_depth(p, depth)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}", "bad-file")
    data = encode_image(pixels, p.suffix, final_depth)
    write_bytes_atomic(p, data)
    return final_depth


def write_bytes_atomic(path: Path, data: bytes) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=str(parent))
    except OSError as exc:
        raise UserError(f"cannot write in {parent}: {exc.strerror}", "bad-file") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, str(path))
    except OSError as exc:
        _remove_quietly(tmp)
        raise UserError(f"cannot write {path}: {exc.strerror}", "bad-file") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
