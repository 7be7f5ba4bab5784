"""The Krita adapter in real Krita 5 (kritarunner for the pixel pipeline, full GUI under Xvfb for the docker).

Every operator of the real registry (`python -m core list --json`) runs on real Krita documents at U8, U16 and
F32, with and without a soft selection, through the plugin's own code, installed from the zip by Krita's own
importer. Each new layer is checked against core.registry.run recomputed here on exactly the pixels the worker
received; pixels outside the selection must equal the source bit for bit; the source layers must be unchanged.
The GUI run checks that the docker builds one control per declared parameter and input, runs, cancels and
reports a failing operator without touching the document, and takes the screenshot kept in docs/.

Needs Krita (tests/hosts/setup_krita.sh installs it on Debian/Ubuntu); skips when it cannot be had.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "tests", "hosts", "krita_scripts")
SIZE = int(os.environ.get("AI_PORTRAIT_KRITA_SIZE", "128"))
DEPTHS = ("U8", "U16", "F32")
EXTRA_DEPTHS = {"test_scale": ("F16",)}   # half floats: the conversions are checked once, cheaply
LSB = {"u8": 1 / 255, "u16": 1 / 65535, "f16": 1e-3, "f32": 1e-5}
RUNNER_TIMEOUT_S = 900

sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: Krita present, a reusable scratch profile, the worker settings


@pytest.fixture(scope="module")
def krita_ready():
    if not shutil.which("kritarunner") or not shutil.which("xvfb-run"):
        res = subprocess.run(["sh", os.path.join(ROOT, "tests", "hosts", "setup_krita.sh")], capture_output=True,
                             text=True, timeout=1900)
        if res.returncode == 3:
            pytest.skip("Krita is not installable here: " + res.stderr.strip()[-300:])
        assert res.returncode == 0, res.stderr
    return True


@pytest.fixture(scope="module")
def profile(krita_ready):
    """A Krita profile kept between runs (its resource database takes ~18 s to build the first time)."""
    base = os.environ.get("AI_PORTRAIT_KRITA_PROFILE") or os.path.join(tempfile.gettempdir(),
                                                                      f"ai-portrait-krita-{os.getuid()}")
    data, config = os.path.join(base, "data"), os.path.join(base, "config")
    for d in (data, config):
        os.makedirs(d, exist_ok=True)
    import fcntl
    lock = open(os.path.join(base, ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)   # two test sessions at once would share (and clear) the same profile
    for stale in (os.path.join(data, "krita", "pykrita"),):
        shutil.rmtree(stale, ignore_errors=True)
    yield {"data": data, "config": config, "base": base}
    lock.close()


@pytest.fixture(scope="module")
def scratch():
    """Our own temporary folder (pytest's numbered ones are pruned by other pytest sessions running beside)."""
    path = tempfile.mkdtemp(prefix="aip-krita-test-")
    yield path
    if not os.environ.get("AI_PORTRAIT_KEEP_KRITA_RUN"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def worker_config(scratch):
    """The worker settings Krita reads. The plugin uses the shared warm worker (plugin.local): its folder is
    this session's own (XDG_RUNTIME_DIR in krita_env), so no other test session's worker, started from other
    code, is reused; the workers started here are stopped at the end."""
    path = os.path.join(scratch, "config.json")
    from plugin import config as plugin_config
    plugin_config.save_config({"python": sys.executable, "core_root": ROOT, "device": "cpu",
                               "idle_timeout_s": 120}, path)
    yield path
    import shared_workers
    shared_workers.stop_all(os.path.join(runtime_dir(path), "ai-portrait"))


def runtime_dir(worker_config_path):
    path = os.path.join(os.path.dirname(worker_config_path), "runtime")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def krita_env(profile, worker_config, **extra):
    env = dict(os.environ)
    env.update({"XDG_DATA_HOME": profile["data"], "XDG_CONFIG_HOME": profile["config"],
                "XDG_RUNTIME_DIR": runtime_dir(worker_config),
                "AI_PORTRAIT_CONFIG": worker_config, "AI_PORTRAIT_TEST_OPS": "1", "HF_HUB_OFFLINE": "1",
                "AI_PORTRAIT_DEVICE": "cpu", "QT_QPA_PLATFORM": "offscreen"})
    for k in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(k, None)
    # Krita's embedded Python finds its prefix from the first `python3` on PATH: a pyenv or venv interpreter
    # there (as under `pyenv exec`, which CI's python3 goes through) hides the system's PyQt5 from Krita.
    env["PATH"] = os.pathsep.join(["/usr/bin", "/bin", env.get("PATH", "")])
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------------------
# The plan: inputs for every operator


def real_registry():
    res = subprocess.run([sys.executable, "-m", "core", "list", "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def free_display_args():
    """xvfb-run's -a looks for a free display from :99 by lock files only; GIMP's X server in the chroot has its
    lock files there, not here, so Krita starts its search elsewhere (and at a new place each attempt)."""
    import random
    return ["-a", "-n", str(300 + random.randrange(400))]


def portrait(size):
    import cv2
    from skimage import data
    img = data.astronaut().astype(np.float32) / 255.0
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _rgba(arr):
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] == 2:
        a = np.concatenate([np.repeat(a[:, :, :1], 3, axis=2), a[:, :, 1:]], axis=2)
    if a.shape[2] == 3:
        a = np.concatenate([a, np.ones(a.shape[:2] + (1,), np.float32)], axis=2)
    return np.ascontiguousarray(a, dtype="<f4")


def operator_inputs(name, decl, size, seed=0):
    """(inputs {name: HxWx4 float32 or [..]}, params) from the operator's own demo, else generic ones."""
    from core import registry
    image = portrait(size)
    op = registry.get(name)
    inputs, params = {}, {}
    if op.demo is not None:
        inputs, params = op.demo(image, seed)
    inputs = dict(inputs)
    for inp in decl["inputs"]:
        if inputs.get(inp["name"]) is not None:
            continue
        if inp["kind"] == "image":
            inputs[inp["name"]] = image
        elif inp["kind"] == "frames":
            rng = np.random.default_rng(seed)
            inputs[inp["name"]] = [np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
                                   for _ in range(4)]
        elif inp["required"]:
            ramp = np.linspace(0.2, 0.9, size, dtype=np.float32)[:, None] * np.ones((1, size), np.float32)
            inputs[inp["name"]] = ramp
    out = {}
    for k, v in inputs.items():
        if v is None:
            continue
        # a Krita layer is canvas-sized: a demo's picture of another size (a new background) is resized to it
        fit = (lambda a: a) if np.asarray(v[0] if isinstance(v, (list, tuple)) else v).shape[:2] == (size, size) \
            else (lambda a: _resized(a, size))
        out[k] = [_rgba(fit(f)) for f in v] if isinstance(v, (list, tuple)) else _rgba(fit(v))
    return out, dict(params)


def _resized(a, size):
    import cv2
    a = np.asarray(a, dtype=np.float32)
    r = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
    return r[:, :, None] if r.ndim == 2 else r


def write_inputs(folder, op_name, inputs):
    """Each input array as a raw .f32 file Krita's side reads; a list input (frames) as a list of files."""
    files = {}
    for k, v in inputs.items():
        if isinstance(v, list):
            files[k] = []
            for i, f in enumerate(v):
                p = os.path.join(folder, f"{op_name}.{k}.{i}.f32")
                f.tofile(p)
                files[k].append(p)
        else:
            p = os.path.join(folder, f"{op_name}.{k}.f32")
            v.tofile(p)
            files[k] = p
    return files


def write_plan(tmp, ops, cases_for, zip_path=None):
    cases = []
    for op in ops:
        inputs, params = operator_inputs(op["name"], op, SIZE) if op["name"] not in cases_for else cases_for[op["name"]]
        files = write_inputs(tmp, op["name"], inputs)
        h, w = next(iter(inputs.values()))[0].shape[:2] if isinstance(next(iter(inputs.values())), list) \
            else next(iter(inputs.values())).shape[:2]
        for depth in DEPTHS + EXTRA_DEPTHS.get(op["name"], ()):
            for sel in (False, True):
                cases.append({"name": f"{op['name']}-{depth}-{'sel' if sel else 'full'}", "op": op,
                              "depth": depth, "selection": sel, "inputs": files, "params": params, "seed": 7,
                              "width": w, "height": h})
    return cases


def run_kritarunner(module, env, timeout=RUNNER_TIMEOUT_S):
    env = dict(env, PYTHONPATH=SCRIPTS)
    res = subprocess.run(["kritarunner", "-s", module], env=env, capture_output=True, text=True, timeout=timeout)
    return res


def _transfer():
    """The adapter's tone-curve module, loaded on its own (its package needs Krita)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("aip_transfer",
                                                  os.path.join(ROOT, "krita", "ai_portrait", "transfer.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def to_linear(a):
    out = np.array(a, dtype=np.float64)
    out[..., :3] = _transfer()._decode_np(np, out[..., :3])
    return out.astype(np.float32)


def to_srgb(a):
    out = np.array(a, dtype=np.float64)
    out[..., :3] = _transfer()._encode_np(np, out[..., :3])
    return out.astype(np.float32)


def _decode(path, dtype, w, h, channels=4):
    from plugin.pixels import Image
    with open(path, "rb") as fh:
        raw = fh.read()
    return Image(w, h, channels, dtype, raw).to("f32").to_numpy().astype(np.float32)


def reference(case, result):
    """core.registry.run on exactly what the worker received: the same path minus Krita and the bridge."""
    from core import registry
    w, h = case["width"], case["height"]
    inputs = {}
    for name, items in result["sent"].items():
        arrs = [_decode(i["path"], i["dtype"], w, h) for i in items]
        inputs[name] = arrs if items[0]["list"] else arrs[0]
    mask = _decode(result["mask"], "u8", w, h, 1) if result["mask"] else None
    out = registry.run(case["op"]["name"], inputs, case["params"], mask=mask, seed=case["seed"],
                       stored_as=result.get("stored_as"))
    return out.image


# ---------------------------------------------------------------------------------------------------------------
# The tests


@pytest.fixture(scope="module")
def test_operators():
    """The worker's test-only operators (what AI_PORTRAIT_TEST_OPS=1 registers there), here for the reference
    runs too; removed again afterwards so other tests see the real registry only."""
    from core import registry
    from core.worker.testops import register_test_ops
    names = ("test_scale", "test_mean", "test_fail", "test_inputs")
    registry.operators()
    if "test_scale" not in {o.name for o in registry.operators()}:
        register_test_ops()
    yield [registry.get(n).to_dict() for n in names]
    for n in names:
        registry.unregister(n)


@pytest.fixture(scope="module")
def pipeline_run(profile, worker_config, scratch, test_operators):
    """One kritarunner session: the zip imported by Krita's importer, then every case."""
    tmp = os.path.join(scratch, "run")
    os.makedirs(tmp)
    from krita.build_zip import build_zip
    zip_path = build_zip(ROOT, os.path.join(tmp, "ai_portrait-krita.zip"))
    ops = real_registry()
    env = krita_env(profile, worker_config)
    decls = {d["name"]: d for d in test_operators}
    image = _rgba(portrait(SIZE))
    rng = np.random.default_rng(3)
    frames = [np.clip(image + np.float32(0.03) * rng.standard_normal(image.shape).astype(np.float32), 0, 1)
              for _ in range(3)]
    for f in frames:
        f[:, :, 3] = 1.0
    special = {"test_scale": ({"image": image}, {"factor": 0.5, "steps": 3}),
               "test_mean": ({"frames": [np.ascontiguousarray(f, dtype="<f4") for f in frames]}, {})}
    plan_ops = [decls[n] for n in ("test_scale", "test_mean") if n in decls] + ops
    cases = write_plan(tmp, plan_ops, special)
    # a failing operator: an error message, nothing changed
    for kind, text in (("user", "refuses this image on purpose"), ("bug", "")):
        cases.append({"name": f"test_fail-{kind}", "op": decls["test_fail"], "depth": "U8", "selection": True,
                      "inputs": {"image": cases[0]["inputs"]["image"]}, "params": {"kind": kind}, "seed": 0,
                      "width": SIZE, "height": SIZE, "expect_error": text or "bug"})
    # another colour model: a clear message, nothing changed
    cases.append({"name": "test_scale-GRAYA", "op": decls["test_scale"], "depth": "U8", "model": "GRAYA",
                  "selection": False, "inputs": {"image": cases[0]["inputs"]["image"]}, "params": {},
                  "seed": 0, "width": SIZE, "height": SIZE, "expect_error": "Convert Image Color Space"})
    # the optional transparency mask from the selection
    clip = dict(cases[0], name="test_scale-U8-clip", clip=True, selection=True)
    cases.append(clip)
    cases += data_and_marks_cases(tmp, decls["test_inputs"], image)
    plan = {"cases": cases, "zip": zip_path, "zip_resources": os.path.join(tmp, "resources")}
    os.makedirs(plan["zip_resources"], exist_ok=True)
    plan_path = os.path.join(tmp, "plan.json")
    with open(plan_path, "w") as fh:
        json.dump(plan, fh)
    proc = run_kritarunner("aip_krita_ops", dict(env, AIP_PLAN=plan_path, AIP_OUT=tmp))
    results_path = os.path.join(tmp, "results.json")
    assert os.path.exists(results_path), f"kritarunner wrote no results:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    with open(results_path) as fh:
        results = json.load(fh)
    assert "error" not in results, results["error"]
    return {"plan": plan, "results": results, "real_ops": ops, "log": proc.stdout + proc.stderr}


LINEAR_PROFILE = "sRGB-elle-V2-g10.icc"   # Krita's linear sRGB (gamma 1.0), shipped with it
MARKS = [[64.0, 58.0, 0.2], [50.0, 50.0, 0.6], [80.5, 64.25, 1.0]]   # x, y (document pixels), grey level
LEVELS = [0.1, 0.2, 0.3, 0.4]


def _raw(folder, name, arr):
    path = os.path.join(folder, name)
    np.ascontiguousarray(arr).tofile(path)
    return {"path": path, "dtype": {"uint16": "u16", "uint8": "u8", "float16": "f16", "float32": "f32"}[
        arr.dtype.name]}


def _unit_normals(size, rng):
    n = rng.normal(0, 1, (size, size, 3))
    n[..., 2] = np.abs(n[..., 2]) + 0.2   # facing the camera
    return (n / np.linalg.norm(n, axis=2, keepdims=True)).astype(np.float32)


def _with_alpha(rgb, one):
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), one, rgb.dtype)], axis=2)


def data_and_marks_cases(tmp, decl, image):
    """test_inputs cases: data layers holding known values (to arrive bit-exact, with their storage), and a
    list of coordinate marks with a selection (to land on the document pixels they name)."""
    rng = np.random.default_rng(11)
    size = SIZE
    d16 = rng.integers(0, 65536, (size, size, 3)).astype("<u2")   # every channel its own: order shows too
    n16 = np.rint((_unit_normals(size, rng) + 1) / 2 * 65535).astype("<u2")
    n8 = np.rint((_unit_normals(size, rng) + 1) / 2 * 255).astype("u1")
    metres = rng.uniform(0.3, 40.0, (size, size, 3)).astype("<f4")   # float depth: metres, far above 1.0
    nf = _unit_normals(size, rng)                                     # float normals: raw, negatives too
    matte = rng.uniform(0.0, 1.0, (size, size, 3)).astype("<f4")
    img = _raw(tmp, "ti.image.f32", image)
    common = {"op": decl, "selection": False, "seed": 0, "width": size, "height": size, "params": {},
              "data_case": True}
    cases = [
        dict(common, name="test_inputs-data-U16", depth="U16", inputs={
            "image": img["path"], "depth": _raw(tmp, "ti.d16", _with_alpha(d16, 65535)),
            "normals": _raw(tmp, "ti.n16", _with_alpha(n16, 65535))}),
        dict(common, name="test_inputs-data-F32", depth="F32", inputs={
            "image": img["path"], "depth": _raw(tmp, "ti.metres", _with_alpha(metres, 1.0)),
            "normals": _raw(tmp, "ti.nf", _with_alpha(nf, 1.0)),
            "matte": _raw(tmp, "ti.matte", _with_alpha(matte, 1.0))}),
        # an 8-bit photo with data layers of their own depth and a linear profile: nothing may convert them
        dict(common, name="test_inputs-data-U8-mixed", depth="U8", inputs={
            "image": img["path"], "depth": _raw(tmp, "ti.metres2", _with_alpha(metres[::-1].copy(), 1.0)),
            "normals": _raw(tmp, "ti.n16b", _with_alpha(n16[:, ::-1].copy(), 65535)),
            "matte": _raw(tmp, "ti.n8", _with_alpha(n8, 255))},
            spaces={"depth": ["RGBA", "F32", LINEAR_PROFILE], "normals": ["RGBA", "U16", LINEAR_PROFILE]}),
    ]
    for depth in ("U8", "F32"):
        cases.append({"name": f"test_inputs-marks-{depth}-sel", "op": decl, "depth": depth, "selection": True,
                      "inputs": {"image": img["path"]}, "seed": 0, "width": size, "height": size,
                      "params": {"marks": MARKS, "levels": LEVELS, "tint": [1.0, 1.0, 1.0]}, "marks_case": True})
    return cases


def test_data_layers_arrive_bit_exact_with_their_storage(pipeline_run):
    """A 16-bit and a float depth layer, 8/16-bit and float normal maps and mattes, in U16, F32 and U8
    documents (in the U8 one with a float and a 16-bit layer of their own, on Krita's linear profile): the
    operator sees exactly the stored values (sha256 of its float32 array = that of the written values
    converted as plugin.pixels does), and stored_as is each layer's own depth."""
    from plugin.pixels import convert
    import hashlib
    checked = []
    for case, r in _by_name(pipeline_run):
        if not case.get("data_case"):
            continue
        assert r["ok"], (case["name"], r["messages"], r.get("traceback"))
        info = r["info"]
        for name, spec in case["inputs"].items():
            if name == "image":
                continue
            with open(spec["path"], "rb") as fh:
                raw = fh.read()
            want = hashlib.sha256(np.asarray(convert(raw, spec["dtype"], "f32")).view("<f4").tobytes()).hexdigest()
            assert info["shapes"][name] == [SIZE, SIZE, 4], (case["name"], name, info["shapes"])
            assert info["hashes"][name] == want, (f"{case['name']}: {name} ({spec['dtype']} layer, "
                                                  f"{r['layers'][name]}) did not arrive as stored")
            assert info["stored_as"][name] == spec["dtype"], (case["name"], name, info["stored_as"])
            checked.append(f"{case['name']}:{name}:{spec['dtype']}:{r['layers'][name]['profile']}")
        assert info["stored_as"]["image"] == case["depth"].lower(), info["stored_as"]
    print("bit-exact data layers:", checked, "documents:",
          {r["name"]: r["document"] for c, r in _by_name(pipeline_run) if c.get("data_case")})
    assert len(checked) == 8


def test_repeatable_coordinates_reach_the_worker_and_land_on_their_pixels(pipeline_run):
    """A repeatable x, y, level vector and a repeatable float list reach the worker as full lists; Krita sends
    the whole canvas, so each mark lands on the document pixel it names (here inside a soft selection)."""
    from plugin.pixels import Image
    for case, r in _by_name(pipeline_run):
        if not case.get("marks_case"):
            continue
        assert r["ok"], (case["name"], r["messages"], r.get("traceback"))
        assert r["info"]["params"]["marks"] == MARKS and r["info"]["params"]["levels"] == LEVELS, r["info"]
        w, h = case["width"], case["height"]
        layer = _decode(r["layer"], r["dtype"], w, h)
        mask = _decode(r["mask"], "u8", w, h, 1)[:, :, 0]
        for x, y, level in MARKS:
            i, j = int(np.floor(x)), int(np.floor(y))
            assert mask[j, i] == 1.0
            want = to_linear(np.full((1, 1, 3), level, np.float32))[0, 0] if r["linear"] else np.full(3, level)
            want = Image.from_numpy(np.float32(want)[None, None]).to(r["dtype"]).to("f32").to_numpy()[0, 0]
            assert np.abs(layer[j, i, :3] - want).max() <= LSB[r["dtype"]] + 1e-6, (case["name"], x, y,
                                                                                  layer[j, i, :3], want)
        assert sorted(map(tuple, r["info"]["painted"])) == sorted((int(x), int(y)) for x, y, _ in MARKS)


def test_zip_imports_with_krita_importer(pipeline_run):
    r = pipeline_run["results"]
    assert r["zip_imported"] == ["ai_portrait"]
    assert "/resources/pykrita/ai_portrait/" in r["plugin_file"]
    assert "/ai_portrait/vendor/plugin/" in r["bridge_file"]


def test_registry_seen_from_krita_matches_cli(pipeline_run):
    seen = {o["name"] for o in pipeline_run["results"]["registry"]}
    assert {o["name"] for o in pipeline_run["real_ops"]} <= seen


def _by_name(pipeline_run):
    cases = {c["name"]: c for c in pipeline_run["plan"]["cases"]}
    return [(cases[r["name"]], r) for r in pipeline_run["results"]["cases"]]


def test_every_case_ran_and_passed_in_krita_checks(pipeline_run):
    names = {r["name"] for r in pipeline_run["results"]["cases"]}
    for op in pipeline_run["real_ops"]:
        for depth in DEPTHS:
            for sel in ("full", "sel"):
                assert f"{op['name']}-{depth}-{sel}" in names
    bad = {r["name"]: r["messages"] + [r.get("traceback", ""), r.get("detail", "")]
           for r in pipeline_run["results"]["cases"] if not r["ok"]}
    assert not bad, json.dumps(bad, indent=1)[:6000]


def test_layers_hold_the_registry_result(pipeline_run):
    """The new layer equals core.registry.run recomputed here on the same pixels, to the layer's quantisation
    step for the deterministic test operators. Real operators must match closely (PSNR >= 35 dB): an adapter
    bug (channel order, depth scaling, tone curve) costs far more than that, while an operator whose result
    shifts a little between processes (observed once for refocus while models were being rebuilt beside this
    run) does not fail the adapter's test; the in-Krita check already proves the layer holds the worker's bytes."""
    from plugin.pixels import Image
    figures = {}
    for case, r in _by_name(pipeline_run):
        if case.get("expect_error") or not r["ok"] or case.get("clip"):
            continue
        w, h = case["width"], case["height"]
        ref = reference(case, r)
        if r["linear"]:   # the layer's profile is linear: the adapter decoded the sRGB-encoded result
            ref = to_linear(ref)
        ref_q = Image.from_numpy(np.ascontiguousarray(ref, dtype=np.float32)).to(r["dtype"]).to("f32").to_numpy()
        layer = _decode(r["layer"], r["dtype"], w, h)
        err = np.abs(layer - ref_q)
        mse = float(np.mean(err[:, :, :3] ** 2))
        psnr = 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)
        figures[case["name"]] = {"max": round(float(err.max()), 6), "psnr_db": round(psnr, 1)}
        if case["op"]["name"].startswith("test_"):
            assert err.max() <= 1.01 * LSB[r["dtype"]] + 1e-6, f"{case['name']}: {figures[case['name']]}"
        else:
            assert psnr >= 35.0, f"{case['name']}: layer vs registry.run {figures[case['name']]}"
    print("layer vs registry.run per case:", json.dumps(figures))


def test_outside_the_selection_is_bit_identical_and_inside_changed(pipeline_run):
    """Where the selection is 0 the new layer's bytes are the base layer's (for a burst: the reference frame)."""
    for case, r in _by_name(pipeline_run):
        if case.get("expect_error") or not r["ok"] or case.get("clip"):
            continue
        w, h = case["width"], case["height"]
        primary = next(i for i in case["op"]["inputs"] if i["kind"] in ("image", "frames"))
        key = f"frame{int((r.get('info') or {}).get('reference_index', 0))}" if primary["kind"] == "frames" \
            else primary["name"]
        with open(r["native"]["result"], "rb") as fh:
            layer = np.frombuffer(fh.read(), dtype=np.uint8).reshape(h, w, -1)
        with open(r["native"][key], "rb") as fh:
            base = np.frombuffer(fh.read(), dtype=np.uint8).reshape(h, w, -1)
        if case["selection"]:
            mask = _decode(r["mask"], "u8", w, h, 1)[:, :, 0]
            assert (mask == 0).any() and (mask == 1).any()
            same = np.all(layer == base, axis=2)
            assert same[mask == 0].all(), f"{case['name']}: {int((~same[mask == 0]).sum())} pixels outside " \
                                          f"the selection differ from the base layer"
            changed = ~same[mask == 1]
        else:
            changed = layer != base
        assert changed.any(), f"{case['name']}: the operator changed nothing"


def test_channel_order_and_scale(pipeline_run):
    """test_scale halves every channel: checks R/G/B order and the depth conversions both ways."""
    for case, r in _by_name(pipeline_run):
        if case["op"]["name"] != "test_scale" or case["selection"] or case.get("clip") or case.get("expect_error"):
            continue
        w, h = case["width"], case["height"]
        sent = _decode(r["sent"]["image"][0]["path"], r["sent"]["image"][0]["dtype"], w, h)
        truth = np.fromfile(case["inputs"]["image"], dtype="<f4").reshape(h, w, 4)
        step = LSB[r["dtype"]]
        if r["linear"]:   # sent sRGB-encoded, stored linear
            sent = to_linear(sent)
        assert np.abs(sent - truth).max() <= 0.51 * step + 1e-5, "the worker got other pixels than the layer"
        layer = _decode(r["layer"], r["dtype"], w, h)
        want = 0.5 * truth if not r["linear"] else to_linear(0.5 * to_srgb(truth))
        assert np.abs(layer[:, :, :3] - want[:, :, :3]).max() <= 1.01 * step + 1e-5
        assert np.abs(layer[:, :, 3] - truth[:, :, 3]).max() <= step  # alpha carried through


def test_failing_operator_reports_and_changes_nothing(pipeline_run):
    fails = [r for r in pipeline_run["results"]["cases"] if r["name"].startswith("test_fail")
             or r["name"] == "test_scale-GRAYA"]
    assert len(fails) == 3
    for r in fails:
        assert r["ok"], r["messages"]
    user = next(r for r in fails if r["name"] == "test_fail-user")
    assert "refuses this image on purpose" in user["error"]


def test_clip_to_selection(pipeline_run):
    r = next(r for r in pipeline_run["results"]["cases"] if r["name"] == "test_scale-U8-clip")
    assert r["ok"], r["messages"]
    assert r["clipped"] in ("mask", "alpha")


# ---------------------------------------------------------------------------------------------------------------
# The full GUI: the docker in a real Krita window under Xvfb


@pytest.fixture(scope="module")
def gui_run(profile, worker_config, scratch):
    out = os.path.join(scratch, "gui")
    os.makedirs(out)
    from krita.install_krita import enable_in_kritarc, install
    pykrita = os.path.join(profile["data"], "krita", "pykrita")
    kritarc = os.path.join(profile["config"], "kritarc")
    written = install(ROOT, config_path=worker_config, locations=[(pykrita, kritarc)])
    shutil.copytree(os.path.join(SCRIPTS, "aip_selftest"), os.path.join(pykrita, "aip_selftest"))
    shutil.copy(os.path.join(SCRIPTS, "aip_selftest.desktop"), pykrita)
    enable_in_kritarc(kritarc, "aip_selftest")
    ops = real_registry()
    image = _rgba(portrait(SIZE))
    portrait_path, depth_path = os.path.join(out, "portrait.f32"), os.path.join(out, "depth.f32")
    image.tofile(portrait_path)
    ramp = np.linspace(0.9, 0.1, SIZE, dtype=np.float32)[:, None] * np.ones((1, SIZE), np.float32)
    _rgba(ramp).tofile(depth_path)
    cases = {}
    for op in ops:
        inputs, params = operator_inputs(op["name"], op, SIZE)
        files = write_inputs(out, op["name"], inputs)
        cases[op["name"]] = {"inputs": files, "params": _jsonable(params)}
    shot = "refocus" if any(o["name"] == "refocus" for o in ops) else (ops[0]["name"] if ops else None)
    plan = {"size": SIZE, "portrait": portrait_path, "depth": depth_path, "registry": ops, "cases": cases,
            "screenshot_op": shot, "marks": MARKS}
    plan_path = os.path.join(out, "plan.json")
    with open(plan_path, "w") as fh:
        json.dump(plan, fh)
    env = krita_env(profile, worker_config, AIP_PLAN=plan_path, AIP_OUT=out, AIP_WATCHDOG_S="400")
    env.pop("QT_QPA_PLATFORM")
    for attempt in range(2):   # a display the previous X server is still giving up fails at once: once more
        proc = subprocess.run(["timeout", "480", "xvfb-run"] + free_display_args() +
                              ["-s", "-screen 0 1600x1000x24", "krita", "--nosplash"], env=env,
                              capture_output=True, text=True, timeout=520)
        if "could not connect to display" not in proc.stderr:
            break
    with open(os.path.join(out, "krita-stderr.txt"), "w") as fh:
        fh.write(proc.stderr)
    path = os.path.join(out, "results.json")
    assert os.path.exists(path), f"Krita exited {proc.returncode} without results:\n{proc.stderr[-4000:]}"
    with open(path) as fh:
        results = json.load(fh)
    results["returncode"] = proc.returncode
    results["installed"] = written
    results["out"] = out
    return results


def _jsonable(params):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def test_gui_selftest_ran_to_the_end(gui_run):
    assert not gui_run["errors"], "\n".join(gui_run["errors"])
    assert gui_run["returncode"] == 0, "Krita did not quit cleanly"


def test_gui_docker_controls_built_from_registry(gui_run):
    c = gui_run["checks"]
    for name in ("docker_registered", "registry_loaded_from_worker", "controls_match_registry",
                 "registry_matches_cli", "menu_actions"):
        assert c.get(name, {}).get("ok"), f"{name}: {c.get(name)}"
    assert gui_run["controls"], "no operator pages"
    for op, n in gui_run["controls"].items():
        assert n["params"] == n["declared_params"] and n["inputs"] == n["declared_inputs"], (op, n)


def test_gui_runs_cancels_and_reports_errors(gui_run):
    c = gui_run["checks"]
    for name in ("run_via_docker", "gui_responsive_during_run", "progress_reported", "source_unchanged",
                 "new_layer_above_source", "provenance_annotation", "cancel", "failure_user_shown",
                 "failure_bug_shown", "host_error_shown", "selection_transparency_mask", "repeat_rows_via_docker"):
        assert c.get(name, {}).get("ok"), f"{name}: {c.get(name)}"


def test_gui_every_real_operator_via_docker(gui_run):
    c = gui_run["checks"]
    for op in real_registry():
        check = c.get(f"real_{op['name']}_via_docker")
        assert check and check["ok"], f"{op['name']}: {check}"
        if any(i["kind"] == "frames" for i in op["inputs"]):
            frames = c.get(f"frames_from_selected_layers_{op['name']}")
            assert frames and frames["ok"], f"{op['name']}: {frames}"
    assert c.get("menu_action_runs_operator", {}).get("ok"), c.get("menu_action_runs_operator")


def test_gui_screenshot_kept_in_docs(gui_run):
    """The docker's pictures from this run; AI_PORTRAIT_UPDATE_SCREENSHOT=1 copies them to docs/
    (krita-docker.png, and krita-docker-repeat.png: a repeatable parameter's rows)."""
    for name, doc_name in (("docker-final.png", "krita-docker.png"), ("docker-repeat.png",
                                                                       "krita-docker-repeat.png")):
        shot = os.path.join(gui_run["out"], name)
        assert os.path.exists(shot), f"no docker screenshot {name} was taken"
        assert os.path.getsize(shot) > 5000
        if os.environ.get("AI_PORTRAIT_UPDATE_SCREENSHOT"):
            os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
            shutil.copy(shot, os.path.join(ROOT, "docs", doc_name))


# ---------------------------------------------------------------------------------------------------------------
# The Qt shim: the same controls under PyQt5 (Krita 5) and PyQt6 (Krita 6), outside Krita


def _qt_python(binding):
    if binding == "PyQt5":
        return "/usr/bin/python3"   # Debian's python3-pyqt5, what Krita 5 uses here
    return os.environ.get("AI_PORTRAIT_PYQT6_PYTHON")  # any Python with PyQt6 installed


@pytest.mark.parametrize("binding", ["PyQt5", "PyQt6"])
def test_controls_build_under_both_qt_bindings(binding, test_operators, tmp_path):
    py = _qt_python(binding)
    if not py or not os.path.exists(py) or subprocess.run([py, "-c", f"import {binding}.QtWidgets"],
                                                          capture_output=True).returncode != 0:
        pytest.skip(f"no Python with {binding} here (set AI_PORTRAIT_PYQT6_PYTHON for PyQt6)")
    decls = real_registry() + test_operators
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(decls))
    res = subprocess.run([py, os.path.join(SCRIPTS, "qt_controls_check.py"), binding, str(path)],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["api"] == binding
    assert report["docker"]["pages"] == len(decls)
    assert "open an image first" in report["docker"]["error"]
    for d in decls:
        # a value left to the filter reads 'auto' in every one of its fields, never a placeholder number
        for name, texts in report["ops"][d["name"]]["auto_text"].items():
            assert all(t == "auto" for t in texts), (d["name"], name, texts)
        numbers = {p["name"] for p in d["params"] if p.get("optional") and p["default"] is None
                   and p["type"] in ("float", "int", "point") and not p.get("repeat")}
        assert numbers <= {n for n, t in report["ops"][d["name"]]["auto_text"].items() if t}, d["name"]
        got = report["ops"][d["name"]]["params"]
        assert set(got) == {p["name"] for p in d["params"]}
        for p in d["params"]:   # after reset(), every control reads back its declared default
            want, have = p["default"], got[p["name"]]
            if isinstance(want, float):
                assert have is not None and abs(have - want) <= 1e-6 * max(1.0, abs(want)), (d["name"], p, have)
            else:
                assert have == want, (d["name"], p["name"], have, want)


# ---------------------------------------------------------------------------------------------------------------
# Installer and zip (no Krita needed)


def test_install_into_pykrita_and_enable_in_kritarc(tmp_path):
    from krita.install_krita import install
    pykrita, kritarc = str(tmp_path / "data" / "krita" / "pykrita"), str(tmp_path / "config" / "kritarc")
    os.makedirs(os.path.dirname(kritarc))
    with open(kritarc, "w") as fh:
        fh.write("[General]\nfoo=1\n\n[python]\nenable_other=true\nenable_ai_portrait=false\n\n[Zed]\nx=2\n")
    for _ in range(2):   # idempotent
        written = install(ROOT, config_path=str(tmp_path / "cfg.json"), locations=[(pykrita, kritarc)])
    assert os.path.join(pykrita, "ai_portrait.desktop") in written and kritarc in written
    pkg = os.path.join(pykrita, "ai_portrait")
    for f in ("__init__.py", "docker.py", "controls.py", "jobs.py", "document.py", "qt.py", "transfer.py",
              "bridge.py", "extension.py", "vendor/plugin/__init__.py", "vendor/plugin/client.py",
              "vendor/plugin/pixels.py", "vendor/plugin/config.py", "vendor/plugin/protocol.py"):
        assert os.path.isfile(os.path.join(pkg, f)), f
    with open(os.path.join(pkg, "settings.json")) as fh:
        assert json.load(fh)["config_path"] == str(tmp_path / "cfg.json")
    text = open(kritarc).read()
    assert text.count("enable_ai_portrait=true") == 1 and "enable_ai_portrait=false" not in text
    assert "enable_other=true" in text and "[Zed]\nx=2" in text and "[General]\nfoo=1" in text
    section = text.split("[python]")[1].split("[Zed]")[0]
    assert "enable_ai_portrait=true" in section


def test_krita_locations_per_platform(tmp_path):
    from krita.install_krita import krita_locations
    home = str(tmp_path)
    win = krita_locations({"APPDATA": r"C:\U\AppData\Roaming", "LOCALAPPDATA": r"C:\U\AppData\Local",
                           "HOME": home}, "Windows")
    assert win == [(os.path.join(r"C:\U\AppData\Roaming", "krita", "pykrita"),
                     os.path.join(r"C:\U\AppData\Local", "kritarc"))]
    mac = krita_locations({"HOME": home}, "Darwin")
    assert mac == [(os.path.join(home, "Library", "Application Support", "krita", "pykrita"),
                    os.path.join(home, "Library", "Preferences", "kritarc"))]
    os.makedirs(os.path.join(home, ".var", "app", "org.kde.krita"))
    lin = krita_locations({"HOME": home}, "Linux")
    assert lin[0] == (os.path.join(home, ".local", "share", "krita", "pykrita"),
                      os.path.join(home, ".config", "kritarc"))
    assert lin[1] == (os.path.join(home, ".var", "app", "org.kde.krita", "data", "krita", "pykrita"),
                      os.path.join(home, ".var", "app", "org.kde.krita", "config", "kritarc"))


def test_zip_layout_for_krita_importer(tmp_path):
    import zipfile
    from krita.build_zip import build_zip
    path = build_zip(ROOT, str(tmp_path / "p.zip"))
    names = zipfile.ZipFile(path).namelist()
    assert "ai_portrait.desktop" in names
    assert "ai_portrait/" in names and "ai_portrait/__init__.py" in names   # the importer needs the dir entry
    assert "ai_portrait/vendor/plugin/client.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
