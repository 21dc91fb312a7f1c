"""Log lines a client cannot write into: no bearer token, no control character, no forged line.

Every record that reaches the process's handlers passes `SafeRecords` first, whichever logger
wrote it (ours, aiohttp's parser and access loggers, gRPC's, a traceback): bearer tokens and
anything shaped like a JWT are replaced by `[redacted]`, control characters (CR, LF, NUL, ESC,
DEL, C1, the Unicode line separators) are written as escapes, and the lines of a traceback are
indented, so that no text a client sent can start a line of its own.

`quiet_parser_errors` turns aiohttp's "Error handling request" (an ERROR and a traceback for
every malformed request, the offending header line included) into a counted refusal.
"""

from __future__ import annotations

import logging
import re
import time

from aiohttp.http_exceptions import HttpProcessingError

from .metrics import REFUSALS

REDACTED = "[redacted]"
# `Bearer <8 or more characters up to a space or quote>` (not the `Bearer <token>` of our own
# messages), and any three-part base64url string that starts
# like a JSON object (`eyJ` is `{"`): a JWT, or its header and payload, wherever it stands.
_SECRETS = re.compile(
    r"(?i)(?P<scheme>bearer)(?:\s|\\x[0-9a-f]{2}|%20)+[^\s\"',;]{8,}|eyJ[\w-]*\.[\w-]*(?:\.[\w-]*)?"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def redact(text: str) -> str:
    return _SECRETS.sub(
        lambda m: f"{m.group('scheme')} {REDACTED}" if m.group("scheme") else REDACTED, text
    )


def escape(text: str) -> str:
    """Control characters as Python escapes (`\\r`, `\\x1b`, `\\u2028`): one line stays one."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def clean(text: str) -> str:
    return escape(redact(text))


class SafeRecords(logging.Filter):
    """Rewrites each record's message (and traceback) in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = "\n".join(
                "    " + clean(line) for line in record.exc_text.split("\n")
            )
        if record.stack_info:
            record.stack_info = "\n".join(
                "    " + clean(line) for line in record.stack_info.split("\n")
            )
        return True


class RateLimited:
    """At most `burst` lines per `period` seconds; the next line after a quiet spell says how
    many were left out. Hostile traffic is counted in /metrics, not written line by line."""

    def __init__(
        self, logger: logging.Logger, burst: int = 20, period: float = 10.0, clock=time.monotonic
    ):
        self.logger = logger
        self.burst = burst
        self.period = period
        self._clock = clock
        self._window_start = float("-inf")
        self._written = 0
        self._left_out = 0

    def log(self, level: int, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._window_start >= self.period:
            self._window_start, self._written = now, 0
        if self._written >= self.burst:
            self._left_out += 1
            return
        self._written += 1
        if self._left_out:
            message += f" (and {self._left_out} similar lines left out; see /metrics)"
            self._left_out = 0
        self.logger.log(level, message, *args)


class _ParserErrors(logging.Filter):
    """aiohttp's server logger: a malformed request becomes one counted, rate-limited line."""

    def __init__(self, lines: RateLimited):
        super().__init__()
        self.lines = lines

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        REFUSALS.labels("rest", "malformed_request").inc()
        self.lines.log(
            logging.INFO,
            "refused a malformed request from %s: %s %s",
            record.args[0] if isinstance(record.args, tuple) and record.args else "?",
            type(error).__name__,
            str(error.message)[:120],
        )
        return False


class _MetadataDecodeErrors(logging.Filter):
    """gRPC's core logs an ERROR and a traceback for each metadata value that is not UTF-8; the
    gRPC port refuses such calls (INVALID_ARGUMENT) and logs that, rate-limited."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Invalid encoding")


# One budget for every refusal line of the process, whichever port or parser wrote it.
REFUSAL_LINES = RateLimited(logging.getLogger("auth_proxy.refusals"))


def configure(level: int = logging.INFO, refusal_lines: int = 20) -> None:
    """The process's logging: one stream handler, every record made safe, at most
    `refusal_lines` refusal lines per 10 s (`REFUSAL_LOG_LINES`)."""
    REFUSAL_LINES.burst = refusal_lines
    logging.basicConfig(
        level=level, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(SafeRecords())
    server = logging.getLogger("aiohttp.server")
    server.addFilter(_ParserErrors(REFUSAL_LINES))
    logging.getLogger("grpc._cython.cygrpc").addFilter(_MetadataDecodeErrors())
