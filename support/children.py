"""Child-process targets for tests of `predictor.runtime.loading.decide_in_child`: importable by
name, as a spawned child needs them."""

from __future__ import annotations

import os


def killed(*_: object) -> None:
    """Die as the kernel's OOM killer leaves a process: without a word, exit status 137."""
    os._exit(137)


def refusing(path, sha256, options, sending, log_format) -> None:
    """Tell the parent the model is refused, as a cold load that refuses it does."""
    sending.send(("ModelFileError", f"{path} is not a loadable Keras model: a test's refusal"))
    sending.close()
