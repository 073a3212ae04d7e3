"""Batch file lines: a job as a JSONL request, and an output/error line as the job's outcome."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..aoai import ChatRequest
from ..jobs import JobMessage, Terminal

__all__ = [
    "LineOutcome",
    "enqueued_tokens",
    "jsonl_lines",
    "malformed_line",
    "outcome_of",
    "request_line",
]

BATCH_URL = "/chat/completions"
# Error-file codes that mean "this line never ran": the job goes back to the standard lane.
_NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})


# The custom_id of a line that is not valid JSON (its first occurrence: Azure writes it before
# the response, so text echoed in a body never comes first)
_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def jsonl_lines(data: bytes | str, errors: str = "strict") -> list[str]:
    """The non-blank lines of a JSONL file, split on ``\\n`` only, as Azure splits them.

    Never ``str.splitlines()``: it also breaks on U+2028, U+2029, U+0085 (and \\x1c-\\x1e, \\v,
    \\f), which JSON leaves raw inside strings (pydantic's JSON and ``ensure_ascii=False`` do), so
    one pasted paragraph separator would cut a line in two. A ``\\r`` before the ``\\n`` is
    whitespace to the JSON parser."""
    text = data.decode("utf-8", errors) if isinstance(data, bytes) else data
    return [line for line in text.split("\n") if line.strip()]


def malformed_line(raw: str, error: str, *, region: str, deployment: str) -> LineOutcome | None:
    """An output/error line that cannot be read fails its job (when its ``custom_id`` can still be
    read) with ``batch_line_malformed``; None when it names no job."""
    match = _CUSTOM_ID.search(raw)
    if match is None:
        return None
    try:
        job_id = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return None
    if not isinstance(job_id, str) or not job_id:
        return None
    return LineOutcome(
        job_id,
        Terminal.failure(
            "batch_line_malformed",
            "The batch's output line for this job could not be read; the job was not run again "
            "(the batch ran it).",
            {"lane": "batch", "reason": error[:200]},
            region=region,
            deployment=deployment,
        ),
    )


def request_line(job: JobMessage, deployment: str) -> bytes:
    """The job's JSONL line: ``custom_id`` = job id, the body with the batch deployment as ``model``."""
    assert isinstance(job.request, ChatRequest)
    body = job.request.model_dump(mode="json", exclude_none=True)
    body.pop("stream", None)
    body["model"] = deployment
    line = {"custom_id": job.job_id, "method": "POST", "url": BATCH_URL, "body": body}
    return (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def enqueued_tokens(request: ChatRequest) -> int:
    """Input tokens a line enqueues (Azure counts the prompt): about chars/4 per message, plus framing."""
    total = 3
    for message in request.messages:
        content = message.content
        if isinstance(content, list):
            chars = sum(len(str(part.get("text", ""))) for part in content)
        else:
            chars = len(content or "")
        total += -(-chars // 4) + 3
    return total


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """A line's verdict: ``terminal`` to finish the job with, or ``rerun`` (the line never ran)."""

    job_id: str
    terminal: Terminal | None
    rerun: bool = False


def _usage(usage: Any) -> dict[str, int] | None:
    if not isinstance(usage, dict):
        return None
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "total_tokens": int(usage.get("total_tokens") or 0),
    }


def outcome_of(line: dict[str, Any], *, region: str, deployment: str) -> LineOutcome | None:
    """What one output or error line means for its job (None: the line names no job)."""
    job_id = line.get("custom_id")
    if not isinstance(job_id, str) or not job_id:
        return None
    error = line.get("error")
    response = line.get("response") or {}
    if isinstance(error, dict) and error.get("code") in _NOT_RUN:
        return LineOutcome(job_id, None, rerun=True)
    meta: dict[str, Any] = {"region": region, "deployment": deployment}
    status = response.get("status_code")
    raw_body = response.get("body")
    body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
    if status == 200:
        choices = body.get("choices") or [{}]
        finish = choices[0].get("finish_reason")
        meta.update(finish_reason=finish, usage=_usage(body.get("usage")))
        if finish == "content_filter":
            return LineOutcome(
                job_id,
                Terminal.failure(
                    "content_filter",
                    "The completion was filtered by the content filter (finish_reason content_filter).",
                    {
                        "param": "completion",
                        "content_filter_results": choices[0].get("content_filter_results"),
                    },
                    **meta,
                ),
            )
        return LineOutcome(job_id, Terminal.success(body, **meta))
    if (isinstance(status, int) and status >= 500) or status == 429:
        return LineOutcome(job_id, None, rerun=True)  # transient upstream trouble: run it again
    raw_detail = body.get("error")
    detail: dict[str, Any] = (
        raw_detail if isinstance(raw_detail, dict) else error if isinstance(error, dict) else {}
    )
    code = str(detail.get("code") or "batch_line_failed")
    message = str(detail.get("message") or "The batch line failed.")
    details = {"status_code": status, "lane": "batch"}
    if detail.get("param"):
        details["param"] = detail["param"]
    if code == "content_filter":
        inner = detail.get("innererror") or {}
        details["content_filter_results"] = inner.get("content_filter_result")
    return LineOutcome(job_id, Terminal.failure(code, message, details, **meta))
