"""The face service: faces, landmarks, region masks and the person mask, at the image's full resolution.

Rooms: `detection` (BlazeFace, weighted NMS, detector windows), `landmarks` (rotated crops, FaceMesh passes,
irises, face size), `regions` (region masks, skin likelihood, person mask), `topology` (named landmark groups of
the 468-point mesh), `networks` (the networks cached per device, the input check). The networks themselves and
the model store live in `core.models`.

Images are H×W×3 (or ×4, alpha ignored; grey repeated) float32 sRGB in [0, 1]. Coordinates are pixels, origin
top-left, x right, y down. Landmark z is in the same pixel scale as x and y, positive toward the camera.
"Right" and "left" are the subject's.

Every function that runs a network takes `device` (a torch.device, 'cpu', 'cuda', 'cuda:1', 'mps', or None for
`core.device.select_device`'s default): the caller's choice reaches the network loading, and networks are
cached per device.
"""
from . import topology
from .detection import MIN_PRESENCE, MIN_SCORE, NMS_IOU, Face, detect_faces, weighted_nms
from .landmarks import Roi, crop, face_landmarks, face_size, iris_landmarks
from .networks import DETECTOR, IRIS, MESH, SELFIE, available, clear_cache
from .regions import PERSON_GUIDE_SIDE, REGIONS, person_mask, region_mask, skin_likelihood

__all__ = ["Face", "detect_faces", "face_landmarks", "iris_landmarks", "region_mask", "person_mask",
           "face_size", "skin_likelihood", "available", "clear_cache", "weighted_nms", "Roi", "crop", "topology",
           "REGIONS", "DETECTOR", "MESH", "IRIS", "SELFIE", "MIN_SCORE", "MIN_PRESENCE", "NMS_IOU",
           "PERSON_GUIDE_SIDE"]
