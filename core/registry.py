"""The operator registry: the single declaration of every operator's inputs and parameters.

Each operator declares its inputs (image, frames, depth, ...) and parameters (with type, unit, range, default,
choices, help). The CLI, `python -m core list --json`, the worker, the GIMP dialogs and the Krita docker are all
built from these declarations, so an operator is described once.

`run()` is the one entry point for every caller: it validates, splits alpha off (carried through untouched),
runs the operator (which sees the soft mask in `Context.mask`, e.g. as the subject or skin region), re-attaches
alpha and blends with the mask so that pixels outside it stay bit-identical.

A parameter may be repeatable (`repeat=True`): its value is then a list of items of its type (several lights,
several control points), given on the command line by repeating the option. Parameters whose items are pixel
positions in the image (`point`, or `coordinates=True`) are declared so, because a host that sends only the
selection's bounds must shift every one of them by the crop's origin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import UserError
from .imaging import limits
from .jobs import Job

PARAM_TYPES = ("float", "int", "bool", "choice", "point", "vector", "string")
INPUT_KINDS = ("image", "frames", "depth", "normals", "reference", "background", "mask")
# Input kinds that hold data, not colour: hosts pass them unchanged (no colour management, no sRGB encoding).
DATA_KINDS = ("depth", "normals", "mask")
# Names the command line and the hosts already use for every operator; an operator may not take them.
RESERVED_NAMES = ("mask", "seed", "device", "output", "quiet", "help", "overwrite")
# How the pixels of an input were stored where they came from (a file's or a layer's bit depth).
STORED_AS = ("u8", "u16", "f16", "f32")


class RegistrationError(ValueError):
    """An operator declaration that cannot work (a bug in the operator package, reported when it registers)."""


@dataclass(frozen=True)
class Param:
    """One parameter. `unit` is a physical unit where one applies ('mm', 'm', 'deg', 'f-number', 'px', 'K',
    'stops', 'ratio'); `optional` parameters may be None (meaning: derive it automatically).

    `vector` is `size` comma-separated numbers (e.g. azimuth,elevation,intensity); `repeat=True` makes the value a
    list of such items (possibly empty); `coordinates=True` says an item's first two numbers are an x,y pixel
    position in the image (always so for `point`); `components` names each number of a vector (the hosts' column
    headings, e.g. azimuth, elevation, intensity)."""
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
    repeat: bool = False
    size: int = 0
    coordinates: bool = False
    advanced: bool = False
    components: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise RegistrationError(f"param {self.name}: unknown type {self.type}")
        if self.type == "choice" and not self.choices:
            raise RegistrationError(f"param {self.name}: a choice needs choices")
        if self.type == "vector" and self.size < 1:
            raise RegistrationError(f"param {self.name}: a vector needs its size (how many numbers)")
        if self.type == "point":
            object.__setattr__(self, "size", 2)
            object.__setattr__(self, "coordinates", True)
        if self.coordinates and self.type not in ("point", "vector"):
            raise RegistrationError(f"param {self.name}: only a point or a vector can hold pixel coordinates")
        if self.components and (len(self.components) != self.size
                                or not all(c.replace("_", "").isalnum() for c in self.components)):
            raise RegistrationError(f"param {self.name}: name each of its {self.size} numbers with a plain word")
        if self.repeat and self.type == "bool":
            raise RegistrationError(f"param {self.name}: a yes/no switch cannot repeat")

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def validate(self, value: Any) -> Any:
        """Convert and range-check one value (a list of items when the parameter repeats); raise UserError
        naming the parameter."""
        if not self.repeat:
            return self._validate_item(value)
        if value is None:
            return None if self.optional else []
        if isinstance(value, str):
            # One string may hold several items separated by ';' (how a host's text field sends a list).
            value = [v for v in value.split(";") if v.strip()]
        elif not isinstance(value, (list, tuple)):
            raise UserError(f"parameter '{self.name}' takes a list of values", "bad-parameter")
        elif self.size and value and not isinstance(value[0], (list, tuple, str)):
            value = [value]  # one bare item (x, y) given without its list
        items = [self._validate_item(v) for v in value]
        if any(v is None for v in items):
            raise UserError(f"parameter '{self.name}': every item needs a value", "bad-parameter")
        return items

    def _validate_item(self, value: Any) -> Any:
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
            elif t in ("point", "vector"):
                if isinstance(value, str):
                    parts = [p for p in value.replace(" ", "").split(",") if p]
                else:
                    parts = list(value)
                if len(parts) != self.size:
                    raise ValueError
                v = tuple(float(c) for c in parts)
                if not all(math.isfinite(c) for c in v):
                    raise ValueError
                if t == "vector" and ((self.min is not None and min(v) < self.min)
                                      or (self.max is not None and max(v) > self.max)):
                    raise UserError(f"parameter '{self.name}' = {','.join(f'{c:g}' for c in v)}: each number "
                                    f"must be within [{_fmt(self.min)}, {_fmt(self.max)}]", "bad-parameter")
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
            expect = {"point": "x,y in pixels", "bool": "true or false",
                      "vector": f"{self.size} numbers separated by commas"}.get(t, f"a {t}")
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
             "title": self.label, "optional": self.optional, "step": self.step, "repeat": self.repeat,
             "size": self.size, "coordinates": self.coordinates, "advanced": self.advanced,
             "components": list(self.components)}
        d["default"] = _jsonable_value(d["default"])
        return d


def _jsonable_value(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_jsonable_value(x) for x in v]
    return v


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
    """What an operator gets besides its arrays: seed, device preference, the progress/cancel job, the soft
    selection (H×W float32 in [0, 1], or None: the operator may read it as its region, e.g. the subject or the
    skin; the registry still blends the result by it afterwards) and, per input, how its pixels were stored
    where they came from (`stored_as`: 'u8', 'u16', 'f16' or 'f32'; absent when unknown)."""
    seed: int = 0
    device: Optional[str] = None
    job: Job = field(default_factory=Job)
    mask: Optional[np.ndarray] = None
    stored_as: Dict[str, str] = field(default_factory=dict)

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
    # Peak memory per pixel of the primary input (per pixel of all frames for a burst), measured: the image is
    # refused before it runs when this times its pixels exceeds the memory budget (core.imaging.limits).
    # None: the figure in limits.MEASURED_BYTES_PER_PIXEL, else limits.DEFAULT_BYTES_PER_PIXEL.
    bytes_per_pixel: Optional[float] = None
    # The operator is local within this many pixels (its support radius): the registry may then run an image
    # that does not fit the budget tile by tile, each tile with this much context. None: it needs the whole image.
    tile_halo: Optional[int] = None

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

    @property
    def peak_bytes_per_pixel(self) -> float:
        if self.bytes_per_pixel is not None:
            return float(self.bytes_per_pixel)
        return float(limits.MEASURED_BYTES_PER_PIXEL.get(self.name, limits.DEFAULT_BYTES_PER_PIXEL))

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
    """Add an operator; a declaration that cannot work raises RegistrationError naming what is wrong (the
    operator package then fails to import and is isolated, see core.operators)."""
    if op.name in _REGISTRY and _REGISTRY[op.name] is not op:
        raise RegistrationError(f"operator {op.name} registered twice")
    if op.name in RESERVED_NAMES or not op.name.replace("_", "").isalnum():
        raise RegistrationError(f"operator name '{op.name}' is reserved or not a plain identifier")
    names = [p.name for p in op.params] + [i.name for i in op.inputs]
    if len(set(names)) != len(names):
        raise RegistrationError(f"operator {op.name}: duplicate input/parameter names")
    clash = sorted(set(names) & set(RESERVED_NAMES))
    if clash:
        raise RegistrationError(f"operator {op.name}: '{clash[0]}' is a reserved name (every command already has "
                                f"--{clash[0]}; reserved: {', '.join(RESERVED_NAMES)}): rename that "
                                f"{'parameter' if clash[0] in {p.name for p in op.params} else 'input'}")
    bad = [n for n in names if not n.replace("_", "").isalnum() or n[0].isdigit()]
    if bad:
        raise RegistrationError(f"operator {op.name}: '{bad[0]}' is not a plain identifier (letters, digits, _)")
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


class NonFiniteResult(RuntimeError):
    """An operator returned NaN or inf: a bug in it, caught here so that nothing is written from it."""


def _check_image(name: str, arr: Any, kind: str = "image") -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise UserError(f"input '{name}' is not an image array", "bad-input")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UserError(f"input '{name}' has shape {arr.shape}; expected height x width x 1-4 channels",
                        "bad-input")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    limits.check_values(name, arr, kind)  # NaN, inf, and values float32 arithmetic would overflow on
    return arr


def _primary_size(op: "Operator", inputs: Mapping[str, Any]) -> Optional[Tuple[int, int, int]]:
    """(height, width, frames) of the primary input as given, or None when it is not yet an array (the
    validation below then says what is wrong)."""
    value = inputs.get(op.primary.name)
    if isinstance(value, np.ndarray) and value.ndim == 4:
        return value.shape[1], value.shape[2], value.shape[0]
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray) and value[0].ndim >= 2:
        return value[0].shape[0], value[0].shape[1], len(value)
    if isinstance(value, np.ndarray) and value.ndim >= 2:
        return value.shape[0], value.shape[1], 1
    return None


def check_memory(name: str, height: int, width: int, frames: int = 1) -> bool:
    """Whether operator `name` can run on this size within the memory budget: True when it fits whole, False
    when it must run tiled (it declares a tile halo and its tiles fit); otherwise UserError 'too-large' naming
    the size, the limit and the setting. Callers may ask before decoding a file (its header gives the size)."""
    op = get(name)
    bpp = op.peak_bytes_per_pixel
    budget = limits.budget_bytes()
    if height * width * frames * bpp <= budget:
        return True
    if op.tile_halo is not None and op.primary.kind == "image" and _tile_side(op, height, width, budget):
        return False
    limits.check_fits(f"the {op.primary.name}", width, height, bpp, op.name, count=frames, budget=budget)
    return True


# What a tiled run holds at full size besides the tiles: the input, the stacked copy the tiles are cut from,
# the output and its accumulation (float32 RGBA each).
TILED_FULL_BYTES_PER_PIXEL = 64.0


def _tile_side(op: "Operator", height: int, width: int, budget: int) -> int:
    """The side of the largest square tile (halo excluded) that fits beside the full-size arrays, 0 if none."""
    room = budget - height * width * TILED_FULL_BYTES_PER_PIXEL
    if room <= 0:
        return 0
    halo = int(op.tile_halo or 0)
    side = int(math.sqrt(room / op.peak_bytes_per_pixel)) - 2 * halo
    return side if side >= max(64, 2 * halo) else 0


def _run_tiled(op: "Operator", prepared: Dict[str, Any], values: Dict[str, Any], ctx: "Context") -> Output:
    """Run a local operator tile by tile: every input the primary's size, and the mask, is cut with it."""
    from .imaging.tiling import run_tiled

    primary = prepared[op.primary.name]
    h, w = primary.shape[:2]
    names = [n for n, v in prepared.items() if isinstance(v, np.ndarray) and v.shape[:2] == (h, w)]
    names.remove(op.primary.name)
    names.insert(0, op.primary.name)
    planes = [prepared[n] for n in names] + ([ctx.mask[:, :, None]] if ctx.mask is not None else [])
    bounds = np.cumsum([0] + [p.shape[2] for p in planes])
    stacked = np.concatenate(planes, axis=2)
    info: Dict[str, Any] = {}

    def one(tile: np.ndarray) -> np.ndarray:
        parts = {n: tile[:, :, bounds[k]:bounds[k + 1]] for k, n in enumerate(names)}
        sub = dict(prepared, **parts)
        mask = tile[:, :, bounds[len(names)]] if ctx.mask is not None else None
        tctx = Context(seed=ctx.seed, device=ctx.device, job=Job(None, ctx.job.cancel_event), mask=mask,
                       stored_as=ctx.stored_as)
        raw = op.run(sub, values, tctx)
        res = raw if isinstance(raw, Output) else Output(image=raw)
        if not info:
            info.update(res.info)
        return np.asarray(res.image, dtype=np.float32)

    side = _tile_side(op, h, w, limits.budget_bytes())
    image = run_tiled(stacked, one, tile=side, overlap=min(32, side // 4), halo=int(op.tile_halo or 0),
                      job=ctx.job.sub(0.0, 0.99))
    info["tiled"] = {"tile": side, "halo": int(op.tile_halo or 0)}
    return Output(image=image, info=info)


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
    m = _check_image("mask", mask, "mask")
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
        job: Optional[Job] = None, stored_as: Optional[Mapping[str, str]] = None) -> Output:
    """Validate and run operator `name`.

    inputs: input name -> float32 H×W×C array (a list of them for 'frames'). stored_as: input name -> how its
    pixels were stored ('u8', 'u16', 'f16', 'f32'), when the caller knows (a file's or a layer's bit depth; a
    depth map's tells distance in metres from relative disparity). Returns an Output whose image has the primary
    input's size and channel count (alpha carried through from the base picture), or one more channel when the
    operator owns alpha and returns it.
    """
    op = get(name)
    values = op.validate_params(dict(params or {}))
    known = {i.name for i in op.inputs}
    extra = sorted(set(k for k, v in inputs.items() if v is not None) - known)
    if extra:
        raise UserError(f"{name}: unknown input '{extra[0]}' (inputs: {', '.join(sorted(known))})", "bad-input")
    stored = _check_stored_as(stored_as, known)
    size = _primary_size(op, inputs)
    whole = True if size is None else check_memory(name, *size)  # before any copy of the inputs is made

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
            frames = [_check_image(f"{inp.name}[{k}]", f, inp.kind) for k, f in enumerate(value)]
            if op.uses_alpha:
                prepared[inp.name] = frames
            else:
                split = [_to_rgb_alpha(f) for f in frames]
                prepared[inp.name] = [s[0] for s in split]
                alphas[inp.name] = [s[1] for s in split]
        else:
            arr = _check_image(inp.name, value, inp.kind)
            if inp.kind in ("image", "reference", "background") and not op.uses_alpha:
                rgb, alpha = _to_rgb_alpha(arr)
                prepared[inp.name], alphas[inp.name] = rgb, alpha
            else:
                prepared[inp.name] = arr

    primary = op.primary
    src = prepared[primary.name]
    shape = (src[0] if primary.kind == "frames" else src).shape[:2]
    m = prepare_mask(mask, shape)
    job = job or Job()
    ctx = Context(seed=int(seed), device=device, job=job, mask=None if m is None else m[:, :, 0], stored_as=stored)
    job.progress(0.0, f"{op.title}: starting")
    raw = op.run(prepared, values, ctx) if whole else _run_tiled(op, prepared, values, ctx)
    out = raw if isinstance(raw, Output) else Output(image=raw)
    out.info.setdefault("operator", name)
    out.info.setdefault("params", _jsonable(values))
    out.info.setdefault("seed", int(seed))

    if out.base is None:
        out.base = src[0] if primary.kind == "frames" else src
    base_alpha = _base_alpha(op, primary, alphas, out)
    result = np.ascontiguousarray(out.image, dtype=np.float32)
    if result.ndim == 2:
        result = result[:, :, None]
    base = out.base
    if result.shape[:2] != base.shape[:2]:
        raise RuntimeError(f"{name} returned {result.shape} for a {base.shape} input")
    bad = limits.count_nonfinite(result)
    if bad:
        raise NonFiniteResult(f"{name} produced {bad} NaN or infinite samples out of {result.size} (a bug in the "
                              f"operator; nothing was written): please report it with the image and the settings")
    if base_alpha is not None and result.shape[2] == 3:
        result = np.concatenate([result, base_alpha], axis=2)
    if m is not None:
        # Only a mask needs the full base picture (with its alpha): skip that copy otherwise.
        if base_alpha is not None and base.shape[2] == 3:
            base = np.concatenate([base, base_alpha], axis=2)
        base = _match_channels(base.astype(np.float32, copy=False), result.shape[2], name)
        result = blend_with_mask(base, result, m)
    out.image = result
    out.base = base
    job.progress(1.0, f"{op.title}: done")
    return out


def _match_channels(base: np.ndarray, channels: int, name: str) -> np.ndarray:
    """The base picture with the result's channels, for the mask blend: an operator that returns a new alpha
    (background replacement) from an opaque picture blends against that picture made opaque (alpha 1)."""
    c = base.shape[2]
    if c == channels:
        return base
    if c in (1, 3) and channels == c + 1:
        return np.concatenate([base, np.ones(base.shape[:2] + (1,), np.float32)], axis=2)
    if c == 1 and channels in (3, 4):
        return _match_channels(np.repeat(base, 3, axis=2), channels, name)
    raise RuntimeError(f"{name}: cannot blend a {channels}-channel result with a {c}-channel base")


def _check_stored_as(stored_as: Optional[Mapping[str, str]], known) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for k, v in (stored_as or {}).items():
        if k not in known or v is None:
            continue
        if v not in STORED_AS:
            raise UserError(f"input '{k}': unknown storage '{v}' (one of {', '.join(STORED_AS)})", "bad-input")
        out[k] = v
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
    return {k: _jsonable_value(v) for k, v in values.items()}
