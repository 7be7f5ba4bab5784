"""The AI Portrait docker (Settings > Dockers > AI Portrait): operator choice, generated controls, Apply/Cancel,
progress, and a status line where every problem is shown (an exception escaping a plugin would open a modal
dialog and can hang Krita, so nothing escapes from here).

Work runs on a QThread that only talks to the worker bridge; reading and writing pixels stays on the GUI thread.
"""
import json
import os
import sys
import traceback

from krita import DockWidget, Krita

from . import document, jobs
from .bridge import load
from .canvas import CanvasPicker
from .controls import OperatorPage
from .document import HostError
from .qt import QThread, QtCore, QtWidgets, Signal, enum

DOCKER_ID = "ai_portrait_docker"
CACHE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "operators.json")


def cached_operators():
    """The registry as last seen (written by install_krita and refreshed by the docker), or []."""
    try:
        with open(CACHE_FILE, "r", encoding="utf-8") as fh:
            ops = json.load(fh)
        return ops if isinstance(ops, list) else []
    except (OSError, ValueError):
        return []


def _save_cache(ops) -> None:
    try:
        tmp = CACHE_FILE + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(ops, fh, indent=1)
        os.replace(tmp, CACHE_FILE)
    except OSError:
        pass  # a read-only install just rebuilds from the worker next time


def describe_error(exc) -> str:
    """One sentence for the status line; bugs also go to stderr with their traceback."""
    mod = None
    try:
        mod = load().client
    except Exception:
        pass
    if mod is not None and isinstance(exc, getattr(mod, "WorkerError", ())):
        return str(getattr(exc, "message", None) or exc)
    if isinstance(exc, (HostError,)) or exc.__class__.__name__ in ("ConfigError", "BridgeMissing"):
        return str(exc)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return f"internal error ({type(exc).__name__}: {exc}); details were printed to Krita's log"


def guarded(slot):
    """Qt slots of the docker: an exception is shown in the status line instead of escaping into Krita."""
    import functools
    import inspect
    # Qt passes extra arguments (clicked's `checked`) a slot may not take: pass only what it declares
    wanted = len(inspect.signature(slot).parameters) - 1

    @functools.wraps(slot)
    def wrapper(self, *args):
        try:
            return slot(self, *args[:wanted])
        except Exception as exc:  # noqa: BLE001
            try:
                self._say(describe_error(exc), error=True)
            except Exception:  # noqa: BLE001 - the status line itself is gone (Krita is closing)
                traceback.print_exc()
    return wrapper


class Task(QThread):
    """Runs fn(progress, cancel_event) off the GUI thread; results come back through queued signals."""

    progressed = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()

    def __init__(self, fn, parent=None):
        super().__init__(parent)
        import threading
        self.fn = fn
        self.cancel_event = threading.Event()

    def run(self):
        try:
            res = self.fn(lambda f, m="": self.progressed.emit(float(f), str(m or "")), self.cancel_event)
        except BaseException as exc:  # noqa: BLE001 - everything must come back to the docker
            cancelled_cls = ()
            try:
                cancelled_cls = (load().client.WorkerCancelled,)
            except Exception:
                pass
            if cancelled_cls and isinstance(exc, cancelled_cls):
                self.cancelled.emit()
            else:
                self.failed.emit(exc)
            return
        self.succeeded.emit(res)


def req_scale(result, width):
    """The proxy's size as a fraction of the canvas's (for the status line)."""
    return result.image.width / float(width) if width else 1.0


class AIPortraitDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("AI Portrait")
        self.operators = []
        self.pages = {}
        self.task = None
        self.request = None
        self.last_layer = None      # for tests and for the user: what the last run made
        self.last_error = ""
        self.pending_clip = None
        self._loaded = False
        self._selection_key = None
        # live preview: a temporary layer computed on a proxy of about a megapixel (plugin.preview)
        self.preview_layer = None
        self.preview_doc = None
        self.preview_task = None
        self._preview_tasks = []   # running preview threads, kept alive until they end
        self._preview_key = None
        self._preview_gen = 0
        self._preview_changed_at = 0.0
        self.preview_stats = {"started": 0, "cancelled": 0, "shown": 0, "seconds": [], "errors": []}
        self.picker = CanvasPicker(self._picked, self._pick_cancelled, self)
        self._picking = None
        self.last_pick = None
        self._preview_source = None
        self.last_help = None
        self._build()
        self._set_operators(cached_operators())
        # Krita's Python API has no signal for the Layers docker's selection: look at it a few times a second
        # (cheap: the ids of the selected nodes) so the frames list follows it and the active document.
        self.follow_timer = QtCore.QTimer(self)
        self.follow_timer.setInterval(250)
        self.follow_timer.timeout.connect(self._tick)
        self.follow_timer.start()

    def showEvent(self, event):
        """Start the worker only when the docker is first shown (not at every Krita start)."""
        super().showEvent(event)
        if not self._loaded:
            self._loaded = True
            QtCore.QTimer.singleShot(0, self.reload_operators)

    # -- layout -------------------------------------------------------------------------------------------
    def _build(self):
        root = QtWidgets.QWidget(self)
        root.setObjectName("ai_portrait_root")
        col = QtWidgets.QVBoxLayout(root)
        col.setContentsMargins(4, 4, 4, 4)
        top = QtWidgets.QHBoxLayout()
        self.op_combo = QtWidgets.QComboBox(root)
        self.op_combo.setObjectName("operator")
        self.op_combo.setToolTip("the AI Portrait operator to run on the active layer")
        self.op_combo.currentIndexChanged.connect(self._operator_changed)
        self.reload_button = QtWidgets.QToolButton(root)
        self.reload_button.setText("↻")
        self.reload_button.setToolTip("reload the operators and the document's layers")
        self.reload_button.clicked.connect(self.reload_operators)
        self.help_button = QtWidgets.QToolButton(root)
        self.help_button.setObjectName("help")
        self.help_button.setText("?")
        self.help_button.setToolTip("open this filter's help page: what it does, every setting, a before/after "
                                    "picture")
        self.help_button.clicked.connect(self.show_help)
        top.addWidget(self.op_combo, 1)
        top.addWidget(self.help_button)
        top.addWidget(self.reload_button)
        col.addLayout(top)

        self.stack = QtWidgets.QStackedWidget(root)
        scroll = QtWidgets.QScrollArea(root)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.stack)
        scroll.setFrameShape(enum(QtWidgets.QFrame, "Shape", "NoFrame"))
        # controls shrink to the docker's width (labels wrap) instead of scrolling sideways
        scroll.setHorizontalScrollBarPolicy(enum(QtCore.Qt, "ScrollBarPolicy", "ScrollBarAlwaysOff"))
        col.addWidget(scroll, 1)

        opts = QtWidgets.QFormLayout()
        self.seed = QtWidgets.QSpinBox(root)
        self.seed.setObjectName("seed")
        self.seed.setRange(0, 2 ** 31 - 1)
        self.seed.setToolTip("random seed: the same seed gives the same pixels")
        self.use_selection = QtWidgets.QCheckBox("Apply only inside the selection (soft)", root)
        self.use_selection.setObjectName("use_selection")
        self.use_selection.setChecked(True)
        self.clip_mask = QtWidgets.QCheckBox("Add a transparency mask from the selection", root)
        self.clip_mask.setObjectName("clip_mask")
        results = load().results
        self.rerun = QtWidgets.QComboBox(root)
        self.rerun.setObjectName("rerun")
        for nick in results.RERUN_CHOICES:
            self.rerun.addItem(results.RERUN_LABELS[nick], nick)
        self.rerun.setToolTip("Applying a filter again, with its result selected or one already above the layer: "
                              "replace that result (its place, opacity and blending mode kept) or add a new layer "
                              "at the top of the layer's results. The layer the result was made from is "
                              "processed again either way, never the result itself.")
        saved = Krita.instance().readSetting("ai_portrait", "rerun", results.DEFAULT_RERUN)
        self.rerun.setCurrentIndex(max(self.rerun.findData(saved), 0))
        self.rerun.currentIndexChanged.connect(
            lambda *_: Krita.instance().writeSetting("ai_portrait", "rerun", self.rerun.currentData()))
        self.preview = QtWidgets.QCheckBox("Preview on the canvas", root)
        self.preview.setObjectName("preview")
        self.preview.setToolTip("Show the result on a temporary layer while you change the settings, computed "
                                "on a copy of about one megapixel (so it comes within about a second); Apply "
                                "computes it at full size, Cancel removes it")
        self.preview.setEnabled(load().preview.available())
        self.preview.toggled.connect(self._preview_toggled)
        opts.addRow("Seed", self.seed)
        opts.addRow("Running again", self.rerun)
        opts.addRow(self.preview)
        opts.addRow(self.use_selection)
        opts.addRow(self.clip_mask)
        col.addLayout(opts)

        buttons = QtWidgets.QHBoxLayout()
        self.apply_button = QtWidgets.QPushButton("Apply", root)
        self.apply_button.setObjectName("apply")
        self.apply_button.clicked.connect(self.apply)
        self.cancel_button = QtWidgets.QPushButton("Cancel", root)
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.reset_button = QtWidgets.QPushButton("Defaults", root)
        self.reset_button.setObjectName("defaults")
        self.reset_button.clicked.connect(self._reset_page)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.reset_button)
        col.addLayout(buttons)

        self.progress = QtWidgets.QProgressBar(root)
        self.progress.setObjectName("progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        col.addWidget(self.progress)
        self.status = QtWidgets.QLabel("", root)
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(enum(QtCore.Qt, "TextInteractionFlag", "TextSelectableByMouse"))
        col.addWidget(self.status)
        self.setWidget(root)

    # -- registry -----------------------------------------------------------------------------------------
    @guarded
    def reload_operators(self):
        """Ask the worker for its registry (off the GUI thread); rebuild the pages when it changed."""
        if self.task is not None:
            return
        self._say("starting the AI Portrait worker…" if not self.operators else "")

        def work(progress, cancel):
            return jobs.client().list_operators()
        self._start(work, self._operators_loaded, busy=False)

    def _operators_loaded(self, ops):
        if ops != self.operators:
            self._set_operators(ops)
            _save_cache(ops)
        self._say("" if ops else "the worker has no operators registered")

    def _set_operators(self, ops):
        current = self.current_operator_name()
        self.operators = list(ops)
        self.op_combo.blockSignals(True)
        self.op_combo.clear()
        while self.stack.count():
            w = self.stack.widget(0)
            self.stack.removeWidget(w)
            w.deleteLater()
        self.pages = {}
        for op in self.operators:
            page = OperatorPage(op, self.stack)
            if page.frames is not None:
                page.frames.button.clicked.connect(self._use_selected_layers)
            for ctl in page.params.values():
                self._wire_picks(ctl)
                if hasattr(ctl, "on_item"):   # a list's rows: each row's point can be picked too
                    ctl.on_item = self._wire_picks
                    for _line, item in getattr(ctl, "rows", []):
                        self._wire_picks(item)
            self.pages[op["name"]] = page
            self.stack.addWidget(page)
            self.op_combo.addItem(op.get("title") or op["name"], op["name"])
        self.op_combo.blockSignals(False)
        if current:
            self.select_operator(current)
        self._operator_changed(self.op_combo.currentIndex())

    def current_operator_name(self):
        return self.op_combo.currentData() if self.op_combo.count() else None

    def current_page(self):
        return self.pages.get(self.current_operator_name())

    def select_operator(self, name) -> bool:
        i = self.op_combo.findData(name)
        if i >= 0:
            self.op_combo.setCurrentIndex(i)
        return i >= 0

    @guarded
    def _operator_changed(self, index):
        self._drop_preview()
        page = self.current_page()
        if page is not None:
            # a stack is as wide as its widest page: let only the shown page count, so a wide page elsewhere
            # (many numbers in a row) does not push this one past the docker's edge
            preferred = enum(QtWidgets.QSizePolicy, "Policy", "Preferred")
            ignored = enum(QtWidgets.QSizePolicy, "Policy", "Ignored")
            for other in self.pages.values():
                other.setSizePolicy(preferred if other is page else ignored, preferred if other is page else ignored)
            self.stack.setCurrentWidget(page)
            self.stack.adjustSize()
            self.op_combo.setToolTip(page.op.get("help", ""))
            self._refresh_layers()

    @guarded
    def _reset_page(self):
        page = self.current_page()
        if page is not None:
            page.reset()

    # -- document -----------------------------------------------------------------------------------------
    def canvasChanged(self, canvas):
        try:
            doc = Krita.instance().activeDocument()
            if self.preview_doc is not None and (doc is None or not (doc == self.preview_doc)):
                self._drop_preview()
            self._refresh_layers()
        except Exception as exc:  # noqa: BLE001
            self._say(describe_error(exc), error=True)

    def _refresh_layers(self):
        page = self.current_page()
        doc = Krita.instance().activeDocument()
        if page is None:
            return
        layers = []
        if doc is not None:
            for node, depth in document.list_layers(doc):
                layers.append((document.node_id(node), "  " * depth + node.name()))
        for picker in page.pickers.values():
            picker.refresh(layers)
        if page.frames is not None:
            self._selection_key = None   # the document may have changed: list its selection
            self._follow_selection()

    def _tick(self):
        self._follow_selection()
        self._follow_preview()

    def _follow_selection(self):
        """The frames list shows the layers selected in the active document (timer and canvasChanged)."""
        try:
            page = self.current_page()
            if page is None or page.frames is None:
                return
            doc = Krita.instance().activeDocument()
            nodes = [n for n in self._selected_nodes() if n.type() == "paintlayer"] if doc is not None else []
            key = (document.node_id(doc.rootNode()) if doc is not None else None,
                   tuple(document.node_id(n) for n in nodes),
                   document.node_id(doc.activeNode()) if doc is not None and doc.activeNode() is not None
                   else None)
            if key == self._selection_key:
                return
            self._selection_key = key
            self._use_selected_layers()
        except Exception as exc:  # noqa: BLE001 - a timer slot must never raise into Krita
            self._say(describe_error(exc), error=True)

    def _selected_nodes(self):
        win = Krita.instance().activeWindow()
        view = win.activeView() if win is not None else None
        return list(view.selectedNodes()) if view is not None else []

    @guarded
    def _use_selected_layers(self):
        page = self.current_page()
        doc = Krita.instance().activeDocument()
        if page is None or page.frames is None or doc is None:
            return
        nodes = [n for n in self._selected_nodes() if n.type() == "paintlayer"]
        active = doc.activeNode()
        if active is not None:   # the active layer first: it is the reference frame
            nodes.sort(key=lambda n: 0 if n == active else 1)
        page.frames.set_layers([(document.node_id(n), n.name()) for n in nodes])

    # -- running ------------------------------------------------------------------------------------------
    def apply(self):
        """Read the inputs, start the run off the GUI thread. Never raises."""
        try:
            self._apply()
        except Exception as exc:  # noqa: BLE001
            self.request = None
            self._say(describe_error(exc), error=True)

    def _apply(self):
        if self.busy():
            self._say("an operator is still running: wait for it or press Cancel")
            return
        if self.preview.isChecked():
            self.preview.blockSignals(True)
            self.preview.setChecked(False)   # Apply ends the preview: the result replaces what it showed
            self.preview.blockSignals(False)
        self._drop_preview()
        page = self.current_page()
        if page is None:
            raise HostError("no operators yet: press ↻ to start the worker")
        doc = Krita.instance().activeDocument()
        if doc is None:
            raise HostError("open an image first")
        self._refresh_layers()
        self.request = self._prepare(page, doc)
        req = self.request
        self._say(f"{page.op.get('title', page.op['name'])}: starting…")

        def work(progress, cancel):
            return jobs.execute(req, progress=progress, cancel=cancel)
        self._start(work, self._run_done, busy=True)

    def _prepare(self, page, doc):
        """jobs.prepare with the docker's settings (the same for Apply and for the preview)."""
        picks = {name: (document.find_node(doc, picker.value()) if picker.value() else None)
                 for name, picker in page.pickers.items()}
        frames = None
        if page.frames is not None:
            frames = [document.find_node(doc, i) for i in page.frames.value()]
            frames = [n for n in frames if n is not None]
        source = doc.activeNode()
        if source is not None and source.name() == document.PREVIEW_NAME:
            source = self._preview_source   # the preview layer got selected: it stands for its source
        self._preview_source = source
        if frames and (source is None or not any(source == f for f in frames)):
            source = frames[0]
        return jobs.prepare(doc, source, page.op, picks=picks, frames=frames, params=page.param_values(),
                            seed=self.seed.value(), use_selection=self.use_selection.isChecked(),
                            clip_to_selection=self.clip_mask.isChecked(), rerun=self.rerun.currentData())

    def _start(self, fn, on_success, busy):
        task = Task(fn, self)
        task.progressed.connect(self._progress)
        task.succeeded.connect(lambda res: self._finished(task, on_success, res))
        task.failed.connect(lambda exc: self._finished(task, self._failed, exc))
        task.cancelled.connect(lambda: self._finished(task, self._cancelled, None))
        self.task = task
        self.apply_button.setEnabled(False)
        self.reload_button.setEnabled(False)
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setValue(0)
        task.start()

    def _finished(self, task, handler, value):
        try:
            task.wait(2000)
            # the run stays 'busy' until its layer is written: writing waits for Krita (a nested event loop)
            handler(value)
        except Exception as exc:  # noqa: BLE001
            self._say(describe_error(exc), error=True)
        finally:
            if self.task is task:
                self.task = None
            self.apply_button.setEnabled(True)
            self.reload_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            task.deleteLater()

    @guarded
    def _progress(self, fraction, message):
        if self.task is None or self.sender() is not self.task:
            return   # a late signal from a finished run must not overwrite its final message
        self.progress.setValue(int(round(fraction * 1000)))
        if message:
            self._say(message)

    def _run_done(self, result):
        req, self.request = self.request, None
        if req is None:
            return
        layer = jobs.finish(req, result, defer_clip=True)
        self.last_layer = layer
        self.progress.setValue(1000)
        facts = ""
        info = getattr(result, "info", {}) or {}
        if isinstance(info.get("summary"), str):
            facts = " — " + info["summary"]
        self._say(f"done: new layer '{layer.name()}'{facts}")
        if req.clipped == "pending":
            self._clip_pending(req, 0)

    def _clip_pending(self, req, attempt):
        """Wait (on timers, never blocking) for Krita to make the new layer active, then add the mask."""
        self.pending_clip = req
        try:
            done = document.try_mask_by_action(req.doc, req.layer)
            if done or attempt >= 30:
                how = jobs.complete_clip(req, done)
                self.pending_clip = None
                if how == "alpha":
                    self._say(f"done: new layer '{req.layer.name()}' (no transparency mask could be added: the "
                              f"selection was applied to the layer's alpha)")
                return
        except Exception as exc:  # noqa: BLE001
            self.pending_clip = None
            self._say(describe_error(exc), error=True)
            return
        QtCore.QTimer.singleShot(100, lambda: self._clip_pending(req, attempt + 1))

    def _failed(self, exc):
        self.request = None
        self.progress.setValue(0)
        self._say(describe_error(exc), error=True)

    def _cancelled(self, _):
        self.request = None
        self.progress.setValue(0)
        self._say("cancelled: nothing was changed")

    @guarded
    def cancel(self):
        if self.task is not None:
            self.task.cancel_event.set()
            self._say("cancelling…")
        if self.preview_layer is not None or self.preview_task is not None:
            self.preview.setChecked(False)   # drops the preview layer
            self._say("preview removed: nothing was changed")

    def busy(self) -> bool:
        return self.task is not None or self.pending_clip is not None

    # -- help -------------------------------------------------------------------------------------------------
    @guarded
    def show_help(self):
        """Open the current filter's bundled help page (ai_portrait/help/NAME.html, from docs/filters)."""
        name = self.current_operator_name()
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "help")
        path = os.path.join(folder, f"{name}.html")
        if not os.path.isfile(path):
            path = os.path.join(folder, "index.html")
        if not os.path.isfile(path):
            self._say("no help pages are installed with this plugin: reinstall it with install.py", error=True)
            return
        url = QtCore.QUrl.fromLocalFile(path)
        self.last_help = path
        if not self.open_url(url):
            self._say(f"could not open {path} in a web browser", error=True)

    def open_url(self, url):
        from .qt import QtGui
        return QtGui.QDesktopServices.openUrl(url)

    # -- live preview ---------------------------------------------------------------------------------------
    def _preview_toggled(self, on):
        try:
            if on:
                self._preview_key = None   # compute at the next tick
            else:
                self._drop_preview()
        except Exception as exc:  # noqa: BLE001
            self._say(describe_error(exc), error=True)

    def _preview_state(self):
        """What the preview depends on; a change starts a new preview job."""
        page = self.current_page()
        doc = Krita.instance().activeDocument()
        if page is None or doc is None:
            return None
        active = doc.activeNode()
        if active is not None and active.name() == document.PREVIEW_NAME:
            active = self._preview_source   # Krita selects the new preview layer: it stands for its source
        return json.dumps([page.op["name"], page.param_values(), self.seed.value(),
                           {k: p.value() for k, p in page.pickers.items()},
                           page.frames.value() if page.frames is not None else None,
                           document.node_id(doc.rootNode()),
                           document.node_id(active) if active is not None else None,
                           self.use_selection.isChecked()], sort_keys=True, default=str)

    def _follow_preview(self):
        if not self.preview.isChecked() or self.busy():
            return
        try:
            key = self._preview_state()
            if key is None or key == self._preview_key:
                return
            self._preview_key = key
            self._start_preview()
        except Exception as exc:  # noqa: BLE001 - a timer slot must never raise into Krita
            self._say("preview: " + describe_error(exc), error=True)

    def _start_preview(self):
        """Read the inputs, downscale them to the proxy and start the preview job, cancelling the previous one
        (its late result is ignored)."""
        import time
        page = self.current_page()
        doc = Krita.instance().activeDocument()
        if self.preview_task is not None:
            self.preview_task.cancel_event.set()
            self.preview_stats["cancelled"] += 1
        self._preview_gen += 1
        gen = self._preview_gen
        self._preview_changed_at = time.monotonic()
        req = self._prepare(page, doc)
        small = jobs.proxy(req)
        self.preview_stats["started"] += 1
        self.preview_stats["last_params"] = small.params
        self.preview_stats["proxy_scale"] = small.proxy_scale
        task = Task(lambda progress, cancel: jobs.execute(small, cancel=cancel, worker=jobs.preview_client()),
                    self)
        task.succeeded.connect(lambda res: self._preview_done(task, gen, req, res))
        task.failed.connect(lambda exc: self._preview_failed(task, gen, exc))
        task.cancelled.connect(lambda: self._preview_ended(task))
        self.preview_task = task
        self._preview_tasks.append(task)
        task.start()

    def _preview_ended(self, task):
        if task in self._preview_tasks:
            task.wait(2000)
            self._preview_tasks.remove(task)
            task.deleteLater()
        if self.preview_task is task:
            self.preview_task = None

    def _preview_failed(self, task, gen, exc):
        self._preview_ended(task)
        if gen == self._preview_gen:
            self.preview_stats["errors"].append(describe_error(exc))
            self._say("preview: " + describe_error(exc), error=True)

    def _preview_done(self, task, gen, req, result):
        import time
        self._preview_ended(task)
        try:
            if gen != self._preview_gen or not self.preview.isChecked():
                return   # a newer preview was asked for, or the preview was switched off meanwhile
            w, h = document.canvas_size(req.doc)
            big = load().preview.upscale(result.image, w, h)
            if self.preview_layer is not None and self.preview_doc is not None and not (self.preview_doc == req.doc):
                self._drop_preview()
            place = None
            if self.preview_layer is None:
                place = document.result_place(req.doc, req.anchor, req.sources, req.op["name"], "new-layer")
            self.preview_layer = document.show_preview(req.doc, place, big, self.preview_layer)
            self.preview_doc = req.doc
            self.preview_stats["shown"] += 1
            self.preview_stats["shown_params"] = dict(req.params)
            self.preview_stats["seconds"].append(round(time.monotonic() - self._preview_changed_at, 3))
            self.cancel_button.setEnabled(True)
            self._say(f"preview ({int(round(100 * req_scale(result, w)))} % size): Apply to compute it at full "
                      f"size, Cancel to remove it")
        except Exception as exc:  # noqa: BLE001
            self._say("preview: " + describe_error(exc), error=True)

    def _drop_preview(self):
        """Cancel the preview job and remove the preview layer (Cancel, Apply, switching off, another filter
        or document)."""
        if self.preview_task is not None:
            self.preview_task.cancel_event.set()
            self.preview_stats["cancelled"] += 1
            self.preview_task = None
        self._preview_gen += 1
        self._preview_key = None
        layer, self.preview_layer = self.preview_layer, None
        doc, self.preview_doc = self.preview_doc, None
        if layer is not None:
            try:
                layer.remove()
                if doc is not None:
                    doc.refreshProjection()
            except Exception:  # noqa: BLE001 - its document was closed: nothing left to remove
                pass
        if self.task is None:
            self.cancel_button.setEnabled(False)

    # -- points on the canvas -------------------------------------------------------------------------------
    def _wire_picks(self, ctl):
        if getattr(ctl, "pick", None) is not None and not getattr(ctl, "_pick_wired", False):
            ctl._pick_wired = True
            ctl.pick.toggled.connect(lambda on, c=ctl: self._pick_toggled(c, on))

    def _pick_toggled(self, ctl, on):
        try:
            if not on:
                if self._picking is ctl:
                    self._picking = None
                    self.picker.stop()
                return
            if self._picking is not None and self._picking is not ctl:
                self._picking.pick.setChecked(False)
            window = Krita.instance().activeWindow()
            if window is None or not self.picker.start(window):
                ctl.pick.setChecked(False)
                self._say("open the picture in a window to pick a point on it", error=True)
                return
            self._picking = ctl
            self._say("click the spot in the picture (Esc cancels)")
        except Exception as exc:  # noqa: BLE001
            self._say(describe_error(exc), error=True)

    def _picked(self, x, y):
        ctl, self._picking = self._picking, None
        if ctl is None:
            return
        ctl.set_point(x, y)
        ctl.pick.setChecked(False)
        self.last_pick = (x, y)
        self._say(f"{ctl.decl.get('title') or ctl.decl['name'].replace('_', ' ')}: {x:.1f}, {y:.1f} (image pixels)")

    def _pick_cancelled(self, reason):
        ctl, self._picking = self._picking, None
        if ctl is not None:
            ctl.pick.setChecked(False)
        self._say(reason or "picking cancelled", error=bool(reason))

    def _say(self, text, error=False):
        self.last_error = text if error else ""
        self.status.setStyleSheet("color: #d04040;" if error else "")
        self.status.setText(text)
        if error:
            document.log(text)
