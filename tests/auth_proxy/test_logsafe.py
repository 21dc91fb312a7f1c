"""`logsafe`: what a log line may hold (no control character, no token, whatever a client
wrote), tracebacks included, and refusal lines limited with the gap said."""

from __future__ import annotations

import logging
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_proxy import logsafe

pytestmark = pytest.mark.unit

PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred\x00", "\\x1b[31mred\\x00"),
        ("line\u2028sep", "line\\u2028sep"),
        ("Authorization: Bearer abcdefgh12345", "Authorization: Bearer [redacted]"),
        ("t=eyJhbGciOi.eyJzdWIi.c2ln!", "t=[redacted]!"),
        ("a bearer token is required", "a bearer token is required"),
    ],
)
def test_log_text_is_cleaned(text, logged):
    assert logsafe.clean(text) == logged


@PROPERTIES
@given(st.text(), st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", min_size=8))
def test_a_clean_log_line_has_no_control_character_and_no_token(text, secret):
    token = f"eyJ{secret}.eyJ{secret}.{secret}"
    line = logsafe.clean(f"{text} Authorization: Bearer {token}\x00{text}")
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)
    assert token not in line and f"Bearer {secret}" not in line


def test_log_records_and_tracebacks_are_cleaned():
    try:
        raise ValueError("bad\nINFO forged eyJa.eyJb.sig")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", ("x\ny",), None)
        record.exc_info = sys.exc_info()
    assert logsafe.SafeRecords().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    first, *rest = text.split("\n")
    assert first == "got x\\ny"
    assert all(line.startswith("    ") for line in rest)
    assert "eyJa" not in text and "[redacted]" in text


def test_refusal_lines_are_limited_and_the_gap_is_said():
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("test.ratelimit")
    logger.addHandler(Capture())
    logger.propagate = False
    logger.setLevel(logging.INFO)
    now = [0.0]
    limited = logsafe.RateLimited(logger, burst=2, period=10, clock=lambda: now[0])
    for n in range(5):
        limited.log(logging.INFO, "refused %d", n)
    now[0] = 11
    limited.log(logging.INFO, "refused %d", 5)
    assert lines == [
        "refused 0",
        "refused 1",
        "refused 5 (and 3 similar lines left out; see /metrics)",
    ]
