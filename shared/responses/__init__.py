"""The Responses API's state the gateway keeps: where each stored response lives (its region and
deployment) and who created it, shared by every instance through the gateway's storage."""

from ._affinity import (
    AFFINITY_TABLE,
    AffinityStore,
    InMemoryAffinityStore,
    ResponseHome,
    TableAffinityStore,
    affinity_store,
)

__all__ = [
    "AFFINITY_TABLE",
    "AffinityStore",
    "InMemoryAffinityStore",
    "ResponseHome",
    "TableAffinityStore",
    "affinity_store",
]
