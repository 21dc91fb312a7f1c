"""Value types for settings read from flags and environment variables: text in, value out, or a
ValueError in words a user can act on. One parser per type for the whole predictor (its
settings table, the S3 source's `S3_VERIFY_SSL`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import idna


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
    its origin goes into a Content-Security-Policy and the URL into a public document. Returned
    in ASCII: a header is latin-1 on the wire (Starlette encodes it so), and a host beyond that
    made every `/docs` answer a 500, long after a start that looked fine. An internationalised
    host is written in its IDNA form (`xn--...`), as a browser writes it in the origin it
    compares with the policy (UTS 46, non-transitional: the `idna` package, pinned in
    constraints.txt, which httpx and anyio already pull in)."""
    text = text.strip()
    if not text:
        return ""
    for c in text:
        if c.isspace() or unicodedata.category(c) == "Cc" or c in ";,'\"*":
            raise ValueError(f"holds a character a URL cannot ({_named(c)})")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    if not parts.netloc.isascii():
        text = text.replace(parts.netloc, _ascii_netloc(parts.netloc), 1)  # the first: after //
        parts = urlsplit(text)
    for c in text:
        if not c.isascii():
            raise ValueError(
                f"holds the non-ASCII character {_named(c)} outside its host: percent-encode it "
                f"({quote(c)})"
            )
    host = parts.hostname or ""
    if not _HOST.fullmatch(host) and not (":" in host and _IPV6.fullmatch(host)):
        raise ValueError(
            f"has a host with a character a host name cannot: {host!r} (write an "
            "internationalised host as it is, or in its ASCII form xn--...)"
        )
    parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    loopback = host in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not loopback:
        raise ValueError("must be https (a client secret would cross the network in clear)")
    return text


_HOST = re.compile(r"[A-Za-z0-9._-]+")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")


def _ascii_netloc(netloc: str) -> str:
    """host[:port] with its host in IDNA form, or a ValueError that says how to write it."""
    host, colon, port = netloc.partition(":")  # no brackets: an IPv6 literal is ASCII
    try:
        ascii_host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(
            f"has the host {host!r}, which is not a valid internationalised domain name "
            f"({exc}): check its spelling, or write it in its ASCII form (xn--...)"
        ) from None
    return ascii_host + colon + port


def _named(c: str) -> str:
    """A character as a user can find it in what they typed, control characters included."""
    return f"U+{ord(c):04X}" if not c.isprintable() or c.isspace() else repr(c)
