"""How tests/data/mediapipe_litert_reference.npz was made (run once, outside the project's environment).

    python3.11 -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert==2.3.0 scikit-image
    unzip mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl 'mediapipe/modules/*' -d /tmp/mp
    /tmp/litert/bin/python tests/data/make_litert_reference.py /tmp/mp

Inputs are exact slices of scikit-image's astronaut (no resampling), so the test rebuilds them bit for bit.
Google's LiteRT interpreter runs MediaPipe's own .tflite files; test_face_real compares our torch networks.
"""
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from skimage import data

root = sys.argv[1].rstrip("/") + "/mediapipe/modules/"
a = data.astronaut()
inputs = {
    "blazeface": ("face_detection/face_detection_short_range.tflite", a[::4, ::4].astype(np.float32) / 127.5 - 1.0),
    "facemesh": ("face_landmark/face_landmark.tflite", a[40:232, 130:322].astype(np.float32) / 255.0),
    "iris": ("iris_landmark/iris_landmark.tflite", a[69:133, 172:236].astype(np.float32) / 255.0),
}
out = {}
for key, (path, x) in inputs.items():
    it = Interpreter(model_path=root + path)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x[None])
    it.invoke()
    for i, o in enumerate(it.get_output_details()):
        out[f"{key}_{i}"] = it.get_tensor(o["index"]).astype(np.float32)
np.savez_compressed("tests/data/mediapipe_litert_reference.npz", **out)
