"""What every runtime is and what a load refuses a model with, shared by the runtime's modules.

`Runtime` is the protocol the server calls; `ModelFileError` the one refusal a load gives a
model file; `first_line` how an exception is cut to one line for a log or an answer. It imports
no other module of the predictor, so runtimes.py, measure.py, model_file.py and loading.py can
all use it without importing one another.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Runtime(Protocol):
    """What the server needs of a runtime: float32 [N, 224, 224, 3] in, float32 [N, 3] out,
    and how many calls it runs at once (`parallel`: the batcher keeps that many in flight)."""

    name: str  # "openvino" or "tensorflow"
    parallel: int
    precision: str  # "fp32", "int8" or "bf16" (precision/guard.py)

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


class ModelFileError(ValueError):
    """The model file cannot be served: unreadable, not Keras, or not the contract's shape."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line a log or an answer can carry."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
