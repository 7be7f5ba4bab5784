"""Burst denoise: measured quality against ground truth, the stages on their own, and every user error path."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from core import registry
from core.errors import Cancelled, UserError
from core.imaging.io import read_image, write_image
from core.jobs import Job
from core.operators.denoise import align, noise
from tests import scenes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = 3  # the OpenCV peer needs a reference with 3 frames either side (temporal window 7)
# What the merge gave on the hand-held burst before the merge estimated the scene under clipping (issue 21): it
# may not fall more than 0.2 dB below these (static area, moving object).
BEFORE_UNCLIPPING_DB = {"static": 33.89, "object": 32.25}
REGRESSION_DB = 0.2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch's thread pool spins badly on a shared, loaded CPU; one thread is faster and deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hand_held():
    """8 frames of the astronaut's face (256×256 at native resolution): shifts ±8 px, roll ±1°, a moving disc,
    Poisson-Gaussian noise σ 0.05 at mid grey."""
    clean = scenes.portrait()[60:316, 128:384].copy()
    return scenes.burst(clean, n=8, seed=1)


@pytest.fixture(scope="module")
def merged(hand_held):
    return registry.run("denoise", {"frames": hand_held.frames}, {"reference": REF})


def test_static_areas_gain_over_7_db(hand_held, merged):
    truth, single = hand_held.truths[REF], hand_held.frames[REF]
    before = scenes.psnr(single, truth, where=hand_held.static_mask)
    after = scenes.psnr(merged.image, truth, where=hand_held.static_mask)
    assert after >= before + 7.0, (before, after)  # measured: 25.2 -> 34.5 dB
    assert after >= BEFORE_UNCLIPPING_DB["static"] - REGRESSION_DB, after


def test_moving_object_has_no_ghost(hand_held, merged):
    obj = hand_held.object_masks[REF]
    truth, single = hand_held.truths[REF], hand_held.frames[REF]
    before = scenes.psnr(single, truth, where=obj)
    after = scenes.psnr(merged.image, truth, where=obj)
    assert after >= before, (before, after)  # measured: 23.5 -> 32.1 dB
    assert after >= BEFORE_UNCLIPPING_DB["object"] - REGRESSION_DB, after
    # A ghost would be the object's copies from the other frames: where the disc was elsewhere but is not in
    # the reference, the result must still be the background (fewer frames see it there, so the gain is smaller).
    elsewhere = np.any(np.stack(hand_held.object_masks), axis=0) & ~obj
    before = scenes.psnr(single, truth, where=elsewhere)
    after = scenes.psnr(merged.image, truth, where=elsewhere)
    assert after >= before + 2.0, (before, after)  # measured: 25.4 -> 29.1 dB


def test_beats_opencv_multi_frame_nl_means(hand_held, merged):
    import cv2
    truth = hand_held.truths[REF]
    u8 = [np.ascontiguousarray(np.round(f * 255).astype(np.uint8)) for f in hand_held.frames]
    # The peer gets its best filter strength of two (measured best of 8..25 was the lowest).
    peer = max(scenes.psnr(cv2.fastNlMeansDenoisingColoredMulti(u8, REF, 7, None, h, h, 7, 21) / 255.0, truth)
               for h in (6, 9))
    ours = scenes.psnr(merged.image, truth)
    assert ours > peer + 2.0, (ours, peer)  # measured: 33.6 vs 28.1 dB (h = 9)


def test_output_keeps_reference_geometry_and_reports(hand_held, merged):
    assert merged.image.shape == hand_held.frames[REF].shape
    assert merged.info["reference_index"] == REF
    assert merged.base is hand_held.frames[REF] or np.array_equal(merged.base, hand_held.frames[REF])
    assert abs(merged.info["noise_a"] - hand_held.noise_a) < 0.15 * hand_held.noise_a


def test_noise_model_is_measured_from_one_frame(hand_held):
    m = noise.estimate_image(hand_held.frames[0])
    assert abs(m.a - hand_held.noise_a) / hand_held.noise_a < 0.15, m
    # Read noise only: a flat grey field gives b with a ≈ 0.
    rng = np.random.default_rng(3)
    flat = np.full((128, 128, 3), 0.3, np.float32) + rng.standard_normal((128, 128, 3)).astype(np.float32) * 0.01
    from core.imaging.color import linear_to_srgb
    m = noise.estimate_image(linear_to_srgb(flat))
    assert abs(np.sqrt(m.a * 0.3 + m.b) - 0.01) < 0.0015, m


def test_alignment_follows_shift_and_roll_to_sub_pixel(hand_held):
    import cv2
    h, w = hand_held.frames[0].shape[:2]
    aligner = align.Aligner(align.alignment_luma(hand_held.frames[0]))
    errors = []
    for k in (1, 4, 6):
        motion = aligner.align(align.alignment_luma(hand_held.frames[k]))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), hand_held.angles_deg[k], 1.0)
        m[:, 2] += hand_held.shifts_px[k]
        ny, nx = motion.flow.shape[1:]
        cx, cy = np.meshgrid(np.arange(nx) * motion.tile + motion.tile / 2 - 0.5,
                             np.arange(ny) * motion.tile + motion.tile / 2 - 0.5)
        tx = m[0, 0] * cx + m[0, 1] * cy + m[0, 2] - cx
        ty = m[1, 0] * cx + m[1, 1] * cy + m[1, 2] - cy
        err = np.hypot(motion.flow[0].numpy() - tx, motion.flow[1].numpy() - ty)
        centres = hand_held.static_mask[(cy + 0.5).astype(int), (cx + 0.5).astype(int)]
        errors.append(err[centres])
        assert motion.matched > 0.8
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.4, np.median(errors)  # measured 0.32 px (tile centres, static areas)
    assert np.percentile(errors, 80) < 1.0


def test_strength_zero_returns_the_reference(hand_held):
    frames = [f[:96, :96].copy() for f in hand_held.frames[:3]]
    out = registry.run("denoise", {"frames": frames}, {"reference": 1, "strength": 0, "spatial": 0})
    np.testing.assert_allclose(out.image, frames[1], atol=1e-4)


def test_sharpest_frame_is_the_default_reference(hand_held):
    import cv2
    frames = [cv2.GaussianBlur(f[:128, :128], (0, 0), 1.5) for f in hand_held.frames[:4]]
    frames[2] = hand_held.frames[2][:128, :128].copy()
    out = registry.run("denoise", {"frames": frames}, {})
    assert out.info["reference_index"] == 2


def test_alpha_comes_from_the_reference_and_seed_is_deterministic(hand_held):
    frames = []
    for k in range(3):
        a = np.full((96, 96, 1), 0.2 + 0.3 * k, np.float32)
        frames.append(np.concatenate([hand_held.frames[k][:96, :96], a], axis=2))
    one = registry.run("denoise", {"frames": frames}, {"reference": 2})
    two = registry.run("denoise", {"frames": frames}, {"reference": 2})
    assert one.image.shape == (96, 96, 4)
    np.testing.assert_array_equal(one.image[:, :, 3], frames[2][:, :, 3])
    assert one.image.tobytes() == two.image.tobytes()


def test_noise_override_is_used(hand_held):
    frames = [f[:96, :96].copy() for f in hand_held.frames[:3]]
    out = registry.run("denoise", {"frames": frames}, {"noise_a": 0.02, "noise_b": 0.0001, "reference": 0})
    assert out.info["noise_a"] == 0.02 and out.info["noise_b"] == 0.0001


def test_cancel_stops_the_work(hand_held):
    job = Job()
    job.cancel()
    with pytest.raises(Cancelled):
        registry.run("denoise", {"frames": hand_held.frames[:2]}, {}, job=job)


@pytest.mark.parametrize("case", ["single", "sizes", "reference", "tiny"])
def test_user_errors_in_process(case):
    f = scenes.texture(64, 64, seed=1)
    frames = {"single": [f], "sizes": [f, f[:60]], "reference": [f, f], "tiny": [f[:20, :20], f[:20, :20]]}[case]
    params = {"reference": 5} if case == "reference" else {}
    with pytest.raises(UserError):
        registry.run("denoise", {"frames": frames}, params)


def _cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", AI_PORTRAIT_DEVICE="cpu", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "core", "denoise", *args, "-q"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _frames_on_disk(tmp_path, frames):
    paths = []
    for k, f in enumerate(frames):
        p = tmp_path / f"frame{k}.png"
        write_image(str(p), f, "u16")
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("case", ["sizes", "single", "no_overlap"])
def test_cli_errors_exit_2_and_write_nothing(tmp_path, case):
    portrait = scenes.portrait()
    a = portrait[100:196, 160:256].copy()      # the face
    b = portrait[380:476, 40:136].copy()       # the suit, far below: no pixel in common
    frames = {"sizes": [a, a[:80, :90]],
              "single": [a],
              "no_overlap": [a, b, a]}[case]
    out = tmp_path / "out.png"
    res = _cli(*_frames_on_disk(tmp_path, frames), "-o", str(out))
    assert res.returncode == 2, res.stderr
    assert "error:" in res.stderr and "Traceback" not in res.stderr
    assert {"sizes": "same size", "single": "two frames", "no_overlap": "does not overlap"}[case] in res.stderr
    assert not out.exists()


def test_cli_writes_same_size_and_depth(tmp_path, hand_held):
    frames = [f[:96, :128].copy() for f in hand_held.frames[:4]]
    out = tmp_path / "out.png"
    res = _cli(*_frames_on_disk(tmp_path, frames), "-o", str(out), "--reference", "1", "--tile", "32")
    assert res.returncode == 0, res.stderr
    img = read_image(str(out))
    assert img.depth == "u16" and img.pixels.shape == (96, 128, 3)
    truth = hand_held.truths[1][:96, :128]
    assert scenes.psnr(img.pixels, truth) > scenes.psnr(frames[1], truth) + 3.0


def test_demo_synthesises_a_burst_that_denoises():
    op = registry.get("denoise")
    clean = scenes.portrait()[100:228, 160:288].copy()
    inputs, params = op.demo(clean, 0)
    assert len(inputs["frames"]) >= 4
    out = registry.run("denoise", inputs, params, seed=0)
    assert out.image.shape == clean.shape
    # The reference may be any frame (they are equally sharp), so judge by the noise left: measured a drops.
    before = noise.estimate_image(inputs["frames"][out.info["reference_index"]])
    after = noise.estimate_image(out.image)
    assert after.a < before.a / 3, (before, after)


def test_mask_falls_back_to_the_reference_frame(hand_held):
    frames = [f[:96, :96].copy() for f in hand_held.frames[:3]]
    mask = np.zeros((96, 96, 1), np.float32)
    mask[:, 48:] = 1.0
    out = registry.run("denoise", {"frames": frames}, {"reference": 2}, mask=mask)
    np.testing.assert_array_equal(out.image[:, :48], frames[2][:, :48])   # bit-identical outside the mask
    assert not np.array_equal(out.image[:, 48:], frames[2][:, 48:])


def test_result_stays_within_the_frames_range_near_black():
    """Noise around black must not produce negative values the frames themselves could not hold."""
    rng = np.random.default_rng(4)
    dark = np.full((64, 64, 3), 0.02, np.float32)
    frames = [np.clip(dark + rng.normal(0, 0.05, dark.shape).astype(np.float32), 0, 1) for _ in range(4)]
    out = registry.run("denoise", {"frames": frames}, seed=0).image
    assert out.min() >= 0.0 and out.max() <= 1.0
    # and it still denoises: closer to the true level than the reference frame
    ref = frames[0]
    assert np.abs(out - 0.02).mean() < 0.6 * np.abs(ref - 0.02).mean()


def test_noise_model_holds_in_a_dark_room():
    """Nearly every block of a dark frame sits within a few σ of black, where clipping at 0 hides part of the
    noise. The shot noise must still be found, and the merge with the measured model must be as good as with the
    true one. Measured: a within 1 %, 37.33 dB against 37.37 with the true model (before the merge inverted the
    clipped mean, issue 21: 34.22 and 34.29); before the clipping correction of the fit, a = 0 and 33.10 dB."""
    from core.imaging.color import linear_to_srgb, srgb_to_linear
    from core.operators.denoise import synth
    clean = scenes.portrait()[60:316, 128:384]
    dark = linear_to_srgb(srgb_to_linear(clean) * 0.06)            # 6 % of a normal exposure
    read = 0.005
    frames = synth.hand_held_burst(dark, 8, seed=3, shift_px=8.0, roll_deg=1.0, sigma_mid_grey=0.05,
                                   read_sigma=read)
    a_true = (0.05 ** 2 - read ** 2) / float(srgb_to_linear(np.float32(0.5)))
    m = noise.estimate_burst(frames, 0)
    assert abs(m.a - a_true) / a_true < 0.15, (m, a_true)
    measured = registry.run("denoise", {"frames": frames}, {"reference": 0}).image
    true = registry.run("denoise", {"frames": frames}, {"reference": 0, "noise_a": a_true,
                                                        "noise_b": read ** 2}).image
    single = scenes.psnr(frames[0], dark)
    got, best = scenes.psnr(measured, dark), scenes.psnr(true, dark)
    assert got > best - 0.5 and got > single + 6.0, (single, got, best)
