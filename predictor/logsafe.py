"""Log lines a client cannot write into: control characters in anything a record carries are
written as escapes, and traceback lines are indented.

uvicorn's access line quotes the decoded request path (a `%0d` or `%1b[...` in the URL becomes a
raw CR or a terminal escape), and error messages may quote request data. A filter on every
handler the process configured (KServe's, uvicorn's) escapes the message and each argument that
is not a number (exceptions included: their text may quote the client) in place, so formatters
that read `record.args` (uvicorn's access formatter) keep working. The predictor never sees a
bearer token: the proxy drops every `authorization*` header and metadata entry before
forwarding."""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """Control characters as Python escapes (`\\r`, `\\x1b`, `\\u2028`): one line stays one."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _escaped(argument: object) -> object:
    """Numbers as they are (formats like %d need them); anything else as escaped text, since an
    exception's message may quote the client (an input's name, say)."""
    if isinstance(argument, int | float):
        return argument
    return escape(str(argument))


class EscapedRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = escape(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_escaped(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _escaped(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = "\n".join(
                "    " + escape(line) for line in record.exc_text.split("\n")
            )
        return True


def install() -> None:
    """Add the filter to every handler configured so far (root and named loggers)."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        if not any(isinstance(f, EscapedRecords) for f in handler.filters):
            handler.addFilter(EscapedRecords())
