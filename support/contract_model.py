"""A small Keras model with the course's outside (224x224x3 in, three sigmoids out), for tests
and benchmarks that need a real model file but not the course's 65 MB VGG16.

    python -m support.contract_model out.keras
"""

from __future__ import annotations

import sys
from pathlib import Path


def build_contract_model(path: str | Path, seed: int = 0):
    """Its convolutions cost about 5 ms per image on this 2-core machine, enough for a few
    concurrent requests to keep it busy, so load tests load the model and not only the image
    decoders."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Rescaling(1 / 128)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(4)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.save(path)
    return model


if __name__ == "__main__":
    build_contract_model(sys.argv[1])
