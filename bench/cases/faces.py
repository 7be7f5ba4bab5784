"""Faces on a 12 MP portrait on the chosen device: detection + 468-point mesh (+ irises), the person mask and
the skin mask. The portrait is scikit-image's astronaut upscaled to 3000×3000 inside a 4000×3000 frame, so the
nose tip's true position is known (223, 130 in the original) and reported as an error in original pixels."""
import numpy as np

from bench.runner import Case


def _portrait(quick):
    import cv2
    from skimage import data

    side = 750 if quick else 3000
    img = cv2.resize(data.astronaut().astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = side // 6
    frame = cv2.copyMakeBorder(np.clip(img, 0, 1), 0, 0, pad, pad, cv2.BORDER_REPLICATE)
    scale = side / 512.0
    return frame, np.array([pad + 223 * scale, 130 * scale]), scale


def cases(quick: bool):
    from core import face
    from core.device import select_device

    if not (face.available() and face.available((face.SELFIE,))):
        print("faces: MediaPipe weights not installed (python -m core models fetch all); skipped")
        return []
    img, nose, scale = _portrait(quick)
    device = str(select_device())
    face.detect_faces(img[:256, :256], device=device)  # load the networks once: the worker keeps them warm
    face.person_mask(img[:64, :64], device=device)
    size = f"{img.shape[1]}x{img.shape[0]}"

    def nose_error(faces, _peer):
        if not faces:
            return {"faces": 0}
        err = float(np.hypot(*(faces[0].landmarks[1, :2] - nose))) / scale
        return {"faces": len(faces), "score": float(faces[0].score), "nose_err_px_at_512": err}

    faces = face.detect_faces(img, device=device)
    return [
        Case("faces", "detect + mesh + iris (whole view + 1 window level)", size,
             lambda: face.detect_faces(img, device=device), device=device, quality=nose_error, repeat=3),
        Case("faces", "detect + mesh + iris (whole view only)", size,
             lambda: face.detect_faces(img, tile_levels=0, device=device), device=device, quality=nose_error,
             repeat=3),
        Case("faces", "detect only, no mesh (whole view only)", size,
             lambda: face.detect_faces(img, landmarks=False, tile_levels=0, device=device),
             device=device, repeat=3),
        Case("faces", "person mask (selfie + guided upsample)", size, lambda: face.person_mask(img, device=device),
             device=device, repeat=2),
        Case("faces", "skin mask from a given mesh", size, lambda: face.region_mask(img, "skin", faces),
             device=device, repeat=2),
    ]
