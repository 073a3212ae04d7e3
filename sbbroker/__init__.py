"""A wire-level AMQP 1.0 Azure Service Bus test broker for the real azure-servicebus SDK (tests only)."""

from ._broker import Broker, start_in_thread
from ._entities import QueueConfig
from ._message import BrokerMessage

__all__ = ["SDK_VERSION", "Broker", "BrokerMessage", "QueueConfig", "start_in_thread"]

SDK_VERSION = "7.15.0"  # the azure-servicebus release whose private codec (_pyamqp) this relies on
