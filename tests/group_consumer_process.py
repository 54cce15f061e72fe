"""A consumer group member as its own process, for tests that ``kill -9`` one: consumes TOPIC in GROUP with
auto-commit and prints ``partition offset value`` per record (flushed) to stdout.

Run as ``python -m tests.group_consumer_process BOOTSTRAP TOPIC GROUP CLIENT_ID``.
"""

from __future__ import annotations

import sys

from raftkafka import Consumer

SESSION_TIMEOUT_MS = 2000
HEARTBEAT_INTERVAL_MS = 200
AUTO_COMMIT_INTERVAL_MS = 200


def main(bootstrap: str, topic: str, group: str, client_id: str) -> None:
    with Consumer(
        topic,
        bootstrap=bootstrap,
        group_id=group,
        client_id=client_id,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        auto_commit_interval_ms=AUTO_COMMIT_INTERVAL_MS,
    ) as consumer:
        while True:
            for record in consumer.poll(timeout_ms=100):
                print(record.partition, record.offset, record.value.decode() if record.value else "", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
