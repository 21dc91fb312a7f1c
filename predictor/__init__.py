"""A KServe predictor serving the course's cats / dogs / other Keras classifier."""
