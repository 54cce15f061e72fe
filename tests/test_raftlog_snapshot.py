"""Snapshots: the startup load picks the snapshot the journal matches; kill -9 loses nothing acked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftkafka.metadata.image import EMPTY_IMAGE, MetadataImage, replay_all
from raftkafka.metadata.records import RegisterBroker
from raftkafka.raftlog.snapshot import PREVIOUS_SUFFIX, RaftEntry, SnapshotFiles, SnapshotMismatchError
from tests.processes import free_port


def image_with(*node_ids: int) -> MetadataImage:
    return replay_all(EMPTY_IMAGE, [RegisterBroker(n, "h", 1, "i") for n in node_ids], 0)


def entry(index: int) -> RaftEntry:
    return (b"\x00cmd%d" % index, index, 1)


class Harness:
    def __init__(self, directory: Path) -> None:
        self.file = str(directory / "raft.snapshot")
        self.image = EMPTY_IMAGE
        self.restored: list[MetadataImage] = []

    def files(self, journal: list[RaftEntry]) -> SnapshotFiles:
        snapshots = SnapshotFiles(lambda: self.image, self.restored.append)
        snapshots.attach_journal(journal)
        return snapshots

    def snapshot(self, image: MetadataImage, last: int) -> None:
        """What pysyncobj does: serialize to a temporary file, then rename it into place."""
        self.image = image
        self.files([]).serialize(self.file + ".tmp", (entry(last), entry(last - 1), ["127.0.0.1:1"]))
        os.replace(self.file + ".tmp", self.file)


def test_loads_the_snapshot_the_journal_starts_at(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.snapshot(image_with(1), last=5)
    journal = [entry(4), entry(5), entry(6)]
    assert harness.files(journal).deserialize(harness.file) == (entry(5), entry(4), ["127.0.0.1:1"])
    assert harness.restored == [image_with(1)]


def test_crash_before_the_journal_was_truncated_loads_the_previous_snapshot(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.snapshot(image_with(1), last=5)
    harness.snapshot(image_with(1, 2, 3), last=9)  # ...and the process died before truncating to it
    assert Path(harness.file + PREVIOUS_SUFFIX).exists()
    journal = [entry(i) for i in range(4, 12)]
    assert harness.files(journal).deserialize(harness.file)[0] == entry(5)
    assert harness.restored == [image_with(1)]


def test_untruncated_journal_is_replayed_instead(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.snapshot(image_with(1), last=5)
    journal = [entry(i) for i in range(1, 8)]
    with pytest.raises(SnapshotMismatchError):
        harness.files(journal).deserialize(harness.file)
    assert harness.restored == []


def test_snapshots_received_later_load_as_written(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.snapshot(image_with(1), last=5)
    files = harness.files([entry(4), entry(5)])
    files.deserialize(harness.file)
    harness.snapshot(image_with(7), last=20)  # as if transmitted by the leader
    assert files.deserialize(harness.file)[0] == entry(20)
    assert harness.restored[-1] == image_with(7)


CHILD = """
import asyncio, sys
from pathlib import Path
from raftkafka.metadata.records import RegisterBroker
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret
from raftkafka.raftlog.metadata_log import MetadataLog, MetadataLogConfig

async def main():
    data_dir, address, next_id = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    log = MetadataLog(address, [], data_dir, ensure_cluster_secret(data_dir), MetadataLogConfig())
    assert await log.wait_ready(10)
    print("ready", len(log.image.brokers), flush=True)
    while True:
        await log.append([RegisterBroker(next_id, "h", 1, "i")])
        print("acked", next_id, flush=True)
        next_id += 1

asyncio.run(main())
"""


@pytest.mark.timeout(120)
def test_kill_9_while_appending_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """Default compaction settings. (With compaction every few entries, pysyncobj's non-atomic journal
    rewrite in ``FileJournal.deleteEntriesTo`` can still lose a committed tail on kill -9; see the
    raftlog report.)"""
    address = f"127.0.0.1:{free_port()}"
    acked = -1
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), address, str(acked + 1)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert child.stdout is not None
            word, brokers = child.stdout.readline().split()
            assert word == "ready"
            assert int(brokers) >= acked + 1  # every acknowledged registration survived
            deadline = time.monotonic() + 10
            first_acked = acked
            while acked < first_acked + 60:
                assert time.monotonic() < deadline
                acked = int(child.stdout.readline().split()[1])
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        acked = max([acked, *(int(line.split()[1]) for line in child.stdout.read().splitlines())])
