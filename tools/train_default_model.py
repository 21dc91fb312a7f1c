"""Train the embedded default model the course's way: a frozen ImageNet backbone, a small dense
head with three sigmoid outputs (Cat, Dog, Other), fit on the course's labelled photos.

    python -m tools.convert_lite0 /tmp/lite0.keras                       # needs torch, once
    python -m tools.train_default_model /tmp/lite0.keras ../shared/data/cats-dogs-other \\
        predictor/default_model/cats-dogs-other-lite0.keras

Every photo is preprocessed exactly as the predictor serves it (`predictor.imaging`: nearest
resize of the whole image, RGB minus the course's means); inside, the model adds the means back
and rescales as Lite0 expects, (x - 127) / 128. Accuracy is estimated honestly first: 5-fold
cross-validation, folds split by source document (a photo's file name starts with its
document's id) so no document has photos on both sides, no photo scored by a head that saw it.
Then the head is fit on all photos and the whole model saved. Seeded: a rerun gives the same
folds, the same figures and the same weights.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from predictor.contract import CHANNEL_MEANS, LABELS
from predictor.imaging import ImageLimits, decode_image
from tools.scoring import report

SEED = 20261127
FOLDS = 5
EPOCHS = 300


def load_photos(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(contract tensors, label indices, document ids) of a `labels.csv` + `images/` folder."""
    names = {label.lower(): index for index, label in enumerate(LABELS)}
    tensors, labels, documents = [], [], []
    with open(folder / "labels.csv", newline="") as file:
        for row in csv.DictReader(file):
            data = (folder / "images" / row["file"]).read_bytes()
            tensors.append(decode_image(data, ImageLimits()))
            labels.append(names[row["label"].strip().lower()])
            documents.append(row["file"].split("_page")[0])
    return np.stack(tensors), np.asarray(labels), documents


def document_folds(documents: list[str], folds: int, seed: int) -> np.ndarray:
    """The fold of each photo: whole documents shuffled and dealt round-robin."""
    unique = sorted(set(documents))
    np.random.default_rng(seed).shuffle(unique)
    fold_of = {document: n % folds for n, document in enumerate(unique)}
    return np.asarray([fold_of[document] for document in documents])


def front(backbone):
    """Contract tensor in, Lite0's pooled features out: the model minus its head."""
    import keras

    means = np.asarray(CHANNEL_MEANS, dtype=np.float32)
    inputs = keras.Input((224, 224, 3), name="image_minus_course_means")
    rescaled = keras.layers.Normalization(
        mean=127.0 - means, variance=np.full(3, 128.0**2), name="lite0_rescaling"
    )(inputs)
    backbone.trainable = False
    return keras.Model(inputs, backbone(rescaled, training=False), name="frozen_front")


def head(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((1280,)),
            keras.layers.Dropout(0.2, seed=seed),
            keras.layers.Dense(len(LABELS), activation="sigmoid", name="cats_dogs_other"),
        ],
        name="head",
    )


def fit_head(features: np.ndarray, labels: np.ndarray, seed: int):
    import keras

    model = head(seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    targets = np.eye(len(LABELS), dtype=np.float32)[labels]
    model.fit(features, targets, epochs=EPOCHS, batch_size=16, shuffle=True, verbose=0)
    return model


def main(backbone_path: str, photos: str, out: str) -> None:
    import keras

    keras.utils.set_random_seed(SEED)
    tensors, labels, documents = load_photos(Path(photos))
    frozen = front(keras.models.load_model(backbone_path))
    features = frozen.predict(tensors, batch_size=16, verbose=0)

    folds = document_folds(documents, FOLDS, SEED)
    predicted = np.empty_like(labels)
    for fold in range(FOLDS):
        held_out = folds == fold
        model = fit_head(features[~held_out], labels[~held_out], SEED + fold)
        predicted[held_out] = model.predict(features[held_out], verbose=0).argmax(axis=1)
    print(f"{FOLDS}-fold cross-validation by document, {len(labels)} photos:")
    print(report(labels, predicted))

    final_head = fit_head(features, labels, SEED)
    inputs = keras.Input((224, 224, 3), name="image_minus_course_means")
    outputs = final_head(frozen(inputs))
    model = keras.Model(inputs, outputs, name="cats_dogs_other_lite0")
    trained = model.predict(tensors, batch_size=16, verbose=0).argmax(axis=1)
    print(f"fit on all photos, scored on them (not an estimate): {np.mean(trained == labels):.1%}")
    model.save(out)
    print(f"saved {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
