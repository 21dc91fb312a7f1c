"""The model's contract with its users (../shared/CONTRACT.md), in one place.

Every part of the predictor that names a tensor, a label or a preprocessing constant imports it
from here, so the REST, gRPC and V1 paths cannot drift apart.
"""

from __future__ import annotations

MODEL_NAME = "cats-dogs-other"

LABELS: tuple[str, ...] = ("Cat", "Dog", "Other")

IMAGE_SIZE = (224, 224)  # (height, width), as keras.utils.load_img(target_size=...) takes it
CHANNELS = 3

# Per-channel means the course subtracts, RGB order. The course subtracts a Python list, so the
# subtraction happens in float64 and is rounded to float32 afterwards; imaging.py does the same.
CHANNEL_MEANS: tuple[float, float, float] = (123.68, 116.779, 103.939)

INPUT_IMAGE = "image"  # BYTES [N]: encoded image files
INPUT_PIXELS = "pixels"  # FP32 [N, 224, 224, 3]: already preprocessed
OUTPUT_PREDICTION = "prediction"  # BYTES [N]: the label
OUTPUT_VALUES = "values"  # FP32 [N, 3]: the three sigmoid outputs

PIXELS_SHAPE = (*IMAGE_SIZE, CHANNELS)


def input_types() -> list[dict]:
    """The inputs as `GET /v2/models/cats-dogs-other` declares them (-1: any batch size)."""
    return [
        {"name": INPUT_IMAGE, "datatype": "BYTES", "shape": [-1]},
        {"name": INPUT_PIXELS, "datatype": "FP32", "shape": [-1, *PIXELS_SHAPE]},
    ]


def output_types() -> list[dict]:
    """The outputs as `GET /v2/models/cats-dogs-other` declares them."""
    return [
        {"name": OUTPUT_PREDICTION, "datatype": "BYTES", "shape": [-1]},
        {"name": OUTPUT_VALUES, "datatype": "FP32", "shape": [-1, len(LABELS)]},
    ]


def label_of(values) -> str:
    """The prediction for one row of outputs: argmax, the first index winning a tie."""
    best = 0
    for index, value in enumerate(values):
        if value > values[best]:
            best = index
    return LABELS[best]
