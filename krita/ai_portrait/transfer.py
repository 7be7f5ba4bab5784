"""Linear-light layers: Krita stores float (and often 16-bit) RGB documents with a linear tone curve
(its default profile for them is sRGB-elle-V2-g10, gamma 1.0), while the worker takes pictures sRGB-encoded
(ARCHITECTURE.md: values as the host gave them, sRGB-encoded unless stated) and linearises internally where the
physics needs it. So a linear layer is sRGB-encoded before it is sent and the result decoded back before it is
written. Alpha is never touched. The curve is extended beyond [0, 1] (odd, same formula) so HDR values survive.

Only the tone curve is adapted: primaries of wide-gamut linear profiles (Rec.2020, ACES) are passed as they are.
Standard library only (numpy when importable), no Krita import: the tests load this file on its own.
"""
import array
import sys

LINEAR_MARKERS = ("g10", "linear", "scrgb", "gamma 1.0", "gamma1.0", "-g1.0")


def is_linear_profile(name: str) -> bool:
    low = (name or "").lower()
    return any(m in low for m in LINEAR_MARKERS)


def _np():
    try:
        import numpy
        return numpy
    except ImportError:
        return None


def _encode_scalar(v: float) -> float:
    a = -v if v < 0 else v
    e = a * 12.92 if a <= 0.0031308 else 1.055 * a ** (1 / 2.4) - 0.055
    return -e if v < 0 else e


def _decode_scalar(v: float) -> float:
    a = -v if v < 0 else v
    d = a / 12.92 if a <= 0.04045 else ((a + 0.055) / 1.055) ** 2.4
    return -d if v < 0 else d


def _apply(image, fn_np, fn_py):
    """float32 RGBA Image with `fn` applied to R, G, B (alpha kept); any input dtype."""
    from .bridge import load
    Image = load().pixels.Image
    return _apply_with(Image, image, fn_np, fn_py)


def _apply_with(Image, image, fn_np, fn_py):
    img = image.to("f32")
    np = _np()
    c = img.channels
    color = min(c, 3) if c != 2 else 1
    if np is not None:
        a = np.frombuffer(img.tobytes(), dtype="<f4").reshape(img.height, img.width, c).astype(np.float64)
        a[:, :, :color] = fn_np(np, a[:, :, :color])
        return Image(img.width, img.height, c, "f32", a.astype("<f4").tobytes())
    vals = array.array("f")
    vals.frombytes(img.tobytes())
    if sys.byteorder == "big":
        vals.byteswap()
    for i in range(len(vals)):
        if i % c < color:
            vals[i] = fn_py(vals[i])
    if sys.byteorder == "big":
        vals.byteswap()
    return Image(img.width, img.height, c, "f32", vals.tobytes())


def _encode_np(np, x):
    a = np.abs(x)
    e = np.where(a <= 0.0031308, a * 12.92, 1.055 * np.power(a, 1 / 2.4) - 0.055)
    return np.copysign(e, x)


def _decode_np(np, x):
    a = np.abs(x)
    d = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4))
    return np.copysign(d, x)


def encode(image, Image=None):
    """Linear-light Image -> sRGB-encoded float32 Image."""
    return _apply_with(Image, image, _encode_np, _encode_scalar) if Image else _apply(image, _encode_np,
                                                                                      _encode_scalar)


def decode(image, Image=None):
    """sRGB-encoded Image -> linear-light float32 Image."""
    return _apply_with(Image, image, _decode_np, _decode_scalar) if Image else _apply(image, _decode_np,
                                                                                      _decode_scalar)
