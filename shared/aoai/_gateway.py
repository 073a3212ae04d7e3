"""The access layer's entry point: route a call over regions and deployments, fail over,
respect quotas, classify failures, and report what happened.

One call = a loop of attempts, each against the best eligible deployment (see ``_router``),
until one succeeds, a failure says the request itself is wrong (content filter, bad request:
raised at once, never retried), or nothing eligible is left (then the error says why: all
throttled with the soonest time, regions unavailable, auth failed, deployment not found).
The whole call is bounded by its deadline (``ctx.timeout_s`` or ``call_deadline_s``): every
attempt's timeouts shrink to what is left, and ``DeadlineExceeded`` is raised when it runs out.

Requests go out through the openai SDK's generic ``client.post(path, cast_to=httpx2.Response)``,
the SDK's own raw-response path: auth, URL building (v1 or dated), timeouts and error mapping
are the SDK's, the headers (``x-ratelimit-*``) come back with the body in one request, and
the body is decoded once with ``json`` into the dict callers get (no pydantic model per call).
Streams use the same path with ``stream=True`` and the SDK's SSE decoder (``AsyncStream`` of
plain dicts).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from shared.settings import GatewaySettings

from ._budget import embeddings_tokens, request_tokens
from ._classify import CIRCUIT, COOLDOWN, RAISE, SKIP_CREDENTIALS, SKIP_DEPLOYMENT, Mapped, classify
from ._clients import ClientProvider
from ._clock import Clock, SystemClock
from ._cooldown import cooldown_from_headers
from ._exceptions import (
    AllThrottled,
    AuthFailed,
    DeadlineExceeded,
    DeploymentNotFound,
    GatewayError,
    RegionsUnavailable,
    UnknownModel,
)
from ._health import HealthRecord, HealthStore, SharedHealth, health_store_from_settings
from ._requests import ChatRequest, EmbeddingsRequest
from ._router import MISSING, THROTTLED, TRANSIENT, Route, Router, Skip
from ._stream import ChatStream
from ._types import Attempt, CallContext, CallResult, Capacity, FailureKind, Usage

__all__ = ["Gateway"]

logger = logging.getLogger(__name__)

_CHAT = "/chat/completions"
_EMBEDDINGS = "/embeddings"


class _CallState:
    """Bookkeeping of one routed call."""

    __slots__ = ("attempts", "auth", "bad_credentials", "bad_regions", "missing", "tried")

    def __init__(self) -> None:
        self.tried: set[int] = set()
        self.bad_regions: set[str] = set()
        self.bad_credentials: set[tuple[str, str]] = set()
        self.attempts: list[Attempt] = []
        self.auth: tuple[Route, Mapped] | None = None
        self.missing: Route | None = None


class Gateway:
    """Routes chat, streaming chat and embeddings calls over the region table."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        clients: ClientProvider | None = None,
        health: HealthStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        import httpx2
        from openai import AsyncStream

        self._settings = settings
        self._clients = clients if clients is not None else ClientProvider(settings)
        self._now = (clock if clock is not None else SystemClock()).now
        self._router = Router.from_settings(settings)
        self._instance = uuid.uuid4().hex[:12]
        self._response_type = httpx2.Response
        self._timeout_type = httpx2.Timeout
        self._stream_type = AsyncStream
        if health is None:
            health = health_store_from_settings(settings)
        self._health = SharedHealth(
            health, apply=self._apply_health, now=self._now, cache_s=settings.health_cache_s
        )
        self._batch_size = {
            alias: min(route.deployment.config.max_inputs for tier in tiers for route in tier)
            for alias, tiers in self._router.tiers.items()
        }
        self._aliases = tuple(sorted(self._router.tiers))

    # ------------------------------------------------------------------ public API

    @property
    def aliases(self) -> tuple[str, ...]:
        return self._aliases

    async def chat(self, request: ChatRequest, ctx: CallContext) -> CallResult:
        """A non-streaming chat completion; ``CallResult.response`` is the upstream body."""
        started = time.perf_counter()
        alias = request.model
        base = request.upstream_body(alias)
        base.pop("stream", None)
        base.pop("stream_options", None)
        cost = self._chat_cost(request)
        try:
            data, route, attempts = await self._call(
                alias, cost, ctx, started, _CHAT, base, self._post_json
            )
        except GatewayError as exc:
            self._log("chat", ctx, alias, None, exc.attempts, started, error=exc)
            raise
        choices = data.get("choices") or ()
        finish = next(
            (c.get("finish_reason") for c in choices if c.get("finish_reason") == "content_filter"),
            None,
        )
        if finish is None and choices:
            finish = choices[0].get("finish_reason")
        result = CallResult(
            alias=alias,
            region=route.region.config.name,
            deployment=route.deployment.config.deployment,
            attempts=attempts,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            response=data,
            usage=_usage(data.get("usage")),
            finish_reason=finish,
        )
        self._log("chat", ctx, alias, result, attempts, started)
        return result

    async def open_chat_stream(self, request: ChatRequest, ctx: CallContext) -> ChatStream:
        """Route and fail over until the first chunk arrives, then hand out the stream."""
        started = time.perf_counter()
        alias = request.model
        base = request.upstream_body(alias)
        base["stream"] = True
        cost = self._chat_cost(request)
        try:
            (events, response, first), route, attempts = await self._call(
                alias, cost, ctx, started, _CHAT, base, self._open_stream
            )
        except GatewayError as exc:
            self._log("chat_stream", ctx, alias, None, exc.attempts, started, error=exc)
            raise
        ttft_ms = (time.perf_counter() - started) * 1000.0
        loop = asyncio.get_running_loop()
        loop_deadline = loop.time() + max(
            0.0, self._deadline_s(ctx) - (time.perf_counter() - started)
        )
        region_state = route.region

        def on_transient(mapped: Mapped) -> None:
            if mapped.action == CIRCUIT and region_state.circuit.record_failure(
                self._now(), immediate=mapped.opens_circuit_at_once
            ):
                self._publish_region(region_state)

        def on_end(
            stream: ChatStream, result: CallResult | None, error: GatewayError | None
        ) -> None:
            self._log(
                "chat_stream",
                ctx,
                alias,
                result,
                stream.attempts,
                started,
                error=error,
                ttft_ms=ttft_ms,
                region=stream.region,
                deployment=stream.deployment,
                cancelled=result is None and error is None,
            )

        return ChatStream(
            alias=alias,
            region=route.region.config.name,
            deployment=route.deployment.config.deployment,
            attempts=attempts,
            events=events,
            response=response,
            first=first,
            started=started,
            ttft_ms=ttft_ms,
            loop_deadline=loop_deadline,
            on_transient_failure=on_transient,
            on_end=on_end,
        )

    async def embeddings(self, request: EmbeddingsRequest, ctx: CallContext) -> CallResult:
        """Embeddings; a batch over the smallest ``max_inputs`` of the alias's deployments is split,
        the parts are sent concurrently, and the answer is reassembled in order."""
        started = time.perf_counter()
        alias = request.model
        if alias not in self._router.tiers:
            raise UnknownModel(alias, self._aliases)
        inputs = request.inputs()
        size = self._batch_size[alias]
        batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
        base = request.upstream_body(alias)

        async def one(batch: list[Any]) -> tuple[dict[str, Any], Route, tuple[Attempt, ...]]:
            body = dict(base, input=batch) if len(batches) > 1 else base
            return await self._call(
                alias, embeddings_tokens(batch), ctx, started, _EMBEDDINGS, body, self._post_json
            )

        try:
            if len(batches) == 1:
                parts = [await one(batches[0])]
            else:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(one(batch)) for batch in batches]
                parts = [task.result() for task in tasks]
        except* GatewayError as group_error:
            exc = group_error.exceptions[0]
            self._log(
                "embeddings", ctx, alias, None, getattr(exc, "attempts", ()), started, error=exc
            )
            raise exc from None
        attempts = tuple(a for _, _, part_attempts in parts for a in part_attempts)
        first_data, first_route, _ = parts[0]
        if len(parts) == 1:
            data = first_data
        else:
            data = _merge_embeddings(parts, size)
        result = CallResult(
            alias=alias,
            region=first_route.region.config.name,
            deployment=first_route.deployment.config.deployment,
            attempts=attempts,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            response=data,
            usage=_usage(data.get("usage")),
            extra={"batches": len(parts), "routes": [list(route.names) for _, route, _ in parts]}
            if len(parts) > 1
            else {},
        )
        self._log("embeddings", ctx, alias, result, attempts, started)
        return result

    def health_report(self) -> dict[str, Any]:
        """JSON-able circuits, cooldowns and budgets of every region and deployment."""
        now = self._now()
        regions: dict[str, Any] = {}
        for name, state in self._router.regions.items():
            deployments = {
                dep.config.deployment: dep.report(now)
                for dep in self._router.deployments.values()
                if dep.key.startswith(f"deployment/{name}/")
            }
            regions[name] = {
                "priority": state.config.priority,
                "circuit": state.circuit.report(now),
                "deployments": deployments,
            }
        return {
            "instance": self._instance,
            "now": now,
            "regions": regions,
            "shared_health": {
                "store": type(self._health.store).__name__
                if self._health.store is not None
                else None,
                "backend": getattr(self._health.store, "describe", lambda: None)(),
                "available": self._health.available,
                "last_read": self._health.last_read,
            },
        }

    async def probe_regions(self) -> dict[str, bool]:
        """Probe every region with ``GET /models`` (costs no quota) and update circuits and the
        shared health. True: the region answered with its model list (or, for the dated API,
        any non-5xx, non-auth HTTP answer — the listing may not exist there, but the region is
        up); False: connection error, timeout, 5xx, or our credentials were refused."""
        await self._health.refresh()

        async def probe(name: str) -> tuple[str, bool]:
            state = self._router.regions[name]
            client = self._clients.get(state.config)
            try:
                await client.get("/models", cast_to=self._response_type)
            except Exception as exc:  # noqa: BLE001 - classified below
                mapped = classify(exc)
                now = self._now()
                if mapped.action == CIRCUIT:
                    if state.circuit.record_failure(now, immediate=True):
                        self._publish_region(state)
                    return name, False
                if state.circuit.record_success(now):
                    self._publish_region(state)
                return name, mapped.action not in (SKIP_CREDENTIALS,) and mapped.status is not None
            if state.circuit.record_success(self._now()):
                self._publish_region(state)
            return name, True

        results = dict(await asyncio.gather(*(probe(name) for name in self._router.regions)))
        await self._health.drain()
        return results

    def estimate_cost(self, request: ChatRequest | EmbeddingsRequest | None) -> int:
        """The tokens a call with ``request`` is charged against TPM (Azure's admission estimate,
        the same figure ``chat``/``embeddings`` charge). None, a request not known: the settings'
        ``default_max_tokens``, what a chat call with a tiny prompt and no output cap costs."""
        if request is None:
            return self._settings.default_max_tokens
        return request_tokens(request, self._settings.default_max_tokens)

    def capacity(self, alias: str) -> Capacity:
        """Requests and tokens absorbable right now across the alias's usable deployments, and the
        rates at which their quotas replenish (see ``Capacity``)."""
        if alias not in self._router.tiers:
            raise UnknownModel(alias, self._aliases)
        now = self._now()
        requests = tokens = count = 0
        requests_per_s = tokens_per_s = 0.0
        soonest: float | None = None
        for tier in self._router.tiers[alias]:
            for route in tier:
                dep, circuit = route.deployment, route.region.circuit
                blocked = dep.blocked_until(now)
                if dep.missing_until > now:
                    continue
                if blocked or not circuit.available(now):
                    at = blocked or circuit.open_until
                    soonest = at if soonest is None or at < soonest else soonest
                    continue
                budget = dep.budget
                rate_requests, rate_tokens = budget.rates()
                requests_per_s += rate_requests
                tokens_per_s += rate_tokens
                free_requests = min(budget.requests.remaining(now), budget.burst.remaining(now))
                free_tokens = budget.tokens.remaining(now)
                if free_requests <= 0 or free_tokens <= 0:
                    at = budget.available_at(now, 1)
                    soonest = at if soonest is None or at < soonest else soonest
                    continue
                requests += free_requests
                tokens += free_tokens
                count += 1
        return Capacity(
            alias=alias,
            requests=requests,
            tokens=tokens,
            deployments=count,
            retry_at=None if count else soonest,
            requests_per_s=requests_per_s,
            tokens_per_s=tokens_per_s,
        )

    async def aclose(self) -> None:
        await self._health.aclose()
        await self._clients.aclose()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ the routed call

    def _deadline_s(self, ctx: CallContext) -> float:
        return ctx.timeout_s if ctx.timeout_s is not None else self._settings.call_deadline_s

    def _chat_cost(self, request: ChatRequest) -> int:
        return request_tokens(request, self._settings.default_max_tokens)

    async def _call(
        self,
        alias: str,
        cost: int,
        ctx: CallContext,
        started: float,
        path: str,
        base: dict[str, Any],
        send: Callable[[Any, str, dict[str, Any], Any], Awaitable[tuple[Any, Any]]],
    ) -> tuple[Any, Route, tuple[Attempt, ...]]:
        router = self._router
        if alias not in router.tiers:
            raise UnknownModel(alias, self._aliases)
        waiter = self._health.before_call()
        if waiter is not None:
            await self._health.first_read(waiter)
        settings = self._settings
        deadline = started + self._deadline_s(ctx)
        now_fn = self._now
        call = _CallState()
        while True:
            now = now_fn()
            route = router.pick(
                alias, cost, now, call.tried, call.bad_regions, call.bad_credentials
            )
            if route is None:
                raise self._exhausted(alias, cost, now, call)
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"The call for '{alias}' ran out of its {self._deadline_s(ctx):.1f}s deadline.",
                    attempts=tuple(call.attempts),
                )
            region, dep = route.region, route.deployment
            if not region.circuit.acquire(now):  # pick checked availability; cannot normally fail
                call.tried.add(id(route))
                continue
            call.tried.add(id(route))
            dep.budget.charge(now, cost)
            timeout = None
            if remaining < settings.read_timeout_s:
                timeout = self._timeout_type(
                    remaining, connect=min(settings.connect_timeout_s, remaining)
                )
            body = dict(base, model=dep.config.deployment)
            client = self._clients.get(region.config)
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(remaining + 0.05):
                    value, headers = await send(client, path, body, timeout)
            except Mapped as mapped:
                elapsed = (time.perf_counter() - t0) * 1000.0
                call.attempts.append(
                    Attempt(
                        region.config.name,
                        dep.config.deployment,
                        mapped.kind,
                        mapped.status,
                        elapsed,
                        mapped.detail,
                    )
                )
                self._after_failure(route, mapped, call)
                continue
            except TimeoutError:
                region.circuit.release()
                elapsed = (time.perf_counter() - t0) * 1000.0
                call.attempts.append(
                    Attempt(
                        region.config.name,
                        dep.config.deployment,
                        FailureKind.TIMEOUT,
                        None,
                        elapsed,
                        "call deadline",
                    )
                )
                raise DeadlineExceeded(
                    f"The call for '{alias}' ran out of its {self._deadline_s(ctx):.1f}s deadline.",
                    attempts=tuple(call.attempts),
                ) from None
            except BaseException:
                region.circuit.release()
                raise
            now = now_fn()
            if region.circuit.record_success(now):
                self._publish_region(region)
            if headers is not None:
                dep.budget.correct(
                    now,
                    headers.get("x-ratelimit-remaining-requests"),
                    headers.get("x-ratelimit-remaining-tokens"),
                    headers.get("x-ratelimit-limit-requests"),
                )
            call.attempts.append(
                Attempt(
                    region.config.name,
                    dep.config.deployment,
                    None,
                    200,
                    (time.perf_counter() - t0) * 1000.0,
                )
            )
            return value, route, tuple(call.attempts)

    def _after_failure(self, route: Route, mapped: Mapped, call: _CallState) -> None:
        """What one failed attempt teaches the router (the table in ``_classify``)."""
        now = self._now()
        region, dep = route.region, route.deployment
        action = mapped.action
        if action == CIRCUIT:
            call.bad_regions.add(region.config.name)
            if region.circuit.record_failure(now, immediate=mapped.opens_circuit_at_once):
                self._publish_region(region)
            return
        # Any other HTTP answer proves the region is up; an identity-endpoint failure says nothing about it.
        if mapped.status is not None:
            if region.circuit.record_success(now):
                self._publish_region(region)
        else:
            region.circuit.release()
        if action == COOLDOWN:
            self._throttle(route, mapped, now)
        elif action == SKIP_CREDENTIALS:
            call.bad_credentials.add(region.credentials)
            if call.auth is None:
                call.auth = (route, mapped)
        elif action == SKIP_DEPLOYMENT:
            dep.missing_until = now + self._settings.missing_deployment_s
            dep.changed_at = now
            self._health.publish(
                HealthRecord(dep.key, "missing", dep.missing_until, now, self._instance)
            )
            if call.missing is None:
                call.missing = route
        elif action == RAISE:
            raise mapped.error(tuple(call.attempts)) from mapped

    def _throttle(self, route: Route, mapped: Mapped, now: float) -> None:
        """A 429: cool the deployment down per its headers; absurd values mark it exhausted."""
        dep = route.deployment
        settings = self._settings
        seconds, source = cooldown_from_headers(
            mapped.headers, now=now, default_s=settings.default_throttle_cooldown_s
        )
        until = now + seconds
        if seconds > settings.absurd_retry_after_s:
            dep.exhausted_until = max(dep.exhausted_until, until)
            state = "exhausted"
        else:
            dep.cooling_until = max(dep.cooling_until, until)
            state = "cooling"
        dep.changed_at = now
        # The 429's remaining-* headers (zero) are not applied: the cooldown above already says when it frees up.
        self._health.publish(HealthRecord(dep.key, state, until, now, self._instance))
        logger.debug("deployment %s %s for %.3fs (from %s)", dep.key, state, seconds, source)

    def _exhausted(self, alias: str, cost: int, now: float, call: _CallState) -> GatewayError:
        """The error for a call with nothing eligible left."""
        attempts = list(call.attempts)
        skips: list[Skip] = self._router.explain(
            alias, cost, now, call.bad_regions, call.bad_credentials
        )
        tried_names = {(a.region, a.deployment) for a in attempts}
        for skip in skips:
            if skip.route.names not in tried_names:
                attempts.append(
                    Attempt(*skip.route.names, FailureKind.SKIPPED, None, 0.0, skip.detail)
                )
        final = tuple(attempts)
        reasons = {skip.reason for skip in skips}
        if THROTTLED in reasons:
            later = [
                s.available_at
                for s in skips
                if s.reason in (THROTTLED, TRANSIENT) and s.available_at > now
            ]
            return AllThrottled(alias, retry_at=min(later) if later else now, attempts=final)
        if TRANSIENT in reasons:
            return RegionsUnavailable(
                f"No region could serve '{alias}': "
                + "; ".join(
                    f"{s.route.names[0]}: {s.detail}" for s in skips if s.reason == TRANSIENT
                ),
                attempts=final,
            )
        if call.auth is not None:
            route, mapped = call.auth
            message = str(mapped.body.get("message") or mapped.detail)
            return AuthFailed(
                region=route.region.config.name,
                identity=route.region.config.identity_label,
                status=mapped.status or 401,
                upstream_message=message,
                attempts=final,
            )
        missing = call.missing or next((s.route for s in skips if s.reason == MISSING), None)
        if missing is not None:
            return DeploymentNotFound(
                region=missing.region.config.name,
                deployment=missing.deployment.config.deployment,
                alias=alias,
                attempts=final,
            )
        return RegionsUnavailable(f"No region could serve '{alias}'.", attempts=final)

    # ------------------------------------------------------------------ senders (raise Mapped)

    async def _post_json(
        self, client: Any, path: str, body: dict[str, Any], timeout: Any
    ) -> tuple[dict[str, Any], Any]:
        try:
            response = await client.post(
                path,
                body=body,
                cast_to=self._response_type,
                options={"timeout": timeout} if timeout else {},
            )
            return response.json(), response.headers
        except Exception as exc:
            raise classify(exc) from exc

    async def _open_stream(
        self, client: Any, path: str, body: dict[str, Any], timeout: Any
    ) -> tuple[tuple[Any, Any, dict[str, Any]], Any]:
        response = None
        try:
            response = await client.post(
                path,
                body=body,
                cast_to=self._response_type,
                options={"timeout": timeout} if timeout else {},
                stream=True,
            )
            events = self._stream_type(cast_to=object, response=response, client=client)
            iterator = events.__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                raise Mapped(
                    FailureKind.SERVER_ERROR,
                    status=response.status_code,
                    detail="the stream ended before its first chunk",
                ) from None
            return (iterator, response, first), response.headers
        except BaseException as exc:
            if response is not None:
                await _quiet_close(response)
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise

    # ------------------------------------------------------------------ shared health

    def _publish_region(self, region: Any) -> None:
        circuit = region.circuit
        state = "open" if circuit.open_until else "closed"
        self._health.publish(
            HealthRecord(
                region.key,
                state,
                circuit.open_until,
                circuit.changed_at or self._now(),
                self._instance,
            )
        )

    def _apply_health(self, records: Iterable[HealthRecord]) -> None:
        now = self._now()
        router = self._router
        for record in records:
            if record.writer == self._instance:
                continue
            if record.key.startswith("region/"):
                region = router.regions.get(record.key[7:])
                if region is None or record.updated <= region.circuit.changed_at:
                    continue
                if record.state == "open" and record.until > now:
                    region.circuit.force(record.until, record.updated)
                elif record.state == "closed" and region.circuit.open_until:
                    region.circuit.force(0.0, record.updated)
                continue
            dep = router.deployments.get(record.key)
            if dep is None or record.until <= now or record.updated <= dep.changed_at:
                continue
            field = {
                "cooling": "cooling_until",
                "exhausted": "exhausted_until",
                "missing": "missing_until",
            }.get(record.state)
            if field is not None:
                setattr(dep, field, max(getattr(dep, field), record.until))

    # ------------------------------------------------------------------ the log record

    def _log(
        self,
        operation: str,
        ctx: CallContext,
        alias: str,
        result: CallResult | None,
        attempts: Iterable[Attempt],
        started: float,
        *,
        error: BaseException | None = None,
        ttft_ms: float | None = None,
        region: str | None = None,
        deployment: str | None = None,
        cancelled: bool = False,
    ) -> None:
        level = logging.INFO if error is None else logging.WARNING
        if not logger.isEnabledFor(level):
            return
        usage = result.usage if result is not None else None
        outcome = (
            "ok"
            if error is None and not cancelled
            else ("cancelled" if cancelled else getattr(error, "code", type(error).__name__))
        )
        fields = {
            "event": "aoai_call",
            "operation": operation,
            "correlation_id": ctx.correlation_id,
            "caller": ctx.caller,
            "alias": alias,
            "region": result.region if result is not None else region,
            "deployment": result.deployment if result is not None else deployment,
            "outcome": outcome,
            "attempts": [a.as_dict() for a in attempts],
            "usage": None
            if usage is None
            else {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
            "ttft_ms": None if ttft_ms is None else round(ttft_ms, 3),
            "finish_reason": result.finish_reason if result is not None else None,
        }
        logger.log(level, "aoai %s %s -> %s", operation, alias, outcome, extra=fields)


def _usage(raw: Any) -> Usage | None:
    if not raw:
        return None
    return Usage(
        prompt_tokens=raw.get("prompt_tokens", 0) or 0,
        completion_tokens=raw.get("completion_tokens", 0) or 0,
        total_tokens=raw.get("total_tokens", 0) or 0,
    )


def _merge_embeddings(
    parts: list[tuple[dict[str, Any], Route, tuple[Attempt, ...]]], size: int
) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    prompt = total = 0
    for offset, (body, _, _) in enumerate(parts):
        for item in sorted(body.get("data") or (), key=lambda d: d.get("index", 0)):
            data.append(dict(item, index=offset * size + item.get("index", 0)))
        usage = body.get("usage") or {}
        prompt += usage.get("prompt_tokens", 0) or 0
        total += usage.get("total_tokens", 0) or 0
    first = parts[0][0]
    return {
        "object": first.get("object", "list"),
        "data": data,
        "model": first.get("model"),
        "usage": {"prompt_tokens": prompt, "total_tokens": total},
    }


async def _quiet_close(response: Any) -> None:
    try:
        await response.aclose()
    except Exception:  # noqa: BLE001
        pass
