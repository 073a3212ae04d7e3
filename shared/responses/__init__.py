"""The Responses API's state the gateway keeps: where each stored response lives (its region and
deployment) and who created it, shared by every instance through the gateway's storage; the
one non-streamed create the backlog runs (``create_response``); and how a non-streamed create is
sent upstream as a stream, under the first-byte and idle deadlines (``streamed_create``)."""

from ._affinity import (
    AFFINITY_TABLE,
    AffinityStore,
    InMemoryAffinityStore,
    ResponseHome,
    TableAffinityStore,
    affinity_store,
)
from ._create import (
    ResponseNotFound,
    ResponseRegionUnavailable,
    create_response,
    responses_finish,
    responses_usage,
)
from ._request import ResponsesRequest, responses_cost
from ._upstream import streamed_create

__all__ = [
    "AFFINITY_TABLE",
    "AffinityStore",
    "InMemoryAffinityStore",
    "ResponseHome",
    "ResponseNotFound",
    "ResponseRegionUnavailable",
    "ResponsesRequest",
    "TableAffinityStore",
    "affinity_store",
    "create_response",
    "responses_cost",
    "responses_finish",
    "responses_usage",
    "streamed_create",
]
