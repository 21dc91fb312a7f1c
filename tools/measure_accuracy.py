"""Measure a served model as its users would: every photo of a labelled folder through the
running service's V2 REST API, then accuracy, per-class recall and the confusion matrix.

    python -m tools.measure_accuracy http://127.0.0.1:8080 predictor/precision/photos
    python -m tools.measure_accuracy https://<route> <folder> --token "$TOKEN"   # through the proxy

The folder is laid out either way:
- one sub-folder per label, `cat/`, `dog/`, `other/` (any case): the layout `--calibration_dir`
  and Keras's `image_dataset_from_directory` read, photos found as the calibration folder's are
  (predictor/precision/calibration.py); photos outside a label's folder are not counted;
- `labels.csv` (columns `file`, `label`: cat / dog / other) beside `images/`, which holds the files.
"""

from __future__ import annotations

import argparse
import base64
import csv
import sys
from pathlib import Path

import httpx

from predictor.contract import LABELS, MODEL_NAME
from predictor.precision.calibration import CalibrationError, image_files, label_of
from tools.scoring import report


def labelled_photos(folder: Path) -> list[tuple[Path, int]]:
    """(path, index into LABELS) of each labelled photo of `folder`: from its `labels.csv` and
    `images/` if it has one, else from its label sub-folders, in path order."""
    if (folder / "labels.csv").is_file():
        index = {label.lower(): n for n, label in enumerate(LABELS)}
        with open(folder / "labels.csv", newline="") as file:
            return [
                (folder / "images" / row["file"], index[row["label"].strip().lower()])
                for row in csv.DictReader(file)
            ]
    try:
        files = image_files(folder)
    except CalibrationError as problem:
        sys.exit(str(problem).replace("calibration folder", "folder"))
    labelled = [(path, label_of(path, folder)) for path in files]
    labelled = [(path, label) for path, label in labelled if label >= 0]
    if not labelled:
        names = ", ".join(f"{label.lower()}/" for label in LABELS)
        sys.exit(f"folder {folder} holds neither labels.csv nor photos under {names}")
    return labelled


def classify(client: httpx.Client, paths: list[Path]) -> list[str]:
    body = {
        "inputs": [
            {
                "name": "image",
                "shape": [len(paths)],
                "datatype": "BYTES",
                "data": [base64.b64encode(path.read_bytes()).decode() for path in paths],
            }
        ]
    }
    response = client.post(f"/v2/models/{MODEL_NAME}/infer", json=body)
    if response.status_code != 200:
        sys.exit(f"the service answered {response.status_code}: {response.text[:500]}")
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    return outputs["prediction"]["data"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the service's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "folder",
        type=Path,
        help="a folder with sub-folders cat/, dog/, other/, or with labels.csv and images/",
    )
    parser.add_argument("--token", help="a bearer token, when calling through the auth proxy")
    parser.add_argument("--batch", type=int, default=8, help="images per request")
    args = parser.parse_args(argv)

    photos = labelled_photos(args.folder)
    truth = [label for _, label in photos]
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    predicted: list[int] = []
    with httpx.Client(base_url=args.url, headers=headers, timeout=120) as client:
        for start in range(0, len(photos), args.batch):
            paths = [path for path, _ in photos[start : start + args.batch]]
            predicted += [LABELS.index(label) for label in classify(client, paths)]
    metadata = httpx.get(f"{args.url}/v2/models/{MODEL_NAME}", headers=headers).json()
    facts = metadata.get("parameters") or {}
    print(f"model: {facts.get('model') or facts.get('uri')} (sha256 {facts.get('sha256', '?')})")
    print(f"{len(photos)} photos from {args.folder}")
    print(report(truth, predicted))


if __name__ == "__main__":
    main()
