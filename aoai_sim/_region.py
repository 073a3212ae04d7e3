"""One simulated region: routing, auth, faults, limits, content filter and the /_sim/ control API."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import uuid
from dataclasses import replace
from typing import Any

from . import _errors, _openai, _ops
from ._auth import OPENAI_USER_ROLE, TokenError, verify_token
from ._batch_api import BatchApi, is_batch_path
from ._batches import BatchEngine
from ._faults import Fault, FaultError, FaultRegistry
from ._files import FileStore
from ._filter import filter_result
from ._http import HttpConnection, Request
from ._limits import Decision, DeploymentLimiter, retry_after_headers
from ._responses import ResponsesApi, responses_path
from ._stats import RegionStats
from .config import AUDIENCE, DeploymentConfig, RegionConfig, SimConfig

__all__ = ["KNOWN_API_VERSIONS", "RegionApp"]

_log = logging.getLogger(__name__)

KNOWN_API_VERSIONS = frozenset(
    {
        "2022-12-01",
        "2023-03-15-preview",
        "2023-05-15",
        "2023-06-01-preview",
        "2023-07-01-preview",
        "2023-08-01-preview",
        "2023-09-01-preview",
        "2023-10-01-preview",
        "2023-12-01-preview",
        "2024-02-01",
        "2024-02-15-preview",
        "2024-03-01-preview",
        "2024-04-01-preview",
        "2024-05-01-preview",
        "2024-06-01",
        "2024-07-01-preview",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2024-10-21",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-02-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
_V1_API_VERSIONS = frozenset({"v1", "preview", "latest"})
_DONE = b"data: [DONE]\n\n"
_DATED = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)/?$")
_OPS = {
    "chat": ("ChatCompletions_Create", "chat/completions", "chat completion"),
    "embeddings": ("Embeddings_Create", "embeddings", "embeddings"),
    "responses": ("Responses_Create", "responses", "responses"),
}


class _Route:
    __slots__ = ("api_version", "deployment", "op", "openai", "v1")

    def __init__(
        self,
        op: str,
        v1: bool,
        deployment: str | None,
        api_version: str | None,
        *,
        openai: bool = False,
    ) -> None:
        self.op = op
        self.v1 = v1
        self.deployment = deployment
        self.api_version = api_version
        self.openai = openai  # the plain OpenAI surface (/v1/...), not Azure's


class RegionApp:
    """The request handler behind one region's port."""

    def __init__(self, region: RegionConfig, sim: SimConfig) -> None:
        self.region = region
        self._sim = sim
        self._latency = sim.latency_for(region)
        self._api_versions = KNOWN_API_VERSIONS | set(region.extra_api_versions)
        self.faults = FaultRegistry(sim.minute_seconds)
        self.stats = RegionStats(d.name for d in region.deployments)
        self.limiters = {
            d.name: DeploymentLimiter(
                d.tpm, d.effective_rpm, sim.minute_seconds, window=d.limit_window
            )
            for d in region.deployments
        }
        files = FileStore()
        self.batches = BatchEngine(region.deployments, region.content_filter, sim.batch, files)
        self._batch_api = BatchApi(self.batches, files, frozenset(self._api_versions), region.name)
        self.responses = ResponsesApi(
            region,
            self._latency,
            admit=self._admit,
            throttled=self._throttled,
            reply=self._reply,
            headers=self._headers,
            stats=self.stats,
            faults=self.faults,
            cut_stream=self._cut_stream,
        )

    # ------------------------------------------------------------------ entry
    async def __call__(self, req: Request, conn: HttpConnection) -> None:
        if req.path.startswith("/_sim/"):
            await self._control(req, conn)
            return
        if is_batch_path(req.path):
            await self._batch_api.handle(
                req,
                conn,
                lambda r, v1: self._authorize(
                    r, _Route("batches", v1, None, r.query.get("api-version")), None
                ),
            )
            return
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await self._serve(req, conn)
        finally:
            stats.in_flight -= 1

    def _headers(
        self, route: _Route | None, headers: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """A success's headers on the route's surface (Azure's, or OpenAI's)."""
        if route is not None and route.openai:
            return _openai.headers(headers)
        return self._common_headers() + headers

    def _common_headers(self) -> list[tuple[str, str]]:
        rid = str(uuid.uuid4())
        return [("apim-request-id", rid), ("x-request-id", rid), ("x-ms-region", self.region.name)]

    async def _reply(
        self,
        conn: HttpConnection,
        dep: str | None,
        reply: _errors.ErrorReply,
        headers: list[tuple[str, str]],
        route: _Route | None,
    ) -> None:
        status, body = reply
        self.stats.status(dep, status)
        if route is not None and route.openai:
            await conn.send_json(
                status, _openai.error_body(status, body, dep), _openai.headers(headers)
            )
            return
        await conn.send_json(status, body, self._common_headers() + headers)

    # ---------------------------------------------------------------- serving
    def _route(self, req: Request, body: Any) -> _Route | None:
        api_version = req.query.get("api-version")
        match = _DATED.match(req.path)
        if match:
            op = "chat" if match.group(2) == "chat/completions" else "embeddings"
            return _Route(op, False, match.group(1), api_version)
        path = req.path.rstrip("/")
        openai = path.startswith("/v1/")
        if openai:
            path = "/openai" + path
        if path in ("/openai/v1/chat/completions", "/openai/v1/embeddings"):
            model = body.get("model") if isinstance(body, dict) else None
            op = "chat" if path.endswith("completions") else "embeddings"
            return _Route(op, True, str(model) if model else None, api_version, openai=openai)
        if path == "/openai/v1/models":
            return _Route("models", True, None, api_version, openai=openai)
        if responses_path(path) is not None:  # the Responses API (_responses)
            model = body.get("model") if isinstance(body, dict) and req.method == "POST" else None
            return _Route(
                "responses", True, str(model) if model else None, api_version, openai=openai
            )
        return None

    async def _serve(self, req: Request, conn: HttpConnection) -> None:
        body: Any = None
        body_error = False
        if req.body:
            try:
                body = req.json()
            except ValueError:
                body_error = True
        route = self._route(req, body)
        dep_name = route.deployment if route else None
        stats = self.stats
        stats.add(dep_name, "requests")

        delay_ms, fault = self.faults.take(dep_name, route.op if route else None, body)
        if delay_ms:
            stats.add(dep_name, "slowed")
            await asyncio.sleep(delay_ms / 1000)
        if fault is not None:
            await self._apply_fault(fault, conn, dep_name, route, body)
            return
        if route is not None and route.op == "responses":
            denied = self._authorize(req, route, dep_name)
            if denied is not None:
                stats.fail(dep_name, "auth")
                await self._reply(conn, dep_name, denied, [], route)
                return
            await self.responses.serve(req, conn, route, None if body_error else body)
            return

        if (
            route is None
            or (route.op == "models") != (req.method == "GET")
            or req.method not in ("GET", "POST")
        ):
            stats.fail(dep_name, "not_found")
            await self._reply(conn, dep_name, _errors.resource_not_found(), [], route)
            return
        if route.openai:
            pass  # OpenAI ignores the query string
        elif route.v1:
            if route.api_version is not None and route.api_version not in _V1_API_VERSIONS:
                stats.fail(dep_name, "bad_request")
                await self._reply(conn, dep_name, _errors.v1_api_version_not_allowed(), [], route)
                return
        elif route.api_version not in self._api_versions and route.api_version != "v1":
            # api-version=v1 on a deployment route is what AzureOpenAI(api_version="v1") sends
            stats.fail(dep_name, "not_found")
            await self._reply(conn, dep_name, _errors.resource_not_found(), [], route)
            return

        dep = self.region.deployment(dep_name) if dep_name else None
        peek = self.limiters[dep.name].peek().headers() if dep else []
        denied = self._authorize(req, route, dep_name)
        if denied is not None:
            stats.fail(dep_name, "auth")
            await self._reply(conn, dep_name, denied, peek, route)
            return
        if route.op == "models":
            await self._models(conn, route)
            return
        if body_error or (route.v1 and dep_name is None):
            stats.fail(dep_name, "bad_request")
            msg = (
                "We could not parse the JSON body of your request."
                if body_error
                else "'model' is a required property."
            )
            await self._reply(
                conn, dep_name, _errors.bad_request(msg, None if body_error else "model"), [], route
            )
            return
        if dep is None:
            stats.fail(dep_name, "not_found")
            await self._reply(conn, dep_name, _errors.deployment_not_found(), [], route)
            return
        if dep.kind != route.op or dep.batch:
            stats.fail(dep.name, "bad_request")
            await self._reply(
                conn,
                dep.name,
                _errors.operation_not_supported(_OPS[route.op][2], dep.model),
                peek,
                route,
            )
            return
        if route.op == "chat":
            await self._chat(conn, dep, route, body)
        else:
            await self._embeddings(conn, dep, route, body)

    def _authorize(
        self, req: Request, route: _Route, dep_name: str | None
    ) -> _errors.ErrorReply | None:
        keys = self.region.api_keys
        if route.openai:  # OpenAI takes only "Authorization: Bearer <key>"
            auth = req.headers.get("authorization", "")
            ok = auth[:7].lower() == "bearer " and auth[7:].strip() in keys
            return None if ok else _openai.invalid_key()
        key = req.headers.get("api-key")
        if key is not None:
            return None if key in keys else _errors.invalid_key()
        auth = req.headers.get("authorization", "")
        if auth[:7].lower() != "bearer ":
            return _errors.invalid_key()
        token = auth[7:].strip()
        if route.v1 and token in keys:
            return None
        try:
            claims = verify_token(self._sim.token_secret, token, AUDIENCE)
        except TokenError:
            return _errors.invalid_token()
        allowed = self.region.authorized_client_ids
        if OPENAI_USER_ROLE in claims.roles and (allowed is None or claims.client_id in allowed):
            return None
        if route.op == "models":
            action, operation = (
                "Microsoft.CognitiveServices/accounts/OpenAI/models/read",
                "GET /openai/v1/models",
            )
        elif route.op == "batches":
            action = "Microsoft.CognitiveServices/accounts/OpenAI/batches/write"
            operation = "POST /openai/v1/batches" if route.v1 else "POST /openai/batches"
        else:
            suffix = _OPS[route.op][1]
            action = f"Microsoft.CognitiveServices/accounts/OpenAI/deployments/{suffix}/action"
            operation = (
                f"POST /openai/v1/{suffix}"
                if route.v1
                else f"POST /openai/deployments/{{deployment-id}}/{suffix}"
            )
        return _errors.permission_denied(claims.principal_id, action, operation)

    async def _apply_fault(
        self,
        fault: Fault,
        conn: HttpConnection,
        dep: str | None,
        route: _Route | None,
        body: Any = None,
    ) -> None:
        stats = self.stats
        stats.fail(dep, fault.kind)
        if fault.kind == "bad_answer":
            await self._bad_answer(fault, conn, dep, route, body)
        elif fault.kind == "reset":
            conn.reset()
        elif fault.kind == "hang":
            await conn.hang(fault.released)
        elif fault.kind == "error":
            status, body = _errors.server_error(fault.status)
            stats.status(dep, status)
            await conn.send_json(status, body, self._common_headers())
        else:  # throttle
            op = _OPS.get(route.op if route else "", _OPS["chat"])[0]
            version = "v1" if route is None or route.v1 else str(route.api_version)
            status, body = _errors.rate_limited(
                op, version, max(1, math.ceil(fault.retry_after_s)), calls=False
            )
            reset = f"{fault.retry_after_s:g}s"
            headers = [
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-requests", reset),
                ("x-ratelimit-reset-tokens", reset),
                *retry_after_headers(fault.retry_after_s, fault.retry_after_ms),
            ]
            stats.status(dep, status)
            if route is not None and route.openai:
                body = _openai.error_body(status, body, dep)
                await conn.send_json(status, body, _openai.headers(headers))
                return
            await conn.send_json(status, body, self._common_headers() + headers)

    async def _bad_answer(
        self,
        fault: Fault,
        conn: HttpConnection,
        dep: str | None,
        route: _Route | None,
        body: Any,
    ) -> None:
        """A 200 whose body is the fault's ``body`` (one SSE event when streaming)."""
        self.stats.status(dep, 200)
        payload = json.dumps(fault.body, separators=(",", ":")).encode() + b" " * fault.pad_bytes
        headers = self._headers(route, []) if route is not None else []
        if isinstance(body, dict) and body.get("stream"):
            await conn.start_chunked(
                200, [("content-type", "text/event-stream; charset=utf-8"), *headers]
            )
            conn.write_chunk(b"data: " + payload + b"\n\n")
            conn.write_chunk(_DONE)
            await conn.end_chunked()
            return
        await conn.send(200, [("content-type", "application/json"), *headers], payload)

    async def _admit_plan(
        self, conn: HttpConnection, dep: DeploymentConfig, route: _Route, plan: Any
    ) -> Decision | None:
        """Charge a valid request to the rate limiter. Answers (and returns None) when the request is
        invalid (``plan`` is an error reply) or over the limit; else returns the limiter's decision."""
        if isinstance(plan, tuple):
            self.stats.fail(dep.name, "bad_request")
            await self._reply(conn, dep.name, plan, self.limiters[dep.name].peek().headers(), route)
            return None
        decision = self._admit(dep, plan.charge)
        if not decision.allowed:
            await self._throttled(conn, dep, route, decision)
            return None
        return decision

    def _admit(self, dep: DeploymentConfig, charge: int) -> Decision:
        decision = self.limiters[dep.name].try_acquire(charge)
        if decision.allowed:
            self.stats.add(dep.name, "tokens_charged", charge)
        return decision

    async def _throttled(
        self, conn: HttpConnection, dep: DeploymentConfig, route: _Route, decision: Decision
    ) -> None:
        self.stats.fail(dep.name, "rate_limit")
        version = "v1" if route.v1 else str(route.api_version)
        retry = max(1, math.ceil(decision.retry_after_s))
        reply = _errors.rate_limited(
            _OPS[route.op][0], version, retry, calls=decision.calls_exceeded
        )
        await self._reply(conn, dep.name, reply, decision.headers(), route)

    # ------------------------------------------------------------- operations
    async def _models(self, conn: HttpConnection, route: _Route) -> None:
        data = [
            {
                "id": d.name,
                "object": "model",
                "created": 1700000000,
                "owned_by": "system",
                "model": d.model,
            }
            for d in self.region.deployments
        ]
        self.stats.status(None, 200)
        await conn.send_json(200, {"object": "list", "data": data}, self._headers(route, []))

    async def _chat(
        self, conn: HttpConnection, dep: DeploymentConfig, route: _Route, body: Any
    ) -> None:
        plan = _ops.plan_chat(dep, body, self.region.content_filter)
        decision = await self._admit_plan(conn, dep, route, plan)
        if decision is None:
            return
        headers = decision.headers()
        if self.faults.take_answer_fault("omit_usage", dep.name) is not None:
            self.stats.add(dep.name, "usage_omitted")
            plan = replace(plan, include_usage=False, model="", omit_usage=True)
        if plan.blocked_category is not None:
            self.stats.fail(dep.name, "content_filter")
            result = {
                **filter_result(plan.blocked_category, plan.severity),
                "jailbreak": {"filtered": False, "detected": False},
            }
            await self._reply(
                conn, dep.name, _errors.content_filter_blocked(result), headers, route
            )
            return
        stats = self.stats
        stats.add(dep.name, "prompt_tokens", plan.prompt_tokens)
        stats.add(dep.name, "completion_tokens", plan.completion_tokens)
        if any(c.filtered for c in plan.choices):
            stats.add(dep.name, "completions_filtered")
        ttft = self._latency.ttft_ms / 1000
        per_token = self._latency.per_token_ms / 1000
        if not plan.stream:
            delay = ttft + per_token * max(0, plan.completion_tokens - 1)
            if delay:
                await asyncio.sleep(delay)
            stats.status(dep.name, 200)
            await conn.send_json(200, _ops.chat_body(plan), self._headers(route, headers))
            return
        cut = self.faults.take_mid_stream(dep.name)
        cut_after = cut.after_chunks if cut is not None and cut.after_chunks is not None else 0
        stats.add(dep.name, "streamed")
        stats.status(dep.name, 200)
        await conn.start_chunked(
            200,
            [
                ("content-type", "text/event-stream; charset=utf-8"),
                ("cache-control", "no-cache"),
                *self._headers(route, headers),
            ],
        )
        first = True
        paced = bool(ttft or per_token)
        for sent, (event, is_token) in enumerate(
            _ops.chat_events(plan, finish_in_delta=self.region.finish_in_delta)
        ):  # sent: events written so far
            if conn.closed:
                return
            if cut is not None and (sent >= cut_after or event == _DONE):
                await self._cut_stream(cut, conn, dep.name, sent)
                return
            if is_token and paced:
                await conn.flush()
                await asyncio.sleep(ttft if first else per_token)
                first = False
            conn.write_chunk(event)
            if paced:
                await conn.flush()
        await conn.end_chunked()

    async def _cut_stream(self, fault: Fault, conn: HttpConnection, dep: str, sent: int) -> None:
        """A mid-stream fault: the ``sent`` events reach the client, then a TCP RST or silence."""
        self.stats.fail(dep, f"{fault.kind}_mid_stream")
        _log.info(
            "%s: fault %s cuts a stream after %d chunks (%s)",
            self.region.name,
            fault.id,
            sent,
            fault.kind,
        )
        await conn.flush_all()
        if fault.kind == "reset":
            conn.reset()
        else:
            await conn.hang(fault.released)

    async def _embeddings(
        self, conn: HttpConnection, dep: DeploymentConfig, route: _Route, body: Any
    ) -> None:
        plan = _ops.validate_embeddings(dep, body)
        decision = await self._admit_plan(conn, dep, route, plan)
        if decision is None:
            return
        if self._latency.ttft_ms:
            await asyncio.sleep(self._latency.ttft_ms / 1000)
        self.stats.add(dep.name, "prompt_tokens", plan.prompt_tokens)
        if plan.base64:
            self.stats.add(dep.name, "embeddings_base64")
        self.stats.status(dep.name, 200)
        headers = [("content-type", "application/json"), *self._headers(route, decision.headers())]
        await conn.send(200, headers, _ops.embeddings_body(dep, plan))

    # ------------------------------------------------------------ control API
    def reset(self) -> None:
        """Clear faults (releasing hangs), limiter windows and stats."""
        self.faults.clear()
        for limiter in self.limiters.values():
            limiter.reset()
        self.stats.reset()
        self.batches.clear()
        self.responses.clear()

    async def _control(self, req: Request, conn: HttpConnection) -> None:
        path = req.path.rstrip("/")
        if path == "/_sim/faults" and req.method == "POST":
            try:
                fault = self.faults.add(req.json())
            except (FaultError, ValueError) as exc:
                await conn.send_json(400, {"error": {"code": "BadRequest", "message": str(exc)}})
                return
            _log.info("%s: fault %s added: %s", self.region.name, fault.id, fault.describe())
            await conn.send_json(200, fault.describe())
        elif path == "/_sim/faults" and req.method == "GET":
            await conn.send_json(200, {"faults": self.faults.describe()})
        elif path.startswith("/_sim/faults/") and req.method == "DELETE":
            found = self.faults.remove(path.rsplit("/", 1)[1])
            await conn.send_json(200 if found else 404, {"removed": found})
        elif path == "/_sim/batch_faults" and req.method == "POST":
            try:
                batch_fault = self.batches.faults.add(req.json())
            except ValueError as exc:
                await conn.send_json(400, {"error": {"code": "BadRequest", "message": str(exc)}})
                return
            await conn.send_json(200, batch_fault.describe())
        elif path == "/_sim/batches" and req.method == "GET":
            engine = self.batches
            await conn.send_json(
                200,
                {
                    "batches": [engine.describe(b) for b in engine.all()],
                    "enqueued_tokens": {
                        d.name: engine.enqueued_tokens(d.name)
                        for d in self.region.deployments
                        if d.batch
                    },
                    "faults": engine.faults.describe(),
                },
            )
        elif path == "/_sim/reset" and req.method == "POST":
            self.reset()
            await conn.send_json(200, {"reset": True})
        elif path == "/_sim/stats" and req.method == "GET":
            await conn.send_json(200, {"region": self.region.name, **self.stats.to_dict()})
        elif path == "/_sim/health" and req.method == "GET":
            await conn.send_json(
                200,
                {
                    "region": self.region.name,
                    "deployments": [d.name for d in self.region.deployments],
                },
            )
        else:
            await conn.send_json(
                404, {"error": {"code": "404", "message": "Unknown control endpoint"}}
            )
