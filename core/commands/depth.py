"""`python -m core depth IMAGE -o DEPTH.png`: the depth service's map as a picture (near = bright).

PNG and TIFF are written at 16 bits so hosts can show the map as a layer without banding; the source used
(network or portrait proxy) is printed on stdout.
"""
from __future__ import annotations

import sys

from . import command


def _setup(ap):
    from ..depth import METHODS
    from ..device import DEVICE_CHOICES

    ap.add_argument("image", metavar="IMAGE", help="the picture (.png, .jpg, .tif, .npy)")
    ap.add_argument("-o", "--output", required=True, metavar="DEPTH",
                    help="where to write the disparity map (grey, near = bright; 16-bit for .png/.tif)")
    ap.add_argument("--method", choices=METHODS, default="auto",
                    help="auto: the network when installed, else the portrait proxy (default auto)")
    ap.add_argument("--device", choices=DEVICE_CHOICES, default=None,
                    help="compute device for the network; default: $AI_PORTRAIT_DEVICE or auto")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _run(args) -> int:
    from .. import depth
    from ..cli import StderrProgress
    from ..imaging.io import output_depth, read_image, write_image
    from ..jobs import Job

    bits = output_depth(args.output, "u16")  # refuse an unwritable format before any work
    picture = read_image(args.image)
    pixels = picture.pixels
    if pixels.shape[2] < 3:  # grey (and grey + alpha) pictures: depth wants RGB
        pixels = pixels[:, :, :1].repeat(3, axis=2)
    result = depth.estimate(pixels[:, :, :3], Job(StderrProgress(args.quiet)), method=args.method,
                            device=args.device)
    written = write_image(args.output, result.disparity[:, :, None], bits)
    sys.stdout.write(f"depth: source={result.source}; wrote {args.output} ({written})\n")
    return 0


command("depth", "estimate a depth map (disparity, near = bright) for an image", _setup, _run)
