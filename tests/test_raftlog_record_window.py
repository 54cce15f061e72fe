"""The bounded window of recent committed records that metadata log reads are served from."""

from __future__ import annotations

import pytest

from raftkafka.metadata.records import FenceBroker
from raftkafka.raftlog.record_window import RecordWindow


def fences(first: int, count: int) -> list[FenceBroker]:
    return [FenceBroker(n) for n in range(first, first + count)]


def test_reads_from_any_offset_in_the_window() -> None:
    window = RecordWindow(10)
    window.append(fences(0, 4), 0)
    window.append(fences(4, 3), 4)
    assert (window.start_offset, window.end_offset) == (0, 6)
    assert window.read(0, 100) == fences(0, 7)
    assert window.read(5, 100) == fences(5, 2)
    assert window.read(2, 2) == fences(2, 2)
    assert window.read(6, 1) == fences(6, 1)
    assert window.read(7, 10) == []  # past the end: nothing yet
    assert window.read(50, 10) == []


def test_old_records_fall_out_of_a_full_window() -> None:
    window = RecordWindow(5)
    for first in range(0, 12, 3):
        window.append(fences(first, 3), first)
    assert (window.start_offset, window.end_offset) == (7, 11)
    assert window.read(6, 10) is None  # too old: the caller sends a snapshot
    assert window.read(7, 10) == fences(7, 5)
    assert window.read(10, 10) == fences(10, 2)  # served from the near end
    assert window.read(8, 2) == fences(8, 2)


def test_a_snapshot_or_a_gap_restarts_the_window() -> None:
    window = RecordWindow(10)
    window.append(fences(0, 3), 0)
    window.reset(100)
    assert window.read(2, 10) is None
    assert window.read(100, 10) == []
    window.append(fences(100, 2), 100)
    assert window.read(100, 10) == fences(100, 2)
    window.append(fences(200, 1), 200)  # does not follow: nothing before it is trusted
    assert window.start_offset == 200 and window.read(101, 1) is None


def test_the_window_needs_room() -> None:
    with pytest.raises(ValueError):
        RecordWindow(0)
