"""Two kinds of failure to get a model, because they call for opposite reactions."""

from __future__ import annotations


class ModelSourceError(Exception):
    """Permanent: retrying cannot help (no such bucket, key, run or version; wrong credentials;
    an experiment with no finished run). The process ends so Kubernetes restarts it with
    back-off. The message names the cause and the URI, never a credential."""


class SourceUnavailable(Exception):
    """Transient: connection refused, timeout, 5xx. Retried with back-off for a bounded time."""
