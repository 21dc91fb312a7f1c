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
