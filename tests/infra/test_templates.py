"""infra/ checked offline: every template parses, and the cross-checks between the templates and
the code (app settings, GATEWAY_REGIONS, roles, queues, azure.yaml) hold, and fail when the
template loses a setting, a role or a queue."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from . import checks
from .bicep_eval import ModuleRef, Refused, Template, parse

REPO = checks.REPO
INFRA = REPO / "infra"
pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_every_bicep_file_parses_with_pycep(path: Path) -> None:
    tree = parse(path)
    assert tree.get("resources") or tree.get("modules") or tree.get("outputs")


def test_every_module_is_used_and_exists() -> None:
    used = {p.resolve() for p in checks._reachable(INFRA)}
    assert used == {p.resolve() for p in INFRA.rglob("*.bicep")}


def test_app_settings_cover_the_code_and_are_identity_based() -> None:
    assert checks.check_app_settings(INFRA) == []


def test_gateway_regions_built_by_the_template_validate_against_the_settings_model() -> None:
    assert checks.check_gateway_regions(INFRA) == []
    regions = checks.app_settings(INFRA, "UserAssigned")["GATEWAY_REGIONS"]
    assert '"client_id":"' + checks.CLIENT_ID in regions
    from shared.settings import load_gateway_settings

    gateway = load_gateway_settings({"GATEWAY_REGIONS": regions})
    for region in gateway.regions:  # the GlobalBatch deployment: a batch target, never served
        assert "gpt-4o-batch" not in {d.deployment for d in region.models.values()}
        assert region.batch["gpt-4o"].deployment == "gpt-4o-batch"
        assert region.batch["gpt-4o"].enqueued_tokens == 5_000_000


def test_a_wrong_batch_map_fails_the_check(infra_copy: Path) -> None:
    _edit(
        infra_copy / "modules/gateway-regions.bicep",
        r"  batch: batch\n",
        "  batch: {}\n",
    )
    problems = checks.check_gateway_regions(infra_copy)
    assert any("batch [] != ['gpt-4o']" in p for p in problems), problems


def test_every_role_in_the_readme_is_assigned_on_the_narrowest_scope() -> None:
    rows = checks.readme_roles(REPO / "README.md")
    assert len(rows) >= 6
    assert checks.check_roles(INFRA, REPO / "README.md") == []


def test_queues_and_host_json_agree_with_the_template() -> None:
    assert checks.check_queues(INFRA, REPO / "host.json") == []


def test_azure_yaml_names_the_python_function_service() -> None:
    assert checks.check_azure_yaml(REPO) == []


@pytest.mark.parametrize(
    ("private", "sku", "refused"),
    [(True, "Standard", True), (True, "Premium", False), (False, "Standard", False)],
)
def test_private_networking_refuses_service_bus_standard(
    private: bool, sku: str, refused: bool
) -> None:
    template = checks.evaluate(INFRA, privateNetworking=private, serviceBusSku=sku)
    check = template.module("refuseStandardServiceBusWithPrivateNetworking")
    assert isinstance(check, ModuleRef) and check.condition is True
    assert check.template.param("refused") is refused
    # The refusal is the language's own: fail() with the reason, in a module whose parameters
    # have no @allowed list (an interpolated reason is a plain string argument).
    if refused:
        with pytest.raises(Refused, match="requires serviceBusSku Premium, not Standard"):
            check.template.output("refused")
    else:
        assert check.template.output("refused") is False
    assert all(_allowed_list(d) is None for d in check.template.tree["parameters"].values())
    network = template.module("network")
    assert isinstance(network, ModuleRef) and network.condition is private


def _allowed_list(decl: dict) -> list | None:
    return next((d["argument"] for d in decl["decorators"] if d["type"] == "allowed"), None)


def test_templates_keep_the_compiler_rules_pycep_does_not_check() -> None:
    assert checks.check_compile_rules(INFRA) == []


def test_the_constructs_the_compiler_rejects_fail_the_check(infra_copy: Path) -> None:
    # BCP420: a module scope that is a ternary between two scopes (what main.bicep had).
    _edit(
        infra_copy / "main.bicep",
        r"  scope: resourceGroup\(empty\(account\.existingResourceId\).*?\n",
        "  scope: empty(account.existingResourceId) ? rg : resourceGroup(split(account.existingResourceId, '/')[2], split(account.existingResourceId, '/')[4])\n",
    )
    # BCP036: an interpolated argument to a parameter whose @allowed list has one literal (what
    # the refusal module had).
    _edit(
        infra_copy / "modules/refuse.bicep",
        r"^param reason string",
        "@allowed([\n  'never deployed'\n])\nparam reason string",
    )
    problems = checks.check_compile_rules(infra_copy)
    assert any("openAi: scope is a ternary" in p and "BCP420" in p for p in problems), problems
    assert any("refuse" in p and "reason" in p and "BCP036" in p for p in problems), problems


def test_a_literal_outside_the_allowed_list_or_a_wider_parameter_fails_the_check(
    infra_copy: Path,
) -> None:
    _edit(infra_copy / "main.bicep", r"^    sku: serviceBusSku\n", "    sku: 'Basic'\n")
    _edit(
        infra_copy / "main.bicep",
        r"^@allowed\(\['SystemAssigned', 'UserAssigned'\]\)\n",
        "",
    )
    problems = checks.check_compile_rules(infra_copy)
    assert any("sku='Basic'" in p for p in problems), problems
    assert any("identityType" in p and "'identityType'" in p for p in problems), problems


# --- the checks fail when the template loses something ------------------------------------------
@pytest.fixture
def infra_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    return copy


def _edit(path: Path, pattern: str, replacement: str = "", count: int = 1) -> None:
    text = path.read_text()
    new, n = re.subn(pattern, replacement, text, count=count, flags=re.S | re.M)
    assert n == count, f"pattern not found in {path.name}: {pattern}"
    path.write_text(new)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (r"^  BACKLOG_QUEUE: .*?\n", "%BACKLOG_QUEUE% has no app setting"),
        (r"^  ServiceBusConnection__fullyQualifiedNamespace: .*?\n", "ServiceBusConnection"),
        (r"^  AzureWebJobsStorage__credential: .*?\n", "AzureWebJobsStorage__credential"),
        (r"^  GATEWAY_REGIONS: .*?\n", "GATEWAY_REGIONS"),
        (r"^  ServiceBusConnection__clientId: .*?\n", "ServiceBusConnection__clientId"),
    ],
)
def test_removing_an_app_setting_fails_the_check(
    infra_copy: Path, line: str, expected: str
) -> None:
    _edit(infra_copy / "main.bicep", line)
    problems = checks.check_app_settings(infra_copy)
    assert problems and any(expected in p for p in problems), problems


def test_a_broken_region_table_fails_the_check(infra_copy: Path) -> None:
    _edit(
        infra_copy / "modules/gateway-regions.bicep",
        r"  auth: 'managed_identity'\n",
        "  auth: 'api_key'\n",
    )
    problems = checks.check_gateway_regions(infra_copy)
    assert any("GATEWAY_REGIONS does not validate" in p and "api_key" in p for p in problems), (
        problems
    )


@pytest.mark.parametrize(
    ("file", "resource", "role"),
    [
        ("storage-roles.bicep", "tableContributor", "Storage Table Data Contributor"),
        ("openai-wiring.bicep", "openAiUser", "Cognitive Services OpenAI User"),
        ("servicebus-roles.bicep", "backlogOwner", "Azure Service Bus Data Owner"),
        ("servicebus-roles.bicep", "replySenders", "Azure Service Bus Data Sender"),
    ],
)
def test_removing_a_role_assignment_fails_the_check(
    infra_copy: Path, file: str, resource: str, role: str
) -> None:
    _edit(infra_copy / "modules" / file, rf"^resource {resource} .*?^}}\]?\n")
    problems = checks.check_roles(infra_copy, REPO / "README.md")
    assert any(role in p for p in problems), problems


def test_a_role_on_a_wider_scope_than_the_readme_says_fails_the_check(infra_copy: Path) -> None:
    # Data Owner on the whole namespace instead of the backlog queue.
    _edit(
        infra_copy / "modules/servicebus-roles.bicep",
        r"(resource backlogOwner .*?)scope: backlogQueue",
        r"\1scope: namespace",
    )
    problems = checks.check_roles(infra_copy, REPO / "README.md")
    assert any("Azure Service Bus Data Owner" in p and "namespaces'" in p for p in problems), (
        problems
    )


def test_a_role_added_to_the_readme_must_be_assigned(infra_copy: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    text = (REPO / "README.md").read_text()
    row = "| Azure Service Bus Data Receiver | the namespace | nothing |\n"
    readme.write_text(
        text.replace("| Storage Blob Data Owner |", row + "| Storage Blob Data Owner |", 1)
    )
    problems = checks.check_roles(infra_copy, readme)
    assert any("Azure Service Bus Data Receiver" in p and "not assigned" in p for p in problems), (
        problems
    )


@pytest.mark.parametrize(
    ("file", "pattern", "expected"),
    [
        ("servicebus.bicep", r"^resource backlogQueue .*?^}\n", "backlog queue 'backlog'"),
        (
            "servicebus.bicep",
            r"^resource replyQueues .*?^}\]\n",
            "reply queue 'replies' is not created",
        ),
        ("servicebus.bicep", r"^    maxDeliveryCount: maxDeliveryCount\n", "maxDeliveryCount"),
        (
            "servicebus.bicep",
            r"^    requiresDuplicateDetection: true\n",
            "requiresDuplicateDetection",
        ),
    ],
)
def test_removing_a_queue_or_its_properties_fails_the_check(
    infra_copy: Path, file: str, pattern: str, expected: str
) -> None:
    path = infra_copy / "modules" / file
    if "backlogQueue" in pattern:  # the output reads the queue's name; keep the file consistent
        _edit(
            path,
            r"^output backlogQueueName string = backlogQueue.name",
            "output backlogQueueName string = backlogQueueName",
        )
    _edit(path, pattern)
    problems = checks.check_queues(infra_copy, REPO / "host.json")
    assert any(expected in p for p in problems), problems


def test_host_json_lock_renewal_shorter_than_the_lock_fails_the_check(tmp_path: Path) -> None:
    host = tmp_path / "host.json"
    host.write_text(
        (REPO / "host.json")
        .read_text()
        .replace(
            '"maxAutoLockRenewalDuration": "00:05:00"', '"maxAutoLockRenewalDuration": "00:00:30"'
        )
    )
    problems = checks.check_queues(INFRA, host)
    assert any("lockDuration exceeds" in p for p in problems) and any(
        "BACKLOG_JOB_TIMEOUT_S" in p for p in problems
    )


# --- Azure OpenAI data actions: every upstream call has a role that grants it ----------------------
def test_every_upstream_call_is_granted_by_a_role_on_the_accounts() -> None:
    calls = checks.upstream_calls(checks.code_sources())
    # the Batch lane's calls are among those found in the code
    assert {"files.create", "batches.create", "batches.retrieve", "files.content"} <= set(calls)
    assert checks.check_upstream_permissions(INFRA) == []


def test_openai_user_alone_does_not_cover_the_batch_lane(infra_copy: Path) -> None:
    # Without the Batch lane's custom role only Cognitive Services OpenAI User is left (what
    # infra/ granted before): file uploads and batch creation are not granted.
    _edit(infra_copy / "modules/openai-wiring.bicep", r"^resource batchLane .*?^}\n")
    problems = checks.check_upstream_permissions(infra_copy)
    assert any("files.create" in p and "files/write" in p for p in problems), problems
    assert any("batches.create" in p and "batch-jobs/write" in p for p in problems), problems
    assert not any("chat/completions" in p or "embeddings" in p for p in problems), problems


def test_a_new_upstream_call_must_be_in_the_table(tmp_path: Path) -> None:
    source = tmp_path / "lane.py"
    source.write_text('await client.files.delete(file_id)\nawait client.get("/models")\n')
    problems = checks.check_upstream_permissions(INFRA, [source])
    assert any("files.delete" in p and "not in UPSTREAM_CALLS" in p for p in problems), problems
    assert any("batches.create" in p and "no longer calls" in p for p in problems), problems


# --- runtime and scale -----------------------------------------------------------------------------
def _min_python() -> tuple[int, ...]:
    """The oldest Python the code is written for: ruff's target-version in pyproject.toml."""
    text = (REPO / "pyproject.toml").read_text()
    target = re.search(r'^target-version = "py3(\d+)"', text, re.M)
    assert target, "pyproject.toml: no ruff target-version"
    return (3, int(target.group(1)))


def test_only_python_versions_the_code_supports_are_offered() -> None:
    template = checks.evaluate(INFRA)
    allowed = _allowed_list(template.tree["parameters"]["pythonVersion"])
    assert allowed, "pythonVersion has no @allowed list"
    too_old = [v for v in allowed if tuple(int(p) for p in v.split(".")) < _min_python()]
    assert too_old == [], f"pythonVersion offers {too_old}, older than the code supports"
    assert template.param("pythonVersion") in allowed
    app = template.module("functionApp")
    assert isinstance(app, ModuleRef)
    assert app.template.param("pythonVersion") == template.param("pythonVersion")


def test_http_per_instance_concurrency_is_a_parameter_set_on_the_app() -> None:
    template = checks.evaluate(INFRA, httpPerInstanceConcurrency=7)
    app = template.module("functionApp")
    assert isinstance(app, ModuleRef)
    site = app.template.resource("app")
    assert not isinstance(site, list)
    scale = app.template.eval(site.config["properties"]["functionAppConfig"], {})[
        "scaleAndConcurrency"
    ]
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == 7
    assert checks.evaluate(INFRA).param("httpPerInstanceConcurrency") == 16


# --- app settings set outside the template survive a provision --------------------------------------
def _settings_module(keep: bool, current: dict[str, str]) -> dict:
    calls: list[tuple[str, str]] = []

    def runtime(rtype: str, path: str, name: str) -> object:
        if rtype == "list":
            calls.append((path, name))
            return {"properties": current}
        return None

    template = Template(
        INFRA / "modules/app-settings.bicep",
        {
            "appName": "func-gateway-x",
            "appSettings": {"BACKLOG_QUEUE": "backlog", "GATEWAY_REGIONS": "[]"},
            "keepOtherSettings": keep,
        },
        runtime=runtime,
    )
    site = template.resource("settings")
    assert not isinstance(site, list)
    merged = template.eval(site.config["properties"], {})
    assert calls == (
        [("2024-04-01", "/fake/Microsoft.Web/sites/func-gateway-x/config/appsettings")]
        if keep
        else []
    )
    return merged


def test_provision_keeps_settings_set_outside_the_template() -> None:
    current = {"GATEWAY_PRICES": '{"gpt-4o": [2.5, 10]}', "BACKLOG_QUEUE": "old-name"}
    merged = _settings_module(True, current)
    assert merged == {
        "GATEWAY_PRICES": '{"gpt-4o": [2.5, 10]}',  # set in the portal: kept
        "BACKLOG_QUEUE": "backlog",  # the template's key: the template's value
        "GATEWAY_REGIONS": "[]",
    }
    assert checks.evaluate(INFRA).param("keepExistingAppSettings") is True
    main = checks.evaluate(INFRA).module("settings")
    assert isinstance(main, ModuleRef) and main.template.param("keepOtherSettings") is True


def test_provision_can_replace_all_settings_when_asked() -> None:
    merged = _settings_module(False, {"GATEWAY_PRICES": "{}"})
    assert merged == {"BACKLOG_QUEUE": "backlog", "GATEWAY_REGIONS": "[]"}


def test_batch_enqueued_tokens_above_the_deployments_quota_fail_the_check(infra_copy: Path) -> None:
    # capacity of a GlobalBatch deployment is in thousands of enqueued tokens: 50 is 50,000
    _edit(
        infra_copy / "main.parameters.json",
        r'"sku": "GlobalBatch", "capacity": 5000\}',
        '"sku": "GlobalBatch", "capacity": 50, "enqueuedTokens": 5000000}',
    )
    problems = checks.check_gateway_regions(infra_copy)
    assert any("5,000,000 exceeds" in p and "50,000" in p for p in problems), problems


# --- existing Azure OpenAI / AI services accounts -----------------------------------------------
def test_private_endpoints_of_the_accounts_register_in_both_dns_zones() -> None:
    template = checks.evaluate(INFRA, privateNetworking=True, serviceBusSku="Premium")
    endpoints = template.module("openAiEndpoints")
    assert isinstance(endpoints, list) and endpoints
    zones = template.module("network")
    assert isinstance(zones, ModuleRef)
    created = [z.name for z in zones.template.resource("zones")]  # type: ignore[union-attr]
    assert "privatelink.cognitiveservices.azure.com" in created  # AIServices accounts
    for endpoint in endpoints:
        ids = endpoint.template.param("privateDnsZoneIds")
        names = {str(i).rsplit("/", 1)[-1] for i in ids}
        assert names == {"privatelink.openai.azure.com", "privatelink.cognitiveservices.azure.com"}


@pytest.mark.parametrize(
    ("endpoint", "refused"),
    [
        ("https://eastus2.api.cognitive.microsoft.com/", True),
        ("https://my-account.openai.azure.com/", False),
        ("https://my-ai-services.cognitiveservices.azure.com/", False),
    ],
)
def test_an_existing_account_without_custom_subdomain_is_refused(
    endpoint: str, refused: bool
) -> None:
    accounts = checks.main_params(INFRA)["openAiAccounts"]
    existing = (
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.CognitiveServices/accounts/old"
    )
    params = checks.main_params(
        INFRA, openAiAccounts=[{**accounts[0], "existingResourceId": existing}, accounts[1]]
    )

    def runtime(rtype: str, path: str, name: str) -> object:
        if rtype == "Microsoft.CognitiveServices/accounts" and path == "properties.endpoint":
            return endpoint if name == "old" else f"https://{name}.openai.azure.com/"
        return None

    template = Template(INFRA / "main.bicep", params, runtime=runtime)
    checks_ = template.module("requireCustomSubdomain")
    assert isinstance(checks_, list) and len(checks_) == 2
    first, second = checks_
    assert first.template.param("refused") is refused
    assert second.template.param("refused") is False
    if refused:
        with pytest.raises(Refused, match="has no custom subdomain"):
            first.template.output("refused")


def test_deploy_docs_list_every_upstream_call_and_its_data_action() -> None:
    text = (REPO / "docs/deploy.md").read_text()
    for call in checks.UPSTREAM_CALLS:
        name = call.code.split(" ", 1)[-1] if " " in call.code else call.code
        assert name in text, f"docs/deploy.md does not name {call.code}"
        assert call.data_action.removeprefix(checks.OPENAI) in text, (
            f"docs/deploy.md does not name {call.data_action}"
        )
