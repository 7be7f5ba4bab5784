"""Models: the store (`store.py`: manifest, sha256, huggingface_hub cache layout, safetensors only), the TFLite
reader and converter for MediaPipe's Apache-2.0 networks (`tflite.py`, `convert.py`, `mediapipe.py`), the
networks as plain torch modules (`blazeface.py`, `facemesh.py`, `selfie.py`). The face API is `core.face`."""
