"""All partition logs of one broker, one directory each (``<topic>-<partition>``) under the data dir."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from raftkafka.errors import InvalidPartitionsError, KafkaStorageError, RaftKafkaError
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.partition_log import Clock, PartitionLog, wall_clock_ms
from raftkafka.topic_name import validate_topic_name

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
DELETED_SUFFIX = "-delete"
T = TypeVar("T")


class LogManager:
    """Opens, creates and deletes the partition logs under ``data_dir``, which it locks against
    other processes (``fcntl.flock``) for as long as it is open.

    Not thread-safe: only the broker's event loop thread may call it. ``offline`` maps partitions
    whose logs could not be opened (or later failed) to the reason.
    """

    def __init__(self, data_dir: Path, default_config: LogConfig, *, clock_ms: Clock = wall_clock_ms) -> None:
        default_config.validate()
        self.data_dir = data_dir
        self.default_config = default_config
        self.offline: dict[tuple[str, int], str] = {}
        self._clock_ms = clock_ms
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise KafkaStorageError(f"cannot use data dir {data_dir}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            raise KafkaStorageError(f"data dir {data_dir} is in use by another process") from exc

    def partition_dir(self, topic: str, partition: int) -> Path:
        """The directory of a partition's log; refuses names that could leave the data dir."""
        validate_topic_name(topic)
        if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
            raise InvalidPartitionsError(f"partition must be a non-negative integer, not {partition!r}")
        return self.data_dir / f"{topic}-{partition}"

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        """The open log of a partition, or None."""
        return self._logs.get((topic, partition))

    def get_or_create(self, topic: str, partition: int, config: LogConfig | None = None) -> PartitionLog:
        """The partition's log, opened or created as needed; ``config`` (if given) replaces its config."""
        log = self._logs.get((topic, partition))
        if log is not None:
            if config is not None and config != log.config:
                log.update_config(config)
            return log
        directory = self.partition_dir(topic, partition)
        log = PartitionLog.open(directory, config or self.default_config, clock_ms=self._clock_ms)
        self._logs[(topic, partition)] = log
        self.offline.pop((topic, partition), None)
        return log

    def delete(self, topic: str, partition: int) -> None:
        """Close and remove a partition's log; nothing happens if it is already gone."""
        directory = self.partition_dir(topic, partition)
        log = self._logs.pop((topic, partition), None)
        self.offline.pop((topic, partition), None)
        if log is not None:
            log.close()
        if not directory.exists():
            return
        # Rename first, so a crash half way through the removal never leaves a half-deleted log in use.
        doomed = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}{DELETED_SUFFIX}")
        try:
            directory.rename(doomed)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise KafkaStorageError(f"cannot delete {directory}: {exc}") from exc
        shutil.rmtree(doomed, ignore_errors=True)

    def open_existing(self) -> list[tuple[str, int]]:
        """Open every partition log found on disk; return the ``(topic, partition)`` pairs opened.

        Logs that fail to open are listed in ``offline``; directories of half-deleted logs are removed.
        """
        opened = []
        for entry in sorted(os.scandir(self.data_dir), key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name.endswith(DELETED_SUFFIX):
                shutil.rmtree(entry.path, ignore_errors=True)
                continue
            topic, _, number = entry.name.rpartition("-")
            if not number.isdigit() or number != str(int(number)):
                logger.warning("ignoring %s in the data dir: not a partition directory", entry.path)
                continue
            key = (topic, int(number))
            try:
                self.get_or_create(*key)
            except RaftKafkaError as exc:
                logger.error("partition %s-%s is offline: %s", topic, number, exc)
                self.offline[key] = str(exc)
                continue
            opened.append(key)
        return opened

    def partitions(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs of the open logs."""
        return list(self._logs)

    def apply_retention(self, now_ms: int) -> int:
        """Apply retention to every log; return the number of segments deleted."""
        return sum(self._each(lambda log: log.apply_retention(now_ms)))

    def flush_all(self) -> None:
        """fsync every log."""
        self._each(PartitionLog.flush)

    def flush_due(self, now_ms: int) -> None:
        """Flush the logs whose ``flush.ms`` interval has passed."""
        self._each(lambda log: log.flush_if_due(now_ms))

    def _each(self, action: Callable[[PartitionLog], T]) -> list[T]:
        """Run ``action(log)`` on every online log; a failing log goes to ``offline`` and the rest carry on."""
        results = []
        for key, log in self._logs.items():
            if log.offline:
                continue
            try:
                results.append(action(log))
            except KafkaStorageError as exc:
                self.offline[key] = str(exc)
        return results

    def close(self) -> None:
        """Close every log and release the data dir lock."""
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
