"""LogManager: partition directories, path safety, the data dir lock, reopening and deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkafka.errors import InvalidPartitionsError, InvalidTopicError, KafkaStorageError
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.log_manager import LogManager
from raftkafka.storage.record_batch import encode_batch


def _batch(value: bytes = b"v") -> bytearray:
    return bytearray(encode_batch([[0, None, value, []]], first_timestamp=1, max_timestamp=1))


@pytest.mark.parametrize("topic", ["../x", "a/b", "..", ".", "", "x\x00y", "/etc", "a" * 250])
def test_escaping_topic_names_refused(tmp_path: Path, topic: str) -> None:
    manager = LogManager(tmp_path / "data", LogConfig())
    with pytest.raises(InvalidTopicError):
        manager.get_or_create(topic, 0)
    with pytest.raises(InvalidTopicError):
        manager.delete(topic, 0)
    manager.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == [".lock"]


@pytest.mark.parametrize("partition", [-1, True, "0", 1.5])
def test_bad_partitions_refused(tmp_path: Path, partition: object) -> None:
    manager = LogManager(tmp_path, LogConfig())
    with pytest.raises(InvalidPartitionsError):
        manager.get_or_create("t", partition)  # type: ignore[arg-type]
    manager.close()


def test_data_dir_lock(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    with pytest.raises(KafkaStorageError, match="in use"):
        LogManager(tmp_path, LogConfig())
    manager.close()
    LogManager(tmp_path, LogConfig()).close()


def test_create_reopen_delete(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    assert manager.get("orders", 0) is None
    for partition in range(3):
        log = manager.get_or_create("orders", partition)
        for _ in range(partition + 1):
            log.append(_batch(), leader_epoch=0)
    manager.get_or_create("my.topic-with-dash", 12).append(_batch(), leader_epoch=0)
    assert (tmp_path / "orders-2").is_dir()
    (tmp_path / "not-a-partition").mkdir()
    (tmp_path / "orders-0.1234abcd-delete").mkdir()  # a deletion interrupted by a crash
    manager.flush_all()
    manager.close()

    manager = LogManager(tmp_path, LogConfig())
    opened = manager.open_existing()
    assert sorted(opened) == [("my.topic-with-dash", 12), ("orders", 0), ("orders", 1), ("orders", 2)]
    assert [manager.get("orders", p).log_end_offset for p in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
    assert not (tmp_path / "orders-0.1234abcd-delete").exists()
    manager.delete("orders", 1)
    manager.delete("orders", 1)  # already gone: fine
    manager.delete("never-existed", 0)
    assert manager.get("orders", 1) is None
    assert not (tmp_path / "orders-1").exists()
    manager.close()


def test_config_applied_and_retention_over_all_logs(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    small = LogConfig(segment_bytes=300, retention_bytes=0)
    log = manager.get_or_create("t", 0, small)
    for _ in range(20):
        log.append(_batch(bytes(100)), leader_epoch=0)
    assert manager.get_or_create("t", 0) is log
    assert log.config == small
    segments_before = log.segment_count
    assert segments_before > 1
    assert manager.apply_retention(now_ms=0) == segments_before - 1
    assert log.segment_count == 1
    assert log.log_start_offset > 0
    manager.close()


def test_unopenable_log_is_reported_offline(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.get_or_create("good", 0).append(_batch(), leader_epoch=0)
    manager.close()
    (tmp_path / "bad-0").mkdir()
    (tmp_path / "bad-0" / f"{0:020d}.log").mkdir()  # a segment that cannot be opened as a file
    manager = LogManager(tmp_path, LogConfig())
    assert manager.open_existing() == [("good", 0)]
    assert ("bad", 0) in manager.offline
    manager.close()
