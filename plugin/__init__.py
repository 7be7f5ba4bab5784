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
from/to Krita's BGRA integer layouts) with numpy when it is importable and in pure Python otherwise.
Errors: WorkerError(code, message) with a message fit for a dialog; WorkerCancelled after a cancel.
"""
