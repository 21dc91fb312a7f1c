"""`python -m predictor`: start KServe's model server on the cats / dogs / other model."""

from __future__ import annotations

import logging
import os
import sys

# TensorFlow's C++ INFO lines (oneDNN, CPU features) say nothing an operator can act on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from .model import CatsDogsOtherModel
from .server import ModelLoadFailed, PredictorServer
from .settings import parse_settings

logger = logging.getLogger("predictor")


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    model = CatsDogsOtherModel(settings)
    try:
        PredictorServer(settings).start([model])
    except ModelLoadFailed as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
