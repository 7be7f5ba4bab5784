"""Tiling: a network-like local operator (three 3×3 convolutions, 16 channels inside) run tiled within a memory
budget versus on the whole image at once (the baseline). Reports time, peak memory and the largest difference."""
import numpy as np
import torch

from bench.runner import Case
from core.imaging.tiling import run_tiled, tile_for_budget


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 3, 3, padding=1)).eval()


def cases(quick: bool):
    net = _net()
    h, w = (1000, 1000) if quick else (3000, 4000)
    img = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)

    def apply(a):
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
            return net(t)[0].permute(1, 2, 0).numpy()

    # about 16 float32 channels × 3 live buffers per pixel inside the net; budget 256 MB
    tile = tile_for_budget(bytes_per_pixel=16 * 4 * 3, budget_bytes=256 * 2**20, halo=3)

    def tiled():
        return run_tiled(img, apply, tile=tile, overlap=8, halo=3)

    def quality(ours, whole):
        return {"tile_px": tile, "max_abs_diff": float(np.abs(ours - whole).max()) if whole is not None else -1.0}

    return [Case("tiling", "3-conv net, 256 MB budget", f"{w}x{h}", tiled, peer=lambda: apply(img),
                 peer_name="untiled", quality=quality)]
