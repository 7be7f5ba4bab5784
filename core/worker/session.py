"""One conversation with one host: reads request frames, runs operators, answers with frames.

The reading loop stays on the calling thread so that a 'cancel' can arrive while a job runs on its own thread;
a job stops at its next `Job.progress` checkpoint. One job at a time per session; a server's sessions share a
semaphore of job slots. A malformed frame is answered with an error frame; when the stream is still in step
(the payload was consumed) the session carries on, otherwise it ends.
"""
from __future__ import annotations

import os
import re
import secrets
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional

import numpy as np

from plugin import pixels, protocol

from .. import registry
from ..device import apply_thread_policy
from ..errors import Cancelled, UserError
from ..jobs import Job

PROGRESS_INTERVAL_S = 0.1  # at most ten progress frames a second: per-tile callbacks would flood a slow link
_DEVICE = re.compile(r"(auto|(cpu|cuda|mps)(:[0-9]{1,3})?)\Z")  # what torch.device takes without raising
_MAX_INT = 1 << 63  # seeds and integer parameters beyond int64 are typos or attacks (float() overflows on them)


class Session:
    def __init__(self, channel, *, max_request: int = protocol.DEFAULT_MAX_REQUEST_BYTES,
                 token: Optional[str] = None, device: Optional[str] = None,
                 slots: Optional[threading.Semaphore] = None, on_activity=None, on_auth=None,
                 label: str = "worker"):
        self.channel = channel
        self.max_request = int(max_request)
        self.token = token or None
        self.device = device
        self.slots = slots
        self.on_activity = on_activity or (lambda: None)
        self.on_auth = on_auth or (lambda: None)
        self.label = label
        self._wlock = threading.Lock()
        self._job_lock = threading.Lock()
        self._job_id = None
        self._job_cancel: Optional[threading.Event] = None
        self._job_thread: Optional[threading.Thread] = None
        self._nonce = secrets.token_hex(16)
        self._authed = self.token is None
        self._pool = protocol.BufferPool()
        self._running = False
        self.closed = threading.Event()

    # -- output --------------------------------------------------------------------------------------------------

    def send(self, header: Dict[str, Any], buffers=()) -> bool:
        """Write one frame; False if the peer is gone (a job then finishes into the void and is dropped)."""
        try:
            with self._wlock:
                protocol.write_frame(self.channel, header, buffers)
            return True
        except (OSError, ValueError):
            self.closed.set()
            return False

    def send_error(self, request_id, code: str, message: str, detail: str = "") -> bool:
        return self.send(_error(request_id, code, message, detail))

    @property
    def busy(self) -> bool:
        """A job runs and has not sent its final frame."""
        return self._running

    # -- input ---------------------------------------------------------------------------------------------------

    def serve(self) -> None:
        self.send({"type": "hello", "id": None, "version": protocol.VERSION,
                   "pid": os.getpid() if self._authed else None,
                   "max_request_bytes": self.max_request, "auth": not self._authed,
                   "nonce": self._nonce if not self._authed else None})
        try:
            while not self.closed.is_set():
                try:
                    # before authentication nothing may make us allocate: an auth frame has no payload
                    limit = self.max_request if self._authed else 0
                    frame = protocol.read_frame(self.channel, limit, self._pool)
                except protocol.ProtocolError as exc:
                    self.send_error(exc.request_id, exc.code, str(exc))
                    if exc.recoverable:
                        continue
                    break
                except (OSError, ValueError):  # connection reset, closed file
                    break
                if frame is None:
                    break
                self.on_activity()
                header, payload = frame
                if not self._authed:
                    if not self._authenticate(header):
                        break
                    continue
                try:
                    if not self.dispatch(header, payload):
                        break
                except protocol.BadRequest as exc:
                    self.send_error(header.get("id"), exc.code, str(exc))
                except Exception as exc:  # a request we did not foresee must not end the worker
                    self._send_bug(header.get("id"), exc)
                frame = header = payload = None  # let the pool see that the buffer is free again
        finally:
            self.closed.set()
            self.cancel_job()

    def _authenticate(self, header) -> bool:
        if header.get("op") == "auth" and protocol.check_mac(self.token, self._nonce, header.get("mac")):
            self._authed = True
            self.on_auth()
            pong = {"type": "pong", "id": header.get("id")}
            cnonce = header.get("cnonce")
            if protocol.is_nonce(cnonce):  # the client wants proof that we know the token too
                pong["proof"] = protocol.server_proof(self.token, self._nonce, cnonce)
            self.send(pong)
            return True
        # the same answer for a wrong token and a missing one; close so a guesser pays a round trip each time
        self.send_error(header.get("id"), "bad-token",
                        "The AI Portrait server refused the connection: the token does not match the server's")
        return False

    def dispatch(self, header: Dict[str, Any], payload: bytearray) -> bool:
        """Handle one request; False ends the session."""
        op = header.get("op")
        rid = header.get("id")
        if op == "ping":
            self.send({"type": "pong", "id": rid, "busy": self.busy})
        elif op == "list":
            try:
                self.send({"type": "result", "id": rid, "operators": registry.as_json()})
            except Exception as exc:  # an operator package failed to import: a bug, but keep serving
                self._send_bug(rid, exc)
        elif op == "echo":
            views = protocol.split_payload(header, payload)
            self.send({"type": "result", "id": rid, "buffers": header.get("buffers") or []}, views)
        elif op == "run":
            self._start_job(header, payload)
        elif op == "cancel":
            target = header.get("target", rid)
            if target is None or target == self._job_id:
                self.cancel_job()
        elif op == "shutdown":
            self.cancel_job()
            self.send({"type": "pong", "id": rid})
            return False
        else:
            raise protocol.BadRequest("unknown request '%s' (expected list, echo, run, cancel, ping)" % op,
                                      request_id=rid)
        return True

    # -- jobs ----------------------------------------------------------------------------------------------------

    def cancel_job(self) -> None:
        with self._job_lock:
            if self._job_cancel is not None:
                self._job_cancel.set()

    def _start_job(self, header, payload) -> None:
        rid = header.get("id")
        views = protocol.split_payload(header, payload)  # BadRequest before anything starts
        with self._job_lock:
            if self.busy:
                self.send_error(rid, "busy", "The worker is still busy with the previous request")
                return
            cancel = threading.Event()
            self._job_id, self._job_cancel = rid, cancel
            self._running = True
            thread = threading.Thread(target=self._job, args=(header, views, cancel), daemon=True,
                                      name="ai-portrait-job-%s" % rid)
            self._job_thread = thread
        thread.start()

    def _job(self, header, views, cancel: threading.Event) -> None:
        rid = header.get("id")
        acquired = False
        buffers = ()
        try:
            acquired = self._wait_slot(rid, cancel)
            inputs, mask, stored_as = decode_inputs(header, views)
            last = [0.0]

            def report(fraction: float, message: str) -> None:
                now = time.monotonic()
                if now - last[0] >= PROGRESS_INTERVAL_S or fraction >= 1.0:
                    last[0] = now
                    self.send({"type": "progress", "id": rid, "fraction": round(fraction, 4),
                               "message": message})

            params, seed, device, dtype = checked_run_header(header, self.device)
            job = Job(report, cancel)
            apply_thread_policy()  # per job, on the job's thread: other programs' load changes between jobs
            out = registry.run(str(header.get("operator")), inputs, params, mask=mask, seed=seed,
                               device=device, job=job, stored_as=stored_as)
            image = np.ascontiguousarray(out.image, dtype=np.float32)
            data = image.reshape(-1) if dtype == "f32" else pixels.convert(image.reshape(-1), "f32", dtype)
            h, w, c = image.shape
            if cancel.is_set():
                raise Cancelled("cancelled")
            final = {"type": "result", "id": rid, "buffers": [protocol.describe("image", w, h, c, dtype)],
                     "info": out.info}
            buffers = (data,)
        except Cancelled:
            final = {"type": "cancelled", "id": rid}
        except UserError as exc:
            final = _error(rid, exc.code, str(exc))
        except MemoryError:
            final = _oom(rid)
        except Exception as exc:
            # torch.cuda.OutOfMemoryError, recognised without importing torch
            final = _oom(rid) if type(exc).__name__ == "OutOfMemoryError" else _bug(rid, exc)
        finally:
            if acquired:
                self.slots.release()
        # Not busy from here: the host may send its next request as soon as it reads this frame.
        self._running = False
        self.send(final, buffers)

    def _wait_slot(self, rid, cancel: threading.Event) -> bool:
        if self.slots is None:
            return False
        told = False
        while not self.slots.acquire(timeout=0.05):
            if cancel.is_set():
                raise Cancelled("cancelled")
            if not told:
                told = True
                self.send({"type": "progress", "id": rid, "fraction": 0.0,
                           "message": "waiting for the server's other jobs"})
        return True

    def _send_bug(self, rid, exc: BaseException) -> None:
        self.send(_bug(rid, exc))


def _error(rid, code: str, message: str, detail: str = "") -> Dict[str, Any]:
    head = {"type": "error", "id": rid, "code": code, "message": message}
    if detail:
        head["detail"] = detail
    return head


def _oom(rid) -> Dict[str, Any]:
    return _error(rid, "out-of-memory", "The worker ran out of memory: try a smaller image or selection, "
                                        "or a lower memory budget in the settings")


def _bug(rid, exc: BaseException) -> Dict[str, Any]:
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(detail)
    sys.stderr.flush()
    return _error(rid, "internal", "Internal error in AI Portrait (a bug, please report it): %s: %s"
                  % (type(exc).__name__, exc), detail)


def check_device(device) -> Optional[str]:
    """None, or a device name torch accepts ('auto', 'cpu', 'cuda', 'cuda:1', 'mps'); UserError otherwise."""
    if device is None or device == "":
        return None
    if not isinstance(device, str) or not _DEVICE.match(device.strip().lower()):
        raise UserError("unknown device '%s': choose auto, cpu, cuda, cuda:N or mps" % str(device)[:40],
                        "bad-parameter")
    return device.strip().lower()


def checked_run_header(header: Dict[str, Any], default_device=None):
    """(params, seed, device, output dtype) of a run request, each checked so that no malformed value reaches
    code that would fail on it as a bug (float() of a 400-digit integer, torch.device('cpu:zz'))."""
    params = header.get("params") or {}
    seed = header.get("seed") or 0
    if not isinstance(params, dict) or not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError("a run request needs 'params' as an object and 'seed' as an integer", "bad-request")
    if not 0 <= seed < _MAX_INT:
        raise UserError("the seed must be a whole number from 0 to 2**63 - 1", "bad-parameter")
    for name, value in params.items():
        for item in (value if isinstance(value, list) else [value]):
            for v in (item if isinstance(item, list) else [item]):
                if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= _MAX_INT:
                    raise UserError("parameter '%s' = %s... is far too large a number"
                                    % (str(name)[:40], str(v)[:12]), "bad-parameter")
    device = check_device(header.get("device")) or default_device
    dtype = header.get("output_dtype") or "f32"
    if not isinstance(dtype, str) or dtype not in pixels.ITEMSIZE:
        raise UserError("output_dtype must be one of u8, u16, f16, f32", "bad-request")
    return params, seed, device, dtype


def decode_inputs(header: Dict[str, Any], views: List[memoryview]):
    """The request's buffers as the float32 H×W×C arrays registry.run takes: {name: array or [arrays]}, the
    mask, and {name: how the host stored it} from each descriptor's optional 'stored_as' (a layer's bit depth,
    which may differ from the dtype it travelled in)."""
    inputs: Dict[str, Any] = {}
    stored_as: Dict[str, str] = {}
    mask = None
    for desc, view in zip(header.get("buffers") or [], views):
        arr = to_float32(desc, view)
        name = desc.get("name")
        if not isinstance(name, str) or not name:
            raise UserError("every buffer needs a name", "bad-request")
        if desc.get("role") == "mask":
            mask = arr
        elif desc.get("list"):
            if not isinstance(inputs.setdefault(name, []), list):
                raise UserError("input '%s' was sent both as one image and as a list" % name, "bad-request")
            inputs[name].append(arr)
        else:
            if name in inputs:
                raise UserError("input '%s' was sent twice" % name, "bad-request")
            inputs[name] = arr
        if isinstance(desc.get("stored_as"), str) and desc.get("role") != "mask":
            stored_as[name] = desc["stored_as"]
    return inputs, mask, stored_as


def to_float32(desc: Dict[str, Any], view: memoryview) -> np.ndarray:
    h, w, c = desc["shape"]
    dtype, order = desc["dtype"], desc.get("byteorder", "little")
    if dtype == "f32" and order == sys.byteorder:
        flat = np.frombuffer(view, dtype=np.float32)  # no copy: the payload buffer is ours alone
    else:
        flat = np.asarray(pixels.convert(view, dtype, "f32", order)).view("<f4").astype(np.float32, copy=False)
    return flat.reshape(h, w, c)
