"""The operator registry: the single declaration of every operator's inputs and parameters.

Each operator declares its inputs (image, frames, depth, ...) and parameters (with type, unit, range, default,
choices, help). The CLI, `python -m core list --json`, the worker, the GIMP dialogs and the Krita docker are all
built from these declarations, so an operator is described once.

`run()` is the one entry point for every caller: it validates, splits alpha off (carried through untouched),
runs the operator, re-attaches alpha and blends with the optional soft mask so that pixels outside the mask
stay bit-identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import UserError
from .jobs import Job

PARAM_TYPES = ("float", "int", "bool", "choice", "point", "string")
INPUT_KINDS = ("image", "frames", "depth", "normals", "reference", "background", "mask")


@dataclass(frozen=True)
class Param:
    """One parameter. `unit` is a physical unit where one applies ('mm', 'm', 'deg', 'f-number', 'px', 'K',
    'stops', 'ratio'); `optional` parameters may be None (meaning: derive it automatically)."""
    name: str
    type: str
    default: Any
    help: str
    unit: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Tuple[str, ...] = ()
    title: str = ""
    optional: bool = False
    step: Optional[float] = None

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"param {self.name}: unknown type {self.type}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"param {self.name}: a choice needs choices")

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def validate(self, value: Any) -> Any:
        """Convert and range-check one value; raise UserError naming the parameter."""
        if value is None:
            if self.optional:
                return None
            raise UserError(f"parameter '{self.name}' needs a value", "bad-parameter")
        t = self.type
        try:
            if t == "float":
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError
            elif t == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                if isinstance(value, bool):
                    raise ValueError
                v = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif t == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low in ("1", "true", "yes", "on"):
                        v = True
                    elif low in ("0", "false", "no", "off"):
                        v = False
                    else:
                        raise ValueError
                else:
                    v = bool(value)
            elif t == "point":
                if isinstance(value, str):
                    parts = [p for p in value.replace(" ", "").split(",") if p]
                else:
                    parts = list(value)
                if len(parts) != 2:
                    raise ValueError
                v = (float(parts[0]), float(parts[1]))
                if not all(math.isfinite(c) for c in v):
                    raise ValueError
            elif t == "choice":
                v = str(value)
                if v not in self.choices:
                    raise UserError(f"parameter '{self.name}' must be one of {', '.join(self.choices)}, "
                                    f"not '{v}'", "bad-parameter")
            else:
                v = str(value)
        except UserError:
            raise
        except (TypeError, ValueError):
            expect = {"point": "x,y in pixels", "bool": "true or false"}.get(t, f"a {t}")
            raise UserError(f"parameter '{self.name}' must be {expect}, not '{value}'", "bad-parameter") from None
        if t in ("float", "int"):
            if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
                unit = f" {self.unit}" if self.unit else ""
                raise UserError(f"parameter '{self.name}' = {v}{unit} is out of range "
                                f"[{_fmt(self.min)}, {_fmt(self.max)}]{unit}", "bad-parameter")
        return v

    def to_dict(self) -> Dict[str, Any]:
        d = {"name": self.name, "type": self.type, "default": self.default, "help": self.help,
             "unit": self.unit, "min": self.min, "max": self.max, "choices": list(self.choices),
             "title": self.label, "optional": self.optional, "step": self.step}
        if isinstance(d["default"], tuple):
            d["default"] = list(d["default"])
        return d


def _fmt(x):
    return "-inf" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


@dataclass(frozen=True)
class Input:
    """One image-like input. Kind 'image' is the primary picture, 'frames' a list of pictures (burst);
    the others are auxiliary maps a host offers as a layer picker."""
    name: str
    kind: str
    help: str
    required: bool = True

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input {self.name}: unknown kind {self.kind}")

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "help": self.help, "required": self.required}


@dataclass
class Output:
    """What an operator may return instead of a bare array: the result, the picture the mask blend falls back
    to (default: the primary input), and facts for the user and the provenance record."""
    image: np.ndarray
    base: Optional[np.ndarray] = None
    info: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What an operator gets besides its arrays: seed, device preference and the progress/cancel job."""
    seed: int = 0
    device: Optional[str] = None
    job: Job = field(default_factory=Job)

    def torch_device(self):
        from .device import select_device
        return select_device(self.device)


RunFunction = Callable[[Dict[str, Any], Dict[str, Any], Context], Any]


@dataclass
class Operator:
    name: str
    title: str
    help: str
    inputs: Tuple[Input, ...]
    params: Tuple[Param, ...]
    run: RunFunction
    # Demo: given the bundled portrait (float32 RGB) and a seed, return (inputs, params) for a showcase run.
    demo: Optional[Callable[[np.ndarray, int], Tuple[Dict[str, Any], Dict[str, Any]]]] = None
    models: Tuple[str, ...] = ()
    uses_alpha: bool = False
    order: int = 100

    @property
    def primary(self) -> Input:
        for inp in self.inputs:
            if inp.kind in ("image", "frames"):
                return inp
        raise ValueError(f"operator {self.name} has no image or frames input")

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> Dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate_params(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise UserError(f"{self.name}: unknown parameter '{unknown[0]}' (known: {', '.join(sorted(known))})",
                            "bad-parameter")
        return {p.name: p.validate(params.get(p.name, p.default)) for p in self.params}

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "title": self.title, "help": self.help,
                "inputs": [i.to_dict() for i in self.inputs], "params": [p.to_dict() for p in self.params],
                "models": list(self.models), "uses_alpha": self.uses_alpha}


_REGISTRY: Dict[str, Operator] = {}


def register(op: Operator) -> Operator:
    if op.name in _REGISTRY and _REGISTRY[op.name] is not op:
        raise ValueError(f"operator {op.name} registered twice")
    names = [p.name for p in op.params] + [i.name for i in op.inputs]
    if len(set(names)) != len(names):
        raise ValueError(f"operator {op.name}: duplicate input/parameter names")
    _REGISTRY[op.name] = op
    return op


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_all() -> None:
    from . import operators  # noqa: F401  (importing registers every operator package)


def operators() -> List[Operator]:
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda o: (o.order, o.name))


def get(name: str) -> Operator:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown operator '{name}' (available: {', '.join(o.name for o in operators())})",
                        "unknown-operator") from None


def as_json() -> List[Dict[str, Any]]:
    return [o.to_dict() for o in operators()]


# ---------------------------------------------------------------------------------------------------------------
# Running


def _check_image(name: str, arr: Any) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise UserError(f"input '{name}' is not an image array", "bad-input")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UserError(f"input '{name}' has shape {arr.shape}; expected height x width x 1-4 channels",
                        "bad-input")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise UserError(f"input '{name}' contains NaN or infinite values", "bad-input")
    return arr


def _to_rgb_alpha(arr: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Split H×W×C into RGB and alpha (None when there is none); grey becomes RGB."""
    c = arr.shape[2]
    if c == 1:
        return np.repeat(arr, 3, axis=2), None
    if c == 2:
        return np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:2]
    if c == 3:
        return arr, None
    return arr[:, :, :3], arr[:, :, 3:4]


def prepare_mask(mask: Optional[np.ndarray], shape: Tuple[int, int]) -> Optional[np.ndarray]:
    """A soft selection as H×W×1 float32 in [0, 1]; colour masks use their first channel."""
    if mask is None:
        return None
    m = _check_image("mask", mask)
    if m.shape[:2] != tuple(shape):
        raise UserError(f"mask is {m.shape[1]}x{m.shape[0]} but the image is {shape[1]}x{shape[0]}",
                        "size-mismatch")
    return np.clip(m[:, :, :1], 0.0, 1.0)


def blend_with_mask(base: np.ndarray, result: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    """result where mask = 1, base where mask = 0 (bit-identical), linear in between."""
    if mask is None:
        return result
    blended = base + (result - base) * mask
    return np.where(mask > 0.0, blended, base).astype(np.float32)


def run(name: str, inputs: Mapping[str, Any], params: Optional[Mapping[str, Any]] = None, *,
        mask: Optional[np.ndarray] = None, seed: int = 0, device: Optional[str] = None,
        job: Optional[Job] = None) -> Output:
    """Validate and run operator `name`.

    inputs: input name -> float32 H×W×C array (a list of them for 'frames'). Returns an Output whose image has
    the primary input's size and channel count (alpha carried through from the base picture).
    """
    op = get(name)
    values = op.validate_params(dict(params or {}))
    known = {i.name for i in op.inputs}
    extra = sorted(set(k for k, v in inputs.items() if v is not None) - known)
    if extra:
        raise UserError(f"{name}: unknown input '{extra[0]}' (inputs: {', '.join(sorted(known))})", "bad-input")

    prepared: Dict[str, Any] = {}
    alphas: Dict[str, Any] = {}
    for inp in op.inputs:
        value = inputs.get(inp.name)
        if value is None:
            if inp.required:
                raise UserError(f"{name} needs the input '{inp.name}': {inp.help}", "missing-input")
            prepared[inp.name] = None
            continue
        if inp.kind == "frames":
            if isinstance(value, np.ndarray) and value.ndim == 4:
                value = list(value)
            if not isinstance(value, (list, tuple)) or not value:
                raise UserError(f"input '{inp.name}' must be a list of images", "bad-input")
            frames = [_check_image(f"{inp.name}[{k}]", f) for k, f in enumerate(value)]
            if op.uses_alpha:
                prepared[inp.name] = frames
            else:
                split = [_to_rgb_alpha(f) for f in frames]
                prepared[inp.name] = [s[0] for s in split]
                alphas[inp.name] = [s[1] for s in split]
        else:
            arr = _check_image(inp.name, value)
            if inp.kind in ("image", "reference", "background") and not op.uses_alpha:
                rgb, alpha = _to_rgb_alpha(arr)
                prepared[inp.name], alphas[inp.name] = rgb, alpha
            else:
                prepared[inp.name] = arr

    job = job or Job()
    ctx = Context(seed=int(seed), device=device, job=job)
    job.progress(0.0, f"{op.title}: starting")
    raw = op.run(prepared, values, ctx)
    out = raw if isinstance(raw, Output) else Output(image=raw)
    out.info.setdefault("operator", name)
    out.info.setdefault("params", _jsonable(values))
    out.info.setdefault("seed", int(seed))

    primary = op.primary
    if out.base is None:
        src = prepared[primary.name]
        out.base = src[0] if primary.kind == "frames" else src
    base_alpha = _base_alpha(op, primary, alphas, out)
    result = np.ascontiguousarray(out.image, dtype=np.float32)
    if result.ndim == 2:
        result = result[:, :, None]
    base = out.base
    if result.shape[:2] != base.shape[:2]:
        raise RuntimeError(f"{name} returned {result.shape} for a {base.shape} input")
    if base_alpha is not None and result.shape[2] == 3:
        result = np.concatenate([result, base_alpha], axis=2)
    m = prepare_mask(mask, result.shape[:2])
    if m is not None:
        # Only a mask needs the full base picture (with its alpha): skip that copy otherwise.
        if base_alpha is not None and base.shape[2] == 3:
            base = np.concatenate([base, base_alpha], axis=2)
        if base.shape != result.shape:
            raise RuntimeError(f"{name}: cannot blend a {result.shape} result with a {base.shape} base")
        result = blend_with_mask(base.astype(np.float32, copy=False), result, m)
    out.image = result
    out.base = base
    job.progress(1.0, f"{op.title}: done")
    return out


def _base_alpha(op: Operator, primary: Input, alphas: Dict[str, Any], out: Output) -> Optional[np.ndarray]:
    if op.uses_alpha or primary.name not in alphas:
        return None
    a = alphas[primary.name]
    if primary.kind == "frames":
        index = out.info.get("reference_index", 0)
        return a[index]
    return a


def _jsonable(values: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
