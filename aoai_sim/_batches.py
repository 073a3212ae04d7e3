"""The Batch API's engine: JSONL validation, the scaled status clock, quota, faults and per-line results.

A batch's status is a function of the clock: ``validating`` for ``validating_s``, then ``in_progress``
(lines finish evenly over ``in_progress_s`` + ``per_line_ms`` per line), ``finalizing`` for
``finalizing_s``, then ``completed``. The completion window ("24h") is ``window_s`` real seconds; a batch
still unfinished then is ``expired``. Results come from the chat generator (``_ops.plan_chat``), so a
line answers exactly as the same chat request would.
"""

from __future__ import annotations

import json
import math
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _errors, _ops, _text
from ._files import FileStore
from ._filter import filter_result
from .config import BatchConfig, ContentFilterConfig, DeploymentConfig

__all__ = ["BATCH_ENDPOINTS", "Batch", "BatchEngine", "BatchError", "BatchFault", "BatchFaults"]

BATCH_ENDPOINTS = frozenset({"/chat/completions", "/v1/chat/completions"})
_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_FAULT_KINDS = frozenset({"fail", "expire", "partial", "malformed"})


class BatchError(Exception):
    """A Batch or Files API call refused: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param

    def reply(self) -> _errors.ErrorReply:
        """The error body."""
        return self.status, {
            "error": {"code": self.code, "message": str(self), "param": self.param, "type": None}
        }


@dataclass
class BatchFault:
    """An injected fault taken by the next ``count`` batches created (on ``deployment``, if set).

    ``fail``: the batch fails after validation (``code``); ``expire``: progress stops at ``fraction`` and
    the batch expires at the end of the window; ``partial``: that fraction of lines fail with a 500;
    ``malformed``: that fraction of the output file's lines are cut short (not valid JSON).
    """

    id: str
    kind: str
    count: int = 1
    deployment: str | None = None
    fraction: float = 0.5
    code: str = "server_error"

    def describe(self) -> dict[str, Any]:
        """The fault as the control API reports it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "count": self.count,
            "deployment": self.deployment,
            "fraction": self.fraction,
            "code": self.code,
        }


class BatchFaults:
    """Pending batch faults, taken in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[BatchFault] = []

    def add(self, spec: Mapping[str, Any]) -> BatchFault:
        """Add a fault from its JSON spec (raises ValueError)."""
        if not isinstance(spec, Mapping) or spec.get("kind") not in _FAULT_KINDS:
            raise ValueError(f"batch fault kind must be one of {sorted(_FAULT_KINDS)}")
        fraction = float(spec.get("fraction", 0.5))
        count = int(spec.get("count", 1))
        if not 0 <= fraction <= 1 or count < 1:
            raise ValueError("fraction must be within [0, 1] and count at least 1")
        fault = BatchFault(
            id=f"bf-{secrets.token_hex(4)}",
            kind=str(spec["kind"]),
            count=count,
            deployment=spec.get("deployment"),
            fraction=fraction,
            code=str(spec.get("code") or "server_error"),
        )
        self._faults.append(fault)
        return fault

    def take(self, deployment: str | None) -> BatchFault | None:
        """The first fault matching ``deployment``, counted once."""
        for fault in self._faults:
            if fault.deployment in (None, deployment):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        """The pending faults."""
        return [f.describe() for f in self._faults]

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()


@dataclass
class _Line:
    number: int
    custom_id: str
    body: dict[str, Any]
    outcome: dict[str, Any] | None = None  # the output/error-file line, decided once


def _request_id() -> str:
    return str(uuid.uuid4())


def _line_error(custom_id: str | None, code: str, message: str, line: int | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if line is not None:
        error["line"] = line
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": None,
        "error": error,
    }


def _line_response(custom_id: str, status: int, body: dict[str, Any]) -> dict:
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": _request_id(), "body": body},
        "error": None,
    }


def _jsonl(row: dict[str, Any], cut: bool) -> str:
    """One file line; ``cut``: ended inside the response body (its custom_id still readable)."""
    text = json.dumps(row, separators=(",", ":"))
    if cut:
        text = text[: text.index('"response"') + len('"response":{"status_code":')]
    return text + "\n"


@dataclass
class Batch:
    """One batch: its lines, its fault, and when it was created and cancelled on the engine's clock."""

    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    t0: float
    deployment: DeploymentConfig | None
    lines: list[_Line]
    bad: list[dict[str, Any]]
    tokens: int
    refusal: dict[str, Any] | None = None  # batch-level error: the batch fails after validation
    fault: BatchFault | None = None
    cancel_t: float | None = None
    final: dict[str, Any] | None = field(default=None, repr=False)

    def in_progress_s(self, clock: BatchConfig) -> float:
        """How long the in_progress phase lasts."""
        return clock.in_progress_s + clock.per_line_ms * len(self.lines) / 1000


class BatchEngine:
    """Every batch of one region, driven by ``clock`` (a monotonic seconds function)."""

    def __init__(
        self,
        deployments: tuple[DeploymentConfig, ...],
        content_filter: ContentFilterConfig,
        clock_config: BatchConfig,
        files: FileStore,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deployments = {d.name: d for d in deployments}
        self._cf = content_filter
        self._cfg = clock_config
        self._files = files
        self._clock = clock
        self._batches: dict[str, Batch] = {}
        self.faults = BatchFaults()

    # ------------------------------------------------------------------ create
    def create(
        self,
        input_file_id: Any,
        endpoint: Any,
        completion_window: Any,
        metadata: Any = None,
    ) -> Batch:
        """Validate the request and the file's lines; the batch starts in ``validating``."""
        if endpoint not in BATCH_ENDPOINTS:
            raise BatchError(
                400,
                "invalid_request",
                f"endpoint must be one of {sorted(BATCH_ENDPOINTS)}",
                "endpoint",
            )
        if completion_window != "24h":
            raise BatchError(
                400, "invalid_request", "completion_window must be '24h'", "completion_window"
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise BatchError(400, "invalid_request", "metadata must be an object", "metadata")
        stored = self._files.get(str(input_file_id))
        if stored is None or stored.purpose != "batch":
            raise BatchError(
                404,
                "file_not_found",
                f"No batch input file with id {input_file_id!r}.",
                "input_file_id",
            )
        deployment_name, lines, bad = self._parse(stored.content, str(endpoint))
        now = self._clock()
        batch = Batch(
            id=f"batch_{uuid.uuid4()}",
            input_file_id=stored.id,
            endpoint=str(endpoint),
            completion_window="24h",
            metadata=metadata,
            created_at=int(time.time()),
            t0=now,
            deployment=None,
            lines=lines,
            bad=bad,
            tokens=sum(_text.prompt_tokens(line.body["messages"]) for line in lines),
        )
        dep = self._deployments.get(deployment_name or "")
        if not lines:
            batch.refusal = {
                "code": "empty_file",
                "message": "The input file has no valid request.",
            }
        elif dep is None or not dep.batch:
            batch.refusal = {
                "code": "model_not_found",
                "message": f"Deployment {deployment_name!r} is not a Global Batch deployment "
                "of this resource.",
            }
        else:
            batch.deployment = dep
            used = self.enqueued_tokens(dep.name)
            if used + batch.tokens > dep.enqueued_tokens:
                batch.refusal = {
                    "code": "token_limit_exceeded",
                    "message": f"Enqueued token limit reached for {dep.name}: {used} enqueued + "
                    f"{batch.tokens} requested > {dep.enqueued_tokens}. Wait for other batch jobs "
                    "to complete and try again.",
                }
            else:
                batch.fault = self.faults.take(dep.name)
                if batch.fault is not None and batch.fault.kind == "fail":
                    batch.refusal = {
                        "code": batch.fault.code,
                        "message": "The batch failed (injected fault).",
                    }
        self._batches[batch.id] = batch
        return batch

    def _parse(
        self, content: bytes, endpoint: str
    ) -> tuple[str | None, list[_Line], list[dict[str, Any]]]:
        lines: list[_Line] = []
        bad: list[dict[str, Any]] = []
        seen: set[str] = set()
        deployment: str | None = None
        # Lines end at "\n" only, as Azure reads JSONL: never str.splitlines(), which also breaks
        # on U+2028, U+2029 and U+0085 (left raw inside JSON strings by ensure_ascii=False).
        text = content.decode("utf-8", errors="replace")
        for number, raw in enumerate(text.split("\n"), 1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                bad.append(_line_error(None, "invalid_json", "The line is not valid JSON.", number))
                continue
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not custom_id:
                bad.append(_line_error(None, "invalid_custom_id", "custom_id is required.", number))
                continue
            problem = self._line_problem(item, endpoint, deployment)
            if problem is None and custom_id in seen:
                problem = ("duplicate_custom_id", f"custom_id {custom_id!r} is not unique.")
            if problem is not None:
                bad.append(_line_error(custom_id, problem[0], problem[1], number))
                continue
            seen.add(custom_id)
            deployment = deployment or item["body"]["model"]
            lines.append(_Line(number, custom_id, item["body"]))
        return deployment, lines, bad

    @staticmethod
    def _line_problem(item: dict[str, Any], endpoint: str, deployment: str | None) -> tuple | None:
        if item.get("method") != "POST":
            return "invalid_method", "method must be POST."
        url = str(item.get("url") or "").partition("?")[0]
        if url.removeprefix("/v1") != endpoint.removeprefix("/v1"):
            return "invalid_url", f"url must be {endpoint!r}, the batch's endpoint."
        body = item.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return "invalid_body", "body must be a chat completions request with messages."
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "invalid_body", "body.model (the batch deployment) is required."
        if deployment is not None and model != deployment:
            return "mismatched_model", "Every line of a batch must name the same deployment."
        return None

    # ------------------------------------------------------------------- state
    def get(self, batch_id: str) -> Batch | None:
        """The batch, or None."""
        return self._batches.get(batch_id)

    def all(self) -> list[Batch]:
        """Every batch, newest first."""
        return sorted(self._batches.values(), key=lambda b: b.t0, reverse=True)

    def enqueued_tokens(self, deployment: str) -> int:
        """Tokens of the deployment's admitted batches that have not finished."""
        return sum(
            b.tokens
            for b in self._batches.values()
            if b.deployment is not None
            and b.deployment.name == deployment
            and b.refusal is None
            and self.describe(b)["status"] not in _TERMINAL
        )

    def cancel(self, batch_id: str) -> Batch:
        """Start cancelling; lines finished by now are kept."""
        batch = self._batches.get(batch_id)
        if batch is None:
            raise BatchError(404, "batch_not_found", f"No batch with id {batch_id!r}.")
        status = self.describe(batch)["status"]
        if status in _TERMINAL or status == "cancelling":
            raise BatchError(409, "invalid_state", f"Cannot cancel a batch with status {status}.")
        batch.cancel_t = self._clock()
        return batch

    def clear(self) -> None:
        """Forget every batch, file and pending fault."""
        self._batches.clear()
        self._files.clear()
        self.faults.clear()

    def _done_lines(self, batch: Batch, t: float) -> int:
        """How many lines have finished by ``t`` seconds after creation."""
        cfg = self._cfg
        span = batch.in_progress_s(cfg)
        frac = 1.0 if span <= 0 else (t - cfg.validating_s) / span
        if batch.fault is not None and batch.fault.kind == "expire":
            frac = min(frac, batch.fault.fraction)
        return max(0, min(len(batch.lines), math.floor(len(batch.lines) * frac + 1e-9)))

    def _phase(self, batch: Batch, now: float) -> tuple[str, float, int]:
        """(status, seconds after creation it began, lines done)."""
        cfg = self._cfg
        t = now - batch.t0
        v = cfg.validating_s
        if batch.refusal is not None:
            return ("validating", 0.0, 0) if t < v else ("failed", v, 0)
        if batch.cancel_t is not None:
            tc = batch.cancel_t - batch.t0
            done = self._done_lines(batch, tc)
            if t < tc + cfg.cancelling_s:
                return "cancelling", tc, done
            return "cancelled", tc + cfg.cancelling_s, done
        if t < v:
            return "validating", 0.0, 0
        end = v + batch.in_progress_s(cfg)
        stalled = batch.fault is not None and batch.fault.kind == "expire"
        if (stalled or end + cfg.finalizing_s > cfg.window_s) and t >= cfg.window_s:
            return "expired", cfg.window_s, self._done_lines(batch, cfg.window_s)
        if t < end or stalled:
            return "in_progress", v, self._done_lines(batch, t)
        if t < end + cfg.finalizing_s:
            return "finalizing", end, len(batch.lines)
        return "completed", end + cfg.finalizing_s, len(batch.lines)

    def _outcome(self, batch: Batch, line: _Line) -> dict[str, Any]:
        if line.outcome is None:
            line.outcome = self._answer(batch, line)
        return line.outcome

    def _answer(self, batch: Batch, line: _Line) -> dict[str, Any]:
        fault = batch.fault
        if fault is not None and fault.kind == "partial":
            i = line.number
            if math.floor(i * fault.fraction) > math.floor((i - 1) * fault.fraction):
                return _line_response(line.custom_id, 500, _errors.server_error(500)[1])
        assert batch.deployment is not None
        plan = _ops.plan_chat(batch.deployment, line.body, self._cf)
        if isinstance(plan, tuple):
            return _line_response(line.custom_id, plan[0], plan[1])
        if plan.blocked_category is not None:
            result = {
                **filter_result(plan.blocked_category, plan.severity),
                "jailbreak": {"filtered": False, "detected": False},
            }
            status, body = _errors.content_filter_blocked(result)
            return _line_response(line.custom_id, status, body)
        return _line_response(line.custom_id, 200, _ops.chat_body(plan))

    def _counts(self, batch: Batch, done: int) -> dict[str, int]:
        ok = sum(
            1
            for line in batch.lines[:done]
            if (self._outcome(batch, line)["response"] or {}).get("status_code") == 200
        )
        return {
            "total": len(batch.lines) + len(batch.bad),
            "completed": ok,
            "failed": len(batch.bad) + done - ok,
        }

    def _finalize(self, batch: Batch, status: str, done: int) -> dict[str, Any]:
        """Write the output and error files once, when the batch is first seen terminal."""
        if batch.final is not None:
            return batch.final
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = list(batch.bad)
        if batch.refusal is None:
            for line in batch.lines[:done]:
                outcome = self._outcome(batch, line)
                ok = (outcome["response"] or {}).get("status_code") == 200
                (output if ok else errors).append(outcome)
            code = "batch_cancelled" if status == "cancelled" else "batch_expired"
            errors.extend(
                _line_error(
                    line.custom_id, code, f"The batch was {status} before this request ran."
                )
                for line in batch.lines[done:]
            )
        cut = self._cut_lines(batch)
        final: dict[str, Any] = {"output_file_id": None, "error_file_id": None}
        for key, rows, name in (
            ("output_file_id", output, "output"),
            ("error_file_id", errors, "errors"),
        ):
            if rows and batch.refusal is None:
                content = "".join(_jsonl(r, r.get("custom_id") in cut) for r in rows)
                stored = self._files.add(
                    f"{batch.id}_{name}.jsonl", "batch_output", content.encode()
                )
                final[key] = stored.id
        final["request_counts"] = {
            "total": len(batch.lines) + len(batch.bad),
            "completed": len(output),
            "failed": len(errors) if batch.refusal is None else len(batch.bad),
        }
        batch.final = final
        return final

    @staticmethod
    def _cut_lines(batch: Batch) -> frozenset[str]:
        """The custom ids whose output line a ``malformed`` fault cuts short (spread evenly)."""
        fault = batch.fault
        if fault is None or fault.kind != "malformed":
            return frozenset()
        return frozenset(
            line.custom_id
            for line in batch.lines
            if math.floor(line.number * fault.fraction)
            > math.floor((line.number - 1) * fault.fraction)
        )

    def describe(self, batch: Batch) -> dict[str, Any]:
        """The batch object, as of now."""
        now = self._clock()
        status, began, done = self._phase(batch, now)

        def at(offset: float) -> int:
            return batch.created_at + int(offset)

        cfg = self._cfg
        obj: dict[str, Any] = {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "status": status,
            "output_file_id": None,
            "error_file_id": None,
            "created_at": batch.created_at,
            "in_progress_at": None,
            "expires_at": at(cfg.window_s),
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {
                "total": len(batch.lines) + len(batch.bad),
                "completed": 0,
                "failed": 0,
            },
            "metadata": batch.metadata,
            "model": batch.deployment.name if batch.deployment else None,
        }
        if status not in ("validating", "failed"):
            obj["in_progress_at"] = at(cfg.validating_s)
        if status == "failed":
            assert batch.refusal is not None
            obj["failed_at"] = at(began)
            obj["errors"] = {
                "object": "list",
                "data": [{**batch.refusal, "line": None, "param": None}],
            }
        if status in ("finalizing", "completed"):
            obj["finalizing_at"] = at(cfg.validating_s + batch.in_progress_s(cfg))
        if status in ("cancelling", "cancelled") and batch.cancel_t is not None:
            obj["cancelling_at"] = at(batch.cancel_t - batch.t0)
        if status in _TERMINAL:
            obj[f"{status}_at"] = at(began)
            obj.update(self._finalize(batch, status, done))
        elif status != "validating":
            obj["request_counts"] = self._counts(batch, done)
        return obj
