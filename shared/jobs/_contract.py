"""The versioned message contract of a backlog job, and of the reply it produces.

A job message is JSON on the Service Bus backlog queue::

    {"schema_version": 1, "job_id": "...", "caller": "...", "model": "gpt-4o", "kind": "chat",
     "request": {...ChatRequest, EmbeddingsRequest or ResponsesRequest...}, "reply_to": "replies",
     "priority": 5, "deadline": "2026-11-23T12:00:00Z", "submitted_at": "..."}

``kind`` names the operation: ``chat`` (``/chat/completions``), ``embeddings`` or ``responses``
(``/responses``, the Responses API; always explicit: a request with ``input`` and no ``kind`` is
embeddings, as before ``responses`` existed). A ``responses`` job is refused by a worker older
than the kind (``invalid_message`` naming ``kind``): deploy workers before senders use it.

A message that does not parse is *invalid*: a permanent failure, never retried.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..aoai import ChatRequest, EmbeddingsRequest
from ..responses import ResponsesRequest

__all__ = [
    "SCHEMA_VERSION",
    "SCOPE_SEPARATOR",
    "InvalidJobMessage",
    "JobIdConflict",
    "JobMessage",
    "JobReply",
    "caller_scope",
    "new_job_id",
    "parse_job_message",
    "payload_hash",
    "reply_to_refusal",
    "scoped_job_id",
    "valid_job_id",
]

SCHEMA_VERSION: Literal[1] = 1
# Deeper JSON than this in a job is refused (400 naming the place): the canonical form
# (``payload_hash``, the queue body) must serialize, and pydantic stops at about 255 levels.
MAX_JSON_DEPTH = 128
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
# A job id a caller chose over HTTP, scoped to that caller: ``<10 hex of its identity>~<its id>``.
_SCOPED_JOB_ID = re.compile(r"^[0-9a-f]{10}~[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
SCOPE_SEPARATOR = "~"
_SB_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~-]{0,259}$")


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex}"


def caller_scope(caller: str) -> str:
    """The 10 hex digits that scope the job ids ``caller`` chooses (SHA-256 of its identity)."""
    return hashlib.sha256(caller.encode("utf-8")).hexdigest()[:10]


def scoped_job_id(caller: str, job_id: str) -> str:
    """``job_id`` as ``caller`` chose it, in that caller's namespace: two callers may use the same
    id, and none can take or probe another's (``<scope>~<id>``)."""
    return f"{caller_scope(caller)}{SCOPE_SEPARATOR}{job_id}"


def valid_job_id(value: str) -> bool:
    """A job id as the backlog stores it: a plain id, or a caller-scoped one."""
    return bool(_JOB_ID.match(value) or _SCOPED_JOB_ID.match(value))


class InvalidJobMessage(ValueError):
    """The message is not a valid job: permanent. ``job_id``/``reply_to`` are whatever could be salvaged."""

    code = "invalid_message"

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        reply_to: str | None = None,
        caller: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id
        self.reply_to = reply_to
        self.caller = caller
        if code is not None:
            self.code = code


class JobIdConflict(Exception):
    """A job id that exists already arrived with a different payload (``payload_hash`` differs).

    Like Powertools' ``IdempotencyValidationError``: a job id is an idempotency key, and reusing it
    for different work is the caller's error. The existing job is never touched."""

    code = "job_id_conflict"

    def __init__(self, job_id: str, *, existing_hash: str, submitted_hash: str) -> None:
        self.job_id = job_id
        self.existing_hash = existing_hash
        self.submitted_hash = submitted_hash
        self.message = (
            f"Job '{job_id}' already exists with a different request. Re-use a job id only to retry the "
            "same job; send new work under a new job id."
        )
        super().__init__(self.message)

    def error(self) -> dict[str, Any]:
        """The failure as a job error (``Terminal.failure`` / ``JobReply.error`` shape)."""
        return {
            "code": self.code,
            "message": self.message,
            "details": {
                "job_id": self.job_id,
                "payload_hash": self.submitted_hash,
                "existing_payload_hash": self.existing_hash,
            },
        }


def reply_to_refusal(reply_to: str, caller: str | None) -> str:
    """Why a ``reply_to`` is refused: the same words on HTTP (400) and for a direct sender."""
    return (
        f"reply_to: '{reply_to[:260]}' is not a reply queue {caller or 'this caller'} may use. "
        "The operators allow reply queues per caller in the app setting BACKLOG_REPLY_QUEUES; "
        "the backlog queue and its dead-letter queue never are."
    )


def payload_hash(job: JobMessage) -> str:
    """``sha256:<hex>`` of the canonical JSON of what defines the work: kind, model, request,
    reply_to, priority, deadline (in UTC). Not ``job_id`` (the key itself), ``caller`` (set by the
    gateway from the credential, not by the body), ``submitted_at`` (new on every POST) or
    ``schema_version``. Stable across a to_body()/parse round trip, key order, ``null`` vs absent,
    an explicit default vs an omitted one, and equivalent deadline offsets."""
    work = {
        "kind": job.kind,
        "model": job.model,
        "request": job.request.model_dump(mode="json", exclude_none=True),
        "reply_to": job.reply_to,
        "priority": job.priority,
        "deadline": job.deadline.astimezone(UTC).isoformat() if job.deadline else None,
    }
    canonical = json.dumps(
        work, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_REQUESTS: dict[str, type[ChatRequest | EmbeddingsRequest | ResponsesRequest]] = {
    "chat": ChatRequest,
    "embeddings": EmbeddingsRequest,
    "responses": ResponsesRequest,
}


def unsafe_json(value: Any) -> tuple[tuple[str | int, ...], str] | None:
    """Where ``value`` cannot be stored and hashed as JSON, and why: nesting deeper than
    ``MAX_JSON_DEPTH``, or a string holding a lone surrogate (not valid Unicode; a client that cut
    a text inside an emoji). The path is cut to its first segments."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)) and depth >= MAX_JSON_DEPTH:
            return path[:8], f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path[:8], (
                    "contains a lone surrogate (a \\ud800-\\udfff escape without its pair), which "
                    "is not valid Unicode; the text was probably cut inside an emoji"
                )
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and unsafe_json(key) is not None:
                    return (*path, "<key>")[
                        :8
                    ], "has a key with a lone surrogate (not valid Unicode)"
                stack.append((child, (*path, key), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))
    return None


class JobMessage(BaseModel):
    """One unit of backlog work. Frozen; ``request`` is a ChatRequest, an EmbeddingsRequest or a
    ResponsesRequest per ``kind``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str = Field(
        default_factory=new_job_id,
        description="Unique; also the Service Bus message_id and the reply's correlation id.",
    )
    caller: str | None = Field(default=None, max_length=256)
    model: str = Field(
        min_length=1,
        description="The logical model alias; equals request.model (either may be omitted).",
    )
    kind: Literal["chat", "embeddings", "responses"]
    request: ChatRequest | EmbeddingsRequest | ResponsesRequest
    reply_to: str | None = Field(
        default=None, description="Service Bus queue that receives the reply; None = no reply."
    )
    priority: int = Field(
        default=5, ge=0, le=9, description="0 lowest .. 9 highest; re-drives go highest first."
    )
    deadline: datetime | None = Field(
        default=None, description="After this instant the job fails with deadline_exceeded."
    )
    submitted_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    lane: Literal["standard", "batch", "auto"] = Field(
        default="standard",
        description="standard: run now; batch: Global Batch at half price (chat only; other "
        "kinds run on the standard lane); auto: batch when the alias has a batch deployment and "
        "the deadline leaves time. Not part of payload_hash.",
    )

    @field_validator("job_id")
    @classmethod
    def _job_id_ok(cls, value: str) -> str:
        if not valid_job_id(value):
            raise ValueError(
                "must be 1-100 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("reply_to")
    @classmethod
    def _reply_to_ok(cls, value: str | None) -> str | None:
        if value is not None and not _SB_QUEUE.match(value):
            raise ValueError("must be a Service Bus queue name")
        return value

    @field_validator("deadline", "submitted_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="before")
    @classmethod
    def _typed_request(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        request = data.get("request")
        kind = data.get("kind")
        if kind is None and isinstance(request, dict):
            kind = "embeddings" if "input" in request else "chat"
            data["kind"] = kind
        if (
            isinstance(request, dict)
            and "model" not in request
            and isinstance(data.get("model"), str)
        ):
            request = data["request"] = {
                **request,
                "model": data["model"],
            }  # the alias may be given once, at the top
        if isinstance(request, dict):
            problem = unsafe_json(request)
            if problem is not None:
                path, reason = problem
                raise ValidationError.from_exception_data(
                    cls.__name__,
                    [
                        {
                            "type": "value_error",
                            "loc": ("request", *path),
                            "input": None,
                            "ctx": {"error": ValueError(reason)},
                        }
                    ],
                )
            model = _REQUESTS.get(kind if isinstance(kind, str) else "", ChatRequest)
            try:
                data["request"] = model.model_validate(request)
            except (
                ValidationError
            ) as exc:  # keep the field's full path: request.messages, not messages
                errors = [
                    {**err, "loc": ("request", *err.get("loc", ()))}
                    for err in exc.errors(include_url=False)
                ]
                raise ValidationError.from_exception_data(cls.__name__, errors) from None  # type: ignore[arg-type]  # pydantic-core types the line errors as InitErrorDetails; plain dicts are what it takes
            data.setdefault("model", data["request"].model)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> JobMessage:
        expected = _REQUESTS[self.kind]
        if type(self.request) is not expected:
            raise ValueError(f"request: kind '{self.kind}' needs a {expected.__name__}")
        if self.request.model != self.model:
            raise ValueError("model: must equal request.model")
        if isinstance(self.request, ChatRequest | ResponsesRequest) and self.request.stream:
            raise ValueError(
                "request.stream: backlog jobs cannot stream; drop 'stream' or use the HTTP API"
            )
        if isinstance(self.request, ResponsesRequest) and self.request.background:
            raise ValueError(
                "request.background: a backlog job already runs in the background and its result "
                "is stored and replied; drop 'background' (or use the HTTP API to poll a "
                "background response)"
            )
        return self

    def to_body(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    def payload_hash(self) -> str:
        return payload_hash(self)

    def deadline_passed(self, now: float) -> bool:
        return self.deadline is not None and self.deadline.timestamp() <= now


def parse_job_message(body: bytes | str, *, fallback_job_id: str | None = None) -> JobMessage:
    """Parse and validate; raise InvalidJobMessage carrying whatever identifies the job."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJobMessage(
            f"body is not JSON: {exc.__class__.__name__}", job_id=fallback_job_id
        ) from exc
    if not isinstance(raw, dict):
        raise InvalidJobMessage("body is not a JSON object", job_id=fallback_job_id)
    salvage = {
        "job_id": raw.get("job_id")
        if isinstance(raw.get("job_id"), str) and valid_job_id(raw["job_id"])
        else fallback_job_id,
        "reply_to": raw.get("reply_to")
        if isinstance(raw.get("reply_to"), str) and _SB_QUEUE.match(raw["reply_to"])
        else None,
        "caller": raw.get("caller") if isinstance(raw.get("caller"), str) else None,
    }
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidJobMessage(
            f"schema_version: {version!r} is not supported (this worker reads {SCHEMA_VERSION})",
            **salvage,
        )
    if "job_id" not in raw:
        raise InvalidJobMessage("job_id: missing", **salvage)
    try:
        return JobMessage.model_validate(raw)
    except ValidationError as exc:
        # Name the fields, never echo their values (they may hold prompt text).
        # Our own cross-field checks have no location: their text names the field and holds no input.
        fields = sorted(
            {
                ".".join(str(p) for p in err.get("loc", ()))
                or str(err.get("msg", "body")).removeprefix("Value error, ")
                for err in exc.errors()
            }
        )
        raise InvalidJobMessage(f"invalid fields: {'; '.join(fields)}", **salvage) from exc


class JobReply(BaseModel):
    """The reply sent to ``reply_to``: correlation id and message id derive from the job id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    status: Literal["succeeded", "failed", "cancelled"]
    result: dict[str, Any] | None = None
    result_url: str | None = Field(
        default=None,
        description="Set instead of result when the result is too large for a message.",
    )
    error: dict[str, Any] | None = None
