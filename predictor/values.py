"""Value types for settings read from flags and environment variables: text in, value out, or a
ValueError in words a user can act on. One parser per type for the whole predictor (its
settings table, the S3 source's `S3_VERIFY_SSL`)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("is not a whole number") from None


def count(text: str) -> int:
    """A whole number of at least 1."""
    value = whole(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def count_or_zero(text: str) -> int:
    value = whole(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number") from None
    if not 0 <= value < float("inf"):
        raise ValueError("must be a finite number, 0 or more")
    return value


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def boolean(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); anything else is refused, not taken as false."""
    lowered = text.strip().lower()
    if lowered in TRUE or lowered in FALSE:
        return lowered in TRUE
    raise ValueError("is not a boolean (true/false, yes/no, on/off, 1/0)")


def choice(*allowed: str) -> Callable[[str], str]:
    def one_of(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"is not one of {', '.join(allowed)}")
        return text

    return one_of


def web_url(text: str) -> str:
    """An absolute https URL (http for loopback only), without credentials, or empty for none:
    its origin goes into a Content-Security-Policy and the URL into a public document."""
    text = text.strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    if any(c.isspace() or c in ";,'\"*" for c in text):
        raise ValueError("holds a character a URL cannot")
    parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not loopback:
        raise ValueError("must be https (a client secret would cross the network in clear)")
    return text
