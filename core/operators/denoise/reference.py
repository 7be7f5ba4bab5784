"""Pick the sharpest frame of a burst as the merge reference.

Sharpness is the energy of the Laplacian on the half-resolution luma: the 2×2 average tames the noise (which is
the same in every frame and so does not change the ranking) while hand-shake blur lowers the energy directly.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F


def sharpness(luma: torch.Tensor) -> float:
    h, w = luma.shape
    half = F.avg_pool2d(luma[None, None, : h // 2 * 2, : w // 2 * 2], 2)
    k = half.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    lap = F.conv2d(half, k)
    return float((lap * lap).mean())


def sharpest(lumas: Sequence[torch.Tensor]) -> Tuple[int, List[float]]:
    """Index of the sharpest frame (the first on ties) and every frame's score."""
    scores = [sharpness(l) for l in lumas]
    return max(range(len(scores)), key=lambda k: (scores[k], -k)), scores
