"""Faults that fail only requests of one shape (``match``), through the SDK."""

from __future__ import annotations

import openai
import pytest

from aoai_sim.control import ControlError, RegionControl
from tests.fixtures.sim import SimHandle
from tests.sim.helpers import MESSAGES, azure_client

PARTS = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]


def test_content_parts_match_fails_only_chats_with_parts(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("error", status=500, count=2, match="content_parts")
    client = azure_client(region)
    assert client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES, max_tokens=2)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="gpt-4o-prod", messages=PARTS, max_tokens=2)
    assert err.value.status_code == 500
    # Plain requests pass and do not use up the fault's count.
    assert client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES, max_tokens=2)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-prod", messages=PARTS, max_tokens=2)
    assert client.chat.completions.create(model="gpt-4o-prod", messages=PARTS, max_tokens=2)


def test_token_inputs_match_fails_only_token_array_embeddings(fresh: SimHandle) -> None:
    region = fresh.region("eastus2")
    region.fault("error", status=500, match="token_inputs")
    client = azure_client(region)
    assert client.embeddings.create(model="embed-eastus2", input=["some text"]).data
    for tokens in ([1, 2, 3], [[1, 2], [3]]):
        with pytest.raises(openai.InternalServerError):
            client.embeddings.create(model="embed-eastus2", input=tokens)
    assert RegionControl(region.endpoint).faults()[0]["match"] == "token_inputs"


def test_unknown_match_is_refused(fresh: SimHandle) -> None:
    with pytest.raises(ControlError):
        fresh.region("eastus2").fault("error", match="everything")
