"""Tests only: drives the AI Portrait docker inside a real Krita window (Xvfb), then quits Krita.

Installed next to ai_portrait in a scratch profile by tests/hosts/test_krita.py; starts when the main window is
created. The plan ($AIP_PLAN) gives the registry to compare with and per-operator inputs; results and
screenshots go to $AIP_OUT. Every step is guarded: an exception is recorded, never raised into Krita (that
would open a modal dialog and hang the run), and a watchdog quits Krita if a step stalls.
"""
import json
import os
import sys
import time
import traceback

from krita import Krita, Selection

try:
    from PyQt5 import QtCore, QtGui, QtWidgets
except ImportError:  # Krita 6
    from PyQt6 import QtCore, QtGui, QtWidgets

OUT = os.environ.get("AIP_OUT", "")
RESULTS = {"checks": {}, "errors": [], "log": []}
_started = [False]


def log(msg):
    RESULTS["log"].append(f"{time.strftime('%H:%M:%S')} {msg}")
    print(f"[aip_selftest] {msg}", file=sys.stderr, flush=True)


def check(name, ok, detail=""):
    RESULTS["checks"][name] = {"ok": bool(ok), "detail": detail}
    log(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")


def save_results():
    if OUT:
        with open(os.path.join(OUT, "results.json"), "w", encoding="utf-8") as fh:
            json.dump(RESULTS, fh, indent=1, default=str)


def quit_krita():
    save_results()
    try:
        for d in list(Krita.instance().documents()):
            d.setModified(False)
            d.close()
    except Exception:  # noqa: BLE001
        RESULTS["errors"].append(traceback.format_exc())
    save_results()
    Krita.instance().action("file_quit").trigger()


def run_steps(gen):
    """Drive a generator: each `yield seconds` waits that long on a Qt timer (the event loop keeps running)."""
    def tick():
        try:
            delay = next(gen)
        except StopIteration:
            quit_krita()
            return
        except Exception:  # noqa: BLE001
            RESULTS["errors"].append(traceback.format_exc())
            log("step raised: " + traceback.format_exc().splitlines()[-1])
            quit_krita()
            return
        QtCore.QTimer.singleShot(int(delay * 1000), tick)
    QtCore.QTimer.singleShot(0, tick)


def wait_for(cond, timeout, step=0.05):
    """A sub-generator: yields until cond() is true or timeout; returns whether it became true."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        yield step
    return cond()


def layer(doc, name, raw_f32_path, w, h, depth="U8"):
    sys.path.insert(0, os.path.join(os.environ["XDG_DATA_HOME"], "krita", "pykrita", "ai_portrait", "vendor"))
    from plugin.pixels import Image
    with open(raw_f32_path, "rb") as fh:
        img = Image(w, h, 4, "f32", fh.read())
    taken = {n.name() for n in all_nodes(doc)}
    while name in taken:   # names key the before/after snapshots (Krita's own layer is 'Background')
        name += " input"
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(img.to_krita(depth), 0, 0, w, h)
    doc.rootNode().addChildNode(node, None)
    return node


def all_nodes(doc):
    out = []

    def walk(n):
        for c in n.childNodes():
            out.append(c)
            walk(c)
    walk(doc.rootNode())
    return out


def snapshot(doc):
    w, h = doc.width(), doc.height()
    return {n.name(): bytes(n.pixelData(0, 0, w, h)) for n in all_nodes(doc)}


def unchanged(doc, before):
    now = snapshot(doc)
    return all(now.get(k) == v for k, v in before.items()), len(now) - len(before)


def steps():
    with open(os.environ["AIP_PLAN"], "r", encoding="utf-8") as fh:
        plan = json.load(fh)
    app = Krita.instance()
    yield from wait_for(lambda: app.activeWindow() is not None, 30)
    window = app.activeWindow()
    w = h = plan["size"]

    doc = app.createDocument(w, h, "AI Portrait self-test", "RGBA", "U8", "", 72.0)
    depth_layer = layer(doc, "Depth", plan["depth"], w, h)
    source = layer(doc, "Portrait", plan["portrait"], w, h)
    window.addView(doc)
    yield 0.5
    doc.setActiveNode(source)
    yield 0.3

    from ai_portrait.extension import find_docker
    docker = find_docker(window)
    check("docker_registered", docker is not None, "Settings > Dockers lists AI Portrait")
    if docker is None:
        return
    docker.setVisible(True)
    docker.raise_()
    loaded = yield from wait_for(lambda: docker.operators and not docker.busy() and
                                 "test_scale" in docker.pages, 180)
    check("registry_loaded_from_worker", loaded, f"{len(docker.operators)} operators; status "
                                                 f"'{docker.status.text()}'")
    if not loaded:
        return

    # -- controls generated from the registry ---------------------------------------------------------------
    counts = {}
    ok = True
    for op in docker.operators:
        page = docker.pages[op["name"]]
        params = [c for c in page.findChildren(QtWidgets.QWidget) if c.objectName().startswith("param:")]
        inputs = [c for c in page.findChildren(QtWidgets.QWidget) if c.objectName().startswith("input:")]
        want_inputs = [i for i in op["inputs"] if i["kind"] != "image"]
        defaults = page.param_values()
        bad_defaults = {p["name"]: (defaults.get(p["name"]), p["default"]) for p in op["params"]
                        if not _same(defaults.get(p["name"]), p["default"])}
        counts[op["name"]] = {"params": len(params), "declared_params": len(op["params"]),
                              "inputs": len(inputs), "declared_inputs": len(want_inputs),
                              "bad_defaults": bad_defaults}
        ok = ok and len(params) == len(op["params"]) and len(inputs) == len(want_inputs) and not bad_defaults
    RESULTS["controls"] = counts
    check("controls_match_registry", ok, json.dumps(counts))
    check("registry_matches_cli", {o["name"] for o in plan["registry"]} <= set(docker.pages),
          f"docker: {sorted(docker.pages)}")
    check("menu_actions", all(app.action("ai_portrait_" + o["name"]) is not None for o in plan["registry"]),
          "one action per operator")

    # -- a run through the docker: progress, GUI responsive, new layer -------------------------------------
    docker.select_operator("test_scale")
    page = docker.current_page()
    page.params["factor"].set_value(0.5)
    page.params["steps"].set_value(10)
    page.params["step_seconds"].set_value(0.1)
    docker.use_selection.setChecked(True)
    before = snapshot(doc)
    ticks, seen = [0], []
    docker.apply_button.click()
    t0 = time.time()

    def running():
        ticks[0] += 1
        seen.append(docker.progress.value())
        return not docker.busy()
    done = yield from wait_for(running, 60)
    same, added = unchanged(doc, before)
    new = docker.last_layer
    check("run_via_docker", done and added == 1 and new is not None and docker.status.text().startswith("done"),
          f"status '{docker.status.text()}', {added} new layer(s), {time.time() - t0:.2f} s")
    check("gui_responsive_during_run", ticks[0] >= 10, f"{ticks[0]} timer ticks while the worker ran ~1 s")
    mid = [v for v in seen if 0 < v < 1000]
    check("progress_reported", bool(mid) and docker.progress.value() == 1000, f"intermediate values {mid[:8]}")
    check("source_unchanged", same, "pixelData of every earlier layer")
    if new is not None:
        siblings = source.parentNode().childNodes()
        idx = [i for i, n in enumerate(siblings) if n == source][0]
        check("new_layer_above_source", idx + 1 < len(siblings) and siblings[idx + 1] == new, new.name())
        annotations = [a for a in doc.annotationTypes() if a.startswith("ai-portrait/")]
        record = json.loads(bytes(doc.annotation(annotations[-1])).decode()) if annotations else {}
        check("provenance_annotation", record.get("operator") == "test_scale" and record.get("params", {})
              .get("factor") == 0.5, json.dumps(record)[:300])
        doc.setActiveNode(source)
        yield 0.3

    # -- cancel ---------------------------------------------------------------------------------------------
    page.params["steps"].set_value(200)
    before = snapshot(doc)
    docker.apply_button.click()
    yield 1.0
    was_busy = docker.busy()
    docker.cancel_button.click()
    t_cancel = time.time()
    stopped = yield from wait_for(lambda: not docker.busy(), 20)
    same, added = unchanged(doc, before)
    check("cancel", was_busy and stopped and "cancelled" in docker.status.text() and same and added == 0,
          f"status '{docker.status.text()}' after {time.time() - t_cancel:.2f} s, {added} new layer(s)")

    # -- failing operators: message in the docker, nothing changed -----------------------------------------
    for kind, text in (("user", "refuses this image on purpose"), ("bug", "bug")):
        docker.select_operator("test_fail")
        docker.current_page().params["kind"].set_value(kind)
        before = snapshot(doc)
        docker.apply_button.click()
        yield from wait_for(lambda: not docker.busy(), 60)
        same, added = unchanged(doc, before)
        check(f"failure_{kind}_shown", text in docker.status.text().lower() and docker.last_error and same
              and added == 0, f"status '{docker.status.text()}'")
    # a host-side problem (required layer missing) is shown too
    before = snapshot(doc)
    docker.select_operator("test_mean")
    docker.current_page().frames.set_layers([])
    docker.apply_button.click()
    yield 0.3
    same, added = unchanged(doc, before)
    check("host_error_shown", bool(docker.last_error) and same and added == 0, f"status '{docker.status.text()}'")

    # -- the optional transparency mask from a selection ----------------------------------------------------
    log("mask actions: " + ", ".join(a.objectName() for a in app.actions() if "mask" in a.objectName()))
    sel = Selection()
    sel.select(w // 4, h // 4, w // 2, h // 2, 255)
    doc.setSelection(sel)
    doc.setActiveNode(source)
    yield 0.3
    docker.select_operator("test_scale")
    docker.current_page().params["steps"].set_value(1)
    docker.clip_mask.setChecked(True)
    docker.apply_button.click()
    yield from wait_for(lambda: not docker.busy(), 60)
    yield 0.5
    new = docker.last_layer
    masks = [c for c in new.childNodes() if c.type() == "transparencymask"] if new is not None else []
    info = {}
    annotations = [a for a in doc.annotationTypes() if a.startswith("ai-portrait/")]
    if annotations:
        info = json.loads(bytes(doc.annotation(annotations[-1])).decode())
    check("selection_transparency_mask", len(masks) == 1 and info.get("clipped_by_selection") == "mask",
          f"status '{docker.status.text()}', masks {len(masks)}, clipped {info.get('clipped_by_selection')}")
    docker.clip_mask.setChecked(False)
    doc.setSelection(Selection())
    doc.setActiveNode(source)
    yield 0.3

    # -- a repeatable coordinate parameter through the docker: rows added with 'Add another' --------------
    yield from repeat_step(docker, doc, source, plan)

    # -- every real operator through the docker, on its own document ----------------------------------------
    shot_op = None
    for op in plan["registry"]:
        case = plan["cases"].get(op["name"])
        if case is None:
            continue
        d = app.createDocument(w, h, f"self-test {op['name']}", "RGBA", "U8", "", 72.0)
        nodes, frames = {}, []
        for inp in op["inputs"]:
            f = case["inputs"].get(inp["name"])
            if f is None:
                continue
            if inp["kind"] == "frames":
                frames = [layer(d, f"Frame {k + 1}", p, w, h) for k, p in enumerate(f)]
            else:
                nodes[inp["name"]] = layer(d, inp["name"].capitalize(), f, w, h)
        window.addView(d)
        yield 0.5
        src = frames[0] if frames else next(n for k, n in nodes.items()
                                            if any(i["name"] == k and i["kind"] == "image" for i in op["inputs"]))
        d.setActiveNode(src)
        yield 0.3
        docker.select_operator(op["name"])
        pg = docker.current_page()
        for k, v in case["params"].items():
            if k in pg.params:
                pg.params[k].set_value(v)
        docker._refresh_layers()
        for name, picker in pg.pickers.items():
            node = nodes.get(name)
            if node is not None:
                picker.setCurrentIndex(picker.findText(node.name()))
        if pg.frames is not None:
            # the user's way: select the frame layers in the Layers docker, press 'Use selected layers',
            # untick what is not a frame (here: the white Background layer)
            app.action("select_all_layers").trigger()
            yield 0.5
            pg.frames.button.click()
            listed = [pg.frames.list.item(i).text() for i in range(pg.frames.list.count())]
            unchecked = enum_checkstate("Unchecked")
            for i in range(pg.frames.list.count()):
                if not pg.frames.list.item(i).text().startswith("Frame"):
                    pg.frames.list.item(i).setCheckState(unchecked)
            picked = pg.frames.value()
            check(f"frames_from_selected_layers_{op['name']}", len(picked) == len(frames),
                  f"listed {listed}, {len(picked)} ticked of {len(frames)} frames")
            # (no setActiveNode here: making one layer active selects it alone, and the list follows that)
            yield 0.3
        before = snapshot(d)
        docker.apply_button.click()
        t0 = time.time()
        finished = yield from wait_for(lambda: not docker.busy(), 240)
        same, added = unchanged(d, before)
        check(f"real_{op['name']}_via_docker", finished and added == 1 and same and
              docker.status.text().startswith("done"),
              f"status '{docker.status.text()}', {added} new layer(s), {time.time() - t0:.1f} s")
        if shot_op is None or op["name"] == plan.get("screenshot_op"):
            shot_op = op["name"]
            _screenshots(window, docker, op["name"])
        yield 0.2

    # -- a menu action (assignable shortcut) runs the operator through the docker ---------------------------
    if plan["registry"]:
        name = plan["registry"][-1]["name"]   # its document is the active one now
        d = app.activeDocument()
        n_before = len(all_nodes(d)) if d is not None else 0
        action = app.action("ai_portrait_" + name)
        if action is not None:
            previous = docker.last_layer
            action.trigger()
            yield 0.2
            yield from wait_for(lambda: not docker.busy(), 240)
            # the active layer is that filter's result, so the action re-runs it on the source and replaces it
            check("menu_action_runs_operator", docker.current_operator_name() == name and
                  docker.status.text().startswith("done") and docker.last_layer is not previous and
                  len(all_nodes(d)) == n_before, f"status '{docker.status.text()}'")
    if plan.get("screenshot_op"):
        # the documentation's picture: the docker floating at a comfortable size, all controls in view
        docker.select_operator(plan["screenshot_op"])
        docker.setFloating(True)
        docker.resize(470, 760)
        yield 0.8
        _screenshots(window, docker, "final")
        # and the page of a repeatable parameter: rows, 'Add another', the Advanced section open
        if "test_inputs" in docker.pages:
            docker.select_operator("test_inputs")
            fill_repeat_rows(docker.current_page(), plan)
            docker.resize(470, 900)
            yield 0.8
            _screenshots(window, docker, "repeat")


def retouch_steps():
    """Plan mode 'retouch' (test_krita_retouch.py): what a retoucher meets, each step checked."""
    with open(os.environ["AIP_PLAN"], "r", encoding="utf-8") as fh:
        plan = json.load(fh)
    app = Krita.instance()
    yield from wait_for(lambda: app.activeWindow() is not None, 30)
    window = app.activeWindow()
    w = h = plan["size"]
    doc_a = app.createDocument(w, h, "burst A", "RGBA", "U8", "", 72.0)
    frames_a = [layer(doc_a, f"Frame {k + 1}", plan["portrait"], w, h) for k in range(3)]
    view_a = window.addView(doc_a)
    doc_b = app.createDocument(w, h, "burst B", "RGBA", "U8", "", 72.0)
    shots_b = [layer(doc_b, f"Shot {k + 1}", plan["portrait"], w, h) for k in range(2)]
    view_b = window.addView(doc_b)
    yield 0.5
    from ai_portrait.extension import find_docker
    docker = find_docker(window)
    check("docker_registered", docker is not None, "")
    if docker is None:
        return
    docker.setVisible(True)
    docker.raise_()
    loaded = yield from wait_for(lambda: docker.operators and not docker.busy() and "test_mean" in docker.pages,
                                 180)
    check("registry_loaded_from_worker", loaded, docker.status.text())
    if not loaded:
        return
    yield from follow_selection_steps(app, window, docker, plan, (doc_a, view_a, frames_a),
                                      (doc_b, view_b, shots_b))
    yield from auto_text_step(docker)
    yield from help_step(docker)
    yield from preview_steps(app, window, docker, plan)
    yield from pick_steps(app, window, docker, plan)
    yield from showcase_steps(app, window, docker, plan)


def _screen(path):
    """The whole (virtual) screen: the main window and the floating docker."""
    QtWidgets.QApplication.primaryScreen().grabWindow(0).save(path)


def showcase_steps(app, window, docker, plan):
    """The pictures for docs/: Refocus on the astronaut with the live preview, then its applied result."""
    if "refocus" not in docker.pages or not plan.get("showcase"):
        return
    w = h = plan["showcase_size"]
    doc = app.createDocument(w, h, "portrait", "RGBA", "U8", "", 72.0)
    photo = layer(doc, "Portrait", plan["showcase"], w, h)
    window.addView(doc)
    yield 0.5
    activate(window, doc)
    doc.setActiveNode(photo)
    yield 0.5
    docker.select_operator("refocus")
    docker.current_page().params["f_number"].set_value(1.4)
    # the docker floating beside the window, so one screen picture shows both
    docker.setFloating(True)
    screen = QtWidgets.QApplication.primaryScreen().availableGeometry()   # logical pixels (Krita scales)
    window.qwindow().setGeometry(0, 0, screen.width() - 480, min(screen.height(), 830))
    yield 0.5
    geo = window.qwindow().frameGeometry()
    docker.setGeometry(geo.right() + 4, geo.top(), 470, min(geo.height(), screen.height()))
    stats = docker.preview_stats
    n = stats["shown"]
    docker.preview.setChecked(True)
    shown = yield from wait_for(lambda: stats["shown"] > n, 120)
    yield 0.8
    if OUT:
        _screen(os.path.join(OUT, "window-preview.png"))
    docker.apply_button.click()
    done = yield from wait_for(lambda: not docker.busy(), 240)
    yield 1.0
    if OUT:
        _screen(os.path.join(OUT, "window-result.png"))
        docker.grab().save(os.path.join(OUT, "docker-result.png"))
    check("showcase_refocus", shown and done and docker.status.text().startswith("done"),
          f"status '{docker.status.text()}'")
    yield from tour_steps(window, docker, doc, photo, plan)
    doc.setModified(False)


def _mean_abs_diff_u8(a, b, w, h):
    """Mean |a - b| over B, G, R (0..255) and the share of pixels that moved by more than 2 levels."""
    ra, rb = bytes(a.pixelData(0, 0, w, h)), bytes(b.pixelData(0, 0, w, h))
    total, moved = 0, 0
    for k in range(0, len(ra), 4):
        d = abs(ra[k] - rb[k]) + abs(ra[k + 1] - rb[k + 1]) + abs(ra[k + 2] - rb[k + 2])
        total += d
        moved += d > 6
    n = w * h
    return total / (3.0 * n), moved / n


def tour_steps(window, docker, doc, photo, plan):
    """Every new filter applied through the docker as a retoucher would, on the astronaut: its main controls
    set (relight's lights in the repeat table, one added with 'Add another'), Apply, the result looked at
    (a screenshot per filter) and measured against the photo: it changed what the filter changes."""
    w = h = plan["showcase_size"]
    previous = docker.last_layer
    for step in plan.get("tour", []):
        name = step["op"]
        if name not in docker.pages:
            check(f"tour_{name}", False, "not in the docker")
            continue
        if previous is not None:
            previous.setVisible(False)   # the window shows this filter's result, not the one before
        doc.setActiveNode(photo)
        docker.select_operator(name)
        page = docker.current_page()
        yield 0.3
        for key, value in step.get("params", {}).items():
            page.params[key].set_value(value)
        if step.get("add_light"):   # the table as a user uses it: a second light, then edited
            ctl = page.params["light"].add_row()
            ctl.set_value(step["add_light"])
        if step.get("picker"):
            key, layer_name, raw = step["picker"]
            extra = layer(doc, layer_name, raw, w, h)
            yield 0.3
            from ai_portrait import document as aip_document
            docker._refresh_layers()   # what a click in the Layers docker does
            picker = page.pickers[key]
            picker.setCurrentIndex(picker.findData(aip_document.node_id(extra)))
            extra.setVisible(False)
            doc.setActiveNode(photo)
        values = page.param_values()
        yield 0.3
        docker.apply_button.click()
        done = yield from wait_for(lambda: not docker.busy(), 300)
        yield 0.8
        result = docker.last_layer
        status = docker.status.text()
        if OUT:
            _screen(os.path.join(OUT, f"tour-{name}.png"))
        ok = done and status.startswith("done") and result is not None and not (result == previous)
        diff = moved = None
        if ok:
            diff, moved = _mean_abs_diff_u8(result, photo, w, h)
            lo, hi = step["moved"]
            ok = lo <= moved <= hi and diff > 0.01
        check(f"tour_{name}", ok, f"status '{status}', mean |diff| {diff}, share moved {moved}, "
              f"settings {json.dumps(values, default=str)}")
        previous = result or previous


def help_step(docker):
    """The docker's Help button opens the current filter's bundled page (the URL is caught, not opened)."""
    opened = []
    docker.open_url = lambda url: opened.append(url.toLocalFile()) or True
    name = "refocus" if "refocus" in docker.pages else docker.operators[0]["name"]
    docker.select_operator(name)
    yield 0.2
    docker.help_button.click()
    yield 0.2
    ok = len(opened) == 1 and opened[0].endswith(f"/ai_portrait/help/{name}.html") and os.path.isfile(opened[0])
    check("help_opens_the_filters_page", ok, f"opened {opened}")


def auto_text_step(docker):
    """A value left to the filter reads 'auto' in its field, in the real docker."""
    docker.select_operator("test_inputs")
    page = docker.current_page()
    yield 0.2
    texts = {name: [s.text() for s in page.params[name]._spin_boxes()] for name in ("distance", "spot")}
    check("auto_fields_read_auto", all(t == "auto" for v in texts.values() for t in v), json.dumps(texts))


def _mean_u8(node, w, h):
    raw = bytes(node.pixelData(0, 0, w, h))
    total = 0
    for k in range(0, len(raw), 4):   # B, G, R (alpha left out)
        total += raw[k] + raw[k + 1] + raw[k + 2]
    return total / (3.0 * w * h)


def _preview_node(doc):
    return next((n for n in doc.rootNode().childNodes() if n.name() == "AI Portrait preview"), None)


def preview_steps(app, window, docker, plan):
    """The live preview: a temporary layer computed on a ~1 MP proxy, updated after a change, the previous
    job cancelled, removed on Cancel and on Apply."""
    w, h = plan["big_size"]
    doc = app.createDocument(w, h, "preview", "RGBA", "U8", "", 72.0)
    photo = layer(doc, "Photo", plan["big"], w, h)
    window.addView(doc)
    yield 0.5
    activate(window, doc)
    doc.setActiveNode(photo)
    yield 0.5
    base = _mean_u8(photo, w, h)
    docker.select_operator("test_scale")
    page = docker.current_page()
    page.params["factor"].set_value(0.5)
    page.params["steps"].set_value(1)
    page.params["step_seconds"].set_value(0.0)
    before = snapshot(doc)
    stats = docker.preview_stats
    docker.preview.setChecked(True)
    shown = yield from wait_for(lambda: stats["shown"] >= 1 and _preview_node(doc) is not None, 60)
    node = _preview_node(doc)
    ratio1 = _mean_u8(node, w, h) / base if node is not None else None
    above = node is not None and [n.name() for n in doc.rootNode().childNodes()][-1] == "AI Portrait preview"
    check("preview_appears", shown and above and ratio1 is not None and abs(ratio1 - 0.5) < 0.02,
          f"ratio {ratio1}, proxy scale {stats.get('proxy_scale')}, stats {json.dumps(stats)}")
    # a slider change: the preview follows within about a second
    n0 = stats["shown"]
    page.params["factor"].slider.setValue(int(round(0.8 / 100.0 * 1000)))   # the slider, as a user drags it
    factor = page.params["factor"].value()
    updated = yield from wait_for(lambda: stats["shown"] > n0 and
                                  stats.get("shown_params", {}).get("factor") == factor, 30)
    node = _preview_node(doc)
    ratio2 = _mean_u8(node, w, h) / base if node is not None else None
    check("preview_follows_a_slider", updated and ratio2 is not None and abs(ratio2 - min(factor, 255 / base))
          < 0.03, f"factor {factor}, ratio {ratio2}, seconds to show {stats['seconds']}, "
          f"started {stats['started']}, shown {stats['shown']}")
    RESULTS["preview_seconds"] = list(stats["seconds"])
    # a slow job replaced by a newer one: the first is cancelled and never shown
    n1, c1 = stats["shown"], stats["cancelled"]
    page.params["step_seconds"].set_value(0.1)
    page.params["steps"].set_value(40)
    page.params["factor"].set_value(0.3)
    yield 0.8
    page.params["factor"].set_value(0.4)
    updated = yield from wait_for(lambda: stats["shown"] > n1, 60)
    node = _preview_node(doc)
    ratio3 = _mean_u8(node, w, h) / base if node is not None else None
    check("preview_cancels_the_previous_job", updated and stats["cancelled"] > c1 and stats["shown"] == n1 + 1
          and ratio3 is not None and abs(ratio3 - 0.4) < 0.02,
          f"ratio {ratio3}, cancelled {stats['cancelled'] - c1}, shown {stats['shown'] - n1}")
    # Cancel removes it and changes nothing
    docker.cancel_button.click()
    yield 0.5
    same, added = unchanged(doc, before)
    check("preview_removed_on_cancel", _preview_node(doc) is None and same and added == 0
          and not docker.preview.isChecked(), f"{added} layer(s) more, status '{docker.status.text()}'")
    # Apply: the preview goes, one result at full size comes
    page.params["steps"].set_value(1)
    page.params["step_seconds"].set_value(0.0)
    page.params["factor"].set_value(0.6)
    docker.preview.setChecked(True)
    n2 = stats["shown"]
    yield from wait_for(lambda: stats["shown"] > n2, 30)
    had = _preview_node(doc) is not None
    docker.apply_button.click()
    done = yield from wait_for(lambda: not docker.busy(), 60)
    yield 0.6
    names = [n.name() for n in doc.rootNode().childNodes()]
    new = docker.last_layer
    ratio4 = _mean_u8(new, w, h) / base if new is not None else None
    check("preview_removed_on_apply", had and done and "AI Portrait preview" not in names and
          names.count("Test scale (factor 0.6)") == 1 and len(names) == len(before) + 1 and ratio4 is not None
          and abs(ratio4 - 0.6) < 0.01, f"layers {names}, ratio {ratio4}")
    doc.setModified(False)


def _grab(widget):
    """The canvas widget's pixels as drawn: an OpenGL canvas from its framebuffer, else from the screen."""
    if hasattr(widget, "grabFramebuffer"):
        img = widget.grabFramebuffer()
        if not img.isNull():
            return img, "framebuffer"
    screen = QtWidgets.QApplication.primaryScreen()
    top_left = widget.mapToGlobal(QtCore.QPoint(0, 0))
    pix = screen.grabWindow(0, top_left.x(), top_left.y(), widget.width(), widget.height())
    return pix.toImage(), "screen"


def _white_centroid(widget):
    """Where the picture's only white square is drawn in the canvas widget (its own pixels, grabbed)."""
    img, how = _grab(widget)
    log(f"canvas widget {widget.metaObject().className()} {widget.width()}x{widget.height()}, grabbed "
        f"{img.width()}x{img.height()} from the {how}")
    xs = ys = n = 0
    for y in range(0, img.height()):
        for x in range(0, img.width()):
            c = img.pixel(x, y)
            if (c >> 16 & 255) > 200 and (c >> 8 & 255) > 200 and (c & 255) > 200:
                xs += x
                ys += y
                n += 1
    return (xs / n + 0.5, ys / n + 0.5, n) if n else (None, None, 0)


def pick_steps(app, window, docker, plan):
    """'Pick' then a click on the canvas: the point under the click becomes the parameter, in image pixels,
    and reaches the worker so."""
    from ai_portrait import canvas
    w, h = 200, 150
    doc = app.createDocument(w, h, "pick", "RGBA", "U8", "", 72.0)
    mark = layer(doc, "Mark", plan["mark"], w, h)
    window.addView(doc)
    yield 0.5
    activate(window, doc)
    doc.setActiveNode(mark)
    doc.refreshProjection()
    yield 1.5
    docker.select_operator("test_inputs")
    page = docker.current_page()
    spot = page.params["spot"]
    widgets = canvas.canvas_widgets(window)
    if not widgets:
        check("canvas_point_reaches_the_worker", False, "no canvas widget found")
        return
    wx, wy, n = _white_centroid(widgets[0])
    if not n:
        check("canvas_point_reaches_the_worker", False, "the white square is not on the canvas widget")
        return
    spot.pick.setChecked(True)
    yield 0.2
    pos = QtCore.QPointF(wx, wy)
    for kind, button, buttons in (("MouseMove", "NoButton", "NoButton"),
                                  ("MouseButtonPress", "LeftButton", "LeftButton"),
                                  ("MouseButtonRelease", "LeftButton", "NoButton")):
        ev = QtGui.QMouseEvent(_qenum(QtCore.QEvent, "Type", kind), pos, _qenum(QtCore.Qt, "MouseButton", button),
                               _qenum(QtCore.Qt, "MouseButton", buttons),
                               _qenum(QtCore.Qt, "KeyboardModifier", "NoModifier"))
        QtWidgets.QApplication.sendEvent(widgets[0], ev)
        yield 0.3
    picked = docker.last_pick
    want = (124.0, 64.0)   # the centre of the white square (x 120..127, y 60..67)
    close = picked is not None and abs(picked[0] - want[0]) <= 1.5 and abs(picked[1] - want[1]) <= 1.5
    before = snapshot(doc)
    docker.apply_button.click()
    yield from wait_for(lambda: not docker.busy(), 60)
    annotations = [a for a in doc.annotationTypes() if a.startswith("ai-portrait/")]
    record = json.loads(bytes(doc.annotation(annotations[-1])).decode()) if annotations else {}
    got = (record.get("params") or {}).get("spot")
    same, added = unchanged(doc, before)
    check("canvas_point_reaches_the_worker", close and got is not None and picked is not None
          and abs(got[0] - picked[0]) <= 0.051 and abs(got[1] - picked[1]) <= 0.051 and added == 1
          and not spot.pick.isChecked(),
          f"white square drawn at widget {wx:.1f}, {wy:.1f} ({n} px); picked {picked}; worker got {got}; "
          f"status '{docker.status.text()}'; zoom {window.activeView().canvas().zoomLevel()}")
    RESULTS["pick"] = {"widget": [wx, wy], "picked": picked, "worker": got}
    doc.setModified(False)


def _qenum(owner, scope, name):
    scoped = getattr(owner, scope, None)
    return getattr(scoped, name) if scoped is not None and hasattr(scoped, name) else getattr(owner, name)


def activate(window, doc):
    """What clicking a document's tab does: make its sub-window the active one of the main window's MDI area
    (Window.showView only shows a view that is not shown yet). Sub-windows come in the order of the views."""
    mdi = window.qwindow().findChild(QtWidgets.QMdiArea)
    views = list(window.views())
    subs = mdi.subWindowList()
    for k, v in enumerate(views):
        if v.document() == doc and k < len(subs):
            mdi.setActiveSubWindow(subs[k])
            return True
    log(f"no sub-window for document {doc.name()!r}")
    return False


def follow_selection_steps(app, window, docker, plan, a, b):
    """The frames list follows the Layers docker's selection and the active document, with no button pressed."""
    doc_a, view_a, frames_a = a
    doc_b, view_b, shots_b = b
    op = "denoise" if "denoise" in docker.pages else "test_mean"
    docker.select_operator(op)
    page = docker.current_page()

    def listed():
        return [page.frames.list.item(i).text() for i in range(page.frames.list.count())]

    seen = {}
    activate(window, doc_a)
    yield 0.5
    app.action("select_all_layers").trigger()
    ok = yield from wait_for(lambda: set(listed()) == {"Frame 1", "Frame 2", "Frame 3", "Background"}, 5)
    seen["all of A"] = listed()
    doc_a.setActiveNode(frames_a[1])
    ok_one = yield from wait_for(lambda: listed() == ["Frame 2"], 5)
    seen["Frame 2 clicked"] = listed()
    activate(window, doc_b)
    yield 0.3
    doc_b.setActiveNode(shots_b[0])
    app.action("select_all_layers").trigger()
    ok_b = yield from wait_for(lambda: set(listed()) == {"Shot 1", "Shot 2", "Background"}, 5)
    seen["all of B"] = listed()
    activate(window, doc_a)
    ok_back = yield from wait_for(lambda: listed() and all(t.startswith("Frame") for t in listed()), 5)
    seen["back to A"] = listed()
    check("frames_follow_selection_and_document", ok and ok_one and ok_b and ok_back, json.dumps(seen))
    RESULTS["frames_seen"] = seen


def fill_repeat_rows(page, plan):
    """What a user does: 'Add another' once per mark, then type its numbers; one more level; open Advanced."""
    marks = page.params["marks"]
    marks.clear()
    for item in plan["marks"]:
        marks.add_button.click()
        marks.rows[-1][1].set_value(item)
    levels = page.params["levels"]
    levels.reset()
    levels.add_button.click()          # starts as a copy of the last level
    levels.rows[-1][1].set_value(0.75)
    page.advanced_button.setChecked(True)


def repeat_step(docker, doc, source, plan):
    if "test_inputs" not in docker.pages:
        check("repeat_rows_via_docker", False, "no test_inputs operator")
        return
    docker.select_operator("test_inputs")
    page = docker.current_page()
    fill_repeat_rows(page, plan)
    docker._refresh_layers()
    picker = page.pickers["depth"]
    picker.setCurrentIndex(picker.findText("Depth"))
    doc.setActiveNode(source)
    yield 0.3
    rows = {"marks": len(page.params["marks"].rows), "levels": len(page.params["levels"].rows)}
    docker.apply_button.click()
    yield from wait_for(lambda: not docker.busy(), 60)
    new = docker.last_layer
    annotations = [a for a in doc.annotationTypes() if a.startswith("ai-portrait/")]
    record = json.loads(bytes(doc.annotation(annotations[-1])).decode()) if annotations else {}
    params = (record.get("params") or {})
    want_levels = [0.25, 0.5, 0.75]
    painted = []
    if new is not None and docker.status.text().startswith("done"):
        for x, y, level in plan["marks"]:
            px = bytes(new.pixelData(int(x), int(y), 1, 1))   # U8: B, G, R, A
            painted.append([list(px[:3]), round(level * 255)])
    ok = (params.get("marks") == plan["marks"] and params.get("levels") == want_levels
          and (record.get("stored_as") or {}).get("depth") == "u8" and len(painted) == len(plan["marks"])
          and all(all(abs(c - want) <= 1 for c in got) for got, want in painted))
    check("repeat_rows_via_docker", ok, f"rows {rows}, status '{docker.status.text()}', params {params}, "
                                        f"stored_as {record.get('stored_as')}, painted {painted}")
    doc.setActiveNode(source)
    yield 0.3


def enum_checkstate(name):
    cs = getattr(QtCore.Qt, "CheckState", None)
    return getattr(cs, name) if cs is not None and hasattr(cs, name) else getattr(QtCore.Qt, name)


def _screenshots(window, docker, name):
    if not OUT:
        return
    docker.grab().save(os.path.join(OUT, f"docker-{name}.png"))
    window.qwindow().grab().save(os.path.join(OUT, f"window-{name}.png"))


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    return a == b


def _start(*_):
    if _started[0]:
        return
    _started[0] = True
    log("window created: starting the self-test")
    QtCore.QTimer.singleShot(int(float(os.environ.get("AIP_WATCHDOG_S", "300")) * 1000), _watchdog)
    mode = os.environ.get("AIP_MODE", "")
    run_steps(retouch_steps() if mode == "retouch" else steps())


def _watchdog():
    RESULTS["errors"].append("watchdog: the self-test did not finish in time")
    log("watchdog fired")
    quit_krita()


try:
    Krita.instance().notifier().windowCreated.connect(_start)
except Exception:  # noqa: BLE001
    print("[aip_selftest] could not start: " + traceback.format_exc(), file=sys.stderr, flush=True)
