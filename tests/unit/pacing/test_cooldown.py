import email.utils

import pytest

from shared.pacing._cooldown import cooldown_from_headers, parse_duration


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"retry-after-ms": "1500", "retry-after": "2", "x-ratelimit-reset-tokens": "9s"},
            (1.5, "retry-after-ms"),
        ),
        ({"retry-after": "2", "x-ratelimit-reset-tokens": "9s"}, (2.0, "retry-after")),
        (
            {"x-ratelimit-reset-tokens": "1m30s", "x-ratelimit-reset-requests": "250ms"},
            (90.0, "x-ratelimit-reset-tokens"),
        ),
        (
            {"retry-after-ms": "0", "retry-after": "nonsense", "x-ratelimit-reset-requests": "3"},
            (3.0, "x-ratelimit-reset-requests"),
        ),
        ({}, (7.0, "default")),
        ({"retry-after": "86400"}, (86400.0, "retry-after")),
        ({"retry-after-ms": "inf"}, (7.0, "default")),
    ],
)
def test_header_precedence(headers, expected):
    assert cooldown_from_headers(headers, now=1000.0, default_s=7.0) == expected


def test_retry_after_http_date():
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    seconds, source = cooldown_from_headers({"retry-after": header}, now=now, default_s=1.0)
    assert source == "retry-after" and 29 <= seconds <= 31


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1.5", 1.5), ("1.5s", 1.5), ("250ms", 0.25), ("6m0s", 360.0), ("1h", 3600.0), ("x", None)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
