"""The azure-servicebus release this broker was checked against.

The broker speaks AMQP through the SDK's private codec (``azure.servicebus._pyamqp``), which may
change in any release; the tests pin it (requirements-dev.in) and the app's lock deploys the
same release (requirements.txt; tests/unit/test_lock.py checks both). A broker started on another version
refuses, naming both, instead of failing later in some frame."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["SDK_VERSION", "check_sdk_version", "installed_sdk_version"]

SDK_VERSION = "7.15.0"


def installed_sdk_version() -> str | None:
    try:
        return version("azure-servicebus")
    except PackageNotFoundError:
        return None


def check_sdk_version() -> None:
    """Raise RuntimeError unless the installed azure-servicebus is ``SDK_VERSION``."""
    installed = installed_sdk_version()
    if installed != SDK_VERSION:
        raise RuntimeError(
            f"sbbroker was checked against azure-servicebus {SDK_VERSION}, but "
            f"{installed or 'no version'} is installed: its private AMQP codec may differ. "
            f"Install the test pin (pip install -r requirements-dev.txt, azure-servicebus=={SDK_VERSION})."
        )
