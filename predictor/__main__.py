"""`python -m predictor`: start KServe's model server on the cats / dogs / other model."""

from __future__ import annotations

import os
import sys
import warnings

# TensorFlow's C++ INFO lines (oneDNN, CPU features) say nothing an operator can act on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from .memory import map_large_blocks
from .model import CatsDogsOtherModel
from .server import PredictorServer
from .settings import parse_settings


def main(argv: list[str] | None = None) -> int:
    # KServe 0.21's routes answer with FastAPI's ORJSONResponse, which the FastAPI installed
    # with it deprecates: two log lines at a route's first call, nothing an operator can do.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    settings = parse_settings(argv)
    map_large_blocks()
    model = CatsDogsOtherModel(settings)
    PredictorServer(settings, model.budget).start(
        [model]
    )  # a model that cannot load exits 1 from inside
    return 0


if __name__ == "__main__":
    sys.exit(main())
