"""INT8 post-training quantization of the OpenVINO model, with NNCF (OpenVINO's own tool).

The recipe, chosen by measurement on the demo model (bench/quantization.py; the table is in
docs/precision.md): NNCF's `PERFORMANCE` preset (symmetric weights and activations, every
layer in INT8, so the graph and its speed are plain INT8's), calibrated on the calibration
photos and their views (views.py: the photos first, which NNCF's full bias correction reads),
with NNCF's full bias correction instead of its fast one. On 2,520 views of the 63 held-out
course photos it cut the mean |INT8 - FP32| of the scores from 0.0041 (NNCF's defaults on the
photos alone) to 0.0025 and its 99th percentile from 0.097 to 0.060; top-1 agreement 99.80 %
(plain: 99.72 %), accuracy not lower than FP32's (plain: lower). What was tried and not kept:
the `MIXED` preset (no better), SmoothQuant (NNCF applies it to transformers), quantile
ranges (far worse), keeping depthwise convolutions in FP32 (mixed precision: the first alone a
little better at 6-14 % of the speed, but which layer is this model's answer; all of them half
the speed), accuracy-controlled quantization (`quantize_with_accuracy_control` with a fidelity
metric: no better here, a minute longer at load).
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from . import views


def quantize_int8(model, calibration: np.ndarray):
    """The model with INT8 FakeQuantize operations, calibrated on `calibration` [N, 224, 224, 3]
    and its views."""
    import nncf

    # Its INFO lines repeat what the load logs; its logger's level only (nncf.set_log_level
    # also sets every handler it finds, which may be the application's).
    logging.getLogger("nncf").setLevel(logging.ERROR)
    count = views.sample_count(len(calibration))
    # Made one at a time as NNCF reads them: the views are never all in memory at once.
    dataset = nncf.Dataset(range(count), lambda index: views.sample(calibration, index))
    # NNCF draws progress bars on standard output: not for a server's log.
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(model, dataset, subset_size=count, fast_bias_correction=False)
