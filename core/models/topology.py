"""Named landmark index sets of MediaPipe's 468-point face mesh (its canonical topology).

Index conventions follow MediaPipe: "right" and "left" are the subject's, so RIGHT_EYE is on the image's left for
a frontal face. Each contour is an ordered closed loop usable as a polygon.
"""
from __future__ import annotations

NOSE_TIP = 1
FOREHEAD_TOP = 10
CHIN = 152

FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LIPS_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
LIPS_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
RIGHT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
LEFT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]

# Eye corners that define the iris model's eye crops (outer, inner) for each eye.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)

# Nose base: alar creases and subnasale, ordered around the lower nose (nostrils lie inside).
NOSE_BASE = [98, 64, 48, 115, 220, 45, 4, 275, 440, 344, 278, 294, 327, 326, 2, 97]
