"""`python -m core mask IMAGE --region skin|person|face|eyes|lips|brows|nostrils -o MASK.png` writes a soft
mask (white = region) at the image's full resolution."""
import sys

from . import command

REGIONS = ("skin", "person", "face", "eyes", "lips", "brows", "nostrils")


def _setup(ap):
    ap.add_argument("image", metavar="IMAGE", help="image file (.png, .jpg, .tif, .npy)")
    ap.add_argument("--region", required=True, choices=REGIONS, help="which region to select")
    ap.add_argument("-o", "--output", required=True, metavar="MASK", help="mask file (.png 16-bit, .tif, .npy)")
    ap.add_argument("--device", default=None, help="compute device (auto, cpu, cuda, mps)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")


def _run(args) -> int:
    from .. import face
    from ..errors import UserError
    from ..imaging.io import output_depth, read_image, write_image

    depth = output_depth(args.output, "u16")  # refuse an unwritable format before any work
    if args.device:
        from ..device import select_device
        select_device(args.device)  # refuse an unknown or absent device before any work
    img = read_image(args.image)
    faces = None
    if args.region != "person":
        faces = face.detect_faces(img.pixels, device=args.device)
        if not faces:
            raise UserError(f"no face found in {args.image}: the '{args.region}' region needs a face "
                            f"(try --region person)", "no-face")
    mask = face.region_mask(img.pixels, args.region, faces, device=args.device)
    written = write_image(args.output, mask[:, :, None], depth)
    if not args.quiet:
        n = "" if faces is None else f", {len(faces)} face(s)"
        sys.stderr.write(f"mask: wrote {args.output} ({written}; {args.region}, covers "
                         f"{100 * float(mask.mean()):.1f} %{n})\n")
    return 0


command("mask", "soft mask of a region (skin, person, face, eyes, lips, brows, nostrils) as an image", _setup, _run)
