"""Root conftest: registers the fixture plugins, one module per test peer."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.sim",
    "tests.fixtures.gateway",
    "tests.fixtures.azurite",
    "tests.fixtures.broker",
    "tests.fixtures.devserver",
]
