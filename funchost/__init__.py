"""funchost: a double of the Azure Functions host that drives the app through the real Python
worker runtime (``azure-functions-runtime``, Python 3.13+), as ``sbbroker`` is a double of
Service Bus.

Run it in .venv-host (``make deps`` builds it from requirements-host.txt)::

    .venv-host/bin/python -m funchost --port 7071 --app-dir .

with the app settings in the environment. It starts a gRPC server playing the host's side of the
language worker contract (``FunctionRpc.proto``, written here from the published contract),
starts the worker process as the host does (``python -m funchost.worker --host --port
--worker-id --request-id --grpc-max-message-length``; the worker's runtime library does all the
work), initialises it, indexes ``function_app.py`` through the runtime, loads every function,
then serves HTTP triggers on ``/api/<route>`` (proxied to the worker's own HTTP server with
``x-ms-invocation-id``, streamed back as written) and its own API on ``/_host/...``:

* ``GET /_host/functions``: each function's bindings as the host reads them, ``%SETTING%``
  references resolved from the app settings;
* ``POST /_host/invoke/<function>``: one Service Bus, Storage queue or timer invocation with the
  input and trigger metadata the host sends (``_triggers``), answering the InvocationResponse
  (status, exception, return value);
* ``GET /_host/invocations`` and ``GET /_host/logs``.

What it exercises and what it does not: docs/host-double.md. The tests: tests/host/.
"""
