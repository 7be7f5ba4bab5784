"""Runs INSIDE real Krita (`kritarunner -s aip_krita_retouch`): a retoucher's sessions of several runs on one
document through the plugin's own pipeline (ai_portrait.jobs: prepare -> execute -> finish), as the docker runs
them. Each step runs a filter on a layer the step names ('newest': the layer the previous run made, which the
docker leaves active; 'source'), and the layer stack after it is recorded: names, uuids, provenance, opacity,
and every result's pixels (raw, Krita's layout). The plan ($AIP_PLAN) gives the steps; $AIP_OUT gets
results.json and the pixel dumps. Ends with os._exit (kritarunner exits 0 even when a script raises).
"""
import json
import os
import sys
import traceback


def _layer(doc, name, img, depth):
    node = doc.createNode(name, "paintlayer")
    doc.rootNode().addChildNode(node, None)
    node.setPixelData(img.to_krita(depth), 0, 0, img.width, img.height)
    return node


def run_session(case, out_dir, Krita, jobs, document, pixels):
    w, h, depth = case["width"], case["height"], case["depth"]
    doc = Krita.instance().createDocument(w, h, f"aip-retouch-{case['name']}", "RGBA", depth, "", 72.0)
    try:
        def load(path):
            with open(path, "rb") as fh:
                return pixels.Image(w, h, 4, "f32", fh.read())
        frames = [_layer(doc, f"Frame {k + 1}", load(p), depth) for k, p in enumerate(case.get("frames", []))]
        source = _layer(doc, "Source", load(case["source"]), depth)
        rec = {"name": case["name"], "source_id": document.node_id(source),
               "frame_ids": [document.node_id(f) for f in frames], "steps": []}
        with open(os.path.join(out_dir, f"{case['name']}.source.raw"), "wb") as fh:
            fh.write(bytes(source.pixelData(0, 0, w, h)))
        newest = None
        ops = {o["name"]: o for o in case["ops"]}
        for k, step in enumerate(case["steps"]):
            op = ops[step["op"]]
            pick = step.get("select", "newest")
            target = newest if pick == "newest" else source
            burst = any(i["kind"] == "frames" for i in op["inputs"])
            chosen = ([target] if pick == "newest" else [source] + frames) if burst else None
            entry = {"select": pick}
            try:
                req = jobs.prepare(doc, target, op, frames=chosen, params=step.get("params", {}), seed=0,
                                   use_selection=False, rerun=step.get("rerun", "replace"))
                res = jobs.execute(req)
                newest = jobs.finish(req, res)
                entry["status"] = "success"
            except Exception as exc:  # noqa: BLE001 - recorded, the test says what failed
                entry["status"] = "error"
                entry["message"] = str(exc)
                entry["traceback"] = traceback.format_exc()
            layers = []
            for n in reversed(doc.rootNode().childNodes()):   # top first, as the Layers docker shows them
                item = {"name": n.name(), "id": document.node_id(n), "opacity": n.opacity()}
                prov = document.read_provenance(doc, n)
                if prov is not None:
                    item["provenance"] = {key: prov.get(key) for key in ("operator", "params", "source_ids",
                                                                         "source_layers", "rerun", "replaced",
                                                                         "pid")}
                    item["file"] = f"{case['name']}.step{k}.{len(layers)}.raw"
                    with open(os.path.join(out_dir, item["file"]), "wb") as fh:
                        fh.write(bytes(n.pixelData(0, 0, w, h)))
                layers.append(item)
            entry["layers"] = layers
            entry["annotations"] = sorted(a for a in doc.annotationTypes() if a.startswith("ai-portrait/"))
            rec["steps"].append(entry)
            if step.get("then_opacity") is not None and newest is not None:
                newest.setOpacity(int(step["then_opacity"]))
        return rec
    finally:
        doc.setModified(False)
        doc.close()


def __main__(args):
    code = 1
    results = {"sessions": []}
    out_dir = os.environ["AIP_OUT"]
    try:
        with open(os.environ["AIP_PLAN"], "r", encoding="utf-8") as fh:
            plan = json.load(fh)
        from krita import Krita
        import ai_portrait  # noqa: F401 - registers the docker factory and extension, as at Krita's start
        from ai_portrait import document, jobs
        from ai_portrait.bridge import load
        pixels = load().pixels
        for case in plan["sessions"]:
            try:
                results["sessions"].append(run_session(case, out_dir, Krita, jobs, document, pixels))
            except Exception:  # noqa: BLE001
                results["sessions"].append({"name": case["name"], "crash": traceback.format_exc()})
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
