"""Map a TensorFlow Lite graph's weights onto a torch module's state dict.

Layers are matched by where they sit in the data flow, not by their order in either file (TFLite interleaves
parallel branches): each layer with weights gets a key (kind, weight shape in torch layout, depth = number of
weighted layers on the longest path from the input, which graph outputs it feeds, input height × width). The
torch side gets the same keys from a torch.fx trace with shape propagation. Every layer must match exactly
one layer on the other side, so a wrong architecture fails loudly instead of loading garbage.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Tuple

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .tflite import Graph

_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "Convolution2DTransposeBias"}


class ConversionError(RuntimeError):
    """The TFLite graph and the torch module disagree (a converter bug or an unexpected model file)."""


def _tflite_weights(graph: Graph, name: str, w: np.ndarray, b) -> Dict[str, np.ndarray]:
    if name == "CONV_2D":
        out = {"weight": w.transpose(0, 3, 1, 2)}                       # OHWI → OIHW
    elif name == "DEPTHWISE_CONV_2D":
        out = {"weight": w.transpose(3, 0, 1, 2)}                       # (1, kh, kw, C) → (C, 1, kh, kw)
    elif name == "Convolution2DTransposeBias":
        out = {"weight": w.transpose(3, 0, 1, 2)}                       # (O, kh, kw, I) → (I, O, kh, kw)
    else:  # PRELU
        return {"weight": w.reshape(-1)}                                # (1, 1, C) → (C,)
    if b is not None:
        out["bias"] = b
    return out


def tflite_layers(graph: Graph) -> Dict[Tuple, Dict[str, np.ndarray]]:
    const = {t.index for t in graph.tensors if t.data is not None}
    const_src: Dict[int, int] = {}
    producer = {}
    for op in graph.ops:
        if op.kind == "DEQUANTIZE" and op.inputs[0] in const:  # float16 weights stored behind a DEQUANTIZE
            const.add(op.outputs[0])
            const_src[op.outputs[0]] = op.inputs[0]
            continue
        for o in op.outputs:
            producer[o] = op
    live = [op for op in graph.ops if not (op.kind == "DEQUANTIZE" and op.outputs[0] in const)]

    def acts(op):
        return [i for i in op.inputs if i >= 0 and i not in const and i in producer]

    depth: Dict[int, int] = {}
    for op in live:
        d = max([depth[producer[i].index] for i in acts(op)] + [0])
        depth[op.index] = d + (op.kind in _WEIGHTED)
    reach: Dict[int, set] = defaultdict(set)
    for k, o in enumerate(graph.outputs):
        reach[producer[o].index].add(k)
    for op in reversed(live):
        for i in acts(op):
            reach[producer[i].index] |= reach[op.index]

    def value(i):
        return graph.const(const_src.get(i, i)).astype(np.float32)

    layers = {}
    for op in live:
        if op.kind not in _WEIGHTED:
            continue
        w = value(op.inputs[1])
        b = value(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        tensors = _tflite_weights(graph, op.kind, w, b)
        kind = "prelu" if op.kind == "PRELU" else "deconv" if op.kind.startswith("Conv") else "conv"
        hw = tuple(graph.tensors[op.inputs[0]].shape[1:3])
        key = (kind, tuple(tensors["weight"].shape), depth[op.index], tuple(sorted(reach[op.index])), hw)
        if key in layers:
            raise ConversionError(f"two TFLite layers share the key {key}")
        layers[key] = tensors
    return layers


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m, qualname):  # every module without children is one node (keeps pads dynamic)
        return len(list(m.children())) == 0


def torch_layers(module: nn.Module, input_shape) -> Dict[Tuple, str]:
    graph = _LeafTracer().trace(module)
    gm = fx.GraphModule(module, graph)
    ShapeProp(gm).propagate(torch.zeros(input_shape))
    mods = dict(module.named_modules())
    nodes = list(gm.graph.nodes)
    weighted = {n for n in nodes if n.op == "call_module"
                and isinstance(mods[n.target], (nn.Conv2d, nn.PReLU, nn.ConvTranspose2d))}
    depth = {}
    for n in nodes:
        d = max([depth[a] for a in n.all_input_nodes] + [0])
        depth[n] = d + (n in weighted)
    reach: Dict[fx.Node, set] = defaultdict(set)
    out = next(n for n in nodes if n.op == "output")
    results = out.args[0] if isinstance(out.args[0], (tuple, list)) else (out.args[0],)
    for k, r in enumerate(results):
        reach[r].add(k)
    for n in reversed(nodes):
        for a in n.all_input_nodes:
            reach[a] |= reach[n]
    keys = {}
    for n in weighted:
        m = mods[n.target]
        kind = "prelu" if isinstance(m, nn.PReLU) else "deconv" if isinstance(m, nn.ConvTranspose2d) else "conv"
        inp = n.all_input_nodes[0].meta["tensor_meta"].shape
        key = (kind, tuple(m.weight.shape), depth[n], tuple(sorted(reach[n])), tuple(inp[2:4]))
        if key in keys:
            raise ConversionError(f"two torch layers share the key {key}")
        keys[key] = n.target
    return keys


def convert(graph: Graph, module: nn.Module, input_shape, constants=None) -> Dict[str, torch.Tensor]:
    """Return the module's state dict filled from `graph` (float32, contiguous).

    `constants`: for networks with weights that are not convolutions or PReLUs (a layer norm's scale, a learned
    token), a function graph -> {state-dict key: array} that finds them; they join the same strict key check."""
    src = tflite_layers(graph)
    dst = torch_layers(module, input_shape)
    missing = sorted(set(dst) - set(src), key=str)
    extra = sorted(set(src) - set(dst), key=str)
    if missing or extra:
        raise ConversionError(f"layers do not match: torch-only {missing[:3]}, tflite-only {extra[:3]}")
    state = {}
    for key, prefix in dst.items():
        for pname, arr in src[key].items():
            state[f"{prefix}.{pname}"] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    for key, arr in (constants(graph) if constants is not None else {}).items():
        state[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    expected = set(module.state_dict())
    if set(state) != expected:
        raise ConversionError(f"state dict keys differ: {sorted(expected ^ set(state))[:5]}")
    return dict(sorted(state.items()))
