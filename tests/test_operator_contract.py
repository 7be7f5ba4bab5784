"""The contract every operator keeps, checked for each one registered from core/operators (including the ones
that arrive later) and for the test operator, on its own demo inputs at a small size.

Same seed, same bytes; alpha untouched unless the operator owns alpha; pixels where the mask is 0 bit-identical;
progress only rises and ends at 1; a cancel stops it within a bounded number of progress calls and the command
line then writes nothing; 8-bit, 16-bit and float files keep their depth through the command line; an RGBA, a grey
and a 1×1 input each give a result or a clear UserError, never a traceback.
"""
import numpy as np
import pytest

from core import cli, registry
from core.errors import Cancelled, UserError
from core.imaging import io
from core.jobs import Job
from tests import toy_operator

SIDE = 160           # demo inputs are made from the portrait scaled to this side: enough for a face, quick
THREAD_SIDE = 512    # the thread-count check runs at the portrait's full size (see there)
CANCEL_BOUND = 2     # progress calls an operator may make after a cancel was requested before it stops


def _portrait(side=SIDE):
    import cv2
    from skimage import data
    img = data.astronaut().astype(np.float32) / 255.0
    return img if side == 512 else cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)


def _contract_operators():
    """Every operator shipped in core/operators, and the test operator (registered only while a test here runs:
    other test modules, the host tests among them, list the registry and must not meet it)."""
    return [o.name for o in registry.operators() if o.run.__module__.startswith("core.operators.")] + ["toy"]


OPERATORS = _contract_operators()
_DEMO_CACHE = {}


@pytest.fixture(autouse=True)
def toy():
    toy_operator.install()
    yield
    toy_operator.uninstall()


def demo(name):
    if name not in _DEMO_CACHE:
        op = registry.get(name)
        assert op.demo is not None, f"operator {name} has no demo inputs: every operator needs one"
        _DEMO_CACHE[name] = op.demo(_portrait(), 0)
    inputs, params = _DEMO_CACHE[name]
    return dict(inputs), dict(params)


def primary_of(name, inputs):
    op = registry.get(name)
    value = inputs[op.primary.name]
    return op, op.primary, value


def with_primary(name, inputs, fn):
    """The inputs with fn applied to the primary picture (each frame of a burst)."""
    op = registry.get(name)
    p = op.primary
    out = dict(inputs)
    out[p.name] = [fn(f) for f in inputs[p.name]] if p.kind == "frames" else fn(inputs[p.name])
    return out


def test_the_contract_covers_the_shipped_operators():
    assert {"denoise", "refocus", "toy"} <= set(OPERATORS)


@pytest.mark.parametrize("name", OPERATORS)
def test_same_seed_same_bytes(name):
    inputs, params = demo(name)
    a = registry.run(name, inputs, params, seed=5).image
    b = registry.run(name, inputs, params, seed=5).image
    assert a.dtype == np.float32 and np.isfinite(a).all()
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", OPERATORS)
def test_alpha_untouched_and_mask_zero_bit_identical(name):
    inputs, params = demo(name)
    rng = np.random.default_rng(1)
    alpha = rng.random((SIDE, SIDE, 1)).astype(np.float32)
    rgba = with_primary(name, inputs, lambda f: np.concatenate([f[:, :, :3], alpha], axis=2))
    mask = np.zeros((SIDE, SIDE, 1), np.float32)
    mask[40:120, 30:130] = rng.random((80, 100, 1)).astype(np.float32)
    op = registry.get(name)
    out = registry.run(name, rgba, params, mask=mask)
    base = rgba[op.primary.name]
    base = base[out.info.get("reference_index", 0)] if op.primary.kind == "frames" else base
    if not op.uses_alpha:
        assert out.image.shape == base.shape
        assert np.array_equal(out.image[:, :, 3], alpha[:, :, 0])
    outside = mask[:, :, 0] == 0
    assert np.array_equal(out.image[outside], base[outside])


@pytest.mark.parametrize("name", OPERATORS)
def test_progress_only_rises_and_ends_at_one(name):
    inputs, params = demo(name)
    seen = []
    registry.run(name, inputs, params, job=Job(lambda f, m: seen.append(f)))
    assert len(seen) >= 3
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:])), seen
    assert seen[0] == 0.0 and seen[-1] == 1.0


@pytest.mark.parametrize("name", OPERATORS)
def test_cancel_stops_within_a_bounded_number_of_progress_calls(name):
    inputs, params = demo(name)
    calls = []
    job = Job(lambda f, m: calls.append(f))
    registry.run(name, inputs, params, job=job)
    total = len(calls)
    for at in sorted({1, max(1, total // 2)}):
        calls.clear()
        after = []

        def cb(f, m, at=at):
            calls.append(f)
            if len(calls) == at:
                job.cancel()
            elif len(calls) > at:
                after.append(f)

        job = Job(cb)
        with pytest.raises(Cancelled):
            registry.run(name, inputs, params, job=job)
        assert len(after) <= CANCEL_BOUND, f"{len(after)} progress calls after the cancel"


def _cancelling_job_class(after_calls):
    class CancellingJob(Job):
        def __init__(self, callback=None, *a, **k):
            count = [0]

            def cb(f, m):
                count[0] += 1
                if count[0] >= after_calls:
                    self.cancel()
            super().__init__(cb, *a, **k)
    return CancellingJob


def _write_inputs(name, inputs, tmp_path, depth, ext):
    op = registry.get(name)
    args = []
    p = op.primary
    pics = inputs[p.name] if p.kind == "frames" else [inputs[p.name]]
    for k, f in enumerate(pics):
        path = tmp_path / f"{p.name}{k}{ext}"
        io.write_image(path, np.clip(f, 0, 1), depth)
        args.append(str(path))
    for inp in op.inputs:
        if inp is p or inputs.get(inp.name) is None:
            continue
        path = tmp_path / f"{inp.name}.tif"
        io.write_image(path, inputs[inp.name], "f32")
        args += [cli.option_name(inp.name), str(path)]
    return args


def _param_args(name, params):
    op = registry.get(name)
    args = []
    for k, v in params.items():
        p = op.param(k)
        items = v if p.repeat else [v]
        for item in items:
            if p.type == "bool":
                args.append(cli.option_name(k) if item else "--no-" + k.replace("_", "-"))
            else:
                text = ",".join(f"{c:g}" for c in item) if isinstance(item, (list, tuple)) else str(item)
                args.append(f"{cli.option_name(k)}={text}")
    return args


@pytest.mark.parametrize("name", OPERATORS)
def test_a_cancelled_command_writes_nothing(name, tmp_path, monkeypatch):
    inputs, params = demo(name)
    args = _write_inputs(name, inputs, tmp_path, "u8", ".png")
    out = tmp_path / "out.png"
    monkeypatch.setattr(cli, "Job", _cancelling_job_class(2))
    code = cli.main([name, *args, "-o", str(out), "-q", *_param_args(name, params)])
    assert code == 130
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == []


@pytest.mark.parametrize("depth,ext", [("u8", ".png"), ("u16", ".png"), ("f32", ".tif")])
@pytest.mark.parametrize("name", OPERATORS)
def test_bit_depth_kept_through_the_command_line(name, depth, ext, tmp_path):
    inputs, params = demo(name)
    args = _write_inputs(name, inputs, tmp_path, depth, ext)
    out = tmp_path / f"out{ext}"
    code = cli.main([name, *args, "-o", str(out), "-q", *_param_args(name, params)])
    assert code == 0
    result = io.read_image(out)
    assert result.depth == depth
    assert result.pixels.shape[:2] == (SIDE, SIDE)


@pytest.mark.parametrize("shape_of", ["rgba", "grey", "one_pixel"])
@pytest.mark.parametrize("name", OPERATORS)
def test_odd_pictures_give_a_result_or_a_clear_error(name, shape_of):
    inputs, params = demo(name)
    op = registry.get(name)

    def odd(f):
        if shape_of == "rgba":
            return np.concatenate([f[:, :, :3], np.ones(f.shape[:2] + (1,), np.float32)], axis=2)
        if shape_of == "grey":
            return f[:, :, :3].mean(axis=2, keepdims=True)
        return f[:1, :1, :3].copy()

    odd_inputs = with_primary(name, inputs, odd)
    if shape_of == "one_pixel":  # auxiliary maps must match the picture: shrink them too
        for inp in op.inputs:
            if inp is not op.primary and odd_inputs.get(inp.name) is not None:
                odd_inputs[inp.name] = odd_inputs[inp.name][:1, :1]
    try:
        out = registry.run(name, odd_inputs, params)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    prim = odd_inputs[op.primary.name]
    prim = prim[0] if op.primary.kind == "frames" else prim
    assert out.image.shape[:2] == prim.shape[:2] and np.isfinite(out.image).all()


@pytest.mark.parametrize("name", OPERATORS)
def test_same_bytes_whatever_the_thread_count(name):
    """The worker picks its thread count per job from the machine's load, so a result must not depend on it."""
    from core.device import thread_policy
    op = registry.get(name)
    # Full size: torch splits a reduction between threads only above about 32k values, which 160² hides.
    inputs, params = op.demo(_portrait(THREAD_SIDE), 0)
    outs = []
    for n in (1, 2):
        with thread_policy(environ={"AI_PORTRAIT_THREADS": str(n)}):
            outs.append(registry.run(name, inputs, params, seed=3).image)
    assert outs[0].tobytes() == outs[1].tobytes(), \
        f"{name}: 1 and 2 threads differ at {int((outs[0] != outs[1]).sum())} values, by up to " \
        f"{float(np.abs(outs[0] - outs[1]).max()):.2g}"
