"""Pixels in and out of Krita documents: no Qt widgets here, so the same code runs in the docker and in tests.

Krita hands `Node.pixelData(x, y, w, h)` as raw bytes in the layer's colour space. For RGBA: integer depths
(U8, U16) are laid out B, G, R, A and float depths (F16, F32) R, G, B, A, native byte order. The worker wants
R, G, B, A, so plugin.pixels swizzles integer layouts; the bit depth itself travels as is (the worker converts).
A selection reads as 1 byte per pixel over the whole canvas (0 outside): it becomes the soft mask. The whole
canvas goes to the worker (no crop to the selection), so pixel coordinates in parameters are document pixels
and need no shift.

Colour layers with a linear profile are sRGB-encoded for the worker (transfer.py). Data layers (depth, normals,
mask) are not: their bytes go as stored, in the layer's own depth, with no tone curve and no profile conversion
(a layer may have another depth and profile than its document: a float depth layer in an 8-bit photo).

Results never overwrite the source (Krita's Python API has no undo macro): each lands on a NEW paint layer at
the top of the source's stack of results, or in place of the previous result of the same filter on the same
source (plugin.results), optionally clipped by a transparency mask made from the selection, and the run's
provenance (naming the source layers by uuid) is stored as a document annotation.
"""
import array
import json
import sys

from . import transfer


KRITA_DEPTHS = {"U8": "u8", "U16": "u16", "F16": "f16", "F32": "f32"}
INTEGER_DEPTHS = ("U8", "U16")
PIXEL_LAYERS = ("paintlayer", "grouplayer", "filelayer", "clonelayer", "filllayer", "vectorlayer")
ANNOTATION_PREFIX = "ai-portrait/"


class HostError(Exception):
    """A problem in the Krita document the user can fix (wrong colour model, no layer, ...)."""


def image_class():
    from .bridge import load
    return load().pixels.Image


def check_layer(node, role: str = "layer") -> str:
    """The plugin dtype of a layer, or HostError naming what to change."""
    if node is None:
        raise HostError(f"no {role}: select a paint layer in the Layers docker")
    if node.type() not in PIXEL_LAYERS:
        raise HostError(f"{role} '{node.name()}' is a {node.type()}: select a paint layer in the Layers docker")
    model, depth = node.colorModel(), node.colorDepth()
    if model != "RGBA" or depth not in KRITA_DEPTHS:
        raise HostError(f"{role} '{node.name()}' is {model} {depth}; AI Portrait works on RGB/Alpha layers at "
                        f"8-bit, 16-bit, 16-bit float or 32-bit float. Convert it with Image > Convert Image "
                        f"Color Space (or Layer > Convert > Convert Layer Color Space).")
    return KRITA_DEPTHS[depth]


def canvas_size(doc):
    return int(doc.width()), int(doc.height())


def read_layer(doc, node, role: str = "layer", data: bool = False):
    """The whole canvas of `node` as a plugin Image (R, G, B, A; the layer's own bit depth). A colour layer with
    a linear profile is sRGB-encoded (float32); a `data` layer (depth, normals, mask) comes exactly as stored."""
    dtype = check_layer(node, role)
    w, h = canvas_size(doc)
    raw = bytes(node.pixelData(0, 0, w, h))
    expected = w * h * 4 * {"u8": 1, "u16": 2, "f16": 2, "f32": 4}[dtype]
    if len(raw) != expected:
        raise HostError(f"{role} '{node.name()}' returned {len(raw)} bytes for a {w}x{h} canvas "
                        f"(expected {expected}); is it a paint layer?")
    img = image_class().from_krita(raw, w, h, node.colorDepth())
    if is_linear(node) and not data:
        img = transfer.encode(img)   # the worker takes sRGB-encoded pictures; data is not a picture
    return img


def is_linear(node) -> bool:
    """The layer's profile has a linear tone curve (Krita's default for float and 16-bit RGB documents)."""
    return transfer.is_linear_profile(node.colorProfile())


def read_selection(doc):
    """The document's selection as a soft mask (1 channel, u8 0..255 -> the worker maps to 0..1), or None."""
    sel = doc.selection()
    if sel is None or sel.width() <= 0 or sel.height() <= 0:
        return None
    w, h = canvas_size(doc)
    raw = bytes(sel.pixelData(0, 0, w, h))
    if len(raw) != w * h:
        raise HostError(f"the selection returned {len(raw)} bytes for a {w}x{h} canvas")
    if not any(raw):
        return None
    return image_class()(w, h, 1, "u8", raw)


def to_layer_bytes(image, node) -> bytes:
    """A worker result (any dtype, R, G, B, A) as raw bytes for `node`: its depth, Krita's channel order."""
    if image.channels != 4:
        raise HostError(f"the result has {image.channels} channels; expected RGBA")
    if is_linear(node):
        image = transfer.decode(image)
    return image.to_krita(node.colorDepth())


# ---------------------------------------------------------------------------------------------------------------
# Writing results


class Place:
    """Where a result goes: into `parent`, right above `below`; `replaced` is the result it replaces (or None),
    whose opacity, blending mode and visibility the new layer takes; else it takes `like`'s (the source's)."""

    def __init__(self, parent, below, like, replaced=None):
        self.parent, self.below, self.like, self.replaced = parent, below, like, replaced
        self.replaced_name = replaced.name() if replaced is not None else None


def result_place(doc, anchor, sources, op_name, rerun, selected=None):
    """The Place of a new result of `op_name` made from `sources` (plugin.results): in 'replace' mode where the
    previous result of that filter on those sources is (the selected one, else the newest), otherwise at the
    top of the sources' stack of results, the run of layers right above `anchor` made from them."""
    from .bridge import load
    results = load().results
    parent = anchor.parentNode() or doc.rootNode()
    children = list(parent.childNodes())   # bottom to top
    at = next(k for k, n in enumerate(children) if n == anchor)
    above = children[at + 1:]              # nearest first
    records = [read_provenance(doc, n) for n in above]
    ids = [node_id(n) for n in sources]
    if rerun == "replace":
        pick = next((k for k, n in enumerate(above) if selected is not None and n == selected), None)
        k = results.previous_result(records, ids, op_name, pick)
        if k is not None:
            return Place(parent, above[k], above[k], replaced=above[k])
    top = results.stack_top(records, ids)
    return Place(parent, above[top - 1] if top else anchor, anchor)


def add_result_layer(doc, place, image, name: str, keep=None):
    """A new paint layer holding `image`, at `place` (see result_place); no existing layer is touched.

    keep: (base layer bytes, selection bytes) -> where the selection is 0 the base's bytes are copied as they
    are. core already keeps those pixels exact in float; this makes them exact in the layer too when a linear
    profile's tone-curve round trip would otherwise move a float by one unit in the last place."""
    like = place.like
    layer = doc.createNode(name, "paintlayer")
    if (layer.colorModel(), layer.colorDepth()) != (like.colorModel(), like.colorDepth()):
        layer.setColorSpace(like.colorModel(), like.colorDepth(), like.colorProfile())
    w, h = canvas_size(doc)
    data = to_layer_bytes(image, layer)
    if keep is not None:
        data = restore_unselected(data, keep[0], keep[1])
    layer.setPixelData(data, 0, 0, w, h)
    layer.setOpacity(like.opacity())
    layer.setBlendingMode(like.blendingMode())
    if place.replaced is not None:
        layer.setVisible(place.replaced.visible())
    place.parent.addChildNode(layer, place.below)   # inserted right above `below`
    return layer


PREVIEW_NAME = "AI Portrait preview"


def show_preview(doc, place, image, node=None):
    """The live preview's temporary layer: created at `place` (where the result would go) the first time, its
    pixels replaced after; `image` is canvas-sized (the proxy's result, upscaled). Returns the node. It has no
    provenance, is never a source and is removed on Cancel, on Apply and when the preview is switched off."""
    if node is None:
        node = doc.createNode(PREVIEW_NAME, "paintlayer")
        like = place.like
        if (node.colorModel(), node.colorDepth()) != (like.colorModel(), like.colorDepth()):
            node.setColorSpace(like.colorModel(), like.colorDepth(), like.colorProfile())
        node.setOpacity(like.opacity())
        node.setBlendingMode(like.blendingMode())
        active = doc.activeNode()
        place.parent.addChildNode(node, place.below)
        if active is not None and not (doc.activeNode() == active):
            doc.setActiveNode(active)   # the preview is never what the user works on
    w, h = canvas_size(doc)
    node.setPixelData(to_layer_bytes(image, node), 0, 0, w, h)
    doc.refreshProjection()
    return node


def remove_result(doc, node) -> None:
    """Take a replaced result out of the document, with its provenance annotation."""
    key = ANNOTATION_PREFIX + _layer_key(node)
    node.remove()
    try:
        doc.removeAnnotation(key)
    except Exception:  # noqa: BLE001 - an annotation left behind names a layer that is gone: harmless
        pass


def read_provenance(doc, node):
    """The provenance record of a layer AI Portrait made (its annotation), or None."""
    if node is None:
        return None
    try:
        raw = bytes(doc.annotation(ANNOTATION_PREFIX + _layer_key(node)))
    except Exception:  # noqa: BLE001
        return None
    if not raw:
        return None
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def restore_unselected(data, base, selection) -> bytes:
    """`data` with every pixel whose selection byte is 0 replaced by `base`'s (same layout and size)."""
    n = len(selection)
    if len(data) != len(base) or n == 0 or len(data) % n:
        return data
    bpp = len(data) // n
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        out = np.frombuffer(data, dtype=np.uint8).reshape(n, bpp).copy()
        keep = np.frombuffer(selection, dtype=np.uint8) == 0
        out[keep] = np.frombuffer(base, dtype=np.uint8).reshape(n, bpp)[keep]
        return out.tobytes()
    out = bytearray(data)
    i = 0
    while i < n:   # copy runs of unselected pixels with one slice each
        if selection[i] == 0:
            j = i
            while j < n and selection[j] == 0:
                j += 1
            out[i * bpp:j * bpp] = base[i * bpp:j * bpp]
            i = j
        else:
            i += 1
    return bytes(out)


def clip_to_selection(doc, layer, selection, image, defer=False):
    """Show `layer` only inside `selection`; returns how: 'mask', 'alpha' or 'pending'.

    Krita 5.2+ has Document.createTransparencyMask. Krita 5.1 cannot fill a mask from Python (a mask made with
    createNode('…', 'transparencymask') has no pixels to write), but its 'add_new_transparency_mask' action
    builds one from the selection on the active layer of a view. The view takes a new active layer only on a
    later turn of the event loop, so with defer=True this selects the layer and returns 'pending': the caller
    then calls try_mask_by_action() from a timer. Without a view (kritarunner) the selection is multiplied into
    the new layer's alpha instead ('alpha'), and the caller says so.
    """
    if hasattr(doc, "createTransparencyMask"):
        mask = doc.createTransparencyMask(f"{layer.name()} selection")
        mask.setSelection(selection)
        layer.addChildNode(mask, None)
        return "mask"
    if defer and _mask_action_usable(doc):
        doc.setSelection(selection)
        doc.setActiveNode(layer)
        return "pending"
    clip_with_alpha(doc, layer, selection, image)
    return "alpha"


def clip_with_alpha(doc, layer, selection, image):
    w, h = canvas_size(doc)
    sel = bytes(selection.pixelData(0, 0, w, h))
    layer.setPixelData(to_layer_bytes(multiply_alpha(image, sel), layer), 0, 0, w, h)


def _mask_action_usable(doc) -> bool:
    from krita import Krita
    app = Krita.instance()
    window = app.activeWindow()
    view = window.activeView() if window is not None else None
    return app.action("add_new_transparency_mask") is not None and view is not None and view.document() == doc


def try_mask_by_action(doc, layer) -> bool:
    """Add a transparency mask from the current selection to `layer` once it is the active layer."""
    from krita import Krita
    if not _mask_action_usable(doc) or not (doc.activeNode() == layer):
        return False
    before = len(layer.childNodes())
    Krita.instance().action("add_new_transparency_mask").trigger()
    doc.waitForDone()
    masks = [c for c in layer.childNodes() if c.type() == "transparencymask"]
    if len(layer.childNodes()) > before and masks:
        masks[-1].setName(f"{layer.name()} selection")
        return True
    return False


def multiply_alpha(image, selection_bytes):
    """`image` (RGBA, any dtype) as float32 with its alpha multiplied by a 1-byte-per-pixel selection."""
    img = image.to("f32")
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        a = np.frombuffer(img.tobytes(), dtype="<f4").reshape(img.height, img.width, 4).copy()
        a[:, :, 3] *= np.frombuffer(selection_bytes, dtype=np.uint8).reshape(img.height, img.width) / 255.0
        return image_class()(img.width, img.height, 4, "f32", a.astype("<f4").tobytes())
    vals = array.array("f")
    vals.frombytes(img.tobytes())
    if sys.byteorder == "big":
        vals.byteswap()
    for i, s in enumerate(selection_bytes):
        vals[4 * i + 3] *= s / 255.0
    if sys.byteorder == "big":
        vals.byteswap()
    return image_class()(img.width, img.height, 4, "f32", vals.tobytes())


def store_provenance(doc, layer, info: dict) -> str:
    """Record how a layer was made (operator, parameters, seed, models) as a document annotation."""
    from .qt import QByteArray
    key = ANNOTATION_PREFIX + _layer_key(layer)
    record = dict(info)
    record["layer"] = layer.name()
    record["layer_uuid"] = _layer_key(layer)
    payload = json.dumps(record, sort_keys=True, default=str).encode("utf-8")
    doc.setAnnotation(key, f"AI Portrait: how layer '{layer.name()}' was made", QByteArray(payload))
    return key


def _layer_key(layer) -> str:
    try:
        return layer.uniqueId().toString().strip("{}")
    except Exception:  # very old Krita: fall back to the name
        return layer.name()


def list_layers(doc):
    """[(node, depth)] for every layer of the document, top to bottom (what pickers offer)."""
    out = []

    def walk(node, depth):
        for child in reversed(node.childNodes()):
            if child.type() in PIXEL_LAYERS and child.name() != PREVIEW_NAME:   # never offer the preview
                out.append((child, depth))
            if child.type() == "grouplayer":
                walk(child, depth + 1)
    walk(doc.rootNode(), 0)
    return out


def find_node(doc, node_id):
    """A node by its uniqueId string (what pickers store), or None."""
    for node, _ in list_layers(doc):
        if _layer_key(node) == node_id:
            return node
    return None


def node_id(node) -> str:
    return _layer_key(node)


def refresh(doc) -> None:
    """Make the new pixels show in the projection (and in an export) before returning."""
    doc.refreshProjection()
    doc.waitForDone()


def log(msg: str) -> None:
    print(f"[ai_portrait] {msg}", file=sys.stderr, flush=True)
