"""A live preview's proxy: the inputs downscaled to about a megapixel, the settings scaled with them, the
result upscaled back for display (standard library plus numpy, which both hosts' Pythons have; without numpy
`available()` is False and the hosts offer no preview).

    s = proxy_scale(w, h)                  at most 1 (never upscale), s² · w · h <= MAX_PIXELS
    small = downscale(image, pw, ph)       box filter (each output pixel the mean of the input pixels it covers)
    small = downscale(image, pw, ph, data=True)   nearest sample: a depth or normal map is not averaged across
                                           an edge into values that are nowhere in the scene
    params = scale_params(decls, params, s)   every pixel position (points, coordinate vectors, each item of a
                                           list) and every length in pixels (unit 'px') times s; physical
                                           lengths and fractions of the frame already look the same at any size
    big = upscale(small, w, h)             nearest, for the preview layer only (the applied result is computed
                                           at full size)
Images are plugin.pixels.Image (any dtype in; float32 RGBA out of downscale and upscale).
"""
from __future__ import annotations

MAX_PIXELS = 1_000_000

try:
    import numpy as _np
except ImportError:  # pragma: no cover - both hosts ship numpy; the preview is then simply not offered
    _np = None


def available():
    return _np is not None


def proxy_scale(width, height, max_pixels=MAX_PIXELS):
    n = float(width) * float(height)
    return 1.0 if n <= max_pixels else (max_pixels / n) ** 0.5


def proxy_size(width, height, max_pixels=MAX_PIXELS):
    s = proxy_scale(width, height, max_pixels)
    return max(1, int(round(width * s))), max(1, int(round(height * s)))


def _array(image):
    from .pixels import Image
    if not isinstance(image, Image):
        raise TypeError("expected a plugin.pixels.Image")
    return _np.frombuffer(image.to("f32").tobytes(), dtype="<f4").reshape(image.height, image.width,
                                                                          image.channels)


def _image(arr):
    from .pixels import Image
    arr = _np.ascontiguousarray(arr, dtype="<f4")
    return Image(arr.shape[1], arr.shape[0], arr.shape[2], "f32", arr.tobytes())


def _box_axis(a, n_out, axis):
    """Mean over the input cells each of n_out equal output cells covers (fractional overlaps weighted), along
    `axis`, by differences of a cumulative sum (exact area averaging, O(size))."""
    n_in = a.shape[axis]
    if n_out == n_in:
        return a
    edges = _np.linspace(0.0, n_in, n_out + 1)
    c = _np.cumsum(_np.moveaxis(a, axis, 0).astype(_np.float64), axis=0)
    c = _np.concatenate([_np.zeros((1,) + c.shape[1:]), c], axis=0)

    def integral(x):  # ∫_0^x of the piecewise-constant signal
        i = _np.clip(_np.floor(x).astype(int), 0, n_in - 1)
        frac = (x - i)[(slice(None),) + (None,) * (c.ndim - 1)]
        return c[i] + frac * (c[i + 1] - c[i])

    out = (integral(edges[1:]) - integral(edges[:-1])) / _np.diff(edges)[(slice(None),) + (None,) * (c.ndim - 1)]
    return _np.moveaxis(out, 0, axis)


def downscale(image, width, height, data=False):
    """`image` at width × height: a box filter for pictures and masks, nearest samples for data (data=True)."""
    a = _array(image)
    if data:
        ys = ((_np.arange(height) + 0.5) * a.shape[0] / height).astype(int).clip(0, a.shape[0] - 1)
        xs = ((_np.arange(width) + 0.5) * a.shape[1] / width).astype(int).clip(0, a.shape[1] - 1)
        return _image(a[ys][:, xs])
    return _image(_box_axis(_box_axis(a, height, 0), width, 1))


def upscale(image, width, height):
    """Nearest-neighbour enlargement to width × height (display only)."""
    a = _array(image)
    ys = (_np.arange(height) * a.shape[0] // height).clip(0, a.shape[0] - 1)
    xs = (_np.arange(width) * a.shape[1] // width).clip(0, a.shape[1] - 1)
    return _image(a[ys][:, xs])


def scale_params(decls, params, s):
    """A copy of `params` for a proxy s times the size: pixel positions and pixel lengths times s."""
    from .params import has_coordinates
    out = dict(params)
    for p in decls:
        name = p["name"]
        v = out.get(name)
        if v is None:
            continue
        items = v if p.get("repeat") else [v]
        if has_coordinates(p):
            items = [[float(item[0]) * s, float(item[1]) * s] + [float(c) for c in item[2:]] for item in items]
        elif p.get("unit") == "px" and p.get("type") in ("float", "int"):
            items = [float(item) * s if p["type"] == "float" else int(round(item * s)) for item in items]
        else:
            continue
        out[name] = items if p.get("repeat") else items[0]
    return out
