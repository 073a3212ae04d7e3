"""Issue 10 finding 9: caller-supplied values never forge log lines."""

from __future__ import annotations

import io
import logging

from shared.aoai import CallContext
from shared.aoai._logsafe import log_safe
from shared.aoai._observers import CallLog, CallOutcome


def test_control_characters_are_escaped_and_long_values_cut():
    assert log_safe("gpt-4o") == "gpt-4o"
    assert log_safe("a\nERROR b\r\x1b[31m") == "a\\nERROR b\\r\\x1b[31m"
    assert log_safe("\u2028x") == "\\u2028x"
    cut = log_safe("x" * 500, 100)
    assert cut.startswith("x" * 100) and cut.endswith("(+400 chars)")
    assert log_safe(None) is None


def test_a_forged_model_stays_on_one_line_of_the_call_record():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s alias=%(alias)s"))
    logger = logging.getLogger("shared.aoai._observers")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        forged = "gpt-4o\nERROR shared.aoai admin key leaked"
        CallLog().call_finished(
            CallOutcome(
                operation="chat",
                ctx=CallContext(correlation_id="c1", caller="evil\ncaller"),
                alias=forged,
                attempts=(),
                latency_ms=1.0,
                result=None,
                error=ValueError("x"),
            )
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    text = stream.getvalue()
    assert text.count("\n") == 1 and "\nERROR" not in text
    assert "gpt-4o\\nERROR" in text
