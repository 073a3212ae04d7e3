"""One Responses API create, without streaming, as the backlog runs it: through the access
layer's call loop (pacing, the shared quota ledger, circuits, per-caller limits, usage and
telemetry observers), routed like chat with failover, or, with ``previous_response_id``, pinned
to the region and deployment that store that response (``AffinityStore``), with no failover.
Sent upstream as a stream and answered with its final response object (``streamed_create``), so
a hung region is left at the first-byte deadline, as for chat.

Trust: a caller continues only responses it created through the gateway (its name is on the
affinity row); any other id is ``ResponseNotFound``, as an unknown one. A stored response
(``store`` not false) is remembered under the job's caller, so a later job or HTTP request of
the same caller can continue it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared.aoai import (
    CallContext,
    CallResult,
    ClassifiedFailure,
    RequestRejected,
    UpstreamUnavailable,
    Usage,
)

from ._affinity import AffinityStore, ResponseHome
from ._request import ResponsesRequest
from ._upstream import streamed_create

if TYPE_CHECKING:
    import httpx2
    from openai import AsyncOpenAI

__all__ = [
    "ResponseNotFound",
    "ResponseRegionUnavailable",
    "create_response",
    "responses_finish",
    "responses_usage",
]

_PATH = "/responses"
_ANONYMOUS = "anonymous"


class ResponseNotFound(RequestRejected):
    """``previous_response_id`` names no response this caller created through the gateway, or
    its region no longer has it (expired or deleted): never retried."""

    code = "response_not_found"
    http_status = 404

    def __init__(self, response_id: str) -> None:
        super().__init__(
            f"Response with id '{response_id[:256]}' not found: previous_response_id must name "
            "a stored response this caller created through the gateway."
        )
        self.response_id = response_id

    def details(self) -> dict[str, Any]:
        return {"param": "previous_response_id"}


class ResponseRegionUnavailable(UpstreamUnavailable):
    """The region storing ``previous_response_id`` cannot be reached now (its circuit is open):
    transient; the continuation cannot go elsewhere."""

    code = "response_region_unavailable"
    http_status = 503

    def __init__(self, response_id: str, region: str) -> None:
        super().__init__(
            f"Response '{response_id[:256]}' is stored in region '{region}', which cannot be "
            "reached now. Stored responses are served only by the region that holds them."
        )
        self.region = region

    def details(self) -> dict[str, Any]:
        return {"param": "previous_response_id", "region": self.region}


def _count(raw: Mapping[str, Any], key: str, detail: str) -> int:
    details = raw.get(key)
    value = details.get(detail) if isinstance(details, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def responses_usage(data: Any) -> Usage | None:
    """The gateway's ``Usage`` from a Responses object's ``usage`` (input/output/total tokens;
    None when absent or not sane). Cached and reasoning tokens stay in the object's
    ``input_tokens_details`` / ``output_tokens_details``, where the usage counter reads them."""
    raw = data.get("usage") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        return None
    values = [raw.get(k) for k in ("input_tokens", "output_tokens", "total_tokens")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        return None
    return Usage(*values)  # type: ignore[arg-type]


def responses_finish(data: Mapping[str, Any]) -> str | None:
    """A Responses object's finish, as chat's ``finish_reason``: ``content_filter`` or
    ``max_output_tokens`` for an incomplete one (its ``incomplete_details.reason``), else its
    ``status`` (``completed``, ``failed``...)."""
    details = data.get("incomplete_details")
    if isinstance(details, Mapping) and isinstance(details.get("reason"), str):
        return str(details["reason"])
    status = data.get("status")
    return status if isinstance(status, str) else None


def _pinned_sender(send: Callable[..., Awaitable[Any]], response_id: str) -> Any:
    """``send``, with an upstream 404 on the pinned deployment read as the stored response
    being gone (expired or deleted), not the deployment missing."""

    async def wrapped(
        client: AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        timeout: httpx2.Timeout | None,
        first_byte: Callable[[], None] | None = None,
    ) -> Any:
        try:
            return await send(client, path, body, timeout, first_byte)
        except ClassifiedFailure as failure:
            if failure.status == 404:
                raise ResponseNotFound(response_id) from None
            raise

    return wrapped


async def create_response(
    gateway: Any,
    affinity: AffinityStore,
    request: ResponsesRequest,
    ctx: CallContext,
    *,
    default_max_tokens: int,
) -> CallResult:
    """Create one response (``request.stream``/``background`` must be unset: the job contract
    refuses them). ``gateway``: the access layer (``Gateway``, or the per-caller limits around
    it); ``CallResult.response`` is the response object, ``usage`` its tokens."""
    caller = ctx.caller or _ANONYMOUS
    body = request.upstream_body()
    previous = request.previous_response_id
    home: ResponseHome | None = None
    if previous is not None:
        home = await affinity.find(previous)
        if home is None or home.caller != caller:
            raise ResponseNotFound(previous)
        if not gateway.region_open(home.region):
            raise ResponseRegionUnavailable(previous, home.region)
    # Sent as a stream (the first-byte and idle deadlines apply) unless stream_upstream is off.
    senders = gateway.senders
    send = streamed_create(senders) if senders.stream_upstream else senders.json
    target: str | tuple[str, str] = request.model
    if home is not None and previous is not None:
        target = (home.region, home.deployment)
        send = _pinned_sender(send, previous)
    value, result = await gateway.call_deployment(
        "responses",
        target,
        path=_PATH,
        body=body,
        send=send,
        cost=request.cost(default_max_tokens),
        ctx=ctx,
        usage=responses_usage,
        hedge=senders.stream_upstream,  # a JSON answer has no first byte to hedge on
    )
    response_id = value.get("id") if isinstance(value, dict) else None
    if request.store is not False and isinstance(response_id, str):
        await affinity.remember(response_id, ResponseHome(result.region, result.deployment, caller))
    finish = responses_finish(value) if isinstance(value, dict) else None
    if finish != result.finish_reason:
        result = replace(result, finish_reason=finish)
    return result  # type: ignore[no-any-return]
