#!/usr/bin/env python3
"""AI Portrait for GIMP 3: one procedure per operator of the registry, under Filters > AI Portrait.

Nothing here knows any operator: procedures, arguments and dialogs come from the registry JSON (cached, see
registry_cache.py); pixels go to the torch worker through the stdlib-only bridge (`plugin/`, installed as a copy
beside this file, or found via $AI_PORTRAIT_ROOT / the checkout this file sits in). GIMP's Python never imports
torch or the core.

A run: read the selected layer(s) over the selection's bounds as float RGBA, the selection's soft mask and
any extra input layers over the same image area (data layers - depth, normals, mask - exactly as stored, every
input with the precision it was stored at); send them to the worker with every pixel coordinate moved into the
region (progress in GIMP's bar); then, in one
undo group, insert a new layer holding the result (already blended with the soft mask by the worker) at the top
of the source's stack of results, or in place of the previous result of this filter on that source
(plugin/results.py: a re-run processes the source again, never its own result), optionally masked by the
selection, with the run's provenance as a parasite. The worker is the user's shared warm one (plugin/local.py).
The user's layers are only read (a replaced result is removed, inside the same undo group). Any failure happens before the image is touched and is returned as the procedure's error, which
GIMP shows as a message.
"""
import json
import os
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))


def _find_bridge():
    """Make `import plugin` work: the bundled copy, $AI_PORTRAIT_ROOT, or the checkout around this file."""
    candidates = [_HERE, os.environ.get("AI_PORTRAIT_ROOT") or "", os.path.dirname(os.path.dirname(_HERE))]
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, "plugin", "client.py")):
            if root not in sys.path:
                sys.path.insert(0, root)
            return root
    return None


def _use_installed_config():
    """install.py may name a config file that is not the bridge's default: honour it unless the env says."""
    note = os.path.join(_HERE, "config_path.txt")
    if not os.environ.get("AI_PORTRAIT_CONFIG") and os.path.isfile(note):
        with open(note, "r", encoding="utf-8") as fh:
            path = fh.read().strip()
        if path:
            os.environ["AI_PORTRAIT_CONFIG"] = path


if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
_BRIDGE_ROOT = _find_bridge()
_use_installed_config()

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import GLib, Gimp  # noqa: E402

import arguments  # noqa: E402
import describe  # noqa: E402
import dialog  # noqa: E402
import layer_io  # noqa: E402
import registry_cache  # noqa: E402

PARASITE_NAME = "ai-portrait-provenance"
SETUP_PROC = describe.PROC_PREFIX + "setup"
# The bundled help pages (install_gimp.copy_help): GIMP's Help buttons open a filter's own page from here,
# not GIMP's user manual (help/en/gimp-help.xml maps each procedure's help id, its name, to a page).
HELP_DOMAIN = "ai-portrait"
HELP_ROOT = os.path.join(_HERE, "help")


class UserFacing(Exception):
    """A problem the user can fix: its message is shown as is."""


def _registry_at_query():
    """(operators, error): GIMP is (re)registering us, so take the worker's current registry if it answers."""
    if _BRIDGE_ROOT is None:
        return [], "the AI Portrait bridge ('plugin' package) is not installed next to the GIMP plug-in"
    try:
        return registry_cache.load(refresh=True, shared=True), None
    except Exception as exc:  # no worker and no cache: register a single entry that explains
        return [], str(exc) or exc.__class__.__name__


def _registry_at_run():
    """{procedure name: operator} (operator names may hold '_', which procedure names cannot)."""
    ops = registry_cache.cached()
    if ops is None:
        ops = registry_cache.load(shared=True)
    return {describe.proc_name(op["name"]): op for op in ops}


def _touch_self():
    """GIMP re-queries a plug-in only when its file changes: make it do so at its next start."""
    try:
        os.utime(os.path.abspath(__file__), None)
    except OSError:
        pass


class AIPortrait(Gimp.PlugIn):
    _query_error = None

    def do_query_procedures(self):
        if os.path.isfile(os.path.join(HELP_ROOT, "en", "gimp-help.xml")):
            from gi.repository import Gio
            self.set_help_domain(HELP_DOMAIN, Gio.File.new_for_path(HELP_ROOT))
        ops, error = _registry_at_query()
        if error is not None:
            AIPortrait._query_error = error
            _touch_self()  # try again at the next start, when the worker may be set up
            return [SETUP_PROC]
        return [describe.proc_name(op["name"]) for op in ops] or [SETUP_PROC]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        if name == SETUP_PROC:
            return self._setup_procedure(name)
        op = _registry_at_run().get(name)
        if op is None:
            return None
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_operator, op)
        proc.set_image_types("RGB*, GRAY*")
        # Several selected layers are a burst's frames, or else each is processed on its own.
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES)
        proc.set_menu_label(op.get("title", op["name"]) + "…")
        proc.add_menu_path(describe.MENU_PATH)
        proc.set_documentation(op.get("help", ""), _doc(op), name)
        proc.set_attribution("AI Portrait", "AI Portrait", "2026")
        arguments.add_arguments(proc, op)
        return proc

    def _setup_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_setup_help, None)
        proc.set_image_types("*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.ALWAYS)
        proc.set_menu_label("Set Up AI Portrait…")
        proc.add_menu_path(describe.MENU_PATH)
        proc.set_documentation("AI Portrait could not list its operators", AIPortrait._query_error or "", name)
        proc.set_attribution("AI Portrait", "AI Portrait", "2026")
        return proc


def _doc(op):
    lines = [op.get("help", "")]
    for inp in op.get("inputs", []):
        lines.append(f"{inp['name']} ({inp['kind']}): {inp.get('help', '')}")
    return "\n".join(lines)


def _fail(procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
    return procedure.new_return_values(status, GLib.Error(message))


def run_setup_help(procedure, run_mode, image, drawables, config, data):
    msg = ("AI Portrait could not reach its worker when GIMP started"
           + (f" ({AIPortrait._query_error})" if AIPortrait._query_error else "")
           + ". Run the project's install.py, then restart GIMP.")
    return _fail(procedure, msg)


# ---------------------------------------------------------------------------------------------------------------
# Running an operator


class _Progress:
    """GIMP's progress bar fed from the worker's progress frames (text updates throttled)."""

    def __init__(self, title):
        self.title = title
        self.last_text = 0.0
        Gimp.progress_init(f"{title}…")

    def __call__(self, fraction, message):
        Gimp.progress_update(min(max(float(fraction), 0.0), 1.0))
        now = time.monotonic()
        if message and now - self.last_text > 0.25:
            Gimp.progress_set_text(describe.status_text(self.title, message))
            self.last_text = now

    def end(self):
        Gimp.progress_end()


def run_operator(procedure, run_mode, image, drawables, config, op):
    try:
        if run_mode == Gimp.RunMode.INTERACTIVE and not dialog.run(
                procedure, config, op, note=_dialog_note(image, list(drawables or []), op), image=image,
                preview=_Preview(image, list(drawables or []), op)):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        _process(image, list(drawables or []), config, op)
    except UserFacing as exc:
        return _fail(procedure, str(exc))
    except layer_io.RegionError as exc:
        return _fail(procedure, str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure must reach the user
        from plugin.client import WorkerCancelled, WorkerError
        from plugin.params import ParamTextError
        if isinstance(exc, ParamTextError):
            return _fail(procedure, f"{op.get('title', op['name'])}: {exc}")
        if isinstance(exc, WorkerCancelled):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error("cancelled"))
        if isinstance(exc, WorkerError):
            return _fail(procedure, f"{op.get('title', op['name'])}: {getattr(exc, 'message', None) or exc}")
        traceback.print_exc()
        return _fail(procedure, f"AI Portrait failed (a bug, please report it): {exc.__class__.__name__}: {exc}")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


class _Job:
    """One worker request and where its result goes."""

    def __init__(self, sources, region, inputs, mask, params, image_params, input_layers, stored_as,
                 selected=None):
        self.sources = sources  # the processed layer, or a burst's frames in order
        self.selected = selected  # the selected layer when it is a result of this filter (a re-run)
        self.region = region
        self.inputs = inputs
        self.stored_as = stored_as  # {input name: the precision its layer or file stores, 'u8' ... 'f32'}
        self.mask = mask
        self.params = params
        self.image_params = image_params  # points in image pixels, for the layer name and provenance
        self.input_layers = input_layers
        self.result = None


def _process(image, drawables, config, op):
    layers = [d for d in drawables if isinstance(d, Gimp.Layer)]
    if not layers or len(layers) != len(drawables):
        raise UserFacing("AI Portrait works on layers: select one or more layers (not a channel or a mask)")
    seed = int(config.get_property("seed"))
    jobs = _read_jobs(image, layers, config, op)
    _compute(jobs, op, seed)  # all the work first: a failure or a cancel leaves the image exactly as it was
    as_mask = bool(config.get_property("selection-as-mask")) and not Gimp.Selection.is_empty(image)
    rerun = config.get_property("rerun")
    image.undo_group_start()
    try:
        made = [_write_result(image, op, job, seed, as_mask, rerun) for job in jobs]
        if made:  # the newest result is what a next run (a re-run) starts from
            image.set_selected_layers(made)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()


def _read_jobs(image, layers, config, op):
    """One job per selected layer (an 'image' operator) or one for all of them (a burst's 'frames')."""
    from plugin.params import is_data_input
    from plugin.pixels import Image

    primary = arguments.primary_input(op)
    title = op.get("title", op["name"])

    def wrap(rgba, region):
        return Image(region[2], region[3], 4, "f32", rgba)

    jobs = []
    groups = [layers] if primary["kind"] == "frames" else [[layer] for layer in layers]
    seen = set()
    for picked in groups:
        group, selected = _sources_of(image, picked, op)
        key = tuple(layer_io.tattoo(layer) for layer in group)
        if key in seen:  # the source and its result both selected: one run
            continue
        seen.add(key)
        source = group[0]
        region = layer_io.process_region(source)
        if region is None:
            raise UserFacing(f"the selection does not touch layer '{source.get_name()}'")
        params = arguments.read_params(config, op, (region[0], region[1]))
        image_params = arguments.read_params(config, op, (0.0, 0.0))
        inputs, used = {}, {}
        # every layer of an image shares its precision: that is how each input was stored
        stored = {inp["name"]: layer_io.stored_as(image) for inp in op.get("inputs", [])}
        if primary["kind"] == "frames":
            inputs[primary["name"]] = [wrap(layer_io.read_rgba(f, region), region) for f in group]
            used[primary["name"]] = [f.get_name() for f in group]
        else:
            inputs[primary["name"]] = wrap(layer_io.read_rgba(source, region), region)
            used[primary["name"]] = source.get_name()
        for inp, layer, gfile in arguments.read_input_layers(config, op):
            data = is_data_input(inp)  # depth, normals, mask: the stored values, no tone curve or profile
            if layer is not None:
                inputs[inp["name"]] = (layer_io.read_data(layer, region) if data
                                       else wrap(layer_io.read_rgba(layer, region), region))
                used[inp["name"]] = layer.get_name()
            elif gfile is not None:
                pix, stored[inp["name"]] = layer_io.read_file_rgba(gfile, image, region, data=data)
                inputs[inp["name"]] = pix if data else wrap(pix, region)
                used[inp["name"]] = gfile.get_path() or gfile.get_uri()
            elif inp.get("required", True):
                raise UserFacing(f"{title} needs a {describe.input_label(inp).lower()}: "
                                 f"{inp.get('help', '')} (choose a layer or a file in the dialog)")
        sel = layer_io.read_selection(image, region)
        mask = Image(region[2], region[3], 1, "f32", sel) if sel is not None else None
        stored = {k: v for k, v in stored.items() if k in inputs and v is not None}
        jobs.append(_Job(group, region, inputs, mask, params, image_params, used, stored, selected))
    return jobs


class _Preview:
    """The dialog's live preview: the first job (the first selected layer, or the burst) over the selection's
    bounds, downscaled to a proxy of at most PIXELS (plugin.preview: pixel settings scaled with it), sent to
    the shared warm worker. prepare() reads the layers (GIMP's API: the main thread only); compute() runs on
    a worker thread and may be cancelled."""

    PIXELS = 160_000   # about 400 × 400: what the dialog shows

    def __init__(self, image, drawables, op):
        self.image, self.op = image, op
        self.layers = [d for d in drawables if isinstance(d, Gimp.Layer)]
        self.client = None

    def available(self):
        from plugin import preview
        return preview.available() and bool(self.layers)

    def prepare(self, config):
        from plugin import preview
        from plugin.params import is_data_input
        primary = arguments.primary_input(self.op)
        group = self.layers if primary["kind"] == "frames" else self.layers[:1]
        job = _read_jobs(self.image, group, config, self.op)[0]
        w, h = job.region[2], job.region[3]
        pw, ph = preview.proxy_size(w, h, self.PIXELS)
        kinds = {i["name"]: i for i in self.op.get("inputs", [])}

        def fit(img, name):
            data = name in kinds and is_data_input(kinds[name])
            return preview.downscale(img, pw, ph, data=data) if (pw, ph) != (w, h) else img
        job.inputs = {k: ([fit(i, k) for i in v] if isinstance(v, list) else fit(v, k)) for k, v in job.inputs.items()}
        job.mask = fit(job.mask, "mask") if job.mask is not None else None
        job.params = preview.scale_params(self.op.get("params", []), job.params, pw / float(w))
        job.seed = int(config.get_property("seed"))
        return job

    def compute(self, job, cancel):
        """(width, height, RGBA u8 bytes) of the proxy's result; raises WorkerCancelled when cancelled."""
        from plugin.client import Client
        if self.client is None:
            self.client = Client(shared=True)
        res = self.client.run(self.op["name"], inputs=job.inputs, params=job.params, mask=job.mask, seed=job.seed,
                              cancel=cancel, stored_as=job.stored_as, output_dtype="u8")
        from plugin.pixels import to_rgba
        img = to_rgba(res.image) if res.image.channels != 4 else res.image
        return img.width, img.height, img.tobytes()

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = None


def _dialog_note(image, drawables, op):
    """What the run will work on, for the top of the dialog: the layers a burst merges (in order), or that a
    re-run processes the result's source again. '' when there is nothing to say."""
    layers = [d for d in drawables if isinstance(d, Gimp.Layer)]
    if not layers:
        return ""
    primary = arguments.primary_input(op)
    try:
        group, selected = _sources_of(image, layers if primary["kind"] == "frames" else layers[:1], op)
    except UserFacing as exc:
        return str(exc)
    names = ", ".join(f"'{layer.get_name()}'" for layer in group)
    if primary["kind"] == "frames":
        how = (f"Merges again the {len(group)} layers '{selected.get_name()}' was made from: " if selected
               else f"Merges these {len(group)} layers: ")
        text = how + names + "."
        if len(group) < 2:
            text += " Select at least two frame layers in the Layers dock (Ctrl+click)."
        return text
    if selected is not None:
        return (f"'{selected.get_name()}' is a result of this filter: it runs again on {names}, the layer it was "
                f"made from.")
    return ""


def read_provenance(layer):
    """The provenance record of a layer AI Portrait made, or None."""
    try:
        parasite = layer.get_parasite(PARASITE_NAME)
    except Exception:  # noqa: BLE001 - a layer without parasites may raise in some GIMP builds
        return None
    if parasite is None:
        return None
    try:
        record = json.loads(bytes(parasite.get_data()).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _sources_of(image, picked, op):
    """(the layers to process, the selected result or None). A re-run never processes its own result: a
    single selected layer that is a result of this filter stands for the layers it was made from."""
    from plugin import results
    if len(picked) != 1:
        return picked, None
    record = read_provenance(picked[0])
    ids = results.rerun_sources(op["name"], record)
    if ids is None:
        return picked, None
    found = [image.get_layer_by_tattoo(int(t)) if isinstance(t, int) else None for t in ids]
    if any(layer is None for layer in found):
        names = ", ".join(f"'{n}'" for n in (record.get("source_layers") or [record.get("source_layer")]) if n)
        raise UserFacing(f"'{picked[0].get_name()}' is a result of {op.get('title', op['name'])} made from "
                         f"{names or 'a layer'} that is no longer in the image: select the layer to process")
    return found, picked[0]


def _compute(jobs, op, seed):
    """Send every job to the worker, GIMP's progress bar spanning them all."""
    from plugin.client import Client

    client = Client(shared=True)  # the user's warm worker, kept between runs (plugin.local)
    progress = _Progress(op.get("title", op["name"]))
    try:
        for k, job in enumerate(jobs):
            span = (k / len(jobs), (k + 1) / len(jobs))

            def report(fraction, message, span=span):
                progress(span[0] + (span[1] - span[0]) * float(fraction), message)

            job.result = client.run(op["name"], inputs=job.inputs, params=job.params, mask=job.mask, seed=seed,
                                    progress=report, stored_as=job.stored_as)
        _refresh_registry_later(client)
    finally:
        progress.end()
        client.close()


def _write_result(image, op, job, seed, as_mask, rerun):
    from plugin import results
    from plugin.pixels import Image

    res = job.result.image
    if res.width != job.region[2] or res.height != job.region[3]:
        raise RuntimeError(f"the worker returned {res.width}×{res.height} for a "
                           f"{job.region[2]}×{job.region[3]} region")
    rgba = _as_rgba_f32(res, Image)
    info = dict(getattr(job.result, "info", None) or {})
    # The blend base of a burst is the frame it was aligned to (the provenance names it); the result goes above
    # the topmost selected frame so that it is what the user sees.
    ref = info.get("reference_index", 0)
    source = job.sources[ref] if isinstance(ref, int) and 0 <= ref < len(job.sources) else job.sources[0]
    anchor = _topmost(image, job.sources)
    ids = [layer_io.tattoo(layer) for layer in job.sources]
    parent = anchor.get_parent()
    siblings = list(parent.get_children() if parent is not None else image.get_layers())  # top first
    at = next(k for k, layer in enumerate(siblings) if layer.get_id() == anchor.get_id())
    above = siblings[:at][::-1]  # nearest first
    records = [read_provenance(layer) for layer in above]
    selected = next((k for k, layer in enumerate(above) if job.selected is not None
                     and layer.get_id() == job.selected.get_id()), None)
    old = None
    if rerun == "replace":
        k = results.previous_result(records, ids, op["name"], selected)
        old = above[k] if k is not None else None
    if old is not None:
        position, like = image.get_item_position(old), old
    else:
        position, like = image.get_item_position(anchor) - results.stack_top(records, ids), anchor
    taken = [layer.get_name() for layer in _all_layers(image) if old is None or layer.get_id() != old.get_id()]
    name = results.result_name(op, job.image_params, taken)
    record = {"operator": op["name"], "params": job.image_params, "seed": seed,
              "source_layer": source.get_name(), "source_ids": ids,
              "source_layers": [layer.get_name() for layer in job.sources], "rerun": rerun,
              "replaced": old.get_name() if old is not None else None,
              "inputs": job.input_layers, "stored_as": job.stored_as,
              "region": list(job.region), "info": info, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                  time.gmtime())}
    data = json.dumps(record, default=str, sort_keys=True).encode("utf-8")
    # attached before the layer enters the image, so it pushes no undo step of its own ('Can't undo Attach
    # Parasite to Item' otherwise): the layer's insertion carries it
    parasite = Gimp.Parasite.new(PARASITE_NAME, Gimp.PARASITE_PERSISTENT | Gimp.PARASITE_UNDOABLE, list(data))
    layer = layer_io.new_layer(image, like, name, job.region, rgba, parent, position, parasite,
                               keep_look=old is not None)
    if old is not None:
        image.remove_layer(old)
    if as_mask:
        layer_io.add_selection_mask(layer)
    return layer


def _all_layers(image):
    out = []

    def walk(layers):
        for layer in layers:
            out.append(layer)
            if layer.is_group():
                walk(layer.get_children())
    walk(image.get_layers())
    return out


def _topmost(image, layers):
    """The highest of `layers` in the stack (among those sharing the first one's parent group)."""
    parent = layers[0].get_parent()
    siblings = [l for l in layers if (l.get_parent() is None) == (parent is None)
                and (parent is None or l.get_parent().get_id() == parent.get_id())]
    return min(siblings, key=image.get_item_position)


def _as_rgba_f32(img, Image):
    """Whatever the worker sent (float32 RGBA normally) as float32 RGBA bytes."""
    if img.dtype != "f32":
        img = img.to("f32")
    data = img.tobytes() if hasattr(img, "tobytes") else bytes(img.data)
    if img.channels == 4:
        return data
    import array
    src = array.array("f")
    src.frombytes(data)
    if sys.byteorder == "big":
        src.byteswap()
    n, c = img.width * img.height, img.channels
    out = array.array("f", bytes(16 * n))
    for i in range(n):
        px = src[i * c:(i + 1) * c]
        if c == 1:
            r = g = b = px[0]; a = 1.0
        elif c == 2:
            r = g = b = px[0]; a = px[1]
        else:
            r, g, b = px[0], px[1], px[2]; a = 1.0
        out[4 * i:4 * i + 4] = array.array("f", (r, g, b, a))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def _refresh_registry_later(client):
    """The worker is up now: if its registry changed, cache it and have GIMP re-register us at next start."""
    try:
        if registry_cache.store(client.list_operators()):
            _touch_self()
    except Exception:  # never let a cache refresh spoil a finished run
        pass


Gimp.main(AIPortrait.__gtype__, sys.argv)
