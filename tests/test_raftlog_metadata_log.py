"""The pysyncobj metadata log, for real: commits, listeners, batching, restarts, no quorum, security."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest

from raftkafka.errors import NotControllerError, RequestTimedOutError
from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.records import CreateTopic, FenceBroker, MetadataRecord, RegisterBroker
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret
from raftkafka.raftlog.metadata_log import SNAPSHOT_FILE_NAME, MetadataLog, MetadataLogConfig
from tests.processes import free_port

pytestmark = pytest.mark.timeout(60)

Commit = tuple[int, list[MetadataRecord]]


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def metadata_log(
    data_dir: Path,
    address: str | None = None,
    partners: Sequence[str] = (),
    config: MetadataLogConfig | None = None,
    ready: bool = True,
) -> AsyncIterator[MetadataLog]:
    log = MetadataLog(
        address or f"127.0.0.1:{free_port()}", partners, data_dir, ensure_cluster_secret(data_dir), config
    )
    try:
        if ready:
            assert await log.wait_ready(10)
        yield log
    finally:
        await log.close()


def recorder(log: MetadataLog) -> list[Commit]:
    commits: list[Commit] = []
    log.add_listener(lambda image, records, first_offset: commits.append((first_offset, list(records))))
    return commits


BROKER = RegisterBroker(1, "127.0.0.1", 9092, "inc-1")
TOPIC = CreateTopic("events", "tid", ((1,),), {})


def test_append_commits_and_listeners_see_batches_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        async with metadata_log(tmp_path) as log:
            assert log.is_leader
            assert log.leader_address == log.status().self_address
            commits = recorder(log)
            seen_images: list[MetadataImage] = []
            log.add_listener(lambda image, records, first_offset: seen_images.append(image))
            assert await log.append([BROKER, TOPIC]) == 0
            assert await log.append([FenceBroker(1)]) == 2
            # the listener ran before the append resolved
            assert commits == [(0, [BROKER, TOPIC]), (2, [FenceBroker(1)])]
            assert log.image.offset == 2
            assert log.image.brokers[1].fenced
            assert log.image.topic("events") is not None
            assert seen_images[-1] is log.image
            status = log.status()
            assert status.is_leader and status.leader == status.self_address
            assert status.partners == {} and status.metadata_offset == 2
            assert status.commit_index >= 2 and status.term >= 1

    run(main())


def test_single_voter_commits_fast(tmp_path: Path) -> None:
    async def main() -> None:
        async with metadata_log(tmp_path) as log:
            latencies = []
            for n in range(30):
                started = time.perf_counter()
                await log.append([RegisterBroker(1, "h", 1, f"inc-{n}")])
                latencies.append(time.perf_counter() - started)
            latencies.sort()
            assert latencies[len(latencies) // 2] < 0.01  # not the 50 ms tick period

    run(main())


def test_concurrent_appends_share_raft_entries(tmp_path: Path) -> None:
    async def main() -> None:
        async with metadata_log(tmp_path) as log:
            commits = recorder(log)
            entries_before = log.status().commit_index
            offsets = await asyncio.gather(*(log.append([RegisterBroker(n, "h", 1, "i")]) for n in range(200)))
            assert sorted(offsets) == list(range(200))
            assert offsets == list(range(200))  # in submission order
            assert len(commits) < 20  # coalesced: far fewer Raft entries than appends
            assert log.status().commit_index - entries_before == len(commits)
            flattened = [(first + i, r) for first, records in commits for i, r in enumerate(records)]
            assert [offset for offset, _ in flattened] == list(range(200))
            assert sorted(log.image.brokers) == list(range(200))

    run(main())


def test_restart_restores_image_from_journal(tmp_path: Path) -> None:
    async def main() -> None:
        address = f"127.0.0.1:{free_port()}"
        async with metadata_log(tmp_path, address) as log:
            await log.append([BROKER, TOPIC])
            await log.append([FenceBroker(1)])
            before = log.image
        async with metadata_log(tmp_path, address) as log:
            await eventually(lambda: log.image.offset == 2)
            assert log.image == before
            assert await log.append([RegisterBroker(2, "h", 1, "i")]) == 3

    run(main())


def test_restart_restores_image_from_snapshot(tmp_path: Path) -> None:
    config = MetadataLogConfig(log_compaction_min_entries=10)

    async def main() -> None:
        address = f"127.0.0.1:{free_port()}"
        async with metadata_log(tmp_path, address, config=config) as log:
            for n in range(40):
                await log.append([RegisterBroker(n, "h", 1, "i")])
            await eventually((tmp_path / SNAPSHOT_FILE_NAME).exists)
            before = log.image
        async with metadata_log(tmp_path, address, config=config) as log:
            await eventually(lambda: log.image.offset == before.offset)
            assert log.image == before
            assert await log.append([FenceBroker(3)]) == before.offset + 1

    run(main())


def test_snapshot_is_msgpack_not_pickle(tmp_path: Path) -> None:
    async def main() -> None:
        async with metadata_log(tmp_path, config=MetadataLogConfig(log_compaction_min_entries=5)) as log:
            for n in range(20):
                await log.append([RegisterBroker(n, "h", 1, "i")])
            await eventually((tmp_path / SNAPSHOT_FILE_NAME).exists)

    run(main())
    version, image_bytes, last, before, voters = msgpack.unpackb((tmp_path / SNAPSHOT_FILE_NAME).read_bytes())
    assert version == 1 and len(voters) == 1
    assert last[1] == before[1] + 1  # pysyncobj's (command, index, term) of the last two applied entries
    assert MetadataImage.from_bytes(image_bytes).brokers.keys() <= set(range(20))


def test_a_bad_entry_is_skipped_and_the_log_keeps_working(tmp_path: Path) -> None:
    async def main() -> None:
        async with metadata_log(tmp_path) as log:
            assert await log.append([BROKER]) == 0
            outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            loop = asyncio.get_running_loop()
            log._state.apply_batch(
                b"\xc1not msgpack", callback=lambda result, error: loop.call_soon_threadsafe(outcome.set_result, result)
            )
            assert await outcome == -1
            assert await log.append([FenceBroker(1)]) == 1  # the bad entry took no offset
            assert log.image.brokers[1].fenced

    run(main())


def test_no_quorum_fails_fast_instead_of_hanging(tmp_path: Path) -> None:
    partners = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # never started

    async def main() -> None:
        async with metadata_log(tmp_path, partners=partners, ready=False) as log:
            assert not await log.wait_ready(0.5)
            started = time.monotonic()
            with pytest.raises(NotControllerError, match="no metadata quorum leader"):
                await log.append([BROKER])
            assert time.monotonic() - started < 1
            assert not log.is_leader and log.leader_address is None
            assert set(log.status().partners) == set(partners)

    run(main())


async def start_quorum(tmp_path: Path, config: MetadataLogConfig | None = None) -> tuple[list[str], list[MetadataLog]]:
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    secret = ensure_cluster_secret(tmp_path / "shared")
    logs = []
    for n, address in enumerate(addresses):
        partners = [a for a in addresses if a != address]
        logs.append(MetadataLog(address, partners, tmp_path / f"node-{n}", secret, config))
    await eventually(lambda: sum(log.is_leader for log in logs) == 1)
    return addresses, logs


def test_three_voters_converge_and_followers_redirect(tmp_path: Path) -> None:
    async def main() -> None:
        addresses, logs = await start_quorum(tmp_path)
        try:
            leader = next(log for log in logs if log.is_leader)
            leader_address = addresses[logs.index(leader)]
            await eventually(lambda: all(log.leader_address == leader_address for log in logs))
            offsets = await asyncio.gather(*(leader.append([RegisterBroker(n, "h", 1, "i")]) for n in range(50)))
            assert offsets == list(range(50))
            await leader.append([TOPIC])
            await eventually(lambda: all(log.image == leader.image for log in logs))
            follower = next(log for log in logs if not log.is_leader)
            with pytest.raises(NotControllerError, match=leader_address):
                await follower.append([FenceBroker(1)])
        finally:
            await asyncio.gather(*(log.close() for log in logs))

    run(main())


def test_leader_without_majority_times_out(tmp_path: Path) -> None:
    config = MetadataLogConfig(append_timeout_s=0.5, leader_fallback_timeout_s=30)

    async def main() -> None:
        _, logs = await start_quorum(tmp_path, config)
        leader = next(log for log in logs if log.is_leader)
        try:
            await leader.append([BROKER])
            await asyncio.gather(*(log.close() for log in logs if log is not leader))
            started = time.monotonic()
            with pytest.raises(RequestTimedOutError):
                await leader.append([FenceBroker(1)])
            assert time.monotonic() - started < 2
            # the expired entry freed the pipeline: the next append is refused the same way, not stuck
            with pytest.raises(RequestTimedOutError):
                await leader.append([FenceBroker(2)])
        finally:
            await asyncio.gather(*(log.close() for log in logs))

    run(main())


def test_close_fails_waiting_appends_and_later_ones(tmp_path: Path) -> None:
    async def main() -> None:
        async with metadata_log(tmp_path) as log:
            await log.append([BROKER])
        with pytest.raises(NotControllerError, match="closed"):
            await log.append([FenceBroker(1)])
        await log.close()  # idempotent

    run(main())


def test_raft_port_binds_only_the_given_address(tmp_path: Path) -> None:
    async def main() -> None:
        port = free_port()
        async with metadata_log(tmp_path, f"127.0.0.1:{port}"):
            with socket.socket() as probe, pytest.raises(OSError):
                probe.settimeout(1)
                probe.connect(("127.0.0.2", port))

    run(main())


# -- a pickle sent to the Raft port must never run --------------------------------------------------


class _Canary:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (os.system, (f"touch {self.path}",))


def _pickle_frame(path: Path) -> bytes:
    payload = zlib.compress(pickle.dumps(_Canary(path)), 3)
    return struct.pack("i", len(payload)) + payload


def _send_and_wait_for_close(port: int, frame: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(frame)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, TimeoutError):
            pass


async def _send_in_thread(port: int, frame: bytes) -> None:
    await asyncio.to_thread(_send_and_wait_for_close, port, frame)


def test_pickle_payload_on_the_raft_port_never_executes(tmp_path: Path) -> None:
    canary = tmp_path / "canary"

    async def main() -> None:
        port = free_port()
        async with metadata_log(tmp_path / "data", f"127.0.0.1:{port}") as log:
            await _send_in_thread(port, _pickle_frame(canary))  # the node read the frame and hung up
            assert await log.append([BROKER]) == 0  # and it still works

    run(main())
    assert not canary.exists()


def test_the_canary_payload_is_live_against_a_node_without_password(tmp_path: Path) -> None:
    """Control for the test above: the same bytes do run code on a pysyncobj node without a password."""
    from pysyncobj import SyncObj, SyncObjConf

    canary = tmp_path / "canary"
    port = free_port()
    node = SyncObj(f"127.0.0.1:{port}", [], SyncObjConf(bindAddress=f"127.0.0.1:{port}"))
    try:
        node.waitBinded()
        send: Awaitable[None] = _send_in_thread(port, _pickle_frame(canary))

        async def main() -> None:
            await send
            await eventually(canary.exists)

        run(main())
    finally:
        node.destroy_synchronous()
