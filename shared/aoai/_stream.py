"""A routed chat stream: chunks are forwarded as they arrive, never buffered.

``Gateway.open_chat_stream`` routes and fails over until the first chunk has arrived; only then
does it hand out a ``ChatStream``, so ``region``, ``deployment`` and ``attempts`` are known
before the caller writes its first byte and every failure up to that point raises a typed error
instead. After the first chunk a failure cannot be retried elsewhere (the caller has already
seen part of an answer), so it ends the stream with ``StreamInterrupted`` — as does an upstream
stream that ends without any ``finish_reason`` — never a silent truncation.

A caller that goes away mid-stream (``aclose`` before the end) is never a region failure, but it
is not free either: Azure bills what it generated. The observers get an *abandoned* result
(``CallResult.extra["abandoned"]``, ``CallOutcome.cancelled``) carrying the usage seen so far, or
the estimate of the prompt plus the streamed characters / 4 (``Usage.estimated``), so the usage
recorder and the caller's budget count it like any other call.

Some peers (Microsoft's own simulator, some proxies) put ``finish_reason`` inside the choice's
``delta`` instead of on the choice. That ends the choice too: the value is lifted onto the
choice (the shape the openai SDK and every client read) before the chunk is handed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from ._classify import ClassifiedFailure, classify
from ._exceptions import GatewayError, StreamInterrupted
from ._results import call_result, usage_of
from ._types import Attempt, CallResult, FailureKind, Usage

__all__ = ["ChatStream"]


class ChatStream:
    """Async iterator of OpenAI chunk dicts. Use ``result`` after it ends; always ``aclose()``."""

    def __init__(
        self,
        *,
        alias: str,
        region: str,
        deployment: str,
        attempts: tuple[Attempt, ...],
        events: AsyncIterator[dict[str, Any]],
        response: Any,
        first: dict[str, Any],
        started: float,
        monotonic: Callable[[], float],
        ttft_ms: float,
        loop_deadline: float,
        idle_s: float | None = None,
        on_transient_failure: Callable[[ClassifiedFailure], None],
        on_end: Callable[[ChatStream, CallResult | None, GatewayError | None], None],
        prompt_tokens: int = 0,
    ) -> None:
        self.alias = alias
        self.region = region
        self.deployment = deployment
        self.attempts = attempts
        self._events = events
        self._response = response
        self._first: dict[str, Any] | None = first
        self._started = started
        self._monotonic = monotonic
        self._ttft_ms = ttft_ms
        self._loop_deadline = loop_deadline
        self._idle_s = idle_s
        self._on_transient_failure = on_transient_failure
        self._on_end = on_end
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._prompt_tokens = prompt_tokens  # the request's prompt estimate
        self._answer_chars = 0  # text and tool calls streamed, for an estimate without usage
        self._result: CallResult | None = None
        self._done = False

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        first = self._first
        if first is not None:
            self._first = None
            self._observe(first)
            return first
        if self._done:
            raise StopAsyncIteration
        try:
            when = self._loop_deadline
            if self._idle_s is not None:  # a silent upstream mid-stream: idle_timeout_s
                when = min(when, asyncio.get_running_loop().time() + self._idle_s)
            async with asyncio.timeout_at(when):
                chunk: Any = await self._events.__anext__()
        except StopAsyncIteration:
            if self._finish_reason is None:
                await self._fail("upstream ended the stream without a finish_reason", None)
            self._end(None)
            raise
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                await self.aclose()
                raise
            if (
                isinstance(exc, TimeoutError)
                and asyncio.get_running_loop().time() >= self._loop_deadline
            ):
                await self._fail("the call's deadline ran out mid-stream", exc)
            failure = classify(exc)
            self._on_transient_failure(failure)
            await self._fail(f"{failure.kind.value}: {failure.detail}", exc)
        if not isinstance(chunk, dict):  # a malformed answer: the region's fault
            failure = ClassifiedFailure(
                FailureKind.SERVER_ERROR,
                status=200,
                detail=f"malformed answer: a stream event that is a JSON {type(chunk).__name__}",
            )
            self._on_transient_failure(failure)
            await self._fail(f"{failure.kind.value}: {failure.detail}", None)
        self._observe(chunk)
        return cast("dict[str, Any]", chunk)

    def _observe(self, chunk: dict[str, Any]) -> None:
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                reason = choice.get("finish_reason")
                if not reason:
                    delta = choice.get("delta")
                    reason = delta.get("finish_reason") if isinstance(delta, dict) else None
                    if reason:
                        choice["finish_reason"] = reason
                if reason:
                    self._finish_reason = reason
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    self._answer_chars += _delta_chars(delta)
        usage = usage_of(chunk.get("usage"))  # None when absent or out of range
        if usage is not None:
            self._usage = usage

    async def _fail(self, why: str, exc: BaseException | None) -> None:
        error = StreamInterrupted(
            f"The stream from region '{self.region}' (deployment '{self.deployment}') broke off after it had started: {why}.",
            attempts=self.attempts,
        )
        await self._close_response()
        self._end(error)
        raise error from exc

    def _end(self, error: GatewayError | None) -> None:
        if self._done:
            return
        self._done = True
        if error is None:
            self._result = call_result(
                alias=self.alias,
                route=(self.region, self.deployment),
                attempts=self.attempts,
                latency_s=self._monotonic() - self._started,
                usage=self._usage if self._usage is not None else self._estimate(),
                ttft_ms=self._ttft_ms,
                finish=self._finish_reason,
            )
        self._on_end(self, self._result, error)

    def _estimate(self) -> Usage:
        """The usage of a stream whose upstream sent no (valid) usage chunk: the prompt estimate
        and the streamed text and tool calls at four characters per token."""
        completion = -(-self._answer_chars // 4)
        return Usage(
            self._prompt_tokens, completion, self._prompt_tokens + completion, estimated=True
        )

    @property
    def result(self) -> CallResult:
        """What happened, once the stream has ended (after StopAsyncIteration)."""
        if self._result is None:
            raise RuntimeError("the stream has not ended (or it ended with an error)")
        return self._result

    @property
    def ttft_ms(self) -> float:
        return self._ttft_ms

    async def _close_response(self) -> None:
        try:
            await self._response.aclose()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail again
            pass

    async def aclose(self) -> None:
        """Release the upstream connection. Closing before the end (the caller went away) is a
        cancelled call that is still charged: Azure bills what it generated, so observers get an
        abandoned result (``extra["abandoned"]``) with the usage seen, else the estimate of the
        prompt and what was streamed (``Usage.estimated``)."""
        if not self._done:
            self._done = True
            try:
                await self._close_response()
            finally:
                self._result = None  # ``result`` stays for streams that ended
                self._on_end(self, self._abandoned(), None)

    def _abandoned(self) -> CallResult:
        return call_result(
            alias=self.alias,
            route=(self.region, self.deployment),
            attempts=self.attempts,
            latency_s=self._monotonic() - self._started,
            usage=self._usage if self._usage is not None else self._estimate(),
            ttft_ms=self._ttft_ms,
            finish=self._finish_reason,
            extra={"abandoned": True},
        )

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _delta_chars(delta: dict[str, Any]) -> int:
    chars = 0
    for key in ("content", "refusal"):
        value = delta.get(key)
        if isinstance(value, str):
            chars += len(value)
    calls = delta.get("tool_calls")
    functions = (
        [c.get("function") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    )
    functions.append(delta.get("function_call"))
    for function in functions:
        if isinstance(function, dict):
            for key in ("name", "arguments"):
                value = function.get(key)
                if isinstance(value, str):
                    chars += len(value)
    return chars
