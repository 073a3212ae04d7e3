"""The composition root's rule, checked on the source with ``ast``:

**Infrastructure is constructed only in the composition root's modules.** Infrastructure here
means a client or credential class of an Azure SDK (a name imported from an ``azure.*``
package other than ``azure.functions``, whose name ends in ``Client``, ``Credential``,
``Sender`` or ``Receiver``: ``TableServiceClient``, ``TableClient``, ``BlobServiceClient``,
``ContainerClient``, ``BlobClient``, ``QueueClient``, ``QueueServiceClient``,
``ServiceBusClient``, ``DefaultAzureCredential``, ``ManagedIdentityCredential``, ...), called
directly or through a class method (``TableClient.from_connection_string(...)``). Those calls
may appear only in

* ``shared/runtime.py``      the composition root: builds the services and hands them on;
* ``shared/storage.py``      every table, blob container and queue client, from one target;
* ``shared/servicebus.py``   the Service Bus client;
* ``shared/credentials.py``  the credentials, under the app's one credential policy.

The model clients (``openai``'s ``AsyncOpenAI`` / ``AsyncAzureOpenAI`` / ``OpenAI`` /
``AzureOpenAI``) are built in one place too: ``shared/aoai/_clients.py`` (``ClientProvider``,
the per-region client factory the gateway and the batch lane are handed).

Checked: every module under ``shared/`` and ``function_app.py`` (the app). Not checked:
``devserver/`` (it plays the Functions host locally: its trigger clients and blob leases are
the host's, not the app's), tests and benchmarks (they build SDK clients to look into Azurite
or the broker).
Messages (``ServiceBusMessage``), policies and exceptions are values, not infrastructure.
To find the places by hand: ``grep -rnE "(Client|Credential)(\\.from_\\w+)?\\(" shared``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import shared.api

SHARED = Path(shared.api.__file__).resolve().parents[1]
ROOT = SHARED.parent

ROOT_MODULES = {
    "shared/runtime.py",
    "shared/storage.py",
    "shared/servicebus.py",
    "shared/credentials.py",
}
MODEL_CLIENT_MODULES = {"shared/aoai/_clients.py"}
_SUFFIXES = ("Client", "Credential", "Sender", "Receiver")
_MODEL_CLIENTS = {"AsyncOpenAI", "AsyncAzureOpenAI", "OpenAI", "AzureOpenAI"}


def _infrastructure(module: str, name: str) -> str | None:
    """'azure' or 'model' when ``name`` from ``module`` is an infrastructure class, else None."""
    if module.startswith("azure.") and not module.startswith("azure.functions"):
        return "azure" if name.endswith(_SUFFIXES) else None
    if module == "openai" or module.startswith("openai."):
        return "model" if name in _MODEL_CLIENTS else None
    return None


def constructions(source: str) -> Iterator[tuple[int, str, str]]:
    """(line, what, kind) for every call in ``source`` that constructs an infrastructure class:
    ``X(...)`` or ``X.from_...(...)`` with ``X`` imported from an SDK, or ``pkg.X(...)`` with
    ``pkg`` an imported SDK module (``import openai`` then ``openai.AsyncOpenAI(...)``)."""
    tree = ast.parse(source)
    names: dict[str, tuple[str, str]] = {}  # local name -> (module, class name)
    modules: dict[str, str] = {}  # local name -> module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                modules[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr.startswith("from_"):
            func = func.value  # TableClient.from_connection_string(...)
        found: tuple[str, str] | None = None
        if isinstance(func, ast.Name) and func.id in names:
            found = names[func.id]
        elif isinstance(func, ast.Attribute):
            parts = [func.attr]
            value = func.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in modules:
                dotted = [modules[value.id], *reversed(parts[1:])]
                found = (".".join(dotted), func.attr)
        if found is None:
            continue
        kind = _infrastructure(*found)
        if kind is not None:
            yield node.lineno, found[1], kind


def _app_modules() -> Iterator[Path]:
    yield ROOT / "function_app.py"
    yield from sorted(SHARED.rglob("*.py"))


def test_azure_sdk_clients_are_constructed_only_in_the_composition_root():
    offenders = []
    for path in _app_modules():
        where = path.relative_to(ROOT).as_posix()
        for line, what, kind in constructions(path.read_text(encoding="utf-8")):
            allowed = ROOT_MODULES if kind == "azure" else MODEL_CLIENT_MODULES
            if where not in allowed:
                offenders.append(f"{where}:{line} constructs {what}")
    assert not offenders, "\n".join(offenders)


def test_the_root_modules_are_where_the_clients_are_built():
    """The rule is not vacuous: the listed modules do construct the clients."""
    built: dict[str, set[str]] = {}
    for where in (*ROOT_MODULES, *MODEL_CLIENT_MODULES):
        source = (ROOT / where).read_text(encoding="utf-8")
        built[where] = {what for _, what, _ in constructions(source)}
    assert {"TableClient", "ContainerClient", "QueueClient"} <= built["shared/storage.py"]
    assert built["shared/servicebus.py"] == {"ServiceBusClient"}
    assert {"ManagedIdentityCredential", "DefaultAzureCredential"} <= built["shared/credentials.py"]
    assert {"AsyncOpenAI", "AsyncAzureOpenAI"} <= built["shared/aoai/_clients.py"]


def test_the_check_sees_every_way_of_writing_a_construction():
    source = """
import openai
import azure.storage.queue.aio as queues
from azure.data.tables.aio import TableClient as Tables
from azure.servicebus.aio import ServiceBusClient
from azure.identity.aio import ManagedIdentityCredential
from azure.storage.queue import TextBase64EncodePolicy
from azure.servicebus import ServiceBusMessage

def build(connection):
    Tables.from_connection_string(connection, table_name="t")
    ServiceBusClient(fully_qualified_namespace="ns", credential=ManagedIdentityCredential())
    queues.QueueClient("https://a.queue.core.windows.net", "q")
    openai.AsyncOpenAI(api_key="k")
    TextBase64EncodePolicy()
    ServiceBusMessage(b"x")
"""
    found = [(what, kind) for _, what, kind in constructions(source)]
    assert sorted(found) == sorted(
        [
            ("TableClient", "azure"),
            ("ServiceBusClient", "azure"),
            ("ManagedIdentityCredential", "azure"),
            ("QueueClient", "azure"),
            ("AsyncOpenAI", "model"),
        ]
    )
