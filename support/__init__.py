"""What the tests, the benchmarks and the tools share: real processes started on loopback
(`servers`), a real OIDC issuer (`issuer`), protocol clients (`clients`), test images
(`images`), the S3 and MLflow servers (`storage`), a recording gRPC upstream (`recorder`), the
contract-shaped model (`contract_model`), the manifests rendered (`manifests`), the pod run
from them (`local_pod`) and the checks every pod must pass (`podcheck`). Nothing here is
imported by `predictor/` or `auth-proxy/`, and nothing here imports tests, tools or bench."""
