"""End to end through a real ``raftkafka dev`` process: produce 100,000 records over 3 partitions, kill -9
the server, restart it on the same data dir and read back every acknowledged record exactly."""

from __future__ import annotations

from raftkafka import Admin, Consumer, Producer, TopicPartition
from raftkafka.structs import RecordMetadata
from tests.processes import DevServer

RECORDS = 100_000
PARTITIONS = 3


def test_every_acknowledged_record_survives_kill_9(dev_process: DevServer) -> None:
    with Admin(bootstrap=dev_process.bootstrap) as admin:
        admin.create_topic("crash", partitions=PARTITIONS, replication_factor=1)

    sent: dict[tuple[int, int], tuple[bytes, bytes, list[tuple[str, bytes]], int]] = {}
    with Producer(bootstrap=dev_process.bootstrap, acks=1, linger_ms=2) as producer:
        futures = []
        for i in range(RECORDS):
            key = b"k%d" % (i % 977)
            value = b"value-%08d" % i
            headers = [("seq", b"%d" % i)] if i % 10 == 0 else []
            futures.append((producer.send("crash", value=value, key=key, headers=headers), key, value, headers))
        producer.flush()
        for future, key, value, headers in futures:
            meta: RecordMetadata = future.result(timeout=60)
            assert (meta.partition, meta.offset) not in sent
            sent[(meta.partition, meta.offset)] = (key, value, headers, meta.timestamp)
    assert len(sent) == RECORDS

    dev_process.kill9()
    dev_process.start()

    seen: dict[tuple[int, int], tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]] = {}
    with Consumer(bootstrap=dev_process.bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("crash", p) for p in range(PARTITIONS)])
        last_offset = {p: -1 for p in range(PARTITIONS)}
        while len(seen) < RECORDS:
            batch = consumer.poll(timeout_ms=5000, max_records=10_000)
            assert batch, f"no records after {len(seen)} of {RECORDS}"
            for record in batch:
                assert record.offset == last_offset[record.partition] + 1, "offsets must be contiguous and ordered"
                last_offset[record.partition] = record.offset
                seen[(record.partition, record.offset)] = (
                    record.key,
                    record.value,
                    [tuple(h) for h in record.headers],
                    record.timestamp,
                )
    assert seen == sent
