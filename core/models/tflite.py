"""A minimal TensorFlow Lite flatbuffer reader: tensors (with their constant data) and operators in order.

Only what the converter needs: it never runs a graph. Constant buffers are returned as numpy arrays in the
file's own layout (TFLite is NHWC / OHWI); float16 weights are upcast to float32 so torch sees one dtype.
The schema comes from the `tflite` package (pure Python flatbuffers bindings, no TensorFlow).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import UserError

_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_PADDING = {0: "same", 1: "valid"}


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: tuple
    dtype: Any
    data: Optional[np.ndarray]  # None for activations (computed at run time)


@dataclass
class OpInfo:
    index: int
    kind: str                     # builtin name (CONV_2D ...) or the custom code (Convolution2DTransposeBias)
    inputs: List[int]
    outputs: List[int]
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    tensors: List[TensorInfo]
    ops: List[OpInfo]
    inputs: List[int]
    outputs: List[int]

    def const(self, index: int) -> np.ndarray:
        t = self.tensors[index]
        if t.data is None:
            raise ValueError(f"tensor {index} ({t.name}) holds no constant data")
        return t.data

    def op_kinds(self) -> List[str]:
        return [op.kind for op in self.ops]


def _schema():
    try:
        import tflite  # noqa: F401  (flatbuffers bindings of the TFLite schema)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UserError("the 'tflite' package is needed to convert MediaPipe models: pip install tflite==2.18.0",
                        "missing-dependency") from exc
    return tflite


def _options(tfl, op, kind: str) -> Dict[str, Any]:
    """Decode the few builtin option tables the face/person networks use."""
    table = op.BuiltinOptions()
    if table is None:
        return {}
    def load(cls):
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return o
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = load(tfl.Conv2DOptions if kind == "CONV_2D" else tfl.DepthwiseConv2DOptions)
        return {"stride": (o.StrideH(), o.StrideW()), "padding": _PADDING[o.Padding()],
                "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                "activation": _ACTIVATIONS.get(o.FusedActivationFunction(), "unknown")}
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = load(tfl.Pool2DOptions)
        return {"stride": (o.StrideH(), o.StrideW()), "padding": _PADDING[o.Padding()],
                "kernel": (o.FilterHeight(), o.FilterWidth()),
                "activation": _ACTIVATIONS.get(o.FusedActivationFunction(), "unknown")}
    if kind in ("ADD", "MUL", "SUB"):
        cls = {"ADD": tfl.AddOptions, "MUL": tfl.MulOptions, "SUB": tfl.SubOptions}[kind]
        return {"activation": _ACTIVATIONS.get(load(cls).FusedActivationFunction(), "unknown")}
    if kind == "CONCATENATION":
        o = load(tfl.ConcatenationOptions)
        return {"axis": o.Axis(), "activation": _ACTIVATIONS.get(o.FusedActivationFunction(), "unknown")}
    if kind == "RESIZE_BILINEAR":
        o = load(tfl.ResizeBilinearOptions)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if kind == "FULLY_CONNECTED":
        o = load(tfl.FullyConnectedOptions)
        return {"activation": _ACTIVATIONS.get(o.FusedActivationFunction(), "unknown")}
    return {}


def _custom_options(op) -> Dict[str, Any]:
    """MediaPipe's custom ops store a raw TfLitePaddingValues-like struct; keep the bytes and the common view."""
    if op.CustomOptionsLength() == 0:
        return {}
    raw = bytes(op.CustomOptionsAsNumpy().tobytes())
    out: Dict[str, Any] = {"raw": raw}
    if len(raw) >= 12:  # Convolution2DTransposeBias: TfLiteTransposeConvParams {padding, stride_w, stride_h}
        out["ints"] = struct.unpack("<" + "i" * (len(raw) // 4), raw[: len(raw) // 4 * 4])
    return out


def read_tflite(data: bytes, what: str = "model") -> Graph:
    """Parse `data` (a whole .tflite file). `what` names it in error messages."""
    tfl = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(f"{what} is not a TensorFlow Lite file (bad identifier)", "bad-model")
    try:
        model = tfl.Model.GetRootAsModel(data, 0)
        sub = model.Subgraphs(0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            c = model.OperatorCodes(i)
            code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
            if code == 32:  # CUSTOM
                codes.append(c.CustomCode().decode())
            else:
                codes.append(tfl.opcode2name(code))
        tensors = []
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            dtype = _DTYPES.get(t.Type())
            shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            buf = model.Buffers(t.Buffer())
            arr = None
            if buf is not None and buf.DataLength() > 0 and dtype is not None:
                raw = buf.DataAsNumpy().tobytes()
                arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
                if arr.dtype == np.float16:
                    arr = arr.astype(np.float32)  # weights stored as half: compute in float32
            tensors.append(TensorInfo(i, t.Name().decode(errors="replace"), shape, dtype, arr))
        ops = []
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            kind = codes[op.OpcodeIndex()]
            opts = _options(tfl, op, kind) if kind.isupper() else _custom_options(op)
            ops.append(OpInfo(i, kind, [int(x) for x in op.InputsAsNumpy()], [int(x) for x in op.OutputsAsNumpy()],
                              opts))
        inputs = [int(x) for x in sub.InputsAsNumpy()]
        outputs = [int(x) for x in sub.OutputsAsNumpy()]
    except UserError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises anything from struct/IndexError
        raise UserError(f"{what} could not be read as TensorFlow Lite ({type(exc).__name__}: {exc})",
                        "bad-model") from exc
    return Graph(tensors, ops, inputs, outputs)
