"""Reading and writing image files without losing bits.

Supported: PNG (8/16-bit), JPEG (8-bit), TIFF (8/16-bit, 32-bit float), and NumPy `.npy`. Pixels come back as
float32 H×W×C in channel order R, G, B(, A), scaled so that integer white is 1.0; float files keep their values
(HDR above 1 included). `ImageFile.depth` remembers the stored depth so that the output can be written at the
same depth: 16-bit in, 16-bit out; float in, float out. EXIF orientation is applied on read.

Writes are atomic: the file is encoded in memory, written to a temporary name beside the target and renamed,
so a failure never leaves a half-written or clobbered file. A new file gets the umask's mode, a replaced one
keeps its own; temporaries that a killed process left are swept by the next write into that folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import secrets
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import numpy as np

from ..errors import UserError
from . import limits

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


def read_image(path: str | os.PathLike, check: Optional[Callable[[int, int], Any]] = None) -> ImageFile:
    """Read an image file as float32 H×W×C (RGB order), honouring EXIF orientation.

    Before decoding, the size in the file's header is checked: decoding must fit the memory budget
    (core.imaging.limits), and `check(width, height)`, when given, may refuse it too (the operator's own need)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"file not found: {p}", "bad-file")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an image file", "bad-file")
    _allow_large_images()
    head = probe_header(p)
    if head is not None:
        width, height, channels, itemsize = head
        if check is not None:
            try:
                check(width, height)
            except UserError as exc:
                raise UserError(f"{p.name}: {exc}", exc.code) from None
        # the stored samples, OpenCV's channel reorder, the float32 pixels and their upright copy
        limits.check_fits(p.name, width, height, channels * (2 * itemsize + 8), "decoding it")
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


_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> samples OpenCV decodes it to
_PIL_CHANNELS = {"1": 1, "L": 1, "P": 4, "LA": 2, "La": 2, "PA": 4, "RGB": 3, "RGBA": 4, "RGBa": 4, "CMYK": 4,
                 "YCbCr": 3, "I": 1, "F": 1, "I;16": 1, "I;16B": 1, "I;16L": 1}


def probe_header(path: str | os.PathLike) -> Optional[Tuple[int, int, int, int]]:
    """(width, height, channels, bytes per sample) from the file's header, without decoding its pixels; None
    when the header cannot be read (the decoder then says what is wrong with the file)."""
    p = Path(path)
    ext = p.suffix.lower()
    try:
        if ext == ".npy":
            arr = np.load(str(p), mmap_mode="r", allow_pickle=False)  # maps the file; reads only the header
            shape, itemsize = arr.shape, arr.dtype.itemsize
            del arr
            if len(shape) not in (2, 3):
                return None
            return int(shape[1]), int(shape[0]), int(shape[2]) if len(shape) == 3 else 1, int(itemsize)
        with open(p, "rb") as fh:
            start = fh.read(33)
        if start[:8] == b"\x89PNG\r\n\x1a\n" and start[12:16] == b"IHDR":
            width, height = int.from_bytes(start[16:20], "big"), int.from_bytes(start[20:24], "big")
            return width, height, _PNG_CHANNELS.get(start[25], 4), 2 if start[24] == 16 else 1
        if ext in (".tif", ".tiff"):
            import tifffile
            with tifffile.TiffFile(str(p)) as tif:
                page = tif.pages[0]
                return (int(page.imagewidth), int(page.imagelength), int(page.samplesperpixel),
                        int(page.dtype.itemsize) if page.dtype is not None else 4)
        from PIL import Image
        with Image.open(str(p)) as im:  # lazy: reads the header only
            width, height = im.size
            return int(width), int(height), _PIL_CHANNELS.get(im.mode, 4), 2 if "16" in im.mode else (
                4 if im.mode in ("I", "F") else 1)
    except Exception:  # noqa: BLE001 - any unreadable header: the decoder reports the damage
        return None


def _allow_large_images() -> None:
    """Our limit, from the memory budget, replaces Pillow's fixed one (a warning at 89 MP, an error at 179 MP),
    which refuses what a large machine handles and would make EXIF orientation silently fall back to upright."""
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None


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
    if raw.dtype in (np.uint8, np.uint16):
        # divided in place: one float32 copy, not two (the same bits as raw.astype(float32) / scale)
        out = raw.astype(np.float32)
        np.divide(out, np.float32(_SCALE["u8" if raw.dtype == np.uint8 else "u16"]), out=out)
        return out, "u8" if raw.dtype == np.uint8 else "u16"
    if raw.dtype.kind == "f":
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused just below
            out = raw.astype(np.float32)
        bad = limits.count_nonfinite(out)
        if bad:
            raise UserError(f"{name} contains {bad} NaN or infinite samples (or values beyond float32's range, "
                            f"3.4e38): fix or re-export the image", "bad-file")
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


def check_output(path: str | os.PathLike) -> None:
    """Refuse, before any work is done, an output file that could not be written: a type we cannot encode, a
    missing or read-only folder, a name too long for the file system, a folder in the file's place."""
    p = Path(path)
    output_depth(p, "u8")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise UserError(f"output folder does not exist: {parent}", "bad-file")
    if not parent.is_dir():
        raise UserError(f"output folder {parent} is a file, not a folder", "bad-file")
    limit = _name_max(parent)
    length = len(os.fsencode(p.name))
    if length > limit:  # first: stat() of such a name fails with an error of its own
        raise UserError(f"the output name is {length} bytes long but this file system allows {limit}: choose a "
                        f"shorter name", "bad-file")
    if p.is_dir():
        raise UserError(f"the output {p} is a folder: give the name of a file to write", "bad-file")
    check_writable_folder(parent)


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Create and remove a temporary file in `folder`: permission bits alone do not tell (root ignores them,
    a read-only mount or an immutable folder does not show in them)."""
    folder = Path(folder)
    try:
        fd, tmp = _open_temporary(folder, 0o600)
    except OSError as exc:
        raise UserError(f"cannot write in {folder}: {exc.strerror or exc}", "bad-file") from None
    os.close(fd)
    _remove_quietly(tmp)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: through symbolic links, hard links and spellings of the path."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(str(folder), "PC_NAME_MAX"))
    except (AttributeError, ValueError, OSError):  # Windows has no pathconf; NTFS allows 255 characters
        return 255


# Temporaries of atomic writes: ".aip-HOST-PID-RANDOM.part" beside the target. Short whatever the target's name
# (so a name of the file system's full length stays writable) and saying who made them, so that a later write
# can remove what a killed process left (SIGKILL, a power cut) without touching anyone else's file.
_TEMP_NAME = re.compile(r"\.aip-([0-9a-f]{4})-([0-9]{1,10})-[0-9a-f]{8}\.part")


def _host_tag() -> str:
    """Four hex digits of the host name: a pid means something only on the machine that made the file (a folder
    may be shared over the network)."""
    return hashlib.sha1(platform.node().encode("utf-8", "replace")).hexdigest()[:4]


def temporary_name() -> str:
    return f".aip-{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}.part"


def sweep_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temporaries of atomic writes that dead processes of this host left in `folder`; returns how
    many. Files of live processes, of other hosts and of any other name are left alone."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows instead of probing it
        return 0
    host, own = _host_tag(), os.getpid()
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is None or m.group(1) != host:
            continue
        pid = int(m.group(2))
        try:
            if pid == own or _alive(pid) or not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:  # gone already, or not ours to remove
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we would have written: leave the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True


def _open_temporary(folder: Path, mode: int):
    """(fd, path) of a new temporary beside the target, created with `mode` (less the umask), never following
    a link an attacker placed under the name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(16):
        tmp = os.path.join(str(folder), temporary_name())
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:  # 32 random bits collided: draw again
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def _existing_mode(path: Path):
    """Permission bits of the file a write replaces (None for a new file); set-id bits are not carried over."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else None


def write_bytes_atomic(path: str | os.PathLike, data: bytes, mode: Optional[int] = None) -> None:
    """Write `data` to `path` through a temporary beside it and a rename. Mode: `mode` when given (e.g. 0o600
    for a secret), else an existing file keeps its own and a new one gets 0o666 less the umask, as any program's
    new file does."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    sweep_temporaries(parent)
    keep = mode if mode is not None else _existing_mode(path)
    try:
        fd, tmp = _open_temporary(parent, 0o666 if keep is None else keep)
    except OSError as exc:
        raise UserError(f"cannot write in {parent}: {exc.strerror or exc}", "bad-file") from None
    try:
        if keep is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, keep)  # exactly the kept mode: the umask may have cleared some of its bits
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, str(path))
    except OSError as exc:
        _remove_quietly(tmp)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}", "bad-file") from None
    except BaseException:  # KeyboardInterrupt, SIGTERM (the CLI raises it as an interrupt), a bug
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextlib.contextmanager
def decoder_messages():
    """Collect what C decoders (libpng, libjpeg, libtiff, OpenCV) print on file descriptor 2 while the block
    runs, instead of letting it reach the terminal ahead of our own one-line message: yields a list that holds
    the lines once the block ends. Process-wide, so only for a caller with no other thread writing to stderr."""
    lines: list = []
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())
