"""The GIMP 3 adapter in real GIMP 3.0 (a Debian 13 chroot set up by setup_gimp.sh), against a real worker.

One gimp-console batch session runs every case (gimp_batch.py); the worker runs outside the chroot
(`python -m core serve --test-ops` plus gimptest_mix) and the plug-in reaches it over TCP loopback. Every
operator in the registry is run on the astronaut portrait (224×224 around the face, offset inside a larger
canvas, with a 50 % alpha band) in an 8-bit and a 32-bit float linear image, with and without a feathered
selection. Checked: the result is a new layer directly above the source (in its group), named after the
operator, carrying a provenance parasite; every pre-existing layer's pixels are unchanged and none is removed;
the new layer covers exactly the selection's bounds inside the layer; outside the soft selection it equals the
source; and its pixels equal what `registry.run` computes on the same pixels here (so offsets, selection, extra
inputs, points and the 8-bit/float conversions are all right). Also: a greyscale image, a source in a layer
group, an extra input from a file, a layer mask from the selection, a selection missing the layer. Failures (an
operator's error, a bug, a missing required input, a plug-in killed mid-run as GIMP's Cancel does) leave the
image unchanged and, except the kill, return a message. Then the real GUI under Xvfb opens each procedure's
dialog and presses OK; and a profile with no reachable worker gets a single 'Set Up AI Portrait…' entry.

Undo: GIMP 3's PDB offers no way for a plug-in to undo, so the GUI run presses Ctrl+Z in the image window with
xdotool and checks that exactly the new layer went away.

Skips, saying why, only when the chroot cannot be set up (Debian 13 unreachable, or not root).
"""
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "gimp"))

from core import registry  # noqa: E402
from tests import scenes  # noqa: E402
from gimp_harness import (CANVAS, FEATHER_PX, PORTRAIT_CROP, SELECTION, SOURCE_OFFSET, TEST_OPS,  # noqa: E402
                          free_port, gimp_profile, has_gui, install_plugin, proc_name, rgba, run_gimp,
                          tcp_worker, write_config)
from gimp_harness import chroot, registry_with_test_ops  # noqa: E402,F401 - fixtures

MARK_IMAGE_XY = (130.0, 100.0)   # gimptest_mix's point, in image pixels (inside the selection)
# test_inputs' repeatable x, y, level marks in image pixels (inside the feathered selection's full part)
MARKS_TEXT = "130,100,0.9; 110,90,0.1; 150.5,125.25,0.5"
MARKS = [[130.0, 100.0, 0.9], [110.0, 90.0, 0.1], [150.5, 125.25, 0.5]]
LEVELS_TEXT = "0.1; 0.2; 0.3"
DIALOG_MARKS = "120,90,0.8; 140,110,0.3"   # preset in the GUI run, where the dialog then adds a row
PRECISIONS = ("u8", "f32")


def _arg(name):
    from ai_portrait import describe
    return describe.param_arg(name)


def _input_arg(name):
    from ai_portrait import describe
    return describe.input_arg(name)


# ---------------------------------------------------------------------------------------------------------------
# Set-up: chroot, worker, registry with the test operators


@pytest.fixture(scope="module")
def session(chroot, registry_with_test_ops, tmp_path_factory):  # noqa: F811
    """Install the plug-in in a fresh profile, start the worker, run the whole plan in one GIMP batch."""
    with gimp_profile(chroot, f"aip-gimp-{os.getpid()}") as (inside, work), \
            tcp_worker(tmp_path_factory.mktemp("gimp-worker"), work) as worker_log:
        installed = install_plugin(work, inside)
        ops = registry_with_test_ops
        plan, truth = _plan(ops, work, inside)
        killer = _Killer(os.path.join(work, "out", "kill-now"),
                         f"{inside}/profile/plug-ins/ai_portrait/ai_portrait.py")
        killer.start()
        results, seconds, gimp_log = run_gimp(chroot, work, inside, plan, "plan.json")
        killer.stop.set()
        gui = None
        if has_gui(chroot):
            gui_plan = _gui_plan(plan)
            gui = run_gimp(chroot, work, inside, gui_plan, "plan-gui.json", gui=True)
        yield {"results": {r["id"]: r for r in results["results"]}, "procs": results["procs"],
               "out": os.path.join(work, "out"), "plan": plan, "truth": truth, "ops": ops, "installed": installed,
               "seconds": seconds, "killed": killer.killed, "worker_log": open(worker_log).read(),
               "gimp_log": gimp_log, "gui": gui}


def _gui_plan(plan):
    """One interactive run per operator (8-bit, no selection): the dialog opens and OK is pressed."""
    cases, seen = [], set()
    for case in plan["cases"]:
        if case["op"] in seen or case.get("kill") or case.get("files") or case["id"].count(".") != 2:
            continue
        seen.add(case["op"])
        args = dict(case["args"])
        if case["op"] == "test_inputs":  # rows to show; the dialog adds one more (AI_PORTRAIT_DIALOG_ADD_ROWS)
            args[_arg("marks")] = DIALOG_MARKS
        cases.append(dict(case, id=case["id"] + ".dialog", interactive=True, precision="u8", selection=False,
                          undo=True, args=args))
    return dict(plan, cases=cases, out_dir=plan["out_dir"] + "-gui")


class _Killer(threading.Thread):
    """Kills the running plug-in process (SIGKILL, as GIMP's Cancel does) once the batch asks for it."""

    def __init__(self, marker, plugin_path):
        super().__init__(daemon=True)
        self.marker, self.plugin_path = marker, plugin_path
        self.stop = threading.Event()
        self.killed = []

    def run(self):
        while not self.stop.is_set() and not os.path.exists(self.marker):
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while not self.stop.is_set() and not self.killed and time.monotonic() < deadline:
            time.sleep(1.0)  # let it connect and start the job
            for pid in os.listdir("/proc"):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        argv = fh.read().split(b"\0")
                except OSError:
                    continue
                if any(a.decode(errors="replace") == self.plugin_path for a in argv) and b"-run" in argv:
                    os.kill(int(pid), signal.SIGKILL)
                    self.killed.append(int(pid))


# ---------------------------------------------------------------------------------------------------------------
# The plan: images and cases


def _aux_image(kind, w, h):
    """A plausible picture for an extra input layer of the given kind, over the whole canvas."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "depth":
        d = 0.15 + 0.35 * (xx / w) + 0.35 * np.exp(-((xx - 130) ** 2 + (yy - 100) ** 2) / (2 * 50.0 ** 2))
        return rgba(np.repeat(d[:, :, None], 3, axis=2))
    if kind == "normals":
        nx, ny = (xx - w / 2) / w, (h / 2 - yy) / h
        nz = np.sqrt(np.clip(1 - nx ** 2 - ny ** 2, 0, 1))
        return rgba(np.stack([nx, ny, nz], axis=2) * 0.5 + 0.5)
    if kind == "mask":
        m = scenes.disc_alpha(h, w, 130, 100, 70, supersample=1)
        return rgba(np.repeat(m[:, :, None], 3, axis=2))
    tex = scenes.texture(h, w, seed=7 if kind == "background" else 11, channels=3)
    if kind == "reference":  # a warm, contrasty grade of the portrait over a texture
        tex = np.clip(tex * np.array([1.1, 0.95, 0.8], np.float32), 0, 1)
    return rgba(tex)


def _gives(op, inp, image):
    """Whether the plan gives input `inp` a layer: always when required; an optional one when the operator's
    demo uses it (an operator may refuse some combinations, e.g. a normal map and a depth map together), or
    for an operator without a demo."""
    if inp.get("required", True):
        return True
    demo = registry.get(op["name"]).demo
    if demo is None:
        return True
    inputs, _ = demo(image, 0)
    return inputs.get(inp["name"]) is not None


def _plan(ops, work, inside):
    cw, ch = CANVAS
    src_rgb = np.ascontiguousarray(scenes.portrait()[PORTRAIT_CROP])
    sh, sw = src_rgb.shape[:2]
    alpha = np.ones((sh, sw, 1), np.float32)
    alpha[:, :16] = 0.5  # an alpha band the operators must carry through
    source = rgba(src_rgb, alpha)
    truth = {"source": source, "aux": {}, "frames": []}
    files = {"source": "source.f32"}
    source.tofile(os.path.join(work, "in", "source.f32"))
    rng = np.random.default_rng(3)
    for k in range(2):  # burst frames: the portrait with independent noise
        f = source.copy()
        f[:, :, :3] = np.clip(f[:, :, :3] + rng.normal(0, 0.03, f[:, :, :3].shape), 0, 1)
        truth["frames"].append(f)
        f.tofile(os.path.join(work, "in", f"frame{k}.f32"))
    cases = []
    for op in ops.values():
        primary = next(i for i in op["inputs"] if i["kind"] in ("image", "frames"))
        extra = [i for i in op["inputs"] if i is not primary and _gives(op, i, src_rgb)]
        aux, aux_args = {}, {}
        for inp in extra:
            fname = f"aux-{inp['kind']}.f32"
            if inp["kind"] not in truth["aux"]:
                truth["aux"][inp["kind"]] = _aux_image(inp["kind"], cw, ch)
                truth["aux"][inp["kind"]].tofile(os.path.join(work, "in", fname))
            aux[inp["name"]] = fname
            aux_args[_input_arg(inp["name"])] = inp["name"]
        frames = ["frame0.f32", "frame1.f32"] if primary["kind"] == "frames" else []
        expect = "error" if op["name"] == "test_fail" else "success"
        for precision in PRECISIONS:
            for selection in (False, True):
                cid = f"{op['name']}.{precision}.{'sel' if selection else 'all'}"
                args = {}
                if op["name"] == "gimptest_mix" and selection:
                    args = {_arg("mark-auto"): False, _arg("mark-x"): MARK_IMAGE_XY[0],
                            _arg("mark-y"): MARK_IMAGE_XY[1]}
                cases.append({"id": cid, "op": op["name"], "proc": proc_name(op["name"]), "precision": precision,
                              "selection": selection, "aux": aux, "aux_args": aux_args, "frames": frames,
                              "args": args, "expect": expect})
        required = [i for i in extra if i.get("required", True)]
        if required:  # leaving a required input layer out must fail cleanly
            cases.append({"id": f"{op['name']}.missing-{required[0]['name']}", "op": op["name"],
                          "proc": proc_name(op["name"]), "precision": "u8", "selection": False, "aux": aux,
                          "aux_args": {k: v for k, v in aux_args.items() if v != required[0]["name"]},
                          "frames": frames, "args": {}, "expect": "error"})
    # An extra input from a file instead of a layer (16-bit PNG, the canvas' size).
    from core.imaging.io import write_image
    write_image(os.path.join(work, "in", "depth.png"), truth["aux"]["depth"][:, :, :3], "u16")
    truth["depth_png"] = os.path.join(work, "in", "depth.png")
    for precision in PRECISIONS:
        cases.append({"id": f"gimptest_mix.{precision}.file", "op": "gimptest_mix", "proc": proc_name("gimptest_mix"),
                      "precision": precision, "selection": True, "aux": {}, "aux_args": {}, "frames": [],
                      "args": {}, "files": {_arg("depth-file"): f"{inside}/in/depth.png"}, "expect": "success"})
    cases += _data_and_marks_cases(work)
    # A greyscale image, and a source inside a layer group.
    # A layer mask from the selection, on request.
    for cid, extra in (("test_scale.gray", {"gray": True}), ("test_scale.group", {"group": True}),
                       ("test_scale.masked", {"args": {"factor": 0.5, "selection-as-mask": True}})):
        cases.append(dict({"id": cid, "op": "test_scale", "proc": proc_name("test_scale"), "precision": "u8",
                           "selection": True, "aux": {}, "aux_args": {}, "frames": [], "args": {"factor": 0.5},
                           "expect": "success"}, **extra))
    # A selection that misses the layer: nothing to process, say so.
    cases.append({"id": "test_scale.offselection", "op": "test_scale", "proc": proc_name("test_scale"),
                  "precision": "u8", "selection": True, "selection_rect": [0, 0, 12, 10], "aux": {}, "aux_args": {},
                  "frames": [], "args": {}, "expect": "error"})
    # A long run killed mid-way, the way GIMP's Cancel button ends a plug-in.
    cases.append({"id": "test_scale.cancelled", "op": "test_scale", "proc": proc_name("test_scale"), "precision": "u8",
                  "selection": False, "aux": {}, "aux_args": {}, "frames": [], "kill": True, "expect": "error",
                  "args": {"factor": 2.0, "steps": 400, "step-seconds": 0.05}})
    cases.append({"id": "test_fail.bug", "op": "test_fail", "proc": proc_name("test_fail"), "precision": "u8",
                  "selection": False, "aux": {}, "aux_args": {}, "frames": [], "args": {"kind": "bug"},
                  "expect": "error"})
    plan = {"in_dir": f"{inside}/in", "out_dir": f"{inside}/out", "canvas": list(CANVAS),
            "source_size": [sw, sh], "source_offset": list(SOURCE_OFFSET), "source": files["source"],
            "selection": list(SELECTION), "feather_px": FEATHER_PX, "cases": cases,
            "expect_procs": [proc_name(n) for n in ops]}
    return plan, truth


# Data layers written in their image's own storage (precision, babl format of an RGBA layer there).
DATA_PRECISIONS = {"u16l": ("u16", "RGBA u16"), "f16": ("f16", "RGBA half"), "f32": ("f32", "RGBA float"),
                   "u8": ("u8", "R'G'B'A u8")}


def _data_values(kind, dtype, rng):
    """Canvas-sized RGBA data of `kind` stored as `dtype`: a 16-bit disparity using the whole integer range, a
    float depth in metres (far above 1.0), unit normals ((n + 1) / 2 for integers, raw with negatives for
    floats), a matte; every channel its own values, so channel order shows too."""
    cw, ch = CANVAS
    if kind == "normals":
        n = rng.normal(0, 1, (ch, cw, 3))
        n[..., 2] = np.abs(n[..., 2]) + 0.2
        v = n / np.linalg.norm(n, axis=2, keepdims=True)
        if dtype in ("u8", "u16"):
            m = 255 if dtype == "u8" else 65535
            v = np.rint((v + 1) / 2 * m)
    elif kind == "depth":
        v = (rng.integers(0, 65536, (ch, cw, 3)) if dtype == "u16" else rng.integers(0, 256, (ch, cw, 3))
             if dtype == "u8" else rng.uniform(0.3, 40.0, (ch, cw, 3)))
    else:
        v = rng.uniform(0, 1, (ch, cw, 3))
        if dtype in ("u8", "u16"):
            v = np.rint(v * (255 if dtype == "u8" else 65535))
    np_dtype = {"u8": "u1", "u16": "<u2", "f16": "<f2", "f32": "<f4"}[dtype]
    one = {"u8": 255, "u16": 65535}.get(dtype, 1.0)
    return np.concatenate([v, np.full((ch, cw, 1), one)], axis=2).astype(np_dtype)


def _data_and_marks_cases(work):
    """test_inputs cases. Data: layers holding known values in linear 16-bit, half, float and 8-bit images,
    which must reach the worker bit-exact with their precision as stored_as. Marks: a repeatable coordinate
    vector and a repeatable float list given as text to a non-interactive call, with a selection."""
    rng = np.random.default_rng(5)
    cases = []
    kinds_for = {"u16l": ("depth", "normals"), "f32": ("depth", "normals", "matte"), "f16": ("depth",),
                 "u8": ("normals", "matte")}
    for precision, names in kinds_for.items():
        dtype, fmt = DATA_PRECISIONS[precision]
        native = {}
        for name in names:
            kind = {"matte": "mask"}.get(name, name)
            fname = f"data-{precision}-{name}.raw"
            _data_values(kind, dtype, rng).tofile(os.path.join(work, "in", fname))
            native[name] = [fname, fmt]
        cases.append({"id": f"test_inputs.data.{precision}", "op": "test_inputs", "proc": proc_name("test_inputs"),
                      "precision": precision, "selection": False, "aux": {}, "aux_native": native,
                      "aux_args": {_input_arg(n): n for n in names}, "frames": [], "args": {}, "data": dtype,
                      "expect": "success"})
    for precision in ("u8", "f32"):
        cases.append({"id": f"test_inputs.marks.{precision}", "op": "test_inputs", "proc": proc_name("test_inputs"),
                      "precision": precision, "selection": True, "aux": {}, "aux_args": {}, "frames": [],
                      "args": {_arg("marks"): MARKS_TEXT, _arg("levels"): LEVELS_TEXT, _arg("tint-1"): 1.0,
                               _arg("tint-2"): 1.0, _arg("tint-3"): 1.0}, "marks": True, "expect": "success"})
    cases.append({"id": "test_inputs.badlist", "op": "test_inputs", "proc": proc_name("test_inputs"),
                  "precision": "u8", "selection": False, "aux": {}, "aux_args": {}, "frames": [],
                  "args": {_arg("marks"): "130,100"}, "expect": "error"})
    return cases


# ---------------------------------------------------------------------------------------------------------------
# Checks


def _cases(session, expect=None):
    return [c for c in session["plan"]["cases"] if expect is None or c["expect"] == expect]


def _load(session, fname, w, h, c=4):
    return np.fromfile(os.path.join(session["out"], fname), np.float32).reshape(h, w, c)


def _region(session, case):
    """Expected processed region in image pixels (x, y, w, h): the selection's bounds inside the source layer."""
    ox, oy = SOURCE_OFFSET
    sh, sw = session["truth"]["source"].shape[:2]
    if not case["selection"]:
        return ox, oy, sw, sh, None
    cw, ch = CANVAS
    sel = _load(session, f"{case['id']}.selection.f32", cw, ch, 1)
    ys, xs = np.nonzero(sel[:, :, 0] > 0)
    x0, x1 = max(xs.min(), ox), min(xs.max() + 1, ox + sw)
    y0, y1 = max(ys.min(), oy), min(ys.max() + 1, oy + sh)
    return x0, y0, x1 - x0, y1 - y0, sel


def test_every_operator_is_registered_as_a_procedure(session):
    missing = [p for p, ok in session["procs"].items() if not ok]
    assert not missing, f"procedures not registered in GIMP: {missing}"
    assert len(session["procs"]) == len(session["ops"])
    assert any(p.endswith("/ai_portrait.py") for p in session["installed"])


def test_no_batch_case_crashed(session):
    crashed = {i: r["crash"] for i, r in session["results"].items() if "crash" in r}
    assert not crashed, crashed


def test_successful_runs_add_one_new_layer_above_the_source(session):
    problems = []
    for case in _cases(session, "success"):
        r = session["results"][case["id"]]
        if r.get("status") != "success":
            problems.append(f"{case['id']}: {r.get('status')}: {r.get('message')}")
            continue
        if r["removed"] or len(r["new"]) != 1 or r["layers_after"] != r["layers_before"] + 1:
            problems.append(f"{case['id']}: layers {r['layers_before']} -> {r['layers_after']}, "
                            f"removed {r['removed']}")
            continue
        new = r["new"][0]
        op = session["ops"][case["op"]]
        if not new["name"].startswith(op["title"]):
            problems.append(f"{case['id']}: layer named {new['name']!r}")
        if new["position"] + 1 != min(new["position_ref"]) or not new["same_parent_as_source"]:
            # directly above the source (the topmost frame of a burst), in its group
            problems.append(f"{case['id']}: new layer at {new['position']}, sources at {new['position_ref']}")
        if new["has_mask"] != bool(case["args"].get("selection-as-mask")):
            problems.append(f"{case['id']}: layer mask {new['has_mask']}")
        prov = new["provenance"]
        if not prov or prov["operator"] != case["op"] or prov["seed"] != 0 or "params" not in prov:
            problems.append(f"{case['id']}: provenance {prov}")
        if not r["undo_enabled"]:
            problems.append(f"{case['id']}: undo disabled on the image")
    assert not problems, "\n".join(problems)


def test_user_layers_are_never_changed(session):
    changed = {c["id"]: session["results"][c["id"]]["unchanged"] for c in _cases(session)
               if not all(session["results"][c["id"]].get("unchanged", [False]))}
    assert not changed, f"pre-existing layers changed (per layer: unchanged?): {changed}"


def test_failures_leave_the_image_unchanged_and_say_why(session):
    problems = []
    for case in _cases(session, "error"):
        if case.get("kill"):
            continue  # a killed plug-in returns nothing: GIMP reports that itself (see the next test)
        r = session["results"][case["id"]]
        if r.get("status") != "execution-error" or not (r.get("message") or "").strip():
            problems.append(f"{case['id']}: status {r.get('status')}, message {r.get('message')!r}")
        if r.get("new") or r.get("layers_after") != r.get("layers_before"):
            problems.append(f"{case['id']}: the image changed: {r.get('new')}")
    assert not problems, "\n".join(problems)
    res = session["results"]
    assert "refuses this image on purpose" in res["test_fail.u8.all"]["message"]
    assert "bug" in res["test_fail.bug"]["message"].lower()
    assert "needs" in res["gimptest_mix.missing-depth"]["message"]
    assert "does not touch layer" in res["test_scale.offselection"]["message"]


def test_dialogs_open_and_run_interactively_and_one_undo_removes_the_result(session):
    """In the GUI (Xvfb), each procedure run interactively builds its GimpUi.ProcedureDialog from the registry;
    OK is pressed for it and the run completes like a non-interactive one; then Ctrl+Z in the image window
    removes the new layer and leaves every other layer as it was."""
    if session["gui"] is None:
        pytest.skip("no xvfb-run or xdotool in the GIMP chroot (rerun tests/hosts/setup_gimp.sh)")
    results, seconds, log = session["gui"]
    shown = log.count("pressing OK")
    problems = []
    for r in results["results"]:
        op = r["id"].split(".")[0]
        want = "execution-error" if op == "test_fail" else "success"
        if r.get("status") != want or len(r.get("new", [])) != (want == "success"):
            problems.append(f"{r['id']}: {r.get('status')} {r.get('message')} {r.get('crash', '')}")
        elif want == "success":
            undo = r.get("undo") or {}
            if undo.get("layers") != r["layers_before"] or not all(undo.get("unchanged", [False])):
                problems.append(f"{r['id']}: after Ctrl+Z: {undo} (layers before the run: {r['layers_before']})")
    print(f"GIMP GUI: {len(results['results'])} dialogs in {seconds:.1f} s")
    assert not problems, "\n".join(problems) + "\n" + log[-3000:]
    assert shown == len(results["results"]), log[-3000:]
    out = os.path.join(session["out"] + "-gui")
    pictures = [f for f in os.listdir(out) if f.endswith(".png")]  # what each dialog looked like
    assert len(pictures) == len(results["results"]), pictures


def test_without_a_worker_the_menu_says_how_to_set_up(chroot, tmp_path):
    """No worker reachable and no cached registry: GIMP gets one 'Set Up AI Portrait…' entry whose run fails
    with a message naming install.py (never an empty menu or a silent failure)."""
    with gimp_profile(chroot, f"aip-gimp-noworker-{os.getpid()}") as (inside, work):
        write_config(work, {"server": f"tcp://127.0.0.1:{free_port()}", "token": "t" * 32})
        install_plugin(work, inside)
        np.zeros((8, 8, 4), np.float32).tofile(os.path.join(work, "in", "source.f32"))
        setup = "plug-in-ai-portrait-setup"
        plan = {"in_dir": f"{inside}/in", "out_dir": f"{inside}/out", "canvas": [8, 8], "source_size": [8, 8],
                "source_offset": [0, 0], "source": "source.f32", "selection": [0, 0, 4, 4], "feather_px": 0,
                "cases": [{"id": "setup", "op": "setup", "proc": setup, "precision": "u8", "selection": False}],
                "expect_procs": [setup, proc_name("test_scale")]}
        results, _, log = run_gimp(chroot, work, inside, plan, "plan.json")
    assert results["procs"] == {setup: True, proc_name("test_scale"): False}, results["procs"]
    r = results["results"][0]
    assert r["status"] == "execution-error" and "install.py" in r["message"] and not r["new"], r


def test_a_killed_run_leaves_the_image_unchanged(session):
    """GIMP's Cancel ends the plug-in process; the result is applied only after the worker answered, so the
    image keeps all its layers and pixels, and the worker drops the job."""
    r = session["results"]["test_scale.cancelled"]
    assert session["killed"], "the plug-in process was not found to kill"
    assert r["status"] != "success" and not r["new"] and all(r["unchanged"]), r
    assert r["seconds"] < 15, "the run went on after the kill"


def _stored(session, precision, role, w, h):
    """A layer's pixels as GIMP stored them at `precision` (read back as float by the batch script)."""
    return _load(session, f"{precision}.{role}.stored.f32", w, h)


def _core_params(op, args, origin):
    """The parameters the worker should get for a case's procedure arguments: lists read from their text,
    vectors from their numbers, every coordinate (defaults included) moved from image pixels into the region
    whose top-left corner is `origin`."""
    from ai_portrait import describe
    from plugin import params as hp
    values = {}
    for p in op["params"]:
        n = p["name"]
        auto = _arg(n + "-auto")
        if auto in args:
            if args[auto]:
                values[n] = None
                continue
        if p.get("repeat"):
            if _arg(n) in args:
                values[n] = hp.parse_items(p, args[_arg(n)])
        elif p["type"] in ("point", "vector"):
            keys = describe.component_args(p)
            if any(k in args for k in keys):
                base = list(p["default"] if p["default"] is not None else [0.0] * len(keys))
                values[n] = [float(args.get(k, d)) for k, d in zip(keys, base)]
        elif _arg(n) in args:
            values[n] = args[_arg(n)]
    for p in op["params"]:
        if p.get("coordinates") and p["name"] not in values and p["default"] is not None:
            values[p["name"]] = p["default"]
    return hp.shift_coordinates(op["params"], values, origin[0], origin[1])


def _data_layer(session, case, name, region):
    """A data layer as the test wrote it (its own storage), cropped to `region`, as float32 the plugin way."""
    from plugin.pixels import convert
    x, y, w, h = region
    cw, ch = CANVAS
    dtype = case["data"]
    raw = np.fromfile(os.path.join(session["out"], "..", "in", case["aux_native"][name][0]),
                      {"u8": "u1", "u16": "<u2", "f16": "<f2", "f32": "<f4"}[dtype]).reshape(ch, cw, 4)
    crop = np.ascontiguousarray(raw[y:y + h, x:x + w])
    return np.asarray(convert(crop.tobytes(), dtype, "f32")).view("<f4").reshape(h, w, 4)


def _stored_as(case):
    return {"u8": "u8", "u16": "u16", "u16l": "u16", "f16": "f16", "f32": "f32"}[case["precision"]]


def _expected(session, case, region, sel):
    """What registry.run makes of the same pixels (the layers as GIMP stored them, cropped here)."""
    x, y, w, h = region
    ox, oy = SOURCE_OFFSET
    cw, ch = CANVAS
    sh, sw = session["truth"]["source"].shape[:2]
    op = session["ops"][case["op"]]
    q = case["precision"]
    crop = lambda a, ax, ay: a[y - ay:y - ay + h, x - ax:x - ax + w]  # noqa: E731
    primary = next(i for i in op["inputs"] if i["kind"] in ("image", "frames"))
    q = q + (".gray" if case.get("gray") else "")
    source = crop(_stored(session, q, "source", sw, sh), ox, oy)
    inputs = {}
    stored_as = {i["name"]: _stored_as(case) for i in op["inputs"]}
    if primary["kind"] == "frames":
        inputs[primary["name"]] = [source] + [crop(_stored(session, q, f"frame{k}", sw, sh), ox, oy)
                                              for k in range(len(case["frames"]))]
    else:
        inputs[primary["name"]] = source
    for inp in op["inputs"]:
        if inp is not primary and inp["name"] in case["aux_args"].values():
            if case.get("aux_native"):
                inputs[inp["name"]] = _data_layer(session, case, inp["name"], region)
            else:  # data layers arrive as stored (no sRGB curve in a linear image), pictures sRGB-encoded
                role = f"aux-{inp['name']}" + (".data" if inp["kind"] in registry.DATA_KINDS else "")
                inputs[inp["name"]] = crop(_stored(session, q, role, cw, ch), 0, 0)
    if case.get("files"):
        from core.imaging.io import read_image
        inputs["depth"] = crop(read_image(session["truth"]["depth_png"]).pixels, 0, 0)
        stored_as["depth"] = "u16"
    params = _core_params(op, case["args"], (x, y))
    mask = None if sel is None else sel[y:y + h, x:x + w]
    stored_as = {k: v for k, v in stored_as.items() if inputs.get(k) is not None}
    out = registry.run(case["op"], inputs, params, mask=mask, seed=0, stored_as=stored_as)
    return out.image, out.base


def test_results_cover_the_selection_and_match_the_core(session):
    """Region = selection bounds inside the layer; pixels = registry.run on the same pixels (8-bit: within one
    level; float: within float rounding); outside the soft selection the source itself."""
    problems, report = [], []
    for case in _cases(session, "success"):
        r = session["results"][case["id"]]
        if r.get("status") != "success" or len(r["new"]) != 1:
            continue  # reported by the layer test
        x, y, w, h, sel = _region(session, case)
        new = r["new"][0]
        if new["offsets"] != [x, y] or new["size"] != [w, h]:
            problems.append(f"{case['id']}: new layer {new['size']} at {new['offsets']}, expected "
                            f"{[w, h]} at {[x, y]}")
            continue
        got = _load(session, new["file"], w, h)
        want, src = _expected(session, case, (x, y, w, h), sel)
        if case["precision"] == "u8":  # an 8-bit layer cannot hold values outside 0..1
            want = np.clip(want, 0.0, 1.0)
        tol = {"u8": 0.5 / 255 + 1e-4, "f16": 1.5e-3}.get(case["precision"], 2e-4)
        err = float(np.abs(got - want).max())
        report.append(f"{case['id']}: max |GIMP - core| = {err:.2e}, {r['seconds']:.1f} s in GIMP")
        if err > tol:
            problems.append(f"{case['id']}: max error {err:.4g} > {tol:.2g} "
                            f"(PSNR {scenes.psnr(got, want):.1f} dB)")
        if sel is not None:
            outside = sel[y:y + h, x:x + w, 0] == 0
            diff = float(np.abs(got - src)[outside].max()) if outside.any() else 0.0
            if diff > (1e-6 if case["precision"] == "u8" else 2e-5):
                problems.append(f"{case['id']}: outside the selection the result differs from the source by "
                                f"{diff:.3g}")
    print(f"GIMP batch: {len(session['plan']['cases'])} cases in {session['seconds']:.1f} s")
    print("\n".join(report))
    assert not problems, "\n".join(problems)


def test_layer_mask_from_the_selection(session):
    case = next(c for c in _cases(session) if c["id"] == "test_scale.masked")
    new = session["results"][case["id"]]["new"][0]
    x, y, w, h, sel = _region(session, case)
    mask = _load(session, new["file"] + ".mask", w, h, 1)
    assert np.abs(mask - sel[y:y + h, x:x + w]).max() <= 0.5 / 255 + 1e-6


def test_point_parameter_lands_on_the_image_pixel(session):
    """gimptest_mix paints a red pixel at its point given in image pixels: it must be there in the new layer."""
    for precision in PRECISIONS:
        case = next(c for c in _cases(session) if c["id"] == f"gimptest_mix.{precision}.sel")
        new = session["results"][case["id"]]["new"][0]
        (x, y), (w, h) = new["offsets"], new["size"]
        got = _load(session, new["file"], w, h)
        px, py = int(MARK_IMAGE_XY[0]) - x, int(MARK_IMAGE_XY[1]) - y
        assert np.allclose(got[py, px, :3], (1, 0, 0), atol=1e-3), got[py - 1:py + 2, px - 1:px + 2, :3]


def test_data_layers_arrive_bit_exact_with_their_storage(session):
    """Depth, normal-map and matte layers in linear 16-bit, linear half, linear float and 8-bit images reach the
    operator exactly as stored (sha256 of its float32 array = that of the written values, cropped to the
    region and converted as plugin.pixels does: no sRGB curve, no colour conversion), and stored_as is the
    image's precision; the image itself is reported too."""
    import hashlib
    checked = []
    for case in _cases(session):
        if not case.get("aux_native"):
            continue
        r = session["results"][case["id"]]
        assert r.get("status") == "success", (case["id"], r.get("status"), r.get("message"), r.get("crash"))
        info = r["new"][0]["provenance"]["info"]
        x, y, w, h, _ = _region(session, case)
        cw, ch = CANVAS
        for name, (fname, fmt) in case["aux_native"].items():
            with open(os.path.join(session["out"], "..", "in", fname), "rb") as fh:
                written = fh.read()
            with open(os.path.join(session["out"], f"{case['id']}.aux-{name}.native"), "rb") as fh:
                assert fh.read() == written, f"{case['id']}: the {fmt} layer does not hold what was written"
            want = hashlib.sha256(_data_layer(session, case, name, (x, y, w, h)).tobytes()).hexdigest()
            assert info["shapes"][name] == [h, w, 4], (case["id"], name, info["shapes"])
            assert info["hashes"][name] == want, f"{case['id']}: {name} ({fmt}) did not arrive as stored"
            assert info["stored_as"][name] == case["data"], (case["id"], name, info["stored_as"])
            checked.append(f"{case['id']}:{name}")
        assert info["stored_as"]["image"] == case["data"], info["stored_as"]
    print("bit-exact data layers in GIMP:", checked)
    assert len(checked) == 8


def test_every_coordinate_of_every_item_is_shifted_and_lands_on_its_pixel(session):
    """A repeatable x, y, level vector given as text to a non-interactive call: the worker gets every item,
    moved into the selection's bounds, and each mark is painted on the image pixel it names; a repeatable float
    list arrives whole."""
    for case in _cases(session):
        if not case.get("marks"):
            continue
        r = session["results"][case["id"]]
        assert r.get("status") == "success", (case["id"], r.get("message"), r.get("crash"))
        new = r["new"][0]
        (nx, ny), (w, h) = new["offsets"], new["size"]
        prov = new["provenance"]
        assert nx > SOURCE_OFFSET[0] and ny > SOURCE_OFFSET[1]   # the region is the selection's bounds
        assert prov["params"]["marks"] == MARKS, prov["params"]   # recorded in image pixels
        assert prov["info"]["params"]["marks"] == [[mx - nx, my - ny, v] for mx, my, v in MARKS], prov["info"]
        assert prov["info"]["params"]["levels"] == [0.1, 0.2, 0.3]
        got = _load(session, new["file"], w, h)
        tol = 0.5 / 255 + 1e-6 if case["precision"] == "u8" else 2e-4
        for mx, my, level in MARKS:
            px, py = int(np.floor(mx)) - nx, int(np.floor(my)) - ny
            assert np.abs(got[py, px, :3] - level).max() <= tol, (case["id"], mx, my, got[py, px, :3])


def test_an_unreadable_list_is_refused_with_its_name(session):
    r = session["results"]["test_inputs.badlist"]
    assert r["status"] == "execution-error" and "Marks" in r["message"] and "3 numbers" in r["message"], r


def test_dialog_rows_add_an_item_and_the_worker_gets_the_whole_list(session):
    """In the real dialog, the marks preset as two items show as two rows; pressing 'Add another' adds a third
    (a copy of the last), and the run gets all three, moved into the region."""
    if session["gui"] is None:
        pytest.skip("no xvfb-run or xdotool in the GIMP chroot (rerun tests/hosts/setup_gimp.sh)")
    results, _, log = session["gui"]
    r = next(r for r in results["results"] if r["id"].startswith("test_inputs."))
    assert r.get("status") == "success", (r.get("message"), r.get("crash"), log[-2000:])
    prov = r["new"][0]["provenance"]
    from plugin import params as hp
    decl = next(p for p in session["ops"]["test_inputs"]["params"] if p["name"] == "marks")
    preset = hp.parse_items(decl, DIALOG_MARKS)
    assert prov["params"]["marks"] == preset + [preset[-1]], prov["params"]
    x, y = r["new"][0]["offsets"]
    assert prov["info"]["params"]["marks"] == [[a - x, b - y, v] for a, b, v in preset + [preset[-1]]]
    assert prov["info"]["params"]["levels"] == [0.25, 0.5, 0.5], prov["info"]["params"]   # advanced rows
    assert "2 repeat editors, [3, 3] rows" in log, log[-2000:]


# ---------------------------------------------------------------------------------------------------------------
# Without GIMP: the adapter's pure parts and the installer


def test_labels_names_and_layer_names_come_from_the_registry():
    from ai_portrait import describe
    p = {"name": "focus_distance", "type": "float", "unit": "m", "title": "Focus distance", "min": 0.1, "max": 100,
         "help": "where it is sharp", "default": None, "optional": True}
    assert describe.param_label(p) == "Focus distance (m)"
    blurb = describe.param_blurb(p)
    assert "From 0.1 m to 100 m" in blurb and "In metres." in blurb and "'Automatic'" in blurb, blurb
    assert describe.param_arg("seed") == "op-seed" and describe.param_arg("f_number") == "f-number"
    assert describe.proc_name("test_scale") == "plug-in-ai-portrait-test-scale"
    op = {"name": "refocus", "title": "Refocus", "params": [
        {"name": "f_number", "type": "float", "unit": "f-number", "default": 2.0},
        {"name": "focal_length", "type": "float", "unit": "mm", "default": 85.0},
        {"name": "grain", "type": "bool", "default": True},
        {"name": "shape", "type": "choice", "default": "disk", "choices": ["disk", "hexagon"]},
        {"name": "rotation", "type": "float", "unit": "deg", "default": 0.0}]}
    # the settings that differ from the defaults tell results apart; a taken name gets a number
    assert describe.layer_name(op, {"f_number": 1.4}) == "Refocus (f/1.4)"
    assert describe.layer_name(op, {"f_number": 1.4, "focal_length": 50.0, "shape": "hexagon"}) == \
        "Refocus (f/1.4, focal length 50 mm, shape hexagon)"
    assert describe.layer_name(op, {}) == "Refocus"
    assert describe.layer_name(op, {"f_number": 1.4}, taken=["Refocus (f/1.4)"]) == "Refocus (f/1.4) #2"
    assert describe.param_label({"name": "noise_b", "unit": "signal²"}) == "Noise b"   # no unreadable symbol


def test_vectors_and_lists_get_named_arguments_that_say_how_to_write_them():
    from ai_portrait import describe
    marks = {"name": "marks", "type": "vector", "size": 3, "repeat": True, "coordinates": True, "title": "Marks",
             "help": "pixels to paint"}
    tint = {"name": "tint", "type": "vector", "size": 3, "min": 0.0, "max": 4.0}
    assert describe.component_args(dict(marks, repeat=False)) == ["marks-x", "marks-y", "marks-3"]
    assert describe.component_args(tint) == ["tint-1", "tint-2", "tint-3"]
    assert describe.component_args({"name": "focus_at", "type": "point"}) == ["focus-at-x", "focus-at-y"]
    assert describe.repeat_label(marks) == "Marks (list: x, y, 3; …)"
    blurb = describe.repeat_blurb(marks)
    assert "separated by ';'" in blurb and "'120,80,1; 40,60,0.5'" in blurb and "image pixels" in blurb
    assert "range 0…4" in describe.component_blurb(tint, 1)
    assert describe.format_value(marks, [[1, 2, 0.5], [3, 4, 1]]) == "(1, 2, 0.5); (3, 4, 1)"
    op = {"name": "t", "title": "T", "params": [dict(marks), {"name": "f", "type": "float", "default": 2.0,
                                                               "repeat": True}]}
    assert describe.layer_name(op, {}) == "T"   # defaults: the title alone
    assert describe.layer_name(op, {"marks": [[1, 2, 0.5]]}) == "T (marks ×1)"   # a list by its length


def test_installer_puts_a_self_contained_executable_plugin_in_the_profile(tmp_path, monkeypatch):
    import install_gimp
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "profile"))
    dirs = install_gimp.gimp_plugin_dirs()
    assert dirs == [tmp_path / "profile" / "plug-ins"]
    files = install_gimp.install_into(dirs[0], ROOT, config_path=str(tmp_path / "cfg" / "config.json"))
    main = dirs[0] / "ai_portrait" / "ai_portrait.py"
    assert str(main) in files and os.access(main, os.X_OK)
    assert (dirs[0] / "ai_portrait" / "plugin" / "client.py").is_file()  # the bridge travels with it
    assert (dirs[0] / "ai_portrait" / "config_path.txt").read_text().strip() == str(tmp_path / "cfg" / "config.json")
    again = install_gimp.install_into(dirs[0], ROOT)  # idempotent, and drops a stale config note
    assert not (dirs[0] / "ai_portrait" / "config_path.txt").exists() and len(again) == len(files) - 1


def test_plugin_dirs_follow_the_platform_layout(tmp_path, monkeypatch):
    import install_gimp
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(install_gimp.sys, "platform", "linux")
    assert install_gimp.gimp_plugin_dirs() == [tmp_path / "xdg" / "GIMP" / "3.0" / "plug-ins"]
    flatpak = tmp_path / "home" / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.2"
    flatpak.mkdir(parents=True)
    (tmp_path / "xdg" / "GIMP" / "3.0").mkdir(parents=True)
    assert install_gimp.gimp_plugin_dirs() == [tmp_path / "xdg" / "GIMP" / "3.0" / "plug-ins", flatpak / "plug-ins"]
    monkeypatch.setattr(install_gimp.sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))
    assert install_gimp.gimp_plugin_dirs() == [tmp_path / "appdata" / "GIMP" / "3.0" / "plug-ins"]


def test_install_caches_the_registry_from_a_spawned_worker(tmp_path, monkeypatch):
    """install() puts the plug-in in place and caches `list --json` from a worker it spawns (the config's
    interpreter), next to the config: GIMP's first start then registers the menus without a worker."""
    import install_gimp
    from plugin import config as bridge_config
    cfg = tmp_path / "cfg" / "config.json"
    bridge_config.save_config({"python": sys.executable, "core_root": ROOT}, str(cfg))
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "profile"))
    files = install_gimp.install(ROOT, config_path=cfg)
    assert str(tmp_path / "profile" / "plug-ins" / "ai_portrait" / "ai_portrait.py") in files
    cached = json.loads((tmp_path / "cfg" / "registry.json").read_text())
    assert [o["name"] for o in cached["operators"]] == [o.name for o in registry.operators()
                                                         if o.name not in TEST_OPS]
