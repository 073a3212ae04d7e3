"""A wire-level AMQP 1.0 Azure Service Bus test broker for the real azure-servicebus SDK (tests only)."""

from ._sdk import SDK_VERSION, check_sdk_version

try:
    from ._broker import Broker, start_in_thread
    from ._entities import QueueConfig
    from ._message import BrokerMessage
except ImportError:  # the SDK's private codec moved: say which versions, not just what broke
    check_sdk_version()
    raise

__all__ = [
    "SDK_VERSION",
    "Broker",
    "BrokerMessage",
    "QueueConfig",
    "check_sdk_version",
    "start_in_thread",
]
