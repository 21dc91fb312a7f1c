"""`predictor.logsafe`: a log line a client cannot write into, its arguments escaped too
(exceptions whose text quotes the client's input included)."""

from __future__ import annotations

import logging

import pytest

from predictor.logsafe import EscapedRecords

pytestmark = pytest.mark.unit


def test_predictor_log_records_are_escaped_arguments_and_all():
    error = ValueError("unknown input 'x\r\n2026 INFO forged'")
    record = logging.LogRecord(
        "p", logging.WARNING, __file__, 1, "refused %s: %d", (error, 7), None
    )
    assert EscapedRecords().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert line == "refused unknown input 'x\\r\\n2026 INFO forged': 7"
