"""Runs INSIDE real Krita (`kritarunner -s aip_krita_ops`): every operator of a plan on real Krita documents.

The plan (JSON, path in $AIP_PLAN) lists cases: operator declaration, document depth, with/without selection,
raw float32 RGBA inputs written by tests/hosts/test_krita.py. For each case this script builds a document with
one layer per input, optionally a soft selection, runs the plugin's own pipeline (ai_portrait.jobs: prepare ->
execute on the worker -> finish) and checks, with Krita's own API:
  - exactly one new layer, directly above the source, holding the result's bytes;
  - every pre-existing layer's pixelData unchanged (the source is never modified);
  - where the selection is 0 the new layer equals the source bit for bit;
  - a provenance annotation naming the operator, and the transparency mask when asked;
  - a failing operator (expect_error) raises a message and leaves the document exactly as it was.
It dumps what the worker received and what the layer holds, so the test can recompute the result with
core.registry.run and compare. Results go to $AIP_OUT/results.json. Ends with os._exit (kritarunner exits 0
even when a script raises).
"""
import json
import os
import sys
import time
import traceback


def _fail(msgs, text):
    msgs.append(text)


def _soft_selection(w, h):
    """An elliptic selection with a feathered edge: 255 inside, 0 outside, a ramp between."""
    out = bytearray(w * h)
    cx, cy, rx, ry = w * 0.5, h * 0.45, w * 0.32, h * 0.36
    for y in range(h):
        for x in range(w):
            r = ((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2
            v = (1.25 - r) / 0.5
            out[y * w + x] = int(round(255 * min(max(v, 0.0), 1.0)))
    return bytes(out)


def _layer(doc, name, img, depth, space=None):
    """A paint layer holding `img`; `space` = (model, depth, profile) gives the layer a colour space of its own
    (a float depth layer in an 8-bit document), set while it is still empty so nothing is converted."""
    taken = {n.name() for n in _all_layers(doc)}
    while name in taken:   # names key the before/after snapshots (Krita's own layer is 'Background')
        name += " input"
    node = doc.createNode(name, "paintlayer")
    doc.rootNode().addChildNode(node, None)
    if space:
        node.setColorSpace(*space)
    if doc.colorModel() == "RGBA":   # other models are only used to check the refusal: pixels do not matter
        node.setPixelData(img.to_krita(node.colorDepth()), 0, 0, img.width, img.height)
    return node


def _all_layers(doc):
    out = []

    def walk(n):
        for c in n.childNodes():
            out.append(c)
            walk(c)
    walk(doc.rootNode())
    return out


def run_case(case, plan, out_dir, Krita, Selection, jobs, pixels):
    msgs = []
    w, h, depth = case["width"], case["height"], case["depth"]
    op = case["op"]
    doc = Krita.instance().createDocument(w, h, f"aip-{op['name']}-{depth}", case.get("model", "RGBA"), depth,
                                          "", 72.0)
    try:
        def load(spec):
            """A raw RGBA file: a path (float32) or {"path", "dtype"} (values to store exactly)."""
            path, dtype = (spec, "f32") if isinstance(spec, str) else (spec["path"], spec["dtype"])
            with open(path, "rb") as fh:
                return pixels.Image(w, h, 4, dtype, fh.read())
        spaces = case.get("spaces") or {}
        # the background layer Krita made stays at the bottom, untouched
        nodes = {}
        frames = []
        source = None
        for inp in op["inputs"]:
            files = case["inputs"].get(inp["name"])
            if files is None:
                continue
            if inp["kind"] == "frames":
                for k, f in enumerate(files):
                    frames.append(_layer(doc, f"Frame {k + 1}", load(f), depth))
                source = frames[0]
            else:
                node = _layer(doc, inp["name"].capitalize(), load(files), depth, spaces.get(inp["name"]))
                nodes[inp["name"]] = node
                if inp["kind"] == "image":
                    source = node
        doc.setActiveNode(source)
        if case["selection"] or case.get("clip"):
            sel = Selection()
            sel.setPixelData(_soft_selection(w, h), 0, 0, w, h)
            doc.setSelection(sel)
        doc.refreshProjection()
        doc.waitForDone()
        before = {n.name(): bytes(n.pixelData(0, 0, w, h)) for n in _all_layers(doc)}
        layer_count = len(_all_layers(doc))
        annotations = list(doc.annotationTypes())

        picks = {k: v for k, v in nodes.items() if v is not source}
        t0 = time.time()
        progress = []
        error = req = None
        try:
            req = jobs.prepare(doc, source, op, picks=picks, frames=frames or None, params=case["params"],
                               seed=case["seed"], use_selection=case["selection"],
                               clip_to_selection=case.get("clip", False))
            res = jobs.execute(req, progress=lambda f, m: progress.append(f))
            layer = jobs.finish(req, res)
        except Exception as exc:  # noqa: BLE001 - a failing operator is a tested outcome
            error = exc
        seconds = time.time() - t0

        after_nodes = _all_layers(doc)
        for n in after_nodes:
            if n.name() in before and bytes(n.pixelData(0, 0, w, h)) != before[n.name()]:
                _fail(msgs, f"layer '{n.name()}' changed")
        if case.get("expect_error"):
            if error is None:
                _fail(msgs, "the failing operator did not raise")
            elif case["expect_error"] not in str(error):
                _fail(msgs, f"error message {str(error)!r} lacks {case['expect_error']!r}")
            if len(after_nodes) != layer_count:
                _fail(msgs, f"a failing run changed the layer count {layer_count} -> {len(after_nodes)}")
            if list(doc.annotationTypes()) != annotations:
                _fail(msgs, "a failing run added an annotation")
            return {"name": case["name"], "ok": not msgs, "messages": msgs, "error": str(error),
                    "seconds": seconds}
        if error is not None:
            tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            return {"name": case["name"], "ok": False, "messages": [f"run failed: {error}"], "traceback": tb,
                    "detail": getattr(error, "detail", ""), "seconds": seconds}
        clipped = getattr(req, "clipped", None)
        if case.get("clip") and clipped not in ("mask", "alpha"):
            _fail(msgs, f"clip to selection was asked but not done ({clipped})")
        if len(after_nodes) != layer_count + 1 + (1 if clipped == "mask" else 0):
            _fail(msgs, f"expected one new layer (+ its mask), have {len(after_nodes) - layer_count} new nodes")
        anchor = frames[-1] if frames else source   # frames were stacked bottom to top: the last is on top
        siblings = anchor.parentNode().childNodes()
        idx = [i for i, n in enumerate(siblings) if n == anchor]
        if not idx or idx[0] + 1 >= len(siblings) or not (siblings[idx[0] + 1] == layer):
            _fail(msgs, "the new layer is not directly above the source (the top-most frame for a burst)")
        got = bytes(layer.pixelData(0, 0, w, h))
        from ai_portrait import document
        want_img = res.image
        if clipped == "alpha":
            want_img = document.multiply_alpha(res.image, bytes(doc.selection().pixelData(0, 0, w, h)))
        if got != jobs.expected_layer_bytes(req, want_img, layer, res):
            _fail(msgs, "the new layer does not hold the result's bytes")
        masks = [c for c in layer.childNodes() if c.type() == "transparencymask"]
        if len(masks) != (1 if clipped == "mask" else 0):
            _fail(msgs, f"expected {1 if clipped == 'mask' else 0} transparency mask, found {len(masks)}")
        keys = [a for a in doc.annotationTypes() if a.startswith("ai-portrait/")]
        new_keys = [k for k in keys if k not in annotations]
        if len(new_keys) != 1:
            _fail(msgs, f"expected one provenance annotation, found {new_keys}")
        else:
            record = json.loads(bytes(doc.annotation(new_keys[0])).decode("utf-8"))
            if record.get("operator") != op["name"] or record.get("seed") != case["seed"]:
                _fail(msgs, f"provenance record wrong: {record}")
        if not progress:
            _fail(msgs, "no progress was reported")
        # what the worker received and what the layer holds, for the reference recomputation
        stem = os.path.join(out_dir, case["name"])
        sent = {}
        for name, value in req.inputs.items():
            imgs = value if isinstance(value, list) else [value]
            for k, img in enumerate(imgs):
                path = f"{stem}.in.{name}.{k}.{img.dtype}"
                with open(path, "wb") as fh:
                    fh.write(img.tobytes())
                sent.setdefault(name, []).append({"path": path, "dtype": img.dtype, "list": isinstance(value, list)})
        mask_path = None
        if req.mask is not None:
            mask_path = f"{stem}.mask.u8"
            with open(mask_path, "wb") as fh:
                fh.write(req.mask.tobytes())
        native = {}
        for name, node in list(nodes.items()) + [(f"frame{k}", f) for k, f in enumerate(frames)]:
            path = f"{stem}.krita.{name}"
            with open(path, "wb") as fh:
                fh.write(before[node.name()])
            native[name] = path
        with open(f"{stem}.krita.result", "wb") as fh:
            fh.write(got)
        native["result"] = f"{stem}.krita.result"
        layer_img = pixels.Image.from_krita(got, w, h, depth)
        with open(f"{stem}.layer.{layer_img.dtype}", "wb") as fh:
            fh.write(layer_img.tobytes())
        src_img = pixels.Image.from_krita(before[source.name()], w, h, depth)
        with open(f"{stem}.source.{src_img.dtype}", "wb") as fh:
            fh.write(src_img.tobytes())
        layers = {name: {"depth": node.colorDepth(), "profile": node.colorProfile(),
                         "linear": document.is_linear(node)} for name, node in nodes.items()}
        return {"name": case["name"], "ok": not msgs, "messages": msgs, "seconds": seconds, "sent": sent,
                "stored_as": req.stored_as, "layers": layers, "document": [doc.colorDepth(), doc.colorProfile()],
                "mask": mask_path, "layer": f"{stem}.layer.{layer_img.dtype}",
                "source": f"{stem}.source.{src_img.dtype}", "dtype": layer_img.dtype,
                "info": res.info, "layer_name": layer.name(), "progress_calls": len(progress),
                "clipped": clipped, "native": native, "linear": document.is_linear(layer), "profile": layer.colorProfile()}
    finally:
        doc.setModified(False)
        doc.close()


def __main__(args):
    code = 1
    results = {"cases": []}
    out_dir = os.environ["AIP_OUT"]
    try:
        with open(os.environ["AIP_PLAN"], "r", encoding="utf-8") as fh:
            plan = json.load(fh)
        from krita import Krita, Selection
        if plan.get("zip"):
            # install the plugin the way a user does: Krita's own importer on our zip
            sys.path.insert(0, "/usr/share/krita/pykrita")
            import builtins
            builtins.i18n = getattr(builtins, "i18n", lambda s: s)
            from plugin_importer.plugin_importer import PluginImporter
            imported = PluginImporter(plan["zip"], plan["zip_resources"], lambda p: True).import_all()
            results["zip_imported"] = [p["name"] for p in imported]
            sys.path.insert(0, os.path.join(plan["zip_resources"], "pykrita"))
        import ai_portrait  # noqa: F401 - registers the docker factory and extension, as at Krita's start
        from ai_portrait import jobs
        from ai_portrait.bridge import load
        results["plugin_file"] = ai_portrait.__file__
        results["bridge_file"] = load().__file__
        pixels = load().pixels
        results["registry"] = jobs.client().list_operators()
        for case in plan["cases"]:
            try:
                r = run_case(case, plan, out_dir, Krita, Selection, jobs, pixels)
            except Exception as exc:  # noqa: BLE001
                r = {"name": case["name"], "ok": False, "messages": [f"harness error: {exc}"],
                     "traceback": traceback.format_exc()}
            results["cases"].append(r)
            print(f"[aip] {r['name']}: {'ok' if r['ok'] else 'FAIL ' + '; '.join(r['messages'])} "
                  f"({r.get('seconds', 0):.2f} s)", flush=True)
        jobs.close_client()
        code = 0
    except Exception:  # noqa: BLE001
        results["error"] = traceback.format_exc()
        print(results["error"], file=sys.stderr, flush=True)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1, default=str)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
