"""The history checker on synthetic histories: a clean run is valid, and each anomaly class is detected."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkafka.storage.record_batch import encode_batch
from tests.history import ANOMALIES, History, Report, check, read_replica_batches


def v(producer: str, seq: int) -> bytes:
    return f"{producer}-{seq}".encode()


def clean_run() -> tuple[History, dict[int, list[tuple[int, bytes]]]]:
    """Producers a and b, six acknowledged sends over two partitions, a consumer that saw some of them."""
    history = History()
    final: dict[int, list[tuple[int, bytes]]] = {0: [], 1: []}
    for seq in range(3):
        for producer, partition in (("a", 0), ("b", 1)):
            send = history.invoke(producer, v(producer, seq))
            history.ok(send, partition, seq)
            final[partition].append((seq, send.value))
    history.consume(0, 1, v("a", 1))
    return history, final


def only(report: Report, anomaly: str, count: int = 1) -> None:
    assert report.counts() == {name: count if name == anomaly else 0 for name in ANOMALIES}, report.summary()
    assert not report.valid


def test_a_clean_run_is_valid() -> None:
    history, final = clean_run()
    report = check(history, final)
    assert report.valid and report.stored == 6 and report.sends == {"ok": 6}, report.summary()
    assert "valid: True" in report.summary()


def test_values_must_be_unique() -> None:
    history = History()
    history.invoke("a", b"x")
    with pytest.raises(ValueError, match="not unique"):
        history.invoke("b", b"x")


def test_lost_an_acknowledged_record_missing_or_elsewhere() -> None:
    history, final = clean_run()
    del final[1][2]
    only(check(history, final), "lost")
    history, final = clean_run()
    final[1][2] = (2, b"zzz")
    history.invoke("c", b"zzz")  # an unacknowledged send took its offset
    only(check(history, final), "lost")


def test_duplicate_and_info_sends_at_most_once() -> None:
    history, final = clean_run()
    final[0].append((3, v("a", 2)))
    only(check(history, final), "duplicate")
    history, final = clean_run()
    unknown = history.invoke("a", v("a", 3))
    history.info(unknown, "timed out")
    assert check(history, final).valid  # an info send may be missing...
    final[0].append((3, unknown.value))
    assert check(history, final).valid  # ...or present once...
    final[1].append((3, unknown.value))
    only(check(history, final), "duplicate")  # ...but not twice


def test_unexpected_values() -> None:
    history, final = clean_run()
    final[0].append((3, b"never sent"))
    only(check(history, final), "unexpected")


def test_holes_in_offsets() -> None:
    history, final = clean_run()
    final[0] = [(0, v("a", 0)), (1, v("a", 1))]
    final[0].append((5, v("a", 2)))
    history.sends[4].offset = 5  # acknowledged where it is, so only the hole shows
    only(check(history, final), "holes")
    history, final = clean_run()
    final[1] = final[1][1:]  # the log starts at 1: a hole unless retention moved the start there
    history.sends[1].status = "info"
    only(check(history, final), "holes")
    assert check(history, final, start_offsets={1: 1}).valid


def test_aborted_reads_by_a_consumer_or_in_the_final_contents() -> None:
    history, final = clean_run()
    failed = history.invoke("a", v("a", 3))
    history.fail(failed, "NOT_ENOUGH_REPLICAS")
    history.consume(0, 3, failed.value)
    final[0].append((3, failed.value))
    report = check(history, final)
    assert report.counts()["aborted_read"] == 2 and set(report.counts().values()) <= {0, 2}, report.summary()


def test_inconsistent_consumed_record() -> None:
    history, final = clean_run()
    history.consume(1, 0, v("b", 1))  # b-1 seen at offset 0, which finally holds b-0
    only(check(history, final), "inconsistent")


def test_reorder_within_a_partition() -> None:
    history, final = clean_run()
    final[0][1], final[0][2] = (1, v("a", 2)), (2, v("a", 1))
    history.sends[2].offset, history.sends[4].offset = 2, 1  # acknowledged where they are stored
    history.consumed.clear()
    only(check(history, final), "reorder")


def test_a_retried_batch_stored_twice_is_a_duplicate_not_a_reorder() -> None:
    history, final = clean_run()
    final[0].extend([(3, v("a", 1)), (4, v("a", 2))])  # a-1, a-2 stored again after a retry
    only(check(history, final), "duplicate", 2)


def write_segment(directory: Path, batches: list[bytes]) -> None:
    directory.mkdir(parents=True)
    (directory / f"{0:020d}.log").write_bytes(b"".join(batches) + b"\x00\x00\x00")  # an incomplete tail


def batch(offset: int, value: bytes, leader_epoch: int = 0) -> bytes:
    return encode_batch([[0, None, value, []]], first_timestamp=1, max_timestamp=1, base_offset=offset,
                        leader_epoch=leader_epoch)  # fmt: skip


def test_replicas_compared_batch_by_batch_below_the_high_watermark(tmp_path: Path) -> None:
    history, final = clean_run()
    values = [value for _, value in final[0]]
    leader = [batch(offset, value) for offset, value in enumerate(values)]
    write_segment(tmp_path / "1", leader)
    write_segment(tmp_path / "2", leader)
    write_segment(tmp_path / "3", [*leader[:2], batch(2, values[2], leader_epoch=1), batch(3, b"tail")])
    replicas = {0: {n: read_replica_batches(tmp_path / str(n)) for n in (1, 2)}}
    assert sorted(replicas[0][1]) == [0, 1, 2]
    assert check(history, final, replicas=replicas).valid
    replicas = {0: {n: read_replica_batches(tmp_path / str(n)) for n in (1, 2, 3)}}
    only(check(history, final, replicas=replicas), "inconsistent")  # offset 2 differs; 3 is above the HW
    replicas = {0: {1: read_replica_batches(tmp_path / "1"), 2: {0: leader[0]}}}
    only(check(history, final, replicas=replicas), "inconsistent", 2)  # replica 2 lacks offsets 1 and 2
