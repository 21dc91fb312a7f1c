"""A KServe predictor serving the course's cats / dogs / other Keras classifier.

Where things live, by concern (each package's own docstring says more):

    __main__.py      `python -m predictor`: settings, model, server, in that order
    model.py         the `kserve.Model`: load, readiness, and one request from bytes to answer
    server.py        KServe's `ModelServer`, bound where it is safe, probes served while loading
    kserve_glue.py   every touch of KServe's internals, with the canary that checks them
    contract.py      the model's contract: labels, input shape, tensor names
    errors.py        bad input, each mapped to one HTTP status and one gRPC code
    settings.py      the one table of flags and variables (setting_types.py: their value types)
    imaging.py       photo bytes to the tensor the course trained on
    batching.py      adaptive batching: concurrent requests share one model call
    memory.py        the byte budget requests hold, sized from the container's limit
    metrics.py       the predictor's own Prometheus metrics
    logsafe.py       log lines a client cannot write into
    protocol/        Open Inference Protocol tensors in and out, on REST and gRPC
    rest/            the REST routes, the OpenAPI document and the /docs pages
    runtime/         running the model: OpenVINO or TensorFlow, loading, measuring, the cache
    precision/       INT8 / BF16: the guard, the quantizer, the calibration photos
    sources/         where the model comes from: a file, S3, MLflow
    default_model/   the demo model served when no model URI is given
"""

import sys

# OpenVINO's usage telemetry off, before anything imports openvino. Unless a consent file says
# otherwise, `import openvino` and each conversion send events to Google Analytics (one at import,
# ~60 per conversion), each from a `multiprocessing.Process` forked by a thread of its own: in
# the server, where gRPC's threads already run, every such fork made gRPC log "fork_posix.cc
# ... Other threads are currently calling into gRPC, skipping fork() handlers", and a forked copy
# of a process with running threads is unsafe in any case. The package is optional: without it
# OpenVINO's converter and NNCF use their own no-op stubs. Nothing here forks otherwise (the cold
# load's child is spawned, KServe runs one REST worker), so gRPC's fork support stays as it is.
# Here, in the package, so that every process importing the predictor has it off: the server,
# the cold load's spawned child, the benches and tools.
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]  # its import now fails
