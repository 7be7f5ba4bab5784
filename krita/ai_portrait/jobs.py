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
    """The worker connection: the user's shared warm worker (plugin.local, started on first use, reused
    across documents, Krita restarts and GIMP), or a spawned one where the settings turn sharing off."""
    global _client
    with _client_lock:
        if _client is None:
            _client = load().client.Client(shared=True)
        return _client


def close_client():
    global _client, _preview_client
    with _client_lock:
        closing, _client, _preview_client = [_client, _preview_client], None, None
    for c in closing:
        if c is not None:
            try:
                c.close()
            except Exception:
                pass


class Request:
    """Everything a run needs, captured on the GUI thread so later edits to the document do not matter."""

    def __init__(self, doc, source, op, inputs, params, mask, seed, clip_to_selection, selection, anchor=None,
                 stored_as=None, sources=None, selected=None, rerun=None):
        self.doc, self.source, self.op = doc, source, op
        self.anchor = anchor or source      # the new layer goes above this one (and above its stack of results)
        self.sources = list(sources or [source])   # the layers processed, in order (a burst's frames)
        self.selected = selected            # the selected layer when it is a result of this filter (a re-run)
        self.rerun = rerun or load().results.DEFAULT_RERUN
        self.inputs, self.params, self.mask, self.seed = inputs, params, mask, seed
        self.stored_as = dict(stored_as or {})   # {input name: its layer's depth, 'u8' | 'u16' | 'f16' | 'f32'}
        self.clip_to_selection = clip_to_selection
        self.selection = selection          # a copy of the selection at Apply time (for the optional mask)
        self.started = time.time()

    def layer_name(self, taken=()) -> str:
        """'Refocus (f/1.4, focal length 50 mm)': the settings that differ from the defaults (plugin.results)."""
        return load().results.result_name(self.op, self.params, taken)


def resolve_sources(doc, source, frames, op):
    """(source, frames, selected result): a re-run never processes its own result. When the layer to process
    (or the only frame) is a result of this filter, the layers it was made from are processed instead."""
    results = load().results
    picked = list(frames) if frames else [source]
    if len(picked) != 1 or picked[0] is None:
        return source, frames, None
    record = document.read_provenance(doc, picked[0])
    ids = results.rerun_sources(op["name"], record)
    if ids is None:
        return source, frames, None
    found = [document.find_node(doc, str(i)) for i in ids]
    if any(n is None for n in found):
        names = ", ".join(f"'{n}'" for n in (record.get("source_layers") or [record.get("source_layer")]) if n)
        raise HostError(f"'{picked[0].name()}' is a result of {op.get('title', op['name'])} made from "
                        f"{names or 'a layer'} that is no longer in the document: select the layer to process")
    if frames:
        return found[0], found, picked[0]
    return found[0], None, picked[0]


def prepare(doc, source, op: dict, picks=None, frames=None, params=None, seed=0, use_selection=True,
            clip_to_selection=False, rerun=None):
    """Read every input from the document.

    source: the active layer (the primary picture; for a 'frames' operator the layer the result goes above).
    picks: {input name: layer node or None} for auxiliary inputs (depth, normals, reference, ...).
    frames: [layer nodes] for a 'frames' input (in order; the first is the reference frame).
    """
    if doc is None:
        raise HostError("no document is open")
    if source is None:
        raise HostError("no active layer: select the layer to work on in the Layers docker")
    source, frames, selected = resolve_sources(doc, source, frames, op)
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
                                f"in the Layers docker (Ctrl+click or Shift+click)")
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
                  anchor, stored_as, sources=list(frames) if frames else [source], selected=selected, rerun=rerun)
    # Linear layers go through a tone-curve round trip; keep their raw bytes so that pixels outside the
    # selection can be copied back exactly (only then: it costs a copy of the base picture).
    req.linear_bases = []
    if mask is not None:
        bases = list(frames) if frames else [source]
        if all(document.is_linear(n) for n in bases):
            w, h = document.canvas_size(doc)
            req.linear_bases = [bytes(n.pixelData(0, 0, w, h)) for n in bases]
    return req


_preview_client = None


def preview_client():
    """A second connection to the worker for live previews, so a preview never waits behind an applied run
    (the shared server runs two jobs at once) and an applied run never waits behind a preview."""
    global _preview_client
    with _client_lock:
        if _preview_client is None:
            _preview_client = load().client.Client(shared=True)
        return _preview_client


def proxy(req: Request, max_pixels=None):
    """A copy of `req` for a live preview: every input, the mask and the pixel-valued settings downscaled to
    about a megapixel (plugin.preview); `req.proxy_scale` says by how much."""
    import copy
    pv = load().preview
    w, h = document.canvas_size(req.doc)
    pw, ph = pv.proxy_size(w, h, max_pixels or pv.MAX_PIXELS)
    s = pw / float(w)
    small = copy.copy(req)
    kinds = {i["name"]: i["kind"] for i in req.op["inputs"]}
    data = load().params.DATA_KINDS

    def fit(img, name):
        return pv.downscale(img, pw, ph, data=kinds.get(name) in data) if (pw, ph) != (w, h) else img
    small.inputs = {name: ([fit(i, name) for i in v] if isinstance(v, list) else fit(v, name))
                    for name, v in req.inputs.items()}
    small.mask = fit(req.mask, "mask") if req.mask is not None else None
    small.params = pv.scale_params(req.op.get("params", []), req.params, s)
    small.proxy_scale = s
    return small


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
    place = document.result_place(doc, req.anchor, req.sources, req.op["name"], req.rerun, req.selected)
    taken = [n.name() for n, _ in document.list_layers(doc) if place.replaced is None or n != place.replaced]
    layer = document.add_result_layer(doc, place, img, req.layer_name(taken), keep=kept_pixels(req, result))
    req.clipped = None
    if req.clip_to_selection and req.selection is not None:
        req.clipped = document.clip_to_selection(doc, layer, req.selection, img, defer=defer_clip)
    info = dict(getattr(result, "info", {}) or {})
    info.setdefault("operator", req.op["name"])
    info.setdefault("params", req.params)
    info.setdefault("seed", req.seed)
    info["source_layer"] = req.source.name()
    info["source_ids"] = [document.node_id(n) for n in req.sources]
    info["source_layers"] = [n.name() for n in req.sources]
    info["rerun"] = req.rerun
    info["replaced"] = place.replaced_name
    info["stored_as"] = req.stored_as
    info["selection_used"] = req.mask is not None
    info["host"] = "krita " + Krita.instance().version()
    info["seconds"] = round(time.time() - req.started, 3)
    if req.clipped:
        info["clipped_by_selection"] = req.clipped
    document.store_provenance(doc, layer, info)
    if place.replaced is not None:
        document.remove_result(doc, place.replaced)
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
