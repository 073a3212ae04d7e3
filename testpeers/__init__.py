"""The test peers, started as real processes or threads on free loopback ports: used by the test
suite (through the pytest fixtures in ``tests/fixtures/``) and by the benchmarks (``bench/``), so
neither imports the other. Never deployed (``.funcignore``).

* ``testpeers.sim``: the Azure OpenAI simulator and its managed-identity token endpoint;
* ``testpeers.broker``: the Service Bus test broker (``sbbroker``);
* ``testpeers.azurite``: Azurite (blob, queue, table);
* ``testpeers.devserver``: the dev server serving ``function_app`` (uvicorn in a thread);
* ``testpeers.gateway``: ``GatewaySettings`` for a running simulator;
* ``testpeers.ports``: free ports, waiting for a port to listen;
* ``testpeers.processes``: the simulator and the dev server as child processes (context
  managers) for whole-process measurements; ``bench._harness`` re-exports them.
"""
