"""One operator run on a Krita document, in three steps so that only the middle one leaves the GUI thread:

    req = prepare(doc, source, op, ...)     GUI thread: read pixels (Krita's API is not thread-safe)
    res = execute(client, req, progress, cancel)    any thread: only the worker bridge, no Krita calls
    layer = finish(req, res)                GUI thread: new layer above the source, provenance annotation

No Qt widgets here: the docker and the tests run the same code.
"""
import threading
import time

from . import document
from .bridge import load
from .document import HostError

_client = None
_client_lock = threading.Lock()


def client():
    """The shared worker connection (spawned on first use, kept warm between runs)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = load().client.Client()
        return _client


def close_client():
    global _client
    with _client_lock:
        c, _client = _client, None
    if c is not None:
        try:
            c.close()
        except Exception:
            pass


class Request:
    """Everything a run needs, captured on the GUI thread so later edits to the document do not matter."""

    def __init__(self, doc, source, op, inputs, params, mask, seed, clip_to_selection, selection, anchor=None,
                 stored_as=None):
        self.doc, self.source, self.op = doc, source, op
        self.anchor = anchor or source      # the new layer goes right above this one
        self.inputs, self.params, self.mask, self.seed = inputs, params, mask, seed
        self.stored_as = dict(stored_as or {})   # {input name: its layer's depth, 'u8' | 'u16' | 'f16' | 'f32'}
        self.clip_to_selection = clip_to_selection
        self.selection = selection          # a copy of the selection at Apply time (for the optional mask)
        self.started = time.time()

    @property
    def layer_name(self) -> str:
        return f"{self.op.get('title') or self.op['name']} ({self.source.name()})"


def prepare(doc, source, op: dict, picks=None, frames=None, params=None, seed=0, use_selection=True,
            clip_to_selection=False):
    """Read every input from the document.

    source: the active layer (the primary picture; for a 'frames' operator the layer the result goes above).
    picks: {input name: layer node or None} for auxiliary inputs (depth, normals, reference, ...).
    frames: [layer nodes] for a 'frames' input (in order; the first is the reference frame).
    """
    if doc is None:
        raise HostError("no document is open")
    if source is None:
        raise HostError("no active layer: select the layer to work on in the Layers docker")
    picks = picks or {}
    inputs, stored_as = {}, {}
    data_kinds = load().params.DATA_KINDS
    for inp in op["inputs"]:
        kind, name = inp["kind"], inp["name"]
        if kind == "image":
            inputs[name] = document.read_layer(doc, source, "the active layer")
            stored_as[name] = document.check_layer(source)
        elif kind == "frames":
            nodes = list(frames or [])
            if not nodes:
                nodes = [source]
            if len(nodes) < 2 and inp.get("required", True):
                raise HostError(f"{op.get('title', op['name'])} needs several frames: select the frame layers "
                                f"in the Layers docker and press 'Use selected layers'")
            inputs[name] = [document.read_layer(doc, n, f"frame '{n.name()}'") for n in nodes]
            stored_as[name] = document.check_layer(nodes[0])
        else:
            node = picks.get(name)
            if node is None:
                if inp.get("required", True):
                    raise HostError(f"{op.get('title', op['name'])} needs a {kind} layer for '{name}': "
                                    f"{inp.get('help', '')}")
                continue
            inputs[name] = document.read_layer(doc, node, f"{kind} layer", data=kind in data_kinds)
            stored_as[name] = document.check_layer(node)
    mask = document.read_selection(doc) if use_selection else None
    selection = doc.selection().duplicate() if (clip_to_selection and doc.selection() is not None) else None
    anchor = source
    if frames:
        # a burst's result goes above the top-most frame, or the frames above it would hide it
        order = {document.node_id(n): k for k, (n, _) in enumerate(document.list_layers(doc))}
        anchor = min(frames, key=lambda n: order.get(document.node_id(n), len(order)))
    # Krita sends the whole canvas (no crop to the selection): coordinates in `params` are document pixels,
    # which are the worker's pixels, so nothing is shifted here.
    req = Request(doc, source, op, inputs, dict(params or {}), mask, int(seed), clip_to_selection, selection,
                  anchor, stored_as)
    # Linear layers go through a tone-curve round trip; keep their raw bytes so that pixels outside the
    # selection can be copied back exactly (only then: it costs a copy of the base picture).
    req.linear_bases = []
    if mask is not None:
        bases = list(frames) if frames else [source]
        if all(document.is_linear(n) for n in bases):
            w, h = document.canvas_size(doc)
            req.linear_bases = [bytes(n.pixelData(0, 0, w, h)) for n in bases]
    return req


def execute(req: Request, progress=None, cancel=None, worker=None):
    """Run on the worker (blocking). Raises the bridge's WorkerError / WorkerCancelled."""
    worker = worker or client()
    return worker.run(req.op["name"], inputs=req.inputs, params=req.params, mask=req.mask, seed=req.seed,
                      progress=progress, cancel=cancel, stored_as=req.stored_as)


def kept_pixels(req: Request, result):
    """(base layer bytes, selection bytes) when pixels outside the selection must be copied back, else None."""
    if req.mask is None or not req.linear_bases:
        return None
    index = int((getattr(result, "info", None) or {}).get("reference_index", 0) or 0)
    base = req.linear_bases[min(max(index, 0), len(req.linear_bases) - 1)]
    return (base, req.mask.tobytes())


def expected_layer_bytes(req: Request, image, layer, result):
    """The bytes finish() writes for `image` into `layer` (tests compare the layer against this)."""
    data = document.to_layer_bytes(image, layer)
    keep = kept_pixels(req, result)
    return document.restore_unselected(data, keep[0], keep[1]) if keep else data


def finish(req: Request, result, defer_clip=False):
    """Put the result on a new layer above the source and record its provenance; returns the layer.
    defer_clip: the caller finishes a 'pending' transparency mask later with complete_clip() (see
    document.clip_to_selection)."""
    doc = req.doc
    from krita import Krita
    if not any(d == doc for d in Krita.instance().documents()):
        raise HostError("the document was closed while the operator ran; nothing was added")
    img = result.image
    w, h = document.canvas_size(doc)
    if (img.width, img.height) != (w, h):
        raise HostError(f"the result is {img.width}x{img.height} but the canvas is now {w}x{h} "
                        f"(was the image resized while it ran?); nothing was added")
    layer = document.add_result_layer(doc, req.anchor, img, req.layer_name, keep=kept_pixels(req, result))
    req.clipped = None
    if req.clip_to_selection and req.selection is not None:
        req.clipped = document.clip_to_selection(doc, layer, req.selection, img, defer=defer_clip)
    info = dict(getattr(result, "info", {}) or {})
    info.setdefault("operator", req.op["name"])
    info.setdefault("params", req.params)
    info.setdefault("seed", req.seed)
    info["source_layer"] = req.source.name()
    info["stored_as"] = req.stored_as
    info["selection_used"] = req.mask is not None
    info["host"] = "krita " + Krita.instance().version()
    info["seconds"] = round(time.time() - req.started, 3)
    if req.clipped:
        info["clipped_by_selection"] = req.clipped
    document.store_provenance(doc, layer, info)
    req.info, req.layer, req.image = info, layer, img
    doc.setActiveNode(layer)
    document.refresh(doc)
    return layer


def complete_clip(req: Request, use_mask: bool) -> str:
    """Finish a 'pending' clip: the mask was added (use_mask) or fall back to the layer's alpha."""
    if not use_mask:
        document.clip_with_alpha(req.doc, req.layer, req.selection, req.image)
    req.clipped = "mask" if use_mask else "alpha"
    req.info["clipped_by_selection"] = req.clipped
    document.store_provenance(req.doc, req.layer, req.info)
    document.refresh(req.doc)
    return req.clipped
