"""The access layer's one entry point: route a call over regions and deployments, fail over,
respect quotas, classify failures, and report what happened.

``Gateway`` wires the parts, each in its own module:

* ``_call_loop``: the loop of attempts of one call, bounded by its deadline;
* ``_failure_policy``: what a classified failure does to deployments, regions and the call;
* ``_senders``: how one attempt is sent (JSON, or a stream up to its first chunk);
* ``_results``: the one ``CallResult`` builder and the errors a call ends with;
* ``_embeddings_batches``: an embeddings batch split over ``max_inputs`` and merged back;
* ``_capacity``: what an alias can absorb now;
* ``shared.pacing`` (``DeploymentQuotaLedger``): each deployment's quota shared by every instance (leased slices of its windows
  from a Table Storage row), with the interactive lane's reserve;
* ``_verdict_sync``: this instance's verdicts published to, and the others' read from, the
  shared region-state table;
* ``_observers``: who hears about every attempt and every finished call (the structured log
  record is one of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from shared.pacing import DeploymentQuotaLedger, LedgerConfig, LedgerStore
from shared.settings import GatewaySettings

from ._admission import Admission
from ._call_loop import CallLoop
from ._capacity import alias_capacity
from ._circuit import RegionState, Suspect
from ._classify import ClassifiedFailure, FailureAction, classify
from ._clients import ClientProvider
from ._clock import Clock, SystemClock
from ._embeddings_batches import fan_out, merge_embeddings, split_inputs
from ._exceptions import RegionsUnavailable, RequestTooLarge, TooManyInputs, UnknownModel
from ._failure_policy import CallState, FailurePolicy
from ._observers import AttemptEvent, CallLog, CallObserver, CallOutcome, Observers
from ._request_cost import check_output_cap, embeddings_tokens, output_limit, request_tokens
from ._requests import ChatRequest, EmbeddingsRequest
from ._results import call_result, finish_reason, usage_of
from ._router import DeploymentState, Route, Router
from ._senders import OpenedStream, Sender, Senders
from ._stream import ChatStream
from ._types import Attempt, CallContext, CallResult, Capacity, FailureKind, Usage
from ._vectors import vectors_as
from ._verdict_sync import VerdictSync
from ._verdicts import TableVerdictStore, VerdictStore

logger = logging.getLogger(__name__)

__all__ = ["Gateway"]

_CHAT = "/chat/completions"
_EMBEDDINGS = "/embeddings"
_ON_LOOP_VECTORS = 16  # more vectors than this are converted in a worker thread
T = TypeVar("T")


class Gateway:
    """Routes chat, streaming chat and embeddings calls over the region table.

    ``observers`` hear about every attempt and every finished call; the default is the
    structured log record alone (``CallLog``). ``clock`` is the only source of time; ``sleep``
    (default ``asyncio.sleep``) is how a call waits for the gateway's own pacing, so a test
    can move a ``ManualClock`` instead. ``verdicts`` and ``ledger`` are the shared stores the
    composition root (``shared.runtime``) built on the app's storage; without them verdicts and
    pacing stay per instance. The gateway builds no storage itself. ``admission``, when given,
    is asked before any call to a known alias is routed (per-caller limits; ``_admission``)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        clients: ClientProvider | None = None,
        verdicts: VerdictStore | None = None,
        clock: Clock | None = None,
        observers: Iterable[CallObserver] | None = None,
        ledger: LedgerStore | None = None,
        instance: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        admission: Admission | None = None,
    ) -> None:
        self._settings = settings
        self._admission = admission
        self._clients = clients if clients is not None else ClientProvider(settings)
        self._clock: Clock = clock if clock is not None else SystemClock()
        instance = instance or uuid.uuid4().hex[:12]
        self._ledger, self._ledger_off = _quota_ledger(settings, ledger, instance, self._clock)
        self._router = Router.from_settings(settings, self._ledger)
        self._sync = VerdictSync(
            self._router,
            verdicts,
            instance=instance,
            now=self._clock.now,
            cache_s=settings.health_cache_s,
        )
        self._policy = FailurePolicy(settings, self._sync, self._clock.now)
        self._senders = Senders(
            first_byte_s=settings.first_byte_timeout_s,
            idle_s=settings.idle_timeout_s,
            max_response_bytes=settings.max_response_bytes,
            stream_upstream=settings.stream_upstream,
        )
        self._loop = CallLoop(
            settings,
            self._router,
            self._clients,
            self._sync.shared,
            self._policy,
            self._clock,
            sleep,
        )
        self._observers = Observers(observers if observers is not None else (CallLog(),))
        # One single-route tier per deployment, keyed "region/deployment", sharing the routing
        # state: a call pinned to where its stored state lives (``call_deployment``).
        self._pins: dict[str, tuple[tuple[Route, ...], ...]] = {
            "/".join(route.names): ((route,),)
            for tiers in self._router.tiers.values()
            for tier in tiers
            for route in tier
        }
        self._pinned_loop = CallLoop(
            settings,
            Router(self._router.regions, self._router.deployments, self._pins),
            self._clients,
            self._sync.shared,
            self._policy,
            self._clock,
            sleep,
        )
        self._batch_size = {
            alias: min(route.deployment.config.max_inputs for tier in tiers for route in tier)
            for alias, tiers in self._router.tiers.items()
        }
        self._aliases = tuple(sorted(self._router.tiers))
        self._probing: asyncio.Task[Any] | None = None
        # The largest whole per-minute token quota of any deployment of each alias: a request
        # estimated above it can never be admitted anywhere (RequestTooLarge, not a 429 loop).
        self._max_tpm = {
            alias: max(route.deployment.config.tpm for tier in tiers for route in tier)
            for alias, tiers in self._router.tiers.items()
        }
        # The largest output cap any deployment's model accepts (the model table): a request
        # above it gets a local 400 before any charge. None: a model not in the table.
        self._output_limit = {
            alias: output_limit(
                alias, (route.deployment.config for tier in tiers for route in tier)
            )
            for alias, tiers in self._router.tiers.items()
        }

    @property
    def clock(self) -> Clock:
        """The clock every deadline, cooldown and timestamp of this gateway is read from."""
        return self._clock

    # ------------------------------------------------------------------ calls

    @property
    def aliases(self) -> tuple[str, ...]:
        return self._aliases

    async def chat(self, request: ChatRequest, ctx: CallContext) -> CallResult:
        """A non-streaming chat completion; ``CallResult.response`` is the upstream body."""
        await self._admit(request, ctx)
        started = self._clock.monotonic()
        alias = request.model
        call = CallState()
        try:
            self._known(alias)
            self._probe_exhausted_in_background()
            base = request.upstream_body()
            base.pop("stream", None)
            base.pop("stream_options", None)
            data, route = await self._loop.run(
                alias,
                self._fitting_cost(alias, request),
                started=started,
                deadline_s=self._deadline_s(ctx),
                path=_CHAT,
                base=base,
                send=self._senders.assembled
                if self._settings.stream_upstream
                else self._senders.json,
                call=call,
                lane=ctx.lane,
                # Plain JSON answers only when the generation is done: no first byte to hedge on.
                hedge=self._settings.stream_upstream,
                on_attempt=self._attempt_observer("chat", ctx, alias),
            )
            result = call_result(
                alias=alias,
                route=route,
                attempts=tuple(call.attempts),
                latency_s=self._clock.monotonic() - started,
                response=data,
                usage=usage_of(data.get("usage")),
                finish=finish_reason(data),
            )
        except BaseException as exc:
            self._finished("chat", ctx, alias, started, call.attempts, error=exc)
            raise
        self._finished("chat", ctx, alias, started, result.attempts, result=result)
        return result

    async def open_chat_stream(self, request: ChatRequest, ctx: CallContext) -> ChatStream:
        """Route and fail over until the first chunk arrives, then hand out the stream."""
        await self._admit(request, ctx)
        clock = self._clock
        started = clock.monotonic()
        alias = request.model
        call = CallState()
        deadline_s = self._deadline_s(ctx)
        try:
            self._known(alias)
            self._probe_exhausted_in_background()
            base = request.upstream_body()
            base["stream"] = True
            opened, route = await self._loop.run(
                alias,
                self._fitting_cost(alias, request),
                started=started,
                deadline_s=deadline_s,
                path=_CHAT,
                base=base,
                send=self._senders.stream,
                call=call,
                lane=ctx.lane,
                on_attempt=self._attempt_observer("chat_stream", ctx, alias),
            )
        except BaseException as exc:
            self._finished("chat_stream", ctx, alias, started, call.attempts, error=exc)
            raise
        return self._stream(
            opened,
            route.names,
            route.region,
            call,
            ctx,
            alias,
            started,
            deadline_s,
            request.prompt_tokens(),
        )

    def _stream(
        self,
        opened: OpenedStream,
        names: tuple[str, str],
        region: RegionState,
        call: CallState,
        ctx: CallContext,
        alias: str,
        started: float,
        deadline_s: float,
        prompt_tokens: int = 0,
    ) -> ChatStream:
        clock = self._clock
        elapsed = clock.monotonic() - started
        ttft_ms = elapsed * 1000.0
        loop_deadline = asyncio.get_running_loop().time() + max(0.0, deadline_s - elapsed)

        sent_at = call.sent_at  # when the stream's request was sent (clock.now)

        def on_transient(failure: ClassifiedFailure) -> None:
            # After the first chunk: an upstream break or stall counts toward the circuit's
            # threshold, never opens it at once, and is judged by when the request was sent
            # (a stream sent before the circuit opened says nothing about the region now).
            # A caller going away never gets here (ChatStream.aclose records nothing).
            if failure.action is FailureAction.CIRCUIT:
                self._policy.region_failed(region, immediate=False, sent_at=sent_at)

        def on_end(
            stream: ChatStream, result: CallResult | None, error: BaseException | None
        ) -> None:
            self._finished(
                "chat_stream",
                ctx,
                alias,
                started,
                stream.attempts,
                result=result,
                error=error,
                ttft_ms=ttft_ms,
                names=(stream.region, stream.deployment),
            )

        return ChatStream(
            alias=alias,
            region=names[0],
            deployment=names[1],
            attempts=tuple(call.attempts),
            events=opened.events,
            response=opened.response,
            first=opened.first,
            started=started,
            monotonic=clock.monotonic,
            ttft_ms=ttft_ms,
            loop_deadline=loop_deadline,
            idle_s=self._settings.idle_timeout_s,
            on_transient_failure=on_transient,
            on_end=on_end,
            prompt_tokens=prompt_tokens,
        )

    async def embeddings(self, request: EmbeddingsRequest, ctx: CallContext) -> CallResult:
        """Embeddings; a batch over the smallest ``max_inputs`` of the alias's deployments is split,
        the parts are sent concurrently, and the answer is reassembled in order. Upstream always
        answers in base64; the vectors come back in ``request.encoding_format`` (float when
        omitted, as OpenAI does). The HTTP API asks for base64 and writes floats itself."""
        await self._admit(request, ctx)
        started = self._clock.monotonic()
        alias = request.model
        calls = [CallState()]
        try:
            self._known(alias)
            self._probe_exhausted_in_background()
            inputs = request.inputs()
            if len(inputs) > self._settings.max_embedding_inputs:
                raise TooManyInputs(len(inputs), self._settings.max_embedding_inputs)
            size = self._batch_size[alias]
            batches = split_inputs(inputs, size)
            for batch in batches:
                self._fits(alias, embeddings_tokens(batch), "input")
            # Always base64 upstream: vectors stay strings until a caller wants floats (_vectors).
            base = dict(request.upstream_body(), encoding_format="base64")
            suspect = Suspect()  # the parts are one request: one suspect (_failure_policy)
            calls = [CallState(suspect=suspect) for _ in batches]
            on_attempt = self._attempt_observer("embeddings", ctx, alias)

            async def one(batch: list[Any], call: CallState) -> tuple[dict[str, Any], Route]:
                return await self._loop.run(
                    alias,
                    embeddings_tokens(batch),
                    started=started,
                    deadline_s=self._deadline_s(ctx),
                    path=_EMBEDDINGS,
                    base=dict(base, input=batch) if len(batches) > 1 else base,
                    send=self._senders.json,
                    call=call,
                    lane=ctx.lane,
                    on_attempt=on_attempt,
                )

            if len(batches) == 1:
                parts = [await one(batches[0], calls[0])]
            else:
                parts = await fan_out(batches, one, calls)
            bodies = [body for body, _ in parts]
            # Merging thousands of vectors takes long enough to stall every other call: off the loop.
            data = (
                bodies[0]
                if len(parts) == 1
                else await asyncio.to_thread(merge_embeddings, bodies, size)
            )
            # The caller's encoding (OpenAI's default is float); decoding is off the loop too.
            encoding = request.encoding_format or "float"
            data = (
                await asyncio.to_thread(vectors_as, data, encoding)
                if len(inputs) > _ON_LOOP_VECTORS
                else vectors_as(data, encoding)
            )
            result = call_result(
                alias=alias,
                route=parts[0][1],
                attempts=tuple(a for call in calls for a in call.attempts),
                latency_s=self._clock.monotonic() - started,
                response=data,
                usage=usage_of(data.get("usage")),
                extra={"batches": len(parts), "routes": [list(route.names) for _, route in parts]}
                if len(parts) > 1
                else None,
            )
        except BaseException as exc:
            attempts = [a for call in calls for a in call.attempts]
            self._finished("embeddings", ctx, alias, started, attempts, error=exc)
            raise
        self._finished("embeddings", ctx, alias, started, result.attempts, result=result)
        return result

    async def call_deployment(
        self,
        operation: str,
        target: str | tuple[str, str],
        *,
        path: str,
        body: dict[str, Any],
        send: Sender[T],
        cost: int,
        ctx: CallContext,
        usage: Callable[[T], Usage | None] | None = None,
        report_at_end: bool = False,
        hedge: bool = True,
    ) -> tuple[T, CallResult]:
        """One call of an operation with no typed method here (the Responses API) through the
        call loop: ``target`` an alias (routed over its deployments, with failover), or a
        ``(region, deployment)`` pair (pinned: only that deployment, under its pacing, budget
        and region circuit; ``RegionsUnavailable`` when it cannot be reached). ``send`` sends
        one attempt; ``usage`` reads the result's usage for the observers. A stream is reported
        when it ends instead (``report_at_end``: the caller then calls ``call_ended``).
        A Responses API create (``operation`` "responses") is admitted at ``cost`` (a
        continuation pinned to a deployment counts against the alias in its body); reads,
        deletions and cancellations are not. ``hedge=False``: a JSON create, whose headers
        come only with the whole answer (no first byte to hedge on); a pinned call is never
        hedged."""
        if self._admission is not None and operation == "responses":
            admitted = target if isinstance(target, str) else str(body.get("model") or "")
            if admitted in self._router.tiers:
                await self._admission.admit(ctx.caller, cost, admitted)
        started = self._clock.monotonic()
        call = CallState()
        if isinstance(target, str):
            self._known(target)
            loop, key, alias = self._loop, target, target
        else:
            key = "/".join(target)
            tiers = self._pins.get(key)
            if tiers is None:
                raise RegionsUnavailable(
                    f"deployment '{target[1]}' of region '{target[0]}' is not configured"
                )
            loop, alias = self._pinned_loop, tiers[0][0].deployment.alias
        try:
            value, route = await loop.run(
                key,
                cost,
                started=started,
                deadline_s=self._deadline_s(ctx),
                path=path,
                base=body,
                send=send,
                call=call,
                lane=ctx.lane,
                on_attempt=self._attempt_observer(operation, ctx, alias),
                # Pinned to the deployment storing it: never hedged.
                hedge=hedge and isinstance(target, str),
            )
            result = call_result(
                alias=alias,
                route=route,
                attempts=tuple(call.attempts),
                latency_s=self._clock.monotonic() - started,
                response=value if isinstance(value, dict) else None,
                usage=usage(value) if usage is not None else None,
            )
        except BaseException as exc:
            self._finished(operation, ctx, alias, started, call.attempts, error=exc)
            raise
        if not report_at_end:
            self._finished(operation, ctx, alias, started, result.attempts, result=result)
        return value, result

    def call_ended(
        self,
        operation: str,
        ctx: CallContext,
        result: CallResult,
        *,
        started: float,
        usage: Usage | None,
        response: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Report a ``call_deployment(report_at_end=True)`` stream that has ended: ``started``
        (``clock.monotonic``) before the call, ``result`` as it opened (its latency is the time to
        the first event), the usage and final object its last event carried; ``error``, the
        upstream breaking off or falling silent, counts toward the region's circuit."""
        ttft_ms = result.latency_ms
        final = dataclasses.replace(result, usage=usage, ttft_ms=ttft_ms, response=response)
        region = self._router.regions.get(result.region)
        if error is not None and region is not None:
            # As a chat stream's break: counted toward the circuit, never opening it at once,
            # judged by when the call started.
            failure = classify(error)
            if failure.action is FailureAction.CIRCUIT:
                clock = self._clock
                sent_at = clock.now() - (clock.monotonic() - started)
                self._policy.region_failed(region, immediate=False, sent_at=sent_at)
        self._finished(
            operation,
            ctx,
            result.alias,
            started,
            result.attempts,
            result=None if error is not None else final,
            error=error,
            ttft_ms=ttft_ms,
            names=(result.region, result.deployment),
        )

    @property
    def senders(self) -> Senders:
        """How attempts are sent (JSON, a stream up to its first event), for ``call_deployment``."""
        return self._senders

    def region_open(self, region: str) -> bool:
        """Whether ``region``'s circuit lets requests through now (False: unknown or open)."""
        state = self._router.regions.get(region)
        return state is not None and state.circuit.state(self._clock.now()) != "open"

    # ------------------------------------------------------------------ state and capacity

    def health_report(self) -> dict[str, Any]:
        """JSON-able circuits, cooldowns and budgets of every region and deployment."""
        now = self._clock.now()
        hedger = self._loop.hedger
        regions: dict[str, Any] = {}
        for name, state in self._router.regions.items():
            deployments = {
                dep.config.deployment: dict(dep.report(now), hedge=hedger.report(dep.key, now))
                for dep in self._router.deployments.values()
                if dep.key.startswith(f"deployment/{name}/")
            }
            regions[name] = {
                "priority": state.config.priority,
                "circuit": state.circuit.report(now),
                "probe": {"verdict": state.probe_verdict, "at": state.probe_at},
                "deployments": deployments,
            }
        shared = self._sync.shared
        return {
            "instance": self._sync.instance,
            "now": now,
            "regions": regions,
            "shared_health": {
                "store": type(shared.store).__name__ if shared.store is not None else None,
                "backend": shared.store.describe()
                if isinstance(shared.store, TableVerdictStore)
                else None,
                "available": shared.available,
                "last_read": shared.last_read,
            },
            "ledger": self._ledger.report()
            if self._ledger is not None
            else {"mode": "off", "reason": self._ledger_off},
        }

    async def probe_regions(self) -> dict[str, bool]:
        """Probe every region and update circuits and the shared region state; also verify exhausted
        deployments (``probe_exhausted``). Per region (``probe``): ``models`` sends ``GET
        /models`` (costs no quota), ``deployment`` a minimal call on its first deployment (for
        proxies that do not serve /models). True: the region answered (any HTTP answer other
        than a 5xx, credentials accepted).

        A probe never opens a circuit on its own authority: a connection failure or timeout
        counts toward the normal threshold, like a real call's, and so does a 5xx from a real
        (``deployment``) call; a 5xx or any other answer from ``/models`` says nothing about the
        deployments and is not counted. Only a clean answer closes a circuit (as its probe).
        When ``/models`` gives no verdict while the region's circuit is not closed, the probe
        falls back to the minimal deployment call, so a region nobody routes to is not left
        half-open for good. Each region's report says what its state rests on
        (``probe``: the last verdict and when)."""
        shared = self._sync.shared
        await shared.refresh()

        async def probe(name: str) -> tuple[str, bool]:
            state = self._router.regions[name]
            real = state.config.probe == "deployment"
            verdict = await self._probe_region(state, real=real)
            if verdict == "inconclusive" and state.circuit.state(self._clock.now()) != "closed":
                verdict = await self._probe_region(state, real=True)
            state.probe_verdict, state.probe_at = verdict, self._clock.now()
            return name, verdict == "answered"

        results = dict(await asyncio.gather(*(probe(name) for name in self._router.regions)))
        await self.probe_exhausted()
        await shared.drain()
        if self._ledger is not None:  # the shared view of the windows, for capacity() next
            await self._ledger.refresh()
        return results

    async def _probe_region(self, state: RegionState, *, real: bool) -> str:
        """One probe of ``state``'s region: ``answered`` (credentials accepted, not a 5xx),
        ``failed`` (counted toward its circuit), ``refused`` (credentials) or ``inconclusive``
        (a 5xx from ``/models``, or another answer that says nothing about the region)."""
        policy = self._policy
        client = self._clients.get(state.config)
        sent_at = self._clock.now()
        try:
            if real:
                dep = self._region_deployments(state.config.name)[0]
                await self._senders.json(client, *self._probe_call(dep), None)
            else:
                await client.get("/models", cast_to=self._senders.response_type)
        except Exception as exc:  # noqa: BLE001 - classified below
            failure = classify(exc)
            network = failure.status is None and failure.action is FailureAction.CIRCUIT
            if network or (real and failure.kind is FailureKind.SERVER_ERROR):
                policy.region_failed(state, immediate=False, sent_at=sent_at)
                return "failed"
            if failure.action is FailureAction.CIRCUIT:  # a 5xx from /models: no verdict
                return "inconclusive"
            if failure.action is FailureAction.SKIP_CREDENTIALS:
                return "refused"
            if failure.status is not None and failure.status < 500:
                policy.region_answered(state, sent_at=sent_at)
                return "answered"
            return "inconclusive"
        policy.region_answered(state, sent_at=sent_at)
        return "answered"

    async def probe_exhausted(self) -> dict[str, bool]:
        """Verify every exhausted deployment whose probe is due with a minimal real call on it
        (``max_tokens: 1`` chat, or a one-word embedding). Answered: it is back at once (also
        for the other instances, through the shared region state). Another absurd 429: it stays
        exhausted, never longer than ``absurd_retry_after_s`` and never past the next probe
        that succeeds. Called by ``probe_regions`` and, in the background, by calls that find
        a probe due; ``exhaustion_probe_interval_s`` bounds how often."""
        now = self._clock.now()
        due = [
            dep
            for dep in self._router.deployments.values()
            if dep.exhausted_until > now and dep.probe_at <= now
        ]
        results = await asyncio.gather(*(self._verify(dep, now) for dep in due))
        return {dep.key: ok for dep, ok in zip(due, results, strict=True)}

    async def _verify(self, dep: DeploymentState, now: float) -> bool:
        dep.probe_at = now + self._settings.exhaustion_probe_interval_s
        route = next(
            r for tier in self._router.tiers[dep.alias] for r in tier if r.deployment is dep
        )
        client = self._clients.get(route.region.config)
        try:
            await self._senders.json(client, *self._probe_call(dep), None)
        except ClassifiedFailure as failure:
            if failure.action is FailureAction.COOLDOWN:
                try:
                    self._policy.after_failure(route, failure, CallState())
                except Exception:  # noqa: BLE001 - a probe raises nothing to anyone
                    pass
            return False
        self._policy.deployment_verified(dep)
        return True

    def _probe_call(self, dep: DeploymentState) -> tuple[str, dict[str, Any]]:
        """The cheapest real call on ``dep``: the path it serves, and a minimal body."""
        if dep.path == _EMBEDDINGS:
            return _EMBEDDINGS, {"model": dep.config.deployment, "input": "ping"}
        return _CHAT, {
            "model": dep.config.deployment,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
        }

    def _region_deployments(self, region: str) -> list[DeploymentState]:
        prefix = f"deployment/{region}/"
        return [d for d in self._router.deployments.values() if d.key.startswith(prefix)]

    def _probe_exhausted_in_background(self) -> None:
        """Start ``probe_exhausted`` when a probe is due (cheap check; at most one at a time)."""
        if self._probing is not None and not self._probing.done():
            return
        now = self._clock.now()
        if any(
            d.exhausted_until > now and d.probe_at <= now for d in self._router.deployments.values()
        ):
            self._probing = asyncio.get_running_loop().create_task(self.probe_exhausted())

    def estimate_cost(self, request: ChatRequest | EmbeddingsRequest | None) -> int:
        """The tokens a call with ``request`` is charged against TPM (Azure's admission estimate,
        the same figure ``chat``/``embeddings`` charge). None, a request not known: the settings'
        ``default_max_tokens``, what a chat call with a tiny prompt and no output cap costs."""
        if request is None:
            return self._settings.default_max_tokens
        return request_tokens(request, self._settings.default_max_tokens)

    def capacity(self, alias: str) -> Capacity:
        """Requests and tokens absorbable right now across the alias's usable deployments, and the
        rates at which their quotas replenish (see ``Capacity``). With the ledger, what is free
        is also bounded by what every instance has leased of the current windows, as last read
        (``probe_regions`` reads the rows); ``Capacity.source`` says which view counted."""
        self._known(alias)
        return alias_capacity(alias, self._router.tiers[alias], self._clock.now())

    async def aclose(self) -> None:
        if self._probing is not None and not self._probing.done():
            self._probing.cancel()
            with contextlib.suppress(BaseException):
                await self._probing
        await self._sync.shared.aclose()
        if self._ledger is not None:
            await self._ledger.aclose()
        await self._clients.aclose()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ helpers

    async def _admit(self, request: ChatRequest | EmbeddingsRequest, ctx: CallContext) -> None:
        """Ask the admission hook (if any) about a call to a known alias, before it starts."""
        if self._admission is not None and request.model in self._router.tiers:
            await self._admission.admit(ctx.caller, self.estimate_cost(request), request.model)

    def _known(self, alias: str) -> None:
        if alias not in self._router.tiers:
            raise UnknownModel(alias, self._aliases)

    def _deadline_s(self, ctx: CallContext) -> float:
        return ctx.timeout_s if ctx.timeout_s is not None else self._settings.call_deadline_s

    def _chat_cost(self, request: ChatRequest) -> int:
        return request_tokens(request, self._settings.default_max_tokens)

    def _fitting_cost(self, alias: str, request: ChatRequest) -> int:
        cost = self._chat_cost(request)
        output = cost - request.prompt_tokens()
        self._fits(alias, cost, "max_tokens" if output * 2 >= cost else "messages")
        check_output_cap(alias, request, self._output_limit[alias])
        return cost

    def _fits(self, alias: str, cost: int, param: str) -> None:
        """Raise RequestTooLarge when ``cost`` exceeds every deployment's whole quota."""
        limit = self._max_tpm[alias]
        if cost > limit:
            raise RequestTooLarge(alias, estimate=cost, limit=limit, param=param)

    def _attempt_observer(
        self, operation: str, ctx: CallContext, alias: str
    ) -> Callable[[Attempt], None]:
        observers = self._observers

        def on_attempt(attempt: Attempt) -> None:
            observers.attempt_finished(AttemptEvent(operation, ctx, alias, attempt))

        return on_attempt

    def _finished(
        self,
        operation: str,
        ctx: CallContext,
        alias: str,
        started: float,
        attempts: Iterable[Attempt],
        *,
        result: CallResult | None = None,
        error: BaseException | None = None,
        ttft_ms: float | None = None,
        names: tuple[str, str] | None = None,
    ) -> None:
        if isinstance(error, asyncio.CancelledError):
            error = None  # the caller went away: a cancelled call, not a failed one
        self._observers.call_finished(
            CallOutcome(
                operation=operation,
                ctx=ctx,
                alias=alias,
                attempts=tuple(attempts),
                latency_ms=(self._clock.monotonic() - started) * 1000.0,
                result=result,
                error=error,
                region=names[0] if names else None,
                deployment=names[1] if names else None,
                ttft_ms=ttft_ms,
            )
        )


def _quota_ledger(
    settings: GatewaySettings, store: LedgerStore | None, instance: str, clock: Clock
) -> tuple[DeploymentQuotaLedger | None, str | None]:
    """The shared quota ledger, or None and why (per-instance pacing): ``disabled`` by the
    setting, or ``no_storage``: no store was handed in (the composition root, ``shared.runtime``,
    builds it on the app's storage)."""
    if not settings.ledger_enabled:
        return None, "disabled"
    if store is None:
        logger.warning(
            "quota ledger off: no storage configured (AzureWebJobsStorage or "
            "AzureWebJobsStorage__accountName / __tableServiceUri); each instance paces "
            "its deployments alone, as if it had the whole quota"
        )
        return None, "no_storage"
    ledger = DeploymentQuotaLedger(
        store,
        instance=instance,
        now=clock.now,
        config=LedgerConfig(
            reserve=settings.backlog_reserve,
            slice_fraction=settings.ledger_slice_fraction,
            request_horizon=settings.ledger_request_horizon,
            fair_share=settings.ledger_fair_share,
            fallback_share=settings.ledger_fallback_share,
            timeout_s=settings.ledger_timeout_s,
            retry_s=settings.ledger_retry_s,
        ),
    )
    return ledger, None
