"""The asyncio client: ``AsyncProducer``, ``AsyncConsumer`` and ``AsyncAdmin``, twins of the sync ones."""

from raftkafka.client.admin import AsyncAdmin
from raftkafka.client.consumer import AsyncConsumer, ConsumerRebalanceListener
from raftkafka.client.producer import AsyncProducer
from raftkafka.structs import Record, RecordMetadata, TopicPartition

__all__ = [
    "AsyncAdmin",
    "AsyncConsumer",
    "AsyncProducer",
    "ConsumerRebalanceListener",
    "Record",
    "RecordMetadata",
    "TopicPartition",
]
