"""A job is its submitter's: another caller reading or cancelling it gets the 404 an unknown id
gets; the operators' routes (master key) see and cancel every job. Through the dev server with
the real broker, Azurite and the simulator."""

from __future__ import annotations

import httpx

from tests.fixtures.devserver import settings_env

from .conftest import backlog_env

OWNER, OTHER = {"x-functions-key": "owner-key"}, {"x-functions-key": "other-key"}


async def test_another_callers_job_is_unknown_to_it_and_whole_to_operators(
    e2e_sim, sb_broker, azurite, unique_name, gateway_settings_factory, app_env, devserver
) -> None:
    env = {
        **settings_env(gateway_settings_factory(e2e_sim)),
        **backlog_env(sb_broker, azurite, unique_name),
    }
    app_env(env)
    job = {
        "job_id": "job-owned-1",
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "mine"}]},
    }
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=30) as http:
        posted = await http.post("/v1/jobs", json=job, headers=OWNER)
        assert posted.status_code == 202
        full_id = posted.json()["id"]  # in the owner's namespace: <scope>~job-owned-1
        assert full_id.endswith("~job-owned-1")
        mine = await http.get("/v1/jobs/job-owned-1", headers=OWNER)  # either form
        assert mine.status_code == 200 and mine.json()["id"] == full_id
        assert (await http.get(f"/v1/jobs/{full_id}", headers=OWNER)).status_code == 200

        unknown = await http.get("/v1/jobs/job-nobody-has", headers=OTHER)
        theirs = await http.get(f"/v1/jobs/{full_id}", headers=OTHER)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "job_not_found"
        assert "mine" not in theirs.text
        refused = await http.post(f"/v1/jobs/{full_id}/cancel", headers=OTHER)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "job_not_found"
        assert (await http.get("/v1/jobs/job-owned-1", headers=OWNER)).json()[
            "status"
        ] != "cancelled"

        # The operators' route (the master key; keys are not enforced locally) takes the full id.
        operator = await http.get(f"/ops/jobs/{full_id}")
        assert operator.status_code == 200 and operator.json()["id"] == full_id
        assert (await http.get("/ops/jobs/job-nobody-has")).status_code == 404
        cancelled = await http.post(f"/ops/jobs/{full_id}/cancel")
        assert cancelled.status_code in (200, 409), cancelled.text  # 409 if it already ran
        if cancelled.status_code == 200:
            assert cancelled.json()["status"] == "cancelled"
            owned = await http.get("/v1/jobs/job-owned-1", headers=OWNER)
            assert owned.json()["status"] == "cancelled"


async def test_two_callers_may_use_the_same_job_id(
    e2e_sim, sb_broker, azurite, unique_name, gateway_settings_factory, app_env, devserver
) -> None:
    """Job ids are idempotency keys in their caller's namespace: a caller cannot take another's
    id in advance (the owner would get 409) nor learn that it exists."""
    app_env(
        {
            **settings_env(gateway_settings_factory(e2e_sim)),
            **backlog_env(sb_broker, azurite, unique_name),
        }
    )
    first = {
        "job_id": "order-42",
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "one"}]},
    }
    second = {**first, "request": {**first["request"], "max_tokens": 7}}  # other work
    async with httpx.AsyncClient(base_url=devserver.base_url, timeout=30) as http:
        squatter = await http.post("/v1/jobs", json=second, headers=OTHER)
        owner = await http.post("/v1/jobs", json=first, headers=OWNER)
        assert squatter.status_code == owner.status_code == 202  # no 409 for the owner
        assert squatter.json()["id"] != owner.json()["id"]
        again = await http.post("/v1/jobs", json=first, headers=OWNER)  # idempotent retry
        assert again.status_code == 202 and again.json()["id"] == owner.json()["id"]
        own = await http.get("/v1/jobs/order-42", headers=OWNER)
        assert own.json()["id"] == owner.json()["id"]
