"""Host-side half of AI Portrait: standard library only (Python 3.8+), importable from GIMP's and Krita's Python.

It never imports torch or numpy (numpy is used when present, for speed only). It talks to the `core` worker that
runs in the project's own environment, over a local pipe or a socket, and moves raw pixel buffers.

The contract the host adapters (gimp/, krita/) code against:

    from plugin.client import Client, WorkerError, WorkerCancelled
    from plugin.pixels import Image

    client = Client()                      # reads plugin.config (interpreter, device, server, token)
    ops = client.list_operators()          # the registry as JSON: same as `python -m core list --json`
    result = client.run(
        "refocus",
        inputs={"image": Image(w, h, 4, "f32", data), "depth": Image(...)},   # 'frames': [Image, ...]
        params={"f_number": 1.4},
        mask=Image(w, h, 1, "f32", data) or None,       # soft selection, 0..1
        seed=0,
        progress=lambda fraction, message: ...,          # called from the calling thread
        cancel=threading.Event() or None,                 # set it to cancel; the call then raises WorkerCancelled
    )
    result.image   # Image, float32 RGBA (or the input's channel count), same width/height as the primary input
    result.info    # dict: operator, params, seed, model versions, operator facts (provenance)

`Image(width, height, channels, dtype, data)`: dtype is 'u8', 'u16', 'f16' or 'f32', little-endian, channels
interleaved in R, G, B(, A) order, `data` any bytes-like object. `plugin.pixels` converts between these dtypes (and
from/to Krita's BGRA integer layouts: `Image.from_krita(bytes, w, h, node.colorDepth())`, `image.to_krita(depth)`)
with numpy when it is importable and in pure Python otherwise, giving the same bytes either way.
Inputs may be sent in any of the four dtypes: the worker converts them to float32 (the exchange format inside
core) with exactly the rules of `plugin.pixels` (v / 255, v / 65535), so a host without numpy need not convert
24 MP in pure Python. `client.run(..., output_dtype='u8')` asks the worker for the result in another dtype.

Errors: WorkerError(code, message) with a message fit for a dialog and `detail` (stderr tail or traceback) for a
bug report; WorkerCancelled after a cancel. WorkerCancelled is a subclass of WorkerError: test for it first.
Codes: the operator's UserError codes ('bad-input', 'bad-parameter', 'unknown-operator', 'missing-input',
'size-mismatch', 'no-device', ...), 'internal' (a bug in core), 'out-of-memory', 'too-large' (refused before
sending), 'not-configured', 'worker-start', 'worker-crashed', 'worker-killed' (likely the OOM killer),
'bad-output' (garbage from the worker), 'connection', 'connection-lost', 'bad-token', 'busy'. After any failure
the next call starts a fresh worker (or reconnects); the host's layers are the host's to leave untouched.

`Client(shared=True)` (what GIMP and Krita use): the user's one warm local worker, a server on an owner-only
Unix socket that the first host to need it starts and every later run reuses until `idle_timeout_s` without a
request (plugin.local); the settings' `shared_worker: false` turns it off (a spawned worker per host process).

Also: `Client(config_dict)` instead of the settings file; keyword overrides (python=, core_root=, server=, token=,
device=, idle_timeout_s=, memory_budget_mb=, extra_args=, cancel_grace_s=); `client.close()` stops a spawned
worker (also done at exit; a worker whose host dies exits when its stdin closes); `client.echo([Image, ...])`
returns the buffers as the worker received them. Settings: plugin.config (`load_config()`, `save_config(cfg)`,
`config_path()`). Wire format: plugin.protocol. The worker: `python -m core worker --stdio` (spawned) or
`python -m core serve --tcp HOST:PORT --token-file F | --unix PATH`.
"""
