"""The Python client: ``Producer``, ``Consumer`` and ``Admin`` (sync), and their async twins."""

from raftkafka.client.accumulator import RecordFuture
from raftkafka.client.admin import AsyncAdmin
from raftkafka.client.consumer import AsyncConsumer, ConsumerRebalanceListener
from raftkafka.client.producer import AsyncProducer
from raftkafka.client.sync import Admin, Consumer, Producer

__all__ = [
    "Admin",
    "AsyncAdmin",
    "AsyncConsumer",
    "AsyncProducer",
    "Consumer",
    "ConsumerRebalanceListener",
    "Producer",
    "RecordFuture",
]
