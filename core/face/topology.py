"""Named landmark groups of MediaPipe's 468-point face mesh (its canonical topology), as ordered index lists.

Conventions:
- "Right" and "left" are the subject's, as in MediaPipe: RIGHT_* lies on the image's left for a frontal face.
- A *contour* is an ordered closed loop, usable as a polygon (FACE_OVAL, LIPS_*, *_EYE, *_BROW, NOSE_BASE,
  *_CHEEK). A *line* is an ordered open polyline (the lids, JAW_LINE, the nasolabial folds); its order is stated.
- Pairs are (subject's right, subject's left).

The groups beyond MediaPipe's own contours (lids, cheeks, jaw line, nasolabial folds) were chosen on the mesh and
checked against the real network's landmarks on scikit-image's astronaut (tests/test_face_real.py): lids between
the eye corners with the upper above the lower, cheeks below the eyes and beside the nose inside the face oval,
the jaw along the oval's lowest stretch, the folds from beside the nostril wing to below and outside the mouth
corner, where the astronaut's smile lines are.
"""
from __future__ import annotations

NOSE_TIP = 1
FOREHEAD_TOP = 10        # top of the face oval, on the midline (about the hairline)
CHIN = 152               # bottom of the face oval, on the midline

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

# Mouth corners (outer lip contour's ends): (subject's right, subject's left). Inner corners: 78, 308.
MOUTH_CORNERS = (61, 291)

# Lids: lines along the eye contour's edge from the outer corner to the inner corner, both corners included
# (the two halves of RIGHT_EYE / LEFT_EYE). In the image, y down: the upper lid lies above the lower one.
RIGHT_UPPER_LID = [33, 246, 161, 160, 159, 158, 157, 173, 133]
RIGHT_LOWER_LID = [33, 7, 163, 144, 145, 153, 154, 155, 133]
LEFT_UPPER_LID = [263, 466, 388, 387, 386, 385, 384, 398, 362]
LEFT_LOWER_LID = [263, 249, 390, 373, 374, 380, 381, 382, 362]

# Cheeks: closed polygons below the lower lid (a ring under the orbit rim), beside the nose, outside the
# nasolabial fold and inside the face oval. Order: under the eye from outer to inner, down the side of the nose,
# along the nasolabial fold, then back up the outer cheek. The left one is the right one's mirror, point by point.
RIGHT_CHEEK = [116, 117, 118, 119, 100, 142, 203, 206, 216, 207, 187, 147, 123]
LEFT_CHEEK = [345, 346, 347, 348, 329, 371, 423, 426, 436, 427, 411, 376, 352]

# Jaw line: the lower stretch of FACE_OVAL (walked against the oval's order), from below the subject's right
# ear over the chin to below the left ear.
JAW_LINE = [132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361]

# Nasolabial folds: lines from beside the nostril wing (the alar-facial groove) down to below and outside the
# mouth corner, one per side.
RIGHT_NASOLABIAL = [203, 206, 216, 212]
LEFT_NASOLABIAL = [423, 426, 436, 432]

# Every named group, for looking one up by name (e.g. from a parameter) and for the tests.
GROUPS = {
    "face_oval": FACE_OVAL, "lips_outer": LIPS_OUTER, "lips_inner": LIPS_INNER,
    "right_eye": RIGHT_EYE, "left_eye": LEFT_EYE, "right_brow": RIGHT_BROW, "left_brow": LEFT_BROW,
    "nose_base": NOSE_BASE, "mouth_corners": list(MOUTH_CORNERS),
    "right_upper_lid": RIGHT_UPPER_LID, "right_lower_lid": RIGHT_LOWER_LID,
    "left_upper_lid": LEFT_UPPER_LID, "left_lower_lid": LEFT_LOWER_LID,
    "right_cheek": RIGHT_CHEEK, "left_cheek": LEFT_CHEEK, "jaw_line": JAW_LINE,
    "right_nasolabial": RIGHT_NASOLABIAL, "left_nasolabial": LEFT_NASOLABIAL,
}
