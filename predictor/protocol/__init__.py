"""The Open Inference Protocol (V2, and V1) as this model speaks it, on both transports.

codec.py          request tensors in: photos (BYTES) or preprocessed FP32 pixels, bounded
outputs.py        the answer: which output tensors a request gets, their bytes on REST / gRPC
bodies.py         REST bodies under a size limit, gzip / deflate decoded within the budget
dataplane.py      KServe's data plane as both transports use it (extensions, model lookup)
grpc_service.py   KServe's gRPC servicer, answering with the requested outputs only
"""
