"""What the worker indexes and sends to the host: routes, methods, auth levels, and the types that
switch the worker to HTTP streaming (FastAPI Request/Response)."""

from __future__ import annotations

import inspect
import json

import pytest

import function_app
from devserver.http import indexed_functions

EXPECTED = {
    "chat_completions": ("v1/chat/completions", ["POST"], "function"),
    "embeddings": ("v1/embeddings", ["POST"], "function"),
    "list_models": ("v1/models", ["GET"], "function"),
    "health": ("health", ["GET"], "anonymous"),
    "health_details": ("health/details", ["GET"], "function"),
    "openapi": ("v1/openapi.json", ["GET"], "anonymous"),
}


def _http_functions() -> dict[str, tuple[object, list[dict]]]:
    out = {}
    for fn in indexed_functions(function_app.app):
        bindings = [json.loads(raw) for raw in fn.get_raw_bindings()]
        if any(b["type"] == "httpTrigger" for b in bindings):
            out[fn.get_function_name()] = (fn, bindings)
    return out


ANONYMOUS = {"health", "openapi"}


def test_the_api_routes_are_http_functions() -> None:
    assert set(EXPECTED) <= set(_http_functions())


def test_every_other_http_function_needs_a_function_key() -> None:
    """Only health and the OpenAPI document are anonymous, whoever adds HTTP functions; the
    operations routes (``ops/...``) take the master key (admin)."""
    for name, (_, bindings) in _http_functions().items():
        trigger = next(b for b in bindings if b["type"] == "httpTrigger")
        expected = "anonymous" if name in ANONYMOUS else "function"
        if trigger["route"].startswith("ops/"):
            expected = "admin"
        assert trigger["authLevel"].lower() == expected, name
        assert not trigger["route"].lower().startswith("admin"), name  # reserved by the host


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trigger_binding_route_methods_and_auth_level(name: str) -> None:
    _, bindings = _http_functions()[name]
    route, methods, auth = EXPECTED[name]
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")
    assert trigger["direction"].lower() == "in"
    assert trigger["route"] == route
    assert [m.upper() for m in trigger["methods"]] == methods
    assert trigger["authLevel"].lower() == auth
    output = [b for b in bindings if b["type"] == "http"]
    assert (
        len(output) == 1
        and output[0]["name"] == "$return"
        and output[0]["direction"].lower() == "out"
    )


def test_the_app_default_auth_level_is_function() -> None:
    assert function_app.app.auth_level.name == "FUNCTION"


def test_handlers_use_the_fastapi_extension_types() -> None:
    """The worker serves a function over HTTP streaming only if its trigger parameter is the
    extension's request type and its return type a registered response type."""
    from azurefunctions.extensions.base import RequestTrackerMeta, ResponseTrackerMeta

    for name, (
        fn,
        bindings,
    ) in _http_functions().items():  # once imported, the extension applies to all
        sig = inspect.signature(fn.get_user_function())
        trigger = next(b for b in bindings if b["type"] == "httpTrigger")
        assert RequestTrackerMeta.check_type(sig.parameters[trigger["name"]].annotation), name
        assert ResponseTrackerMeta.check_type(sig.return_annotation), name
        if name in EXPECTED:
            assert inspect.iscoroutinefunction(fn.get_user_function()), name


def test_importing_the_app_turns_http_streaming_on() -> None:
    from azurefunctions.extensions.base import HttpV2FeatureChecker

    assert HttpV2FeatureChecker.http_v2_enabled()


def test_importing_the_app_does_not_import_the_api_or_the_access_layer() -> None:
    """Cold start: shared.api and the openai SDK load on the first request, not at indexing."""
    import subprocess
    import sys

    code = "import sys, function_app; print(sorted(m for m in ('shared.api', 'shared.aoai', 'openai') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=function_app.__file__.rsplit("/", 1)[0],
    )
    assert out.stdout.strip() == "[]"
