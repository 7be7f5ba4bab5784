"""Burst denoise: align a hand-held burst onto its sharpest frame and merge it robustly (the HDR+ family).

Stages: reference.py picks the sharpest frame, noise.py measures the sensor noise (variance = a·signal + b in
linear light, fitted with the exact model of samples clipped at black and white), align.py finds per-tile motion
coarse to fine, merge.py merges in the frequency domain with a pairwise Wiener rule that falls back to the
reference where a frame disagrees (no ghosts), then optionally applies a spatial Wiener; clipping.py takes each
merged pixel, an estimate of the mean of clipped samples, back to the scene value (frames are clipped at 0 and
1, and a mean of clipped samples is biased, most in the shadows), and `exposure` brightens that in linear light.
Output: the reference frame's geometry, size and bit depth, within the frames' range.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ...errors import UserError
from ...parallel import cpu_map
from ...registry import Context, Input, Operator, Output, Param, register
from . import align, clipping, merge, noise, reference, synth

MIN_MATCHED = 0.5     # an alternate frame must match the reference in at least half of its textured tiles
MIN_TEXTURED = 6      # fewer textured tiles than this: too little structure to judge overlap, trust the merge

PARAMS = (
    Param("reference", "int", -1, "index of the reference frame (0 = first); -1 picks the sharpest frame",
          min=-1, max=999, title="Reference frame", advanced=True),
    Param("strength", "float", 1.0, "temporal merge strength: 0 keeps the reference alone, 1 merges what agrees "
          "within the measured noise, higher merges more (and risks ghosts)", unit="ratio", min=0.0, max=4.0,
          step=0.1),
    Param("tile", "choice", "16", "merge tile side: 16 follows local motion and fine detail more closely "
          "(measured 0.6 dB better on a detailed burst), 32 decides over larger areas", unit="px",
          choices=("16", "32"), advanced=True),
    Param("spatial", "float", 1.0, "spatial denoise of the merged frame, in units of its remaining noise; "
          "0 turns it off", unit="ratio", min=0.0, max=4.0, step=0.1, title="Spatial denoise"),
    Param("exposure", "float", 0.0, "brighten (or darken) the merged result by this many stops in linear light: "
          "a clean merge of a dark burst is what makes brightening it possible", unit="stops", min=-4.0,
          max=10.0, step=0.5),
    Param("noise_a", "float", None, "shot-noise gain a of the noise model variance = a·signal + b (linear light, "
          "signal 0..1); empty = measure it from the frames", unit="signal", min=0.0, max=1.0, optional=True,
          title="Noise a (shot)", advanced=True),
    Param("noise_b", "float", None, "read-noise variance b of the noise model variance = a·signal + b (linear "
          "light); empty = measure it from the frames", unit="signal²", min=0.0, max=1.0, optional=True,
          title="Noise b (read)", advanced=True),
)


def _check_frames(frames: List[np.ndarray]) -> None:
    if len(frames) < 2:
        raise UserError("burst denoise needs at least two frames of the same scene; got one", "bad-input")
    h, w = frames[0].shape[:2]
    for k, f in enumerate(frames[1:], start=1):
        if f.shape[:2] != (h, w):
            raise UserError(f"all frames must have the same size: frame 1 is {w}x{h} but frame {k + 1} is "
                            f"{f.shape[1]}x{f.shape[0]}", "size-mismatch")
    if min(h, w) < 32:
        raise UserError(f"frames of {w}x{h} are too small to align; burst denoise needs at least 32x32 pixels",
                        "bad-input")


def _value_range(frame: np.ndarray):
    """(min, max) of a frame's colour, through OpenCV's single pass (numpy's min and max take two)."""
    import cv2
    lo, hi = cv2.minMaxLoc(np.ascontiguousarray(frame[:, :, :3]).reshape(frame.shape[0], -1))[:2]
    return lo, hi


def _brightened(frame: np.ndarray, gain: float, value_range) -> np.ndarray:
    """The frame brightened by `gain` in linear light (what a mask leaves of the reference when exposure is set)."""
    from ...imaging.color import linear_to_srgb, srgb_to_linear
    out = frame.copy()
    out[:, :, :3] = np.clip(linear_to_srgb(srgb_to_linear(frame[:, :, :3]) * np.float32(gain)), *value_range)
    return out


def run(inputs: Dict[str, Any], params: Dict[str, Any], ctx: Context) -> Output:
    frames: List[np.ndarray] = list(inputs["frames"])
    _check_frames(frames)
    device = ctx.torch_device()
    job = ctx.job
    n = len(frames)

    ref = params["reference"]
    if ref >= n:
        raise UserError(f"reference frame {ref} does not exist: the burst has {n} frames (0..{n - 1})",
                        "bad-parameter")
    lumas = None
    if ref < 0:
        lumas = cpu_map(align.alignment_luma, frames, device)
        ref, _ = reference.sharpest(lumas)
    job.progress(0.03, f"reference frame {ref}")

    ref_luma = (lumas[ref] if lumas else align.alignment_luma(frames[ref])).to(device)
    aligner = align.Aligner(ref_luma)
    alts = [k for k in range(n) if k != ref]
    measure = params["noise_a"] is None or params["noise_b"] is None
    picks = noise.burst_picks(n, ref) if measure else []
    # The result stays within the frames' own range, widened to [0, 1] (float frames may hold HDR values). Frames
    # with nothing below 0 or above 1 are clipped there (every camera export is): the noise fit and the merge
    # model that clipping; float frames reaching beyond are not clipped on that side.
    ranges = cpu_map(_value_range, frames, device)
    value_range = (min(0.0, min(r[0] for r in ranges)), max(1.0, max(r[1] for r in ranges)))
    lo = 0.0 if value_range[0] >= 0.0 else None
    hi = 1.0 if value_range[1] <= 1.0 else None

    # Measuring the noise and aligning the frames are independent pieces of work: one pool balances them (the
    # longer alignments first).
    def piece(task):
        kind, k = task
        if kind == "noise":
            return noise.estimate_image(frames[k], lo=lo, hi=hi)
        return aligner.align((lumas[k] if lumas else align.alignment_luma(frames[k])).to(device))

    tasks = [("align", k) for k in alts] + [("noise", k) for k in picks]
    results = cpu_map(piece, tasks, device, job.sub(0.03, 0.35), "measuring noise, aligning frames")
    measured = noise.combine(results[len(alts):]) if measure else noise.NoiseModel(0.0, 0.0)
    model = noise.NoiseModel(measured.a if params["noise_a"] is None else params["noise_a"],
                             max(measured.b if params["noise_b"] is None else params["noise_b"], noise.MIN_VARIANCE))

    motions: List[Any] = [None] * n
    for k, motion in zip(alts, results[:len(alts)]):
        if motion.textured >= MIN_TEXTURED and motion.matched < MIN_MATCHED:
            raise UserError(f"frame {k + 1} of {n} (index {k}) does not overlap the reference frame (index "
                            f"{ref}): only {motion.matched:.0%} of its detail matches; remove it from the burst",
                            "no-overlap")
        motions[k] = motion
    lumas = None  # the frames' lumas are not needed by the merge

    # The merge's estimate of each pixel's clipped mean goes back to the scene (clipping.py). Strength 0 with no
    # spatial step pools nothing: the reference itself, a single sample, with no mean to invert.
    pooled = params["strength"] > 0 or params["spatial"] > 0
    unclip = clipping.Unclipper.build(model, lo, hi) if pooled else None
    gain = float(2.0 ** params["exposure"])
    image, accepted = merge.merge(frames, ref, motions, model, tile=int(params["tile"]),
                                  strength=params["strength"], spatial=params["spatial"], device=device,
                                  job=job.sub(0.35, 1.0), value_range=value_range, unclip=unclip,
                                  gain=gain)
    info = {"reference_index": int(ref), "noise_a": float(model.a), "noise_b": float(model.b),
            "frames": n, "accepted": round(accepted, 3),
            "matched": [None if m is None else round(m.matched, 3) for m in motions]}
    base = frames[ref] if gain == 1.0 else _brightened(frames[ref], gain, value_range)
    return Output(image, base=base, info=info)


register(Operator(
    name="denoise",
    title="Burst Denoise",
    help="align a hand-held burst and merge it into one clean frame with the sharpness of the reference, "
         "without ghosts from moving subjects",
    inputs=(Input("frames", "frames", "the burst: two or more frames of the same scene, same size"),),
    params=PARAMS,
    run=run,
    demo=synth.demo,
    order=10,
))
