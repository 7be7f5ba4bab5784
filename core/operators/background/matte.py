"""Matte: a rough subject mask refined to a soft alpha by closed-form matting on the band around its edge.

1. Trimap. The rough mask (a person segmentation or the user's mask, thresholded at 0.5) is eroded and dilated
   by the band's half-width b: pixels deeper than b inside are foreground (alpha 1), farther than b outside are
   background (alpha 0), the band between them is unknown. The inner erosion must reach past any semi-transparent
   hair the rough mask swallowed: a known-foreground pixel that is really half background forces alpha 1 there,
   and the solver spreads that haze outward (measured on the synthetic strands: known foreground holding 3 % of
   the strands' alpha made the matte's alpha error 2.8× larger).
2. Closed-form matting (Levin, Lischinski & Weiss 2008) on the band at a working resolution (work_pixels: a
   sixteenth of the picture, 64 k to 160 k pixels): within every 3×3 window alpha is assumed an affine function
   of colour, alpha ≈ aᵀI + b, which gives the matting Laplacian L; the unknown alphas minimise αᵀLα with the
   known ones fixed, a sparse symmetric system L_U α_U = −R α_K solved by conjugate gradients with an
   incomplete-Cholesky preconditioner (pymatting's `cf_laplacian`, `ichol`, `cg`), on the band's bounding box.
   Colour is linear light: a pixel a strand covers by a fraction α mixes the light of hair and plate linearly
   (I = αF + (1−α)B), so the affine model holds there and not on sRGB-encoded values (measured on the synthetic
   strands: alpha SAD 0.08× / 0.09× the hard mask's in linear light, 0.14× / 0.13× on sRGB, at 256 / 512 px).
3. Foreground and background colours at the working resolution by pymatting's multi-level estimator
   (Germer et al. 2020): smooth F and B with I ≈ αF + (1−α)B, F extrapolated outward and B inward.

Everything here works on the working-resolution copy; `upsample` and `foreground` bring the results to full size.
"""
from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ...errors import UserError

WORK_PIXELS = 160_000      # most pixels the solve works on (about 400×400, a 12 MP picture's)
MIN_WORK_PIXELS = 65_536   # fewest (256×256): smaller pictures are solved at their own size
WORK_SHARE = 16            # otherwise a sixteenth of the picture's pixels (a 1 MP preview: 250×250, 0.2 s)
EPSILON = 1e-5             # Laplacian regulariser: 1e-6 scores 0.5-1.7 dB more on the synthetic strands but left the
                           # astronaut's dark hair 7 % transparent (sky through it); 1e-4 loses 4-6 dB
CG_RTOL = 1e-5             # relative residual: alpha within 3e-4 of pymatting's 1e-7, in 4-6 iterations
CG_MAXITER = 2000
ICHOL_FILL = 64            # non-zeros reserved per unknown for the incomplete Cholesky factor
JACOBI_MAXITER = 300       # iterations when only the diagonal preconditions (see _preconditioner)
CG_CHECK_EVERY = 25        # iterations between cancel checkpoints (each well under 0.1 s)
MIN_SUBJECT_FRACTION = 0.002   # a rough mask covering less of the frame than this holds no subject


@dataclass
class Trimap:
    fg: np.ndarray        # h×w bool, known foreground
    bg: np.ndarray        # h×w bool, known background
    band_px: int          # half-width of the unknown band at this resolution
    rough: np.ndarray     # h×w bool, the rough mask it came from

    @property
    def unknown(self) -> np.ndarray:
        return ~(self.fg | self.bg)


@dataclass
class WorkMatte:
    alpha: np.ndarray       # h×w float32 in [0, 1] at the working resolution
    lin: np.ndarray         # h×w×3 float32 the linear colours it was solved on
    fg: np.ndarray          # h×w×3 float32 linear foreground colour
    bg: np.ndarray          # h×w×3 float32 linear background colour (the old plate behind the subject)
    trimap: Trimap
    scale: float            # working size / full size
    unknown_pixels: int
    iterations: int


def work_pixels(h: int, w: int) -> int:
    """How many pixels the solve works on: a sixteenth of the picture, within [MIN_WORK_PIXELS, WORK_PIXELS].
    The colour-line upsampling brings back what is finer (on the synthetic strands the edge band's PSNR moved
    0.4 dB between 60 k and 200 k working pixels), while the solve's cost grows with the band's pixels."""
    return int(min(WORK_PIXELS, max(MIN_WORK_PIXELS, (h * w) // WORK_SHARE)))


def work_size(h: int, w: int, max_pixels: int):
    """(height, width, scale) of the working copy: the full size when it is small enough, else shrunk to about
    max_pixels keeping the aspect ratio."""
    s = min(1.0, math.sqrt(max_pixels / float(h * w)))
    if s >= 1.0:
        return h, w, 1.0
    return max(1, round(h * s)), max(1, round(w * s)), s


def _disc(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def make_trimap(rough: np.ndarray, band_px: int) -> Trimap:
    """Trimap from a binary h×w mask (bool or 0/1): erode and dilate by band_px (a disc)."""
    m = (np.asarray(rough) > 0.5).astype(np.uint8)
    b = max(1, int(band_px))
    fg = cv2.erode(m, _disc(b), borderType=cv2.BORDER_REPLICATE) > 0
    bg = cv2.dilate(m, _disc(b), borderType=cv2.BORDER_REPLICATE) == 0
    return Trimap(fg, bg, b, m > 0)


def check_subject(rough: np.ndarray, where: str) -> None:
    frac = float(np.count_nonzero(rough)) / max(rough.size, 1)
    if frac < MIN_SUBJECT_FRACTION:
        raise UserError(f"no subject found: {where} is empty (give a subject mask with --subject-mask)",
                        "no-subject")
    if frac > 0.995:
        raise UserError(f"{where} covers the whole picture: there is no background to replace (give a subject "
                        f"mask with --subject-mask)", "no-subject")


def _pymatting():
    """pymatting, imported on first use: its numba kernels compile on the first import after installation
    (about 60 s of CPU) and load from numba's cache after that (about 1.5 s)."""
    import pymatting
    return pymatting


def solve_alpha(lin: np.ndarray, trimap: Trimap, progress=None) -> tuple[np.ndarray, int]:
    """Closed-form alpha (h×w float32) of linear RGB `lin` (h×w×3) for a trimap; also the CG iterations used.

    Only the bounding box of the unknown band (plus the 3×3 windows' reach) is solved; pixels outside it keep
    their known value."""
    unknown = trimap.unknown
    alpha = trimap.fg.astype(np.float32)
    if not unknown.any():
        return alpha, 0
    pm = _pymatting()
    ys, xs = np.nonzero(unknown)
    pad = 2
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, lin.shape[0])
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, lin.shape[1])
    img = np.clip(lin[y0:y1, x0:x1], 0.0, 1.0).astype(np.float64)
    fg, unk = trimap.fg[y0:y1, x0:x1], unknown[y0:y1, x0:x1]
    known = ~unk
    lap = pm.cf_laplacian(img, epsilon=EPSILON, radius=1, is_known=known)
    flat_u, flat_k = unk.ravel(), known.ravel()
    l_u = lap[flat_u, :][:, flat_u]
    rhs = -(lap[flat_u, :][:, flat_k] @ fg.ravel()[flat_k].astype(np.float64))
    n = int(flat_u.sum())
    # Start from the rough edge blurred across the band: CG then needs fewer iterations than from zero.
    sigma = max(trimap.band_px / 2.0, 0.5)
    guess = cv2.GaussianBlur(trimap.rough[y0:y1, x0:x1].astype(np.float32), (0, 0), sigma)
    x0v = guess.ravel()[flat_u].astype(np.float64)
    state = {"x": x0v, "it": 0}

    def callback(A, x, b, norm_b, r, norm_r):
        state["x"], state["it"] = x, state["it"] + 1
        if progress is not None and state["it"] % CG_CHECK_EVERY == 0:
            progress(min(0.95, state["it"] / 300.0), f"matte: {state['it']} iterations")

    # pymatting prints its preconditioner's retries to stdout, which is the worker's protocol channel.
    with contextlib.redirect_stdout(io.StringIO()):
        precond, limit = _preconditioner(pm, l_u, n)
        try:
            with np.errstate(all="ignore"):
                x = pm.cg(l_u, rhs, x0=x0v, rtol=CG_RTOL, maxiter=limit, M=precond, callback=callback)
        except ValueError:   # not converged within the limit: keep the last iterate
            x = state["x"]
    if not np.all(np.isfinite(x)):   # a breakdown (zero curvature) on a degenerate system: the rough edge
        x = x0v
    crop = alpha[y0:y1, x0:x1]
    crop[unk] = np.clip(x, 0.0, 1.0).astype(np.float32)
    return alpha, state["it"]


def _preconditioner(pm, l_u, n: int):
    """(preconditioner, iteration limit): incomplete Cholesky with room for ICHOL_FILL× the unknowns' count of
    non-zeros (a band's factor needs about 30×; pymatting's default reserves 4 GB whatever the size), or the
    Jacobi diagonal when that overflows (a scattered mask, whose factor fills in: then fewer, cheap iterations
    from the blurred rough mask, a smooth answer rather than a slow one)."""
    try:
        return pm.ichol(l_u.tocsc(), max_nnz=max(ICHOL_FILL * n, 1 << 16)), CG_MAXITER
    except ValueError:
        return pm.jacobi(l_u), JACOBI_MAXITER


def estimate_colours(lin: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, B): smooth foreground and background colours (h×w×3 float32, linear) with lin ≈ αF + (1−α)B,
    by pymatting's multi-level estimator."""
    pm = _pymatting()
    with _numba_threads():
        f, b = pm.estimate_foreground_ml(np.clip(lin, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32),
                                         return_background=True)
    return np.asarray(f, np.float32), np.asarray(b, np.float32)


@contextlib.contextmanager
def _numba_threads():
    """numba's parallel kernels on as many threads as the job's thread policy gives torch (core.device): on a
    busy machine its default, one per core, would spin against the host."""
    import numba
    import torch
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def work_matte(lin_full: np.ndarray, rough_full: np.ndarray, band_fraction: float, progress=None,
               max_pixels: Optional[int] = None) -> WorkMatte:
    """The matte at the working resolution. lin_full: H×W×3 linear RGB; rough_full: H×W in [0, 1] (> 0.5 is the
    subject); band_fraction: the unknown band's half-width as a fraction of the longer side."""
    h_full, w_full = rough_full.shape
    h, w, s = work_size(h_full, w_full, work_pixels(h_full, w_full) if max_pixels is None else max_pixels)
    if s < 1.0:
        lin = cv2.resize(lin_full, (w, h), interpolation=cv2.INTER_AREA)
        rough = cv2.resize(rough_full.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    else:
        lin, rough = lin_full, rough_full
    band = max(1, int(round(band_fraction * max(h, w))))
    tri = make_trimap(rough > 0.5, band)
    sub = (lambda f, m: progress(0.85 * f, m)) if progress is not None else None
    alpha, iterations = solve_alpha(lin, tri, sub)
    if progress is not None:
        progress(0.85, "matte: colours")
    f, b = estimate_colours(lin, alpha)
    return WorkMatte(alpha, lin, f, b, tri, s, int(tri.unknown.sum()), iterations)
