"""INT8 post-training quantization of the OpenVINO model, with NNCF (OpenVINO's own tool).

Settings chosen by measurement (bench/RESULTS.md, "Precision"): NNCF's defaults (the
`PERFORMANCE` preset: symmetric weights and activations; fast bias correction; the first
layer's weights on half the 8-bit range against the saturation of CPUs without VNNI) on every
calibration photo. On the demo model and the course's VGG16 they agreed with FP32 on every
held-out photo; the slower full bias correction and the `MIXED` preset changed nothing there.
Accuracy-aware quantization (`quantize_with_accuracy_control`) needs a third set of labelled
photos beside calibration and guard, and the guard already refuses what it would repair: kept
out until a model needs it.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np


def quantize_int8(model, calibration: np.ndarray):
    """The model with INT8 FakeQuantize operations, calibrated on `calibration` [N, 224, 224, 3]."""
    import nncf

    # Its INFO lines repeat what the load logs; its logger's level only (nncf.set_log_level
    # also sets every handler it finds, which may be the application's).
    logging.getLogger("nncf").setLevel(logging.ERROR)
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    # NNCF draws progress bars on standard output: not for a server's log.
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(model, dataset, subset_size=len(calibration))
