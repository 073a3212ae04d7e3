"""The Azurite fixture serves queues and tables through the real azure SDKs."""

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient


def test_queue_round_trip(azurite, unique_name):
    queue = QueueClient.from_connection_string(azurite.connection_string, unique_name("q"))
    queue.create_queue()
    queue.send_message("hello")
    [message] = list(queue.receive_messages())
    assert message.content == "hello"


def test_table_round_trip(azurite, unique_name):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table(unique_name("t"))
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "value": 7})
    assert table.get_entity("p", "r")["value"] == 7
