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
        assert (await http.post("/v1/jobs", json=job, headers=OWNER)).status_code == 202
        mine = await http.get("/v1/jobs/job-owned-1", headers=OWNER)
        assert mine.status_code == 200 and mine.json()["id"] == "job-owned-1"

        unknown = await http.get("/v1/jobs/job-nobody-has", headers=OTHER)
        theirs = await http.get("/v1/jobs/job-owned-1", headers=OTHER)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "job_not_found"
        assert "mine" not in theirs.text
        refused = await http.post("/v1/jobs/job-owned-1/cancel", headers=OTHER)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "job_not_found"
        assert (await http.get("/v1/jobs/job-owned-1", headers=OWNER)).json()[
            "status"
        ] != "cancelled"

        operator = await http.get(
            "/ops/jobs/job-owned-1"
        )  # admin route (keys not enforced locally)
        assert operator.status_code == 200 and operator.json()["id"] == "job-owned-1"
        assert (await http.get("/ops/jobs/job-nobody-has")).status_code == 404
        cancelled = await http.post("/ops/jobs/job-owned-1/cancel")
        assert cancelled.status_code in (200, 409), cancelled.text  # 409 if it already ran
        if cancelled.status_code == 200:
            assert cancelled.json()["status"] == "cancelled"
            owned = await http.get("/v1/jobs/job-owned-1", headers=OWNER)
            assert owned.json()["status"] == "cancelled"
