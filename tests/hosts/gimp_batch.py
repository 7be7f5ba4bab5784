"""Runs inside real GIMP 3 (gimp-console, python-fu-eval batch): every case of a plan, through the PDB.

`exec`'d with PLAN set to the plan file's path (see test_gimp.py). Gimp, Gegl, GLib are already imported by
the batch interpreter. For each case it builds an image at the asked precision (source layer offset inside a
larger canvas, a background below, extra input layers, optional burst frames and a feathered selection), runs
the AI Portrait procedure non-interactively, and records what the test checks outside: the return status and
message, the layer stack before and after, the source and input layers' pixels before and after, the new
layer's pixels, offsets, name, position, mask and provenance parasite. Raw float32 dumps go to the plan's
out_dir; a summary goes to results.json. Any exception escapes, so gimp-console exits 64.
"""
import json
import os
import subprocess
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

RGBA_FLOAT = "R'G'B'A float"

with open(PLAN, "r", encoding="utf-8") as _fh:  # noqa: F821 - PLAN comes from the -b command
    plan = json.load(_fh)
OUT = plan["out_dir"]
PRECISION = {"u8": Gimp.Precision.U8_NON_LINEAR, "u16": Gimp.Precision.U16_NON_LINEAR,
             "u16l": Gimp.Precision.U16_LINEAR, "f16": Gimp.Precision.HALF_LINEAR,
             "f32": Gimp.Precision.FLOAT_LINEAR}
# Data layers read back in their image's own tone curve: the values as stored, as float.
DATA_FLOAT = {"u8": "R'G'B'A float", "u16": "R'G'B'A float", "u16l": "RGBA float", "f16": "RGBA float",
              "f32": "RGBA float"}


def read_raw(name):
    with open(os.path.join(plan["in_dir"], name), "rb") as fh:
        return fh.read()


def dump(name, data):
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(data)


def new_layer(img, name, w, h, data, x=0, y=0, position=0, parent=None, fmt=RGBA_FLOAT):
    gray = img.get_base_type() == Gimp.ImageBaseType.GRAY
    kind = Gimp.ImageType.GRAYA_IMAGE if gray else Gimp.ImageType.RGBA_IMAGE
    layer = Gimp.Layer.new(img, name, w, h, kind, 100.0, Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, parent, position)
    layer.set_offsets(x, y)
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), fmt, data)
    buf.flush()
    return layer


def pixels(drawable):
    w, h = drawable.get_width(), drawable.get_height()
    return bytes(drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, RGBA_FLOAT,
                                           Gegl.AbyssPolicy.NONE))


def stack(img):
    out = []

    def walk(layers, depth):
        for layer in layers:
            out.append(layer)
            if layer.is_group():
                walk(layer.get_children(), depth + 1)
    walk(img.get_layers(), 0)
    return out


def offsets(drawable):
    res = drawable.get_offsets()
    return [int(res[-2]), int(res[-1])]


def run_case(case):
    cw, ch = plan["canvas"]
    sw, sh = plan["source_size"]
    ox, oy = plan["source_offset"]
    base = Gimp.ImageBaseType.GRAY if case.get("gray") else Gimp.ImageBaseType.RGB
    img = Gimp.Image.new_with_precision(cw, ch, base, PRECISION[case["precision"]])
    try:
        return _run_in(img, case, cw, ch, sw, sh, ox, oy)
    finally:
        img.delete()


def _run_in(img, case, cw, ch, sw, sh, ox, oy):
    bg = Gimp.Layer.new(img, "Background", cw, ch, Gimp.ImageType.GRAY_IMAGE if case.get("gray")
                        else Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    img.insert_layer(bg, None, 0)
    bg.fill(Gimp.FillType.WHITE)
    aux = {}
    for name, fname in case.get("aux", {}).items():
        aux[name] = new_layer(img, f"aux {name}", cw, ch, read_raw(fname))
    for name, (fname, fmt) in case.get("aux_native", {}).items():
        # data written in the layer's own storage format ("RGBA u16" in a linear 16-bit image): these exact
        # values are what the worker must receive; read back natively to show the layer holds them
        aux[name] = new_layer(img, f"aux {name}", cw, ch, read_raw(fname), fmt=fmt)
        dump(f"{case['id']}.aux-{name}.native", bytes(aux[name].get_buffer().get(
            Gegl.Rectangle.new(0, 0, cw, ch), 1.0, None, Gegl.AbyssPolicy.NONE)))
    frames = [new_layer(img, f"frame {k}", sw, sh, read_raw(fname), ox, oy)
              for k, fname in enumerate(case.get("frames", []))]
    group = None
    if case.get("group"):  # the source inside a layer group, under a sibling
        group = Gimp.GroupLayer.new(img, "group")
        img.insert_layer(group, None, 0)
        new_layer(img, "sibling", 4, 4, bytes(4 * 4 * 16), 0, 0, 0, group)
    source = new_layer(img, "source", sw, sh, read_raw(plan["source"]), ox, oy, 1 if group else 0, group)
    drawables = [source] + frames
    if case["selection"]:
        x, y, w, h = case.get("selection_rect") or plan["selection"]
        img.select_ellipse(Gimp.ChannelOps.REPLACE, x, y, w, h)
        if not case.get("selection_rect"):
            Gimp.Selection.feather(img, plan["feather_px"])
    if plan.get("dump_selection") or case["selection"]:
        sel = bytes(img.get_selection().get_buffer().get(Gegl.Rectangle.new(0, 0, cw, ch), 1.0, "Y float",
                                                         Gegl.AbyssPolicy.NONE))
        dump(f"{case['id']}.selection.f32", sel)

    watched = [source] + frames + list(aux.values()) + [bg]
    before_px = [pixels(d) for d in watched]
    # The pixels as GIMP stores them at this precision (babl's rounding), once per precision and layer role.
    roles = ["source"] + [f"frame{k}" for k in range(len(frames))] + [f"aux-{n}" for n in aux]
    for role, data in zip(roles, before_px):
        name = f"{case['precision']}{'.gray' if case.get('gray') else ''}.{role}.stored.f32"
        if not os.path.exists(os.path.join(OUT, name)):
            dump(name, data)
    for n, layer in aux.items():  # what a data layer holds, without the sRGB curve a linear image would add
        name = f"{case['precision']}{'.gray' if case.get('gray') else ''}.aux-{n}.data.stored.f32"
        if n not in case.get("aux_native", {}) and not os.path.exists(os.path.join(OUT, name)):
            w, h = layer.get_width(), layer.get_height()
            dump(name, bytes(layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0,
                                                    DATA_FLOAT[case["precision"]], Gegl.AbyssPolicy.NONE)))
    before_ids = [layer.get_id() for layer in stack(img)]

    proc = Gimp.get_pdb().lookup_procedure(case["proc"])
    if proc is None:
        raise RuntimeError(f"procedure {case['proc']} is not registered")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE if case.get("interactive")
                     else Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", drawables)
    for arg, name in case.get("aux_args", {}).items():
        cfg.set_property(arg, aux[name])
    for arg, value in case.get("args", {}).items():
        cfg.set_property(arg, value)
    for arg, path in case.get("files", {}).items():
        cfg.set_property(arg, Gio.File.new_for_path(path))
    display = Gimp.Display.new(img) if case.get("undo") else None  # the GUI's image window, for Ctrl+Z
    if case.get("kill"):  # tell the test to kill the plug-in mid-run, as GIMP does when the user cancels
        dump("kill-now", b"1")
    started = time.monotonic()
    result = proc.run(cfg)
    seconds = time.monotonic() - started
    status = result.index(0)
    message = result.index(1) if result.length() > 1 and status != Gimp.PDBStatusType.SUCCESS else None

    after = stack(img)
    after_ids = [layer.get_id() for layer in after]
    new = [layer for layer in after if layer.get_id() not in before_ids]
    rec = {"id": case["id"], "status": status.value_nick, "message": message,
           "layers_before": len(before_ids), "layers_after": len(after_ids),
           "removed": [i for i in before_ids if i not in after_ids],
           "unchanged": [a == pixels(d) for a, d in zip(before_px, watched)],
           "undo_enabled": img.undo_is_enabled(), "seconds": round(seconds, 2), "new": []}
    for layer in new:
        parasite = layer.get_parasite("ai-portrait-provenance")
        data = bytes(parasite.get_data()) if parasite is not None else None
        fname = f"{case['id']}.result{len(rec['new'])}.f32"
        dump(fname, pixels(layer))
        mask = layer.get_mask()
        if mask is not None:
            dump(fname + ".mask", bytes(mask.get_buffer().get(
                Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height()), 1.0, "Y float",
                Gegl.AbyssPolicy.NONE)))
        rec["new"].append({
            "name": layer.get_name(), "offsets": offsets(layer), "size": [layer.get_width(), layer.get_height()],
            "position": img.get_item_position(layer), "parent_is_root": layer.get_parent() is None,
            "same_parent_as_source": (layer.get_parent() is None and source.get_parent() is None)
            or (layer.get_parent() is not None and source.get_parent() is not None
                and layer.get_parent().get_id() == source.get_parent().get_id()),
            "position_source": img.get_item_position(source),
            "position_ref": [img.get_item_position(d) for d in drawables],
            "has_mask": mask is not None, "file": fname,
            "provenance": json.loads(data.decode("utf-8")) if data else None,
        })
    if display is not None:
        if status == Gimp.PDBStatusType.SUCCESS:
            rec["undo"] = undo_in_gui(img, len(before_ids), watched, before_px)
        display.delete()
    return rec


def undo_in_gui(img, layers_before, watched, before_px):
    """Press Ctrl+Z in the image's window (xdotool on the Xvfb display) and see what is left."""
    Gimp.displays_flush()
    pattern = r"\[Untitled\]-%d\.0 " % img.get_id()
    for _attempt in range(10):  # a window closing meanwhile (the dialog) can make one search fail (BadWindow)
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", pattern], capture_output=True,
                               text=True, timeout=30)
        windows = found.stdout.split()
        if windows:
            break
        time.sleep(0.5)
    if not windows:
        return {"error": "image window not found: " + found.stderr}
    subprocess.run(["xdotool", "windowfocus", "--sync", windows[0], "key", "ctrl+z"], timeout=30)
    deadline = time.monotonic() + 10
    while len(stack(img)) != layers_before and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"layers": len(stack(img)), "unchanged": [a == pixels(d) for a, d in zip(before_px, watched)]}


def run_steps(case):
    """A retoucher's session on one image: several runs one after the other, each on the layers a step names
    ('newest': what GIMP selected after the previous run, i.e. its result; 'source'; or a layer's name), and
    the layer stack after each run (names, tattoos, provenance) with every result's pixels dumped."""
    cw, ch = plan["canvas"]
    sw, sh = plan["source_size"]
    ox, oy = plan["source_offset"]
    img = Gimp.Image.new_with_precision(cw, ch, Gimp.ImageBaseType.RGB, PRECISION[case["precision"]])
    try:
        bg = Gimp.Layer.new(img, "Background", cw, ch, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        img.insert_layer(bg, None, 0)
        bg.fill(Gimp.FillType.WHITE)
        frames = [new_layer(img, f"frame {k}", sw, sh, read_raw(f), ox, oy) for k, f in enumerate(case.get("frames", []))]
        source = new_layer(img, "source", sw, sh, read_raw(plan["source"]), ox, oy)
        display = Gimp.Display.new(img) if case.get("undo") or case.get("display") else None
        rec = {"id": case["id"], "source_tattoo": source.get_tattoo(),
               "frame_tattoos": [f.get_tattoo() for f in frames], "steps": []}
        for k, step in enumerate(case["steps"]):
            pick = step.get("select", "newest")
            if pick == "newest":
                drawables = list(img.get_selected_layers())
            elif pick == "source":
                drawables = [source] + frames
            else:
                drawables = [l for l in stack(img) if l.get_name() == pick]
            if step.get("path"):   # a path whose first anchor marks a point on the canvas
                path = Gimp.Path.new(img, "mark")
                img.insert_path(path, None, 0)
                stroke = path.bezier_stroke_new_moveto(*step["path"])
                path.bezier_stroke_lineto(stroke, step["path"][0] + 20, step["path"][1] + 10)
                img.set_selected_paths([path])
            if step.get("select_ellipse"):
                img.select_ellipse(Gimp.ChannelOps.REPLACE, *step["select_ellipse"])
            proc = Gimp.get_pdb().lookup_procedure(step["proc"])
            cfg = proc.create_config()
            cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE if step.get("interactive")
                             else Gimp.RunMode.NONINTERACTIVE)
            cfg.set_property("image", img)
            cfg.set_core_object_array("drawables", drawables)
            for arg, value in step.get("args", {}).items():
                cfg.set_property(arg, value)
            started = time.monotonic()
            result = proc.run(cfg)
            seconds = time.monotonic() - started
            status = result.index(0)
            layers = []
            for layer in stack(img):
                parasite = layer.get_parasite("ai-portrait-provenance")
                prov = json.loads(bytes(parasite.get_data()).decode("utf-8")) if parasite is not None else None
                entry = {"name": layer.get_name(), "tattoo": layer.get_tattoo(),
                         "position": img.get_item_position(layer), "opacity": layer.get_opacity(),
                         "visible": layer.get_visible(), "offsets": offsets(layer),
                         "size": [layer.get_width(), layer.get_height()]}
                if prov is not None:
                    entry["provenance"] = {key: prov.get(key) for key in ("operator", "params", "source_ids",
                                                                          "source_layers", "rerun", "replaced")}
                    entry["provenance"]["worker_pid"] = (prov.get("info") or {}).get("pid")
                    entry["provenance"]["worker_params"] = (prov.get("info") or {}).get("params")
                    entry["provenance"]["region"] = prov.get("region")
                    entry["file"] = f"{case['id']}.step{k}.{layer.get_tattoo()}.f32"
                    dump(entry["file"], pixels(layer))
                layers.append(entry)
            if step.get("expect") == "cancel" and status == Gimp.PDBStatusType.CANCEL:
                status = Gimp.PDBStatusType.SUCCESS   # cancelled as the step meant to
            rec["steps"].append({"status": status.value_nick, "seconds": round(seconds, 3), "layers": layers,
                                 "selected": [l.get_name() for l in img.get_selected_layers()],
                                 "message": result.index(1) if result.length() > 1
                                 and status != Gimp.PDBStatusType.SUCCESS else None})
            if step.get("screenshot"):   # the whole screen (the GUI under Xvfb), as docs/ shows it
                screenshot(os.path.join(OUT, step["screenshot"]))
            if step.get("then_opacity") is not None:  # the user adjusts the result's opacity
                for l in img.get_selected_layers():
                    l.set_opacity(step["then_opacity"])
        if display is not None and case.get("undo"):
            rec["undo"] = []
            for _ in range(case.get("undo", 0)):
                press_undo(img)
                rec["undo"].append([l.get_name() for l in stack(img)])
        if display is not None:
            display.delete()
        return rec
    finally:
        img.delete()


def screenshot(path):
    """The X screen as a PNG (GTK initialised in this plug-in process for the purpose), GIMP's window made
    large enough to show the image and the Layers dock."""
    Gimp.displays_flush()
    subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "GIMP", "windowsize", "%@", "1200", "800"],
                   capture_output=True, timeout=30)
    time.sleep(2.0)   # let the image window and the docks redraw
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gdk", "3.0")
    from gi.repository import Gdk, GimpUi
    GimpUi.init("gimp_batch")
    root = Gdk.get_default_root_window()
    shot = Gdk.pixbuf_get_from_window(root, 0, 0, root.get_width(), root.get_height())
    shot.savev(path, "png", [], [])


def press_undo(img):
    """Ctrl+Z in the image's window; waits for the layer stack to change."""
    before = [l.get_id() for l in stack(img)]
    Gimp.displays_flush()
    pattern = r"\[Untitled\]-%d\.0 " % img.get_id()
    windows = []
    for _attempt in range(10):
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", pattern], capture_output=True,
                               text=True, timeout=30)
        windows = found.stdout.split()
        if windows:
            break
        time.sleep(0.5)
    if not windows:
        raise RuntimeError("image window not found")
    subprocess.run(["xdotool", "windowfocus", "--sync", windows[0], "key", "ctrl+z"], timeout=30)
    deadline = time.monotonic() + 10
    while [l.get_id() for l in stack(img)] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # let GIMP print any message about the undo


results = []
for case in plan["cases"]:
    try:
        results.append(run_steps(case) if case.get("steps") else run_case(case))
    except Exception:
        results.append({"id": case["id"], "crash": traceback.format_exc()})
procs = {name: Gimp.get_pdb().lookup_procedure(name) is not None for name in plan.get("expect_procs", [])}
with open(os.path.join(OUT, "results.json"), "w", encoding="utf-8") as fh:
    json.dump({"results": results, "procs": procs}, fh, indent=1)
