"""`python -m core faces IMAGE` prints the faces found as JSON (box, score, key points, 468 landmarks, irises)."""
import json
import sys

from . import command


def _setup(ap):
    ap.add_argument("image", metavar="IMAGE", help="image file (.png, .jpg, .tif, .npy)")
    ap.add_argument("--min-score", type=float, default=0.5, help="detector confidence threshold, 0..1 (default 0.5)")
    ap.add_argument("--no-landmarks", action="store_true", help="boxes and key points only (faster)")
    ap.add_argument("--small-faces", type=int, default=1, metavar="LEVELS",
                    help="levels of half-size detector windows: 0 = faces over ~1/6 of the long side, 1 (default)"
                         " = over ~1/12, each further level halves that (4× the detector runs)")
    ap.add_argument("--device", default=None, help="compute device (auto, cpu, cuda, mps)")
    ap.add_argument("-o", "--output", metavar="FILE.json", help="write the JSON here instead of stdout")


def _run(args) -> int:
    from .. import face
    from ..errors import UserError
    from ..imaging.io import read_image

    if not 0.0 <= args.min_score <= 1.0:
        raise UserError(f"--min-score must be between 0 and 1, got {args.min_score}", "bad-parameter")
    if args.device:
        from ..device import select_device
        select_device(args.device)  # refuse an unknown or absent device before any work
    img = read_image(args.image)
    if not 0 <= args.small_faces <= 4:
        raise UserError(f"--small-faces must be between 0 and 4, got {args.small_faces}", "bad-parameter")
    faces = face.detect_faces(img.pixels, min_score=args.min_score, landmarks=not args.no_landmarks,
                              tile_levels=args.small_faces, device=args.device)
    doc = {"image": args.image, "width": img.size[0], "height": img.size[1],
           "coordinates": "pixels, origin top-left, x right, y down; landmark z in pixels, positive toward "
                          "the camera; key points: right eye, left eye, nose tip, mouth, right ear, left ear "
                          "(the subject's right and left)",
           "faces": [f.as_json() for f in faces]}
    text = json.dumps(doc, separators=(",", ":") if not args.output else (", ", ": "))
    if args.output:
        from pathlib import Path

        from ..imaging.io import write_bytes_atomic
        write_bytes_atomic(Path(args.output), (text + "\n").encode())
    else:
        sys.stdout.write(text + "\n")
    return 0


command("faces", "find faces: JSON with box, score, key points and the 468 landmarks in pixels", _setup, _run)
