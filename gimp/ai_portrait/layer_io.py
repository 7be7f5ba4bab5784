"""Pixels in and out of GIMP layers, in image coordinates.

Pictures (colour) are read as "R'G'B'A float" (sRGB-encoded float RGBA, the core's convention) whatever the
image's precision; babl converts from 8/16-bit, half, linear or gamma storage. Data layers (depth, normals,
mask) are read in the layer's own storage format instead (`read_data`): no tone curve and no colour-space
conversion touches them, so a linear 16-bit depth layer arrives as its very integers and a float one as its
very floats (metres above 1.0 included). The result is written into a new layer created at the image's
precision, so GIMP converts back. A region is (x, y, w, h) in image pixels; layer offsets are applied here so
callers never see them.
"""
from __future__ import annotations

from typing import Optional, Tuple

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

RGBA_FLOAT = "R'G'B'A float"
MASK_FLOAT = "Y float"
Region = Tuple[int, int, int, int]


class RegionError(Exception):
    """A layer and the area to process do not fit together (a message for the user)."""


def offsets(drawable) -> Tuple[int, int]:
    res = drawable.get_offsets()
    # GIMP 3.0's binding returns (success, x, y); be lenient about the success flag's presence.
    return (int(res[-2]), int(res[-1])) if isinstance(res, tuple) else (0, 0)


def layer_rect(drawable) -> Region:
    ox, oy = offsets(drawable)
    return ox, oy, drawable.get_width(), drawable.get_height()


def process_region(drawable) -> Optional[Region]:
    """The part of `drawable` to process, in image pixels: its intersection with the selection's bounds (the
    whole layer when nothing is selected); None when the selection misses the layer."""
    res = drawable.mask_intersect()
    ok, x, y, w, h = res if len(res) == 5 else (True,) + tuple(res)
    if not ok or w <= 0 or h <= 0:
        return None
    ox, oy = offsets(drawable)
    return ox + x, oy + y, w, h


def covers(drawable, region: Region) -> bool:
    lx, ly, lw, lh = layer_rect(drawable)
    x, y, w, h = region
    return lx <= x and ly <= y and x + w <= lx + lw and y + h <= ly + lh


def read_rgba(drawable, region: Region) -> bytes:
    """float32 RGBA bytes of `region` (image pixels) of the drawable; the region must lie inside it."""
    if not covers(drawable, region):
        lx, ly, lw, lh = layer_rect(drawable)
        raise RegionError(f"layer '{drawable.get_name()}' ({lw}×{lh} at {lx},{ly}) does not cover the area being "
                          f"processed ({region[2]}×{region[3]} at {region[0]},{region[1]}): resize it to the "
                          f"image (Layer > Layer to Image Size) or pick another layer")
    ox, oy = offsets(drawable)
    x, y, w, h = region
    buf = drawable.get_buffer()
    return bytes(buf.get(Gegl.Rectangle.new(x - ox, y - oy, w, h), 1.0, RGBA_FLOAT, Gegl.AbyssPolicy.CLAMP))


# GIMP's precisions by component type (the nick's first word): the plugin dtype that holds them exactly, and
# what the core is told they were stored as (None: not one of u8/u16/f16/f32, so left unsaid).
_COMPONENTS = {"u8": ("u8", "u8"), "u16": ("u16", "u16"), "half": ("f16", "f16"), "float": ("f32", "f32"),
               "u32": ("f32", None), "double": ("f32", "f32")}
_NATIVE_ITEMSIZE = {"u8": 1, "u16": 2, "u32": 4, "half": 2, "float": 4, "double": 8}


def component(image) -> str:
    """'u8', 'u16', 'u32', 'half', 'float' or 'double': how the image's layers store a channel."""
    nick = image.get_precision().value_nick  # e.g. 'u16-linear', 'float-non-linear', 'half-perceptual'
    word = nick.split("-")[0]
    if word not in _COMPONENTS:
        raise RegionError(f"AI Portrait does not know GIMP's precision '{nick}': convert the image with "
                          f"Image > Precision")
    return word


def stored_as(image) -> Optional[str]:
    """What the core is told about an input read from this image: 'u8', 'u16', 'f16' or 'f32' (double counts as
    float; 32-bit integer images are not reported)."""
    return _COMPONENTS[component(image)][1]


def read_data(drawable, region: Region):
    """A data layer's `region` exactly as stored, as a plugin Image: RGBA in the layer's own component type
    (u8, u16, f16, f32; 32-bit integer and double are converted to float32), gray copied to R, G, B, a missing
    alpha opaque. Read in the buffer's own format, so babl converts nothing (no TRC, no colour space)."""
    from plugin.pixels import Image, to_rgba

    if not covers(drawable, region):
        read_rgba(drawable, region)  # raises the region message
    ox, oy = offsets(drawable)
    x, y, w, h = region
    word = component(drawable.get_image())
    raw = bytes(drawable.get_buffer().get(Gegl.Rectangle.new(x - ox, y - oy, w, h), 1.0, None,
                                          Gegl.AbyssPolicy.CLAMP))  # format None: the buffer's own
    size = _NATIVE_ITEMSIZE[word]
    channels = len(raw) // (w * h * size)
    if channels * w * h * size != len(raw) or channels not in (1, 2, 3, 4):
        raise RegionError(f"layer '{drawable.get_name()}' gave {len(raw)} bytes for {w}×{h} pixels")
    dtype = _COMPONENTS[word][0]
    if word in ("u32", "double"):
        raw = _to_float32(raw, word)
    return to_rgba(Image(w, h, channels, dtype, raw), gray=drawable.is_gray())


def _to_float32(raw: bytes, word: str) -> bytes:
    """32-bit integers (v / (2³² − 1)) or doubles as float32 bytes, rounded once to nearest."""
    import array
    import sys
    src = array.array("I" if word == "u32" else "d")
    if src.itemsize != _NATIVE_ITEMSIZE[word]:
        raise RegionError(f"this Python cannot read GIMP's {word} pixels: convert the image to 16-bit or float")
    src.frombytes(raw)
    scale = 1.0 / 4294967295.0 if word == "u32" else 1.0
    out = array.array("f", (v * scale for v in src))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def read_selection(image, region: Region) -> Optional[bytes]:
    """The selection's soft mask over `region` as float32 (0..1), or None when nothing is selected."""
    if Gimp.Selection.is_empty(image):
        return None
    x, y, w, h = region
    buf = image.get_selection().get_buffer()
    return bytes(buf.get(Gegl.Rectangle.new(x, y, w, h), 1.0, MASK_FLOAT, Gegl.AbyssPolicy.NONE))


def layer_type(image):
    base = image.get_base_type()
    if base == Gimp.ImageBaseType.RGB:
        return Gimp.ImageType.RGBA_IMAGE
    if base == Gimp.ImageBaseType.GRAY:
        return Gimp.ImageType.GRAYA_IMAGE
    raise RegionError("AI Portrait cannot write into an indexed image: convert it to RGB first "
                      "(Image > Mode > RGB)")


def tattoo(item) -> int:
    """The item's tattoo: unique in its image and kept by XCF files (item ids are not)."""
    return int(item.get_tattoo())


def new_layer(image, like, name: str, region: Region, rgba_f32: bytes, parent, position: int, parasite=None,
              keep_look: bool = False):
    """Insert a new layer holding `rgba_f32` over `region` at `position` in `parent` (None: the image's top
    level; 0 = top); returns it. It takes `like`'s opacity and mode (the source's, so the composite reads as
    the source processed; or a replaced result's, with its visibility too when `keep_look`). `parasite` is
    attached before the layer enters the image, so it adds no undo step of its own."""
    x, y, w, h = region
    layer = Gimp.Layer.new(image, name, w, h, layer_type(image), like.get_opacity(), like.get_mode())
    if parasite is not None:
        layer.attach_parasite(parasite)
    image.insert_layer(layer, parent, position)
    if keep_look:
        layer.set_visible(like.get_visible())
    layer.set_offsets(x, y)
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), RGBA_FLOAT, rgba_f32)
    buf.flush()
    layer.update(0, 0, w, h)
    return layer


def add_selection_mask(layer) -> None:
    mask = layer.create_mask(Gimp.AddMaskType.SELECTION)
    layer.add_mask(mask)


def read_file_rgba(gfile, image, region: Region, data: bool = False):
    """(pixels, stored_as) of `region` (image pixels) from a picture file, scaled to the image's size first when
    it differs (a depth or normal map is often made at another resolution). pixels: float32 RGBA bytes of the
    picture, or with `data` a plugin Image as stored in the file's own precision (see read_data)."""
    name = gfile.get_basename() if gfile is not None else "?"
    try:
        other = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, gfile)
    except Exception as exc:  # GIMP raises GLib.Error with its own message
        raise RegionError(f"cannot open '{name}': {getattr(exc, 'message', exc)}") from None
    if other is None:
        raise RegionError(f"cannot open '{name}'")
    try:
        if data and other.get_base_type() == Gimp.ImageBaseType.INDEXED:
            other.convert_rgb()  # palette indices are not the data: their colours are
        w, h = image.get_width(), image.get_height()
        if other.get_width() != w or other.get_height() != h:
            other.scale(w, h)
        layer = other.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)  # image-sized, at offset 0
        return (read_data(layer, region) if data else read_rgba(layer, region)), stored_as(other)
    finally:
        other.delete()
