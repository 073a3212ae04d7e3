from shared.aoai import ChatRequest, request_tokens
from shared.pacing._windows import DeploymentBudget, SlidingWindow
from shared.settings import DeploymentConfig


def _chat(content: str, **caps: int) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": content}], **caps)


def test_estimate_mirrors_azure():
    """ceil(prompt chars / 4) plus the output cap, or the default when the caller sets none."""
    assert request_tokens(_chat("x" * 9, max_tokens=100), 4096) == 3 + 100
    assert request_tokens(_chat("x" * 8), 4096) == 2 + 4096


def test_sliding_window_frees_as_entries_age_out():
    window = SlidingWindow(100, 60.0)
    window.charge(0.0, 60)
    window.charge(10.0, 30)
    assert window.remaining(20.0) == 10
    assert window.free_at(20.0, 10) == 20.0
    assert window.free_at(20.0, 40) == 60.0  # the first 60 age out at t=60
    assert window.free_at(20.0, 80) == 70.0
    assert window.remaining(60.0) == 70


def test_need_above_the_limit_fits_an_empty_window():
    window = SlidingWindow(100, 60.0)
    assert window.free_at(0.0, 500) == 0.0


def test_headers_only_lower_the_budget():
    window = SlidingWindow(1000, 60.0)
    window.charge(0.0, 100)
    window.correct(1.0, 500)  # others used 400 more
    assert window.remaining(1.0) == 500
    window.correct(2.0, 900)  # higher than ours: ignored
    assert window.remaining(2.0) == 500


def test_deployment_budget_uses_rpm_in_sixths_of_a_minute():
    budget = DeploymentBudget(DeploymentConfig(deployment="d", tpm=100_000, rpm=12), 60.0)
    budget.charge(0.0, 10)
    budget.charge(0.5, 10)
    # 2 requests per 10 s window; the phase unknown, plus the arrival margin (0.5 s)
    assert budget.available_at(1.0, 10) == 10.5
    budget.observe(1.0, 1.0, {"x-ratelimit-reset-requests": "9s"})
    assert budget.phase_known
    assert budget.available_at(1.0, 10) == 10.0  # fixed windows: no margin
    budget.correct(1.0, "0", None)
    assert budget.snapshot(1.0)["remaining_requests"] == 0


def test_remaining_requests_per_minute_when_the_limit_header_says_so():
    budget = DeploymentBudget(DeploymentConfig(deployment="d", tpm=100_000, rpm=600), 60.0)
    budget.correct(0.0, "100", "50000", limit_requests="600")
    assert budget.requests.remaining(0.0) == 100
    assert budget.tokens.remaining(0.0) == 50_000
