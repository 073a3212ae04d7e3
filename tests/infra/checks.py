"""Cross-checks between infra/ and the code. Each check returns a list of problems (empty = in step),
so tests can run it on the real tree and on a broken copy.

Sources of truth, all read at check time: the settings models and loaders (shared/settings), the
bindings in function_app.py, README.md's roles table, host.json, and the templates themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bicep_eval import ModuleRef, ResourceRef, Template, Unknown, parse

__all__ = [
    "IDENTITY_MODES",
    "check_app_settings",
    "check_azure_yaml",
    "check_compile_rules",
    "check_gateway_regions",
    "check_queues",
    "check_roles",
    "check_upstream_permissions",
    "evaluate",
    "main_params",
    "upstream_calls",
]

REPO = Path(__file__).resolve().parents[2]
IDENTITY_MODES = ("SystemAssigned", "UserAssigned")
CLIENT_ID = (
    "11111111-2222-3333-4444-555555555555"  # what Azure returns for the user-assigned identity
)


def _runtime(rtype: str, path: str, name: str) -> Any:
    """The few values Azure only knows at deployment, as Azure returns them."""
    if rtype == "Microsoft.CognitiveServices/accounts" and path == "properties.endpoint":
        return f"https://{name}.openai.azure.com/"
    if (
        rtype == "Microsoft.ManagedIdentity/userAssignedIdentities"
        and path == "properties.clientId"
    ):
        return CLIENT_ID
    return None


def main_params(infra: Path, **overrides: Any) -> dict[str, Any]:
    """main.parameters.json's values, with azd's ``${VAR=default}`` resolved to the default."""
    raw = json.loads((infra / "main.parameters.json").read_text())["parameters"]
    values: dict[str, Any] = {"environmentName": "dev", "location": "eastus2"}
    for name, spec in raw.items():
        value = spec["value"]
        if isinstance(value, str) and (m := re.fullmatch(r"\$\{([A-Z_]+)(?:=([^}]*))?\}", value)):
            if m.group(2) is None:
                continue  # set by azd itself (AZURE_ENV_NAME, AZURE_LOCATION)
            value = {"true": True, "false": False}.get(m.group(2), m.group(2))
        values[name] = value
    values.update(overrides)
    return values


def evaluate(infra: Path, **overrides: Any) -> Template:
    return Template(infra / "main.bicep", main_params(infra, **overrides), runtime=_runtime)


def app_settings(infra: Path, identity_type: str) -> dict[str, Any]:
    return evaluate(infra, identityType=identity_type).variable("appSettings")


# --- Bicep compiler rules pycep does not check ------------------------------------------------------
def _body(config: dict[str, Any]) -> dict[str, Any]:
    """A module's or resource's body, inside its loop and condition wrappers."""
    while (
        isinstance(config, dict)
        and "config" in config
        and ("loop_type" in config or "condition" in config)
    ):
        config = config["config"]
    return config


def _is_literal(node: Any, caller: dict[str, Any], scope: set[str]) -> bool:
    if isinstance(node, bool | int | float):
        return True
    if not isinstance(node, str) or "${" in node:
        return False
    return node not in scope and not any(node in caller.get(k, {}) for k in _SYMBOL_KINDS)


_SYMBOL_KINDS = ("parameters", "variables", "resources", "modules")


def _allowed(decl: dict[str, Any]) -> list[Any] | None:
    for decorator in decl.get("decorators") or []:
        if decorator.get("type") == "allowed":
            return list(decorator["argument"])
    return None


def check_compile_rules(infra: Path) -> list[str]:
    """Two rules of the Bicep compiler that pycep and checkov do not enforce, over main.bicep and
    every module it uses:

    - BCP036: an argument to a module parameter with an @allowed list must be a literal in that
      list, or a parameter of the caller whose own @allowed list is within it. The compiler checks
      it even when the module's condition is false (Azure/bicep issues #4373, #13884).
    - BCP420 (Bicep 0.36+): a module's or resource's `scope:` must not be a ternary between scope
      expressions; put the condition inside the arguments (resourceGroup(cond ? a : b, ...)).
    """
    problems: list[str] = []
    for path in _reachable(infra):
        tree = parse(path)
        loops: set[str] = set()
        for kind in ("modules", "resources"):
            for name, decl in (tree.get(kind) or {}).items():
                config = decl.get("config") or {}
                loop = config.get("loop_type") if isinstance(config, dict) else None
                if loop:
                    loops |= {loop["detail"].get("item_name"), loop["detail"].get("index_name")}
                body = _body(config)
                scope = body.get("scope") if isinstance(body, dict) else None
                if (
                    isinstance(scope, dict)
                    and scope.get("operator", {}).get("type") == "conditional"
                ):
                    problems.append(
                        f"{path.name}: {name}: scope is a ternary between scopes (BCP420); "
                        "put the condition inside resourceGroup()'s arguments"
                    )
        for name, decl in (tree.get("modules") or {}).items():
            if decl.get("type") != "local":
                continue
            callee = parse(path.parent / decl["detail"]["path"])
            args = _body(decl["config"]).get("params") or {}
            for pname, pdecl in (callee.get("parameters") or {}).items():
                allowed = _allowed(pdecl)
                if allowed is None or pname not in args:
                    continue
                arg = args[pname]
                if _is_literal(arg, tree, loops):
                    if arg not in allowed:
                        problems.append(
                            f"{path.name}: module {name}: {pname}={arg!r} is not in {allowed} (BCP036)"
                        )
                    continue
                source = (tree.get("parameters") or {}).get(arg) if isinstance(arg, str) else None
                source_allowed = _allowed(source) if source else None
                if source_allowed is None or not set(source_allowed) <= set(allowed):
                    problems.append(
                        f"{path.name}: module {name}: {pname} has @allowed {allowed}, and the "
                        f"argument {arg!r} is not a literal or parameter within it (BCP036)"
                    )
    return problems


# --- app settings ----------------------------------------------------------------------------------
def _binding_settings() -> tuple[frozenset[str], frozenset[str]]:
    """(%NAME% settings, connection names) the function app's bindings use, from function_app.py,
    indexed as the worker indexes it (devserver's repeatable get_functions)."""
    import function_app
    from devserver.http import indexed_functions

    names, connections = set(), set()
    for fn in indexed_functions(function_app.app):
        for raw in fn.get_raw_bindings():
            binding = json.loads(raw)
            for value in binding.values():
                if isinstance(value, str):
                    names.update(re.findall(r"%([^%]+)%", value))
            if binding.get("connection"):
                connections.add(binding["connection"])
    return frozenset(names), frozenset(connections)


def check_app_settings(infra: Path) -> list[str]:
    """Every setting the code and its bindings need is set, identity-based, and loads into the
    settings models (shared.settings) in both identity modes."""
    from shared.settings import SettingsError, load_backlog_settings, load_gateway_settings

    problems: list[str] = []
    names, connections = _binding_settings()
    for mode in IDENTITY_MODES:
        settings = app_settings(infra, mode)
        where = f"[{mode}]"
        for key, value in settings.items():
            if not isinstance(value, str):
                problems.append(f"{where} app setting {key} is not a string: {value!r}")
        env = {k: str(v) for k, v in settings.items()}
        problems.extend(
            f"{where} binding expression %{name}% has no app setting"
            for name in sorted(names)
            if name not in env
        )
        for conn in sorted(connections):
            if conn in env:
                problems.append(f"{where} {conn} is a connection string; use {conn}__* (identity)")
            if not any(k.startswith(f"{conn}__") for k in env):
                problems.append(f"{where} connection {conn}: no {conn}__* app settings")
                continue
            if env.get(f"{conn}__credential") != "managedidentity":
                problems.append(f"{where} {conn}__credential is not 'managedidentity'")
            has_client = f"{conn}__clientId" in env
            if (mode == "UserAssigned") != has_client:
                problems.append(
                    f"{where} {conn}__clientId: set it exactly for a user-assigned identity"
                )
            if has_client and env[f"{conn}__clientId"] != CLIENT_ID:
                problems.append(f"{where} {conn}__clientId is not the identity's client id")
        for loader in (load_gateway_settings, load_backlog_settings):
            try:
                loaded = loader(env)
            except SettingsError as exc:
                problems.append(f"{where} {loader.__name__}: {exc}")
                continue
            problems.extend(_identity_based(where, loaded))
    return problems


def _identity_based(where: str, loaded: Any) -> Iterator[str]:
    """Settings fields that hold a connection string must be empty; their identity twins set."""
    values = loaded.model_dump()
    for field, value in values.items():
        if field.endswith("_connection") and value is not None:
            yield f"{where} {type(loaded).__name__}.{field} is a connection string"
        twin = field.removesuffix("_connection")
        if field.endswith("_connection"):
            identity = [
                v
                for k, v in values.items()
                if k.startswith(twin) and k != field and k.endswith(("_namespace", "_account"))
            ]
            if identity and not any(identity):
                yield f"{where} {type(loaded).__name__}: no identity-based {twin} connection"


# --- GATEWAY_REGIONS -------------------------------------------------------------------------------
def check_gateway_regions(infra: Path) -> list[str]:
    """GATEWAY_REGIONS as the template builds it validates against GatewaySettings and matches
    the accounts and deployments the template creates."""
    from shared.settings import SettingsError, load_gateway_settings

    problems: list[str] = []
    for mode in IDENTITY_MODES:
        template = evaluate(infra, identityType=mode)
        settings = template.variable("appSettings")
        raw = settings.get("GATEWAY_REGIONS")
        if raw is None:
            return [f"[{mode}] GATEWAY_REGIONS is not set"]
        try:
            gateway = load_gateway_settings({"GATEWAY_REGIONS": raw})
        except SettingsError as exc:
            problems.append(f"[{mode}] GATEWAY_REGIONS does not validate: {exc}")
            continue
        accounts = template.param("openAiAccounts")
        deployments = template.param("modelDeployments")
        if [r.name for r in gateway.regions] != [a["name"] for a in accounts]:
            problems.append(f"[{mode}] regions {[r.name for r in gateway.regions]} != accounts")
        served = {d["alias"]: d for d in deployments if d["sku"] != "GlobalBatch"}
        for region, account in zip(gateway.regions, accounts, strict=False):
            if region.auth != "managed_identity":
                problems.append(f"[{mode}] {region.name}: auth {region.auth}")
            expected_client = CLIENT_ID if mode == "UserAssigned" else None
            if region.client_id != expected_client:
                problems.append(f"[{mode}] {region.name}: client_id {region.client_id!r}")
            if region.priority != account["priority"]:
                problems.append(f"[{mode}] {region.name}: priority {region.priority}")
            if isinstance(region.endpoint, Unknown) or not region.endpoint.startswith("https://"):
                problems.append(f"[{mode}] {region.name}: endpoint {region.endpoint!r}")
            if set(region.models) != set(served):
                problems.append(
                    f"[{mode}] {region.name}: models {sorted(region.models)} != {sorted(served)}"
                )
            for alias, dep in region.models.items():
                if alias in served and (
                    dep.deployment != served[alias]["name"]
                    or dep.tpm != served[alias]["capacity"] * 1000
                ):
                    problems.append(f"[{mode}] {region.name}/{alias}: {dep} != {served[alias]}")
            # the batch lane's targets: every GlobalBatch deployment, for an alias that is served
            batch = {d["alias"]: d for d in deployments if d["sku"] == "GlobalBatch"}
            if set(region.batch) != set(batch):
                problems.append(
                    f"[{mode}] {region.name}: batch {sorted(region.batch)} != {sorted(batch)}"
                )
            for bd in batch.values():
                quota = bd["capacity"] * 1000  # GlobalBatch capacity: thousands of enqueued tokens
                if bd.get("enqueuedTokens", quota) > quota:
                    problems.append(
                        f"[{mode}] {bd['name']}: enqueuedTokens {bd['enqueuedTokens']:,} exceeds the "
                        f"deployment's enqueued-token quota, capacity {bd['capacity']} x 1,000 = {quota:,}"
                    )
            for alias, bdep in region.batch.items():
                if alias not in region.models:
                    problems.append(f"[{mode}] {region.name}: batch alias {alias} is not served")
                want = batch.get(alias)
                if want is not None and (
                    bdep.deployment != want["name"]
                    or bdep.enqueued_tokens != want.get("enqueuedTokens", want["capacity"] * 1000)
                ):
                    problems.append(f"[{mode}] {region.name}/{alias}: batch {bdep} != {want}")
    return problems


# --- roles -----------------------------------------------------------------------------------------
# The narrowest resource each phrase of the README's "on" column names, narrowest first.
_SCOPE_WORDS = (
    ("queue", "Microsoft.ServiceBus/namespaces/queues"),
    ("namespace", "Microsoft.ServiceBus/namespaces"),
    ("azure openai", "Microsoft.CognitiveServices/accounts"),
    ("storage account", "Microsoft.Storage/storageAccounts"),
    ("application insights", "Microsoft.Insights/components"),
)


def readme_roles(readme: Path) -> list[tuple[str, str]]:
    """(role, on) rows of README.md's roles table (the table whose header is `| role | on | for |`)."""
    rows, inside = [], False
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and [c.lower() for c in cells[:2]] == ["role", "on"]:
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            if set(cells[0]) <= {"-", ":", " "}:
                continue
            rows.append((cells[0], cells[1]))
    return rows


@dataclass(frozen=True)
class Assignment:
    role: str
    scope_type: str
    scope_symbol: str
    file: str


def _reachable(infra: Path) -> list[Path]:
    """main.bicep and every module it (transitively) uses."""
    seen: list[Path] = []
    todo = [infra / "main.bicep"]
    while todo:
        path = todo.pop().resolve()
        if path in seen:
            continue
        seen.append(path)
        todo.extend(
            path.parent / m["detail"]["path"] for m in parse(path).get("modules", {}).values()
        )
    return seen


def role_assignments(infra: Path) -> list[Assignment]:
    roles_by_id = {v: k for k, v in json.loads((infra / "built-in-roles.json").read_text()).items()}
    found = []
    for path in _reachable(infra):
        tree = parse(path)
        resources = tree.get("resources", {})
        for decl in resources.values():
            if decl["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            config = decl["config"]
            body = config["config"] if "loop_type" in config or "condition" in config else config
            # A parameter without a default (a custom role's name, passed by the caller) reads as
            # "param:<name>".
            unset = {
                name: f"param:{name}"
                for name, p in (tree.get("parameters") or {}).items()
                if p.get("default") is None
            }
            template = Template(path, unset)
            role_id = str(template.eval(body["properties"]["roleDefinitionId"], {})).rsplit("/", 1)[
                -1
            ]
            scope = body.get("scope")
            if isinstance(scope, dict):  # replyQueues[i]
                scope = scope["operator"]["operands"]["operand_1"]
            scope_type = resources[scope]["type"] if scope in resources else "(deployment scope)"
            found.append(
                Assignment(roles_by_id.get(role_id, role_id), scope_type, str(scope), path.name)
            )
    return found


def check_roles(infra: Path, readme: Path) -> list[str]:
    """Every role in README's table is assigned to the app, on the narrowest scope the table names."""
    rows = readme_roles(readme)
    if not rows:
        return [f"no roles table (| role | on | for |) in {readme}"]
    assigned = role_assignments(infra)
    problems = []
    for role, on in rows:
        wanted = next((rtype for word, rtype in _SCOPE_WORDS if word in on.lower()), None)
        if wanted is None:
            problems.append(f"README role {role}: cannot tell the scope from '{on}'")
            continue
        scopes = {a.scope_type for a in assigned if a.role == role}
        if not scopes:
            problems.append(f"README role {role} ({on}) is not assigned in infra/")
        elif scopes != {wanted}:
            problems.append(
                f"README role {role}: assigned on {sorted(scopes)}, README says {on} ({wanted})"
            )
        if "reply" in on.lower() and not any(
            a.role == role and a.scope_symbol == "replyQueues" for a in assigned
        ):
            problems.append(f"README role {role}: not assigned on the reply queues")
    return problems


# --- upstream calls and the data actions they need ---------------------------------------------------
OPENAI = "Microsoft.CognitiveServices/accounts/OpenAI"


@dataclass(frozen=True)
class UpstreamCall:
    code: str  # how the code makes the call (what upstream_calls finds in the source)
    http: str  # the request Azure OpenAI receives (v1 API; the dated API's form in brackets)
    data_action: str  # the data action Azure RBAC checks for it


# Every call the code makes to Azure OpenAI. Data action names: Microsoft's built-in role
# definitions (tests/infra/role_definitions.json) and Azure OpenAI's RBAC documentation.
UPSTREAM_CALLS = (
    UpstreamCall(
        "POST /chat/completions",
        "POST /openai/v1/chat/completions [/openai/deployments/{d}/chat/completions]",
        f"{OPENAI}/deployments/chat/completions/action",
    ),
    UpstreamCall(
        "POST /embeddings",
        "POST /openai/v1/embeddings [/openai/deployments/{d}/embeddings]",
        f"{OPENAI}/deployments/embeddings/action",
    ),
    UpstreamCall("GET /models", "GET /openai/v1/models", f"{OPENAI}/models/read"),
    UpstreamCall("files.create", "POST /openai/v1/files (purpose batch)", f"{OPENAI}/files/write"),
    UpstreamCall("files.content", "GET /openai/v1/files/{id}/content", f"{OPENAI}/files/read"),
    UpstreamCall("batches.create", "POST /openai/v1/batches", f"{OPENAI}/batch-jobs/write"),
    UpstreamCall("batches.list", "GET /openai/v1/batches", f"{OPENAI}/batches/read"),
    UpstreamCall("batches.retrieve", "GET /openai/v1/batches/{id}", f"{OPENAI}/batches/read"),
    UpstreamCall(
        "POST /responses",
        "POST /openai/v1/responses (and GET/DELETE /responses/{id}, POST .../cancel, GET .../input_items)",
        f"{OPENAI}/responses/write",
    ),
)

_SDK_CALL = re.compile(r"\.(files|batches)\.(\w+)\(")
_RAW_CALL = re.compile(r"client\.(get|post|delete)\(\s*\"(/[^\"]*)\"")
_PATH_CONST = re.compile(
    r'^_[A-Z]+ = "(/(?:chat/completions|embeddings|completions|responses)[^"]*)"', re.M
)


def upstream_calls(sources: list[Path]) -> dict[str, list[str]]:
    """The calls to Azure OpenAI in the code: SDK resource methods (client.files.create(...)),
    raw requests (client.get("/models")), and the path constants the senders post to
    (_CHAT = "/chat/completions"), each with where it is."""
    found: dict[str, list[str]] = {}
    for path in sources:
        text = path.read_text()
        where = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        for m in _SDK_CALL.finditer(text):
            found.setdefault(f"{m.group(1)}.{m.group(2)}", []).append(where)
        for m in _RAW_CALL.finditer(text):
            found.setdefault(f"{m.group(1).upper()} {m.group(2)}", []).append(where)
        for m in _PATH_CONST.finditer(text):
            found.setdefault(f"POST {m.group(1)}", []).append(where)
    return found


def code_sources(repo: Path = REPO) -> list[Path]:
    return sorted((repo / "shared").rglob("*.py")) + [repo / "function_app.py"]


def _matches(pattern: str, action: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, action, re.I) is not None


def role_data_actions(infra: Path) -> dict[str, tuple[list[str], list[str]]]:
    """(dataActions, notDataActions) of every role infra/ assigns on Azure OpenAI accounts: the
    built-in ones from role_definitions.json, the custom ones from their roleDefinitions resource
    (a role assigned through a parameter is resolved through the caller's argument)."""
    builtin = json.loads((Path(__file__).parent / "role_definitions.json").read_text())
    out: dict[str, tuple[list[str], list[str]]] = {}
    custom = _custom_roles(infra)
    for a in role_assignments(infra):
        if a.scope_type != "Microsoft.CognitiveServices/accounts":
            continue
        if a.role in builtin:
            out[a.role] = (builtin[a.role]["dataActions"], builtin[a.role]["notDataActions"])
        elif a.role in custom:
            out[a.role] = custom[a.role]
        else:
            out[a.role] = ([], [])  # unknown: grants nothing the check can prove
    return out


def _custom_roles(infra: Path) -> dict[str, tuple[list[str], list[str]]]:
    """'param:<module parameter>' -> the custom role main.bicep passes to it."""
    template = evaluate(infra)
    roles: dict[str, tuple[list[str], list[str]]] = {}
    tree = template.tree
    for decl in (tree.get("modules") or {}).values():
        for pname, arg in (_body(decl["config"]).get("params") or {}).items():
            symbol = _symbol_of(arg)
            res = (tree.get("resources") or {}).get(symbol or "")
            if not res or res["type"] != "Microsoft.Authorization/roleDefinitions":
                continue
            ref = template.resource(symbol or "")
            assert isinstance(ref, ResourceRef)
            perms = template.eval(ref.config["properties"]["permissions"], {})
            roles[f"param:{pname}"] = (
                [x for p in perms for x in p.get("dataActions", [])],
                [x for p in perms for x in p.get("notDataActions", [])],
            )
    return roles


def _symbol_of(arg: Any) -> str | None:
    """`batchLaneRole.name` / `.id` -> 'batchLaneRole'."""
    if isinstance(arg, dict) and arg.get("operator", {}).get("type") == "property_accessor":
        first = arg["operator"]["operands"]["operand_1"]
        return first if isinstance(first, str) else None
    return None


def check_upstream_permissions(infra: Path, sources: list[Path] | None = None) -> list[str]:
    """Every call the code makes to Azure OpenAI is in UPSTREAM_CALLS, and a role infra/ assigns
    on each account grants its data action (and no notDataAction takes it back)."""
    calls = upstream_calls(sources if sources is not None else code_sources())
    table = {c.code: c for c in UPSTREAM_CALLS}
    problems = [
        f"the code calls {code} ({', '.join(sorted(set(where)))}): not in UPSTREAM_CALLS"
        for code, where in sorted(calls.items())
        if code not in table
    ]
    problems += [
        f"UPSTREAM_CALLS lists {code}, which the code no longer calls"
        for code in table
        if code not in calls
    ]
    roles = role_data_actions(infra)
    for call in UPSTREAM_CALLS:
        granted = [
            role
            for role, (allow, deny) in roles.items()
            if any(_matches(p, call.data_action) for p in allow)
            and not any(_matches(p, call.data_action) for p in deny)
        ]
        if not granted:
            problems.append(
                f"{call.code} needs {call.data_action}: no role infra/ assigns on the Azure OpenAI "
                f"accounts grants it (assigned: {sorted(roles)})"
            )
    return problems


# --- queues and host.json --------------------------------------------------------------------------
def _iso_seconds(value: str) -> float:
    m = re.fullmatch(r"P(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)", value)
    if not m:
        raise ValueError(f"not an ISO 8601 time span: {value!r}")
    h, mnt, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mnt * 60 + s


def _timespan_seconds(value: str) -> float:
    h, m, s = value.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _queues(template: Template) -> dict[str, dict[str, Any]]:
    """Service Bus queues the template creates: name -> properties (evaluated)."""
    out: dict[str, dict[str, Any]] = {}
    for module in template.modules().values():
        for ref in module if isinstance(module, list) else [module]:
            assert isinstance(ref, ModuleRef)
            for name, decl in ref.template.tree.get("resources", {}).items():
                if decl["type"] != "Microsoft.ServiceBus/namespaces/queues" or decl.get("existing"):
                    continue
                found = ref.template.resource(name)
                for res in found if isinstance(found, list) else [found]:
                    assert isinstance(res, ResourceRef)
                    out[res.name] = ref.template.eval(res.config.get("properties", {}), res.scope)
    return out


def check_queues(infra: Path, host_json: Path) -> list[str]:
    """The backlog queue the app reads (BACKLOG_QUEUE) and the reply queues exist, with the
    properties the code relies on, and agree with host.json's Service Bus settings."""
    from shared.settings import load_backlog_settings

    template = evaluate(infra)
    settings = {k: str(v) for k, v in template.variable("appSettings").items()}
    queues = _queues(template)
    problems = []
    backlog_name = settings.get("BACKLOG_QUEUE") or "(BACKLOG_QUEUE unset)"
    backlog = queues.get(backlog_name)
    host = json.loads(host_json.read_text())["extensions"]["serviceBus"]
    renew_s = _timespan_seconds(host["maxAutoLockRenewalDuration"])
    if backlog is None:
        problems.append(
            f"backlog queue '{backlog_name}' (BACKLOG_QUEUE) is not created; queues: {sorted(queues)}"
        )
    else:
        if not isinstance(backlog.get("maxDeliveryCount"), int) or backlog["maxDeliveryCount"] < 2:
            problems.append(
                "backlog queue: maxDeliveryCount must be set, >= 2 (a transient failure is redelivered)"
            )
        if not backlog.get("deadLetteringOnMessageExpiration"):
            problems.append("backlog queue: deadLetteringOnMessageExpiration is off")
        if not backlog.get("requiresDuplicateDetection"):
            problems.append(
                "backlog queue: requiresDuplicateDetection is off (message id = job id)"
            )
        lock_s = _iso_seconds(backlog.get("lockDuration", "PT1M"))
        if lock_s > 300:
            problems.append("backlog queue: lockDuration above PT5M, the Service Bus maximum")
        if lock_s > renew_s:
            problems.append(
                "backlog queue: lockDuration exceeds host.json maxAutoLockRenewalDuration"
            )
        if host.get("autoCompleteMessages") is not True:
            problems.append(
                "host.json: autoCompleteMessages must be true (raise = redeliver, then dead-letter)"
            )
    job_timeout_s = load_backlog_settings(settings).job_timeout_s
    if renew_s < job_timeout_s:
        problems.append(
            f"host.json maxAutoLockRenewalDuration {renew_s}s < BACKLOG_JOB_TIMEOUT_S {job_timeout_s}s"
        )
    replies = template.param("replyQueueNames")
    if not replies:
        problems.append("no reply queue")
    for name in replies:
        if name not in queues:
            problems.append(f"reply queue '{name}' is not created")
        elif not queues[name].get("requiresDuplicateDetection"):
            problems.append(
                f"reply queue '{name}': requiresDuplicateDetection is off (message id '<job id>:reply')"
            )
    return problems


# --- azure.yaml ------------------------------------------------------------------------------------
def check_azure_yaml(repo: Path) -> list[str]:
    import yaml

    spec = yaml.safe_load((repo / "azure.yaml").read_text())
    problems = []
    if (spec.get("infra") or {}).get("path", "infra") != "infra":
        problems.append("azure.yaml: infra.path is not infra")
    functions = {
        n: s for n, s in (spec.get("services") or {}).items() if s.get("host") == "function"
    }
    if len(functions) != 1:
        return [*problems, f"azure.yaml: expected one function service, found {sorted(functions)}"]
    ((name, service),) = functions.items()
    if service.get("language") not in ("python", "py"):
        problems.append(f"azure.yaml: service {name} language is {service.get('language')!r}")
    if (repo / service.get("project", "")).resolve() != repo.resolve() or not (
        repo / "function_app.py"
    ).exists():
        problems.append(
            f"azure.yaml: service {name} project {service.get('project')!r} is not the app's folder"
        )
    tag = re.search(
        r"'azd-service-name':\s*'([^']+)'", (repo / "infra/modules/function-app.bicep").read_text()
    )
    if not tag or tag.group(1) != name:
        problems.append(
            f"azure.yaml: service {name} has no function app tagged azd-service-name={name}"
        )
    return problems
