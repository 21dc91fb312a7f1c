"""A JWT-validating sidecar: checks bearer tokens, then forwards REST and gRPC to the predictor."""
