"""``raftkafka groups`` run as real subprocesses against a real ``raftkafka dev`` process."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from raftkafka import Admin, Producer, TopicPartition
from raftkafka.errors import RaftKafkaError
from tests.cluster import wait_for
from tests.processes import free_port
from tests.test_admin_groups import WireMember, produce_counts, server
from tests.test_cli_commands import assert_one_line_error, ok, raftkafka

__all__ = ["server"]  # the module-scoped ``raftkafka dev`` fixture, shared by this module's tests

DESCRIBE_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "CLIENT-ID"]


@pytest.mark.parametrize(
    "command",
    [["groups"], ["groups", "list"], ["groups", "describe"], ["groups", "reset"], ["groups", "delete"]],
    ids=" ".join,
)
def test_every_groups_command_has_help(command: list[str]) -> None:
    assert b"Usage:" in ok(*command, "--help").stdout


def table_rows(result: subprocess.CompletedProcess[bytes], header: list[str]) -> list[list[str]]:
    """The rows under ``header`` of a printed table, split into cells."""
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == header, lines
    return [line.split() for line in lines[1:]]


def describe(server: str, group: str) -> tuple[list[list[str]], dict]:
    """``groups describe GROUP`` as a table and as JSON."""
    rows = table_rows(ok("groups", "describe", group, "--bootstrap", server), DESCRIBE_HEADER)
    as_json = json.loads(ok("groups", "describe", group, "--output", "json", "--bootstrap", server).stdout)
    return rows, as_json


def check_lag(rows: list[list[str]], as_json: dict, log_ends: dict[TopicPartition, int]) -> None:
    """Lag is log end offset minus committed offset on every row, the log end offsets are the real ones, and
    the table and the JSON say the same."""
    assert len(rows) == len(as_json["partitions"])
    for row, entry in zip(rows, as_json["partitions"], strict=True):
        tp = TopicPartition(row[1], int(row[2]))
        assert (entry["topic"], entry["partition"]) == tp
        assert int(row[4]) == entry["log_end_offset"] == log_ends[tp]
        if entry["current_offset"] is None:
            assert row[3] == row[5] == "-"
            assert entry["lag"] is None
        else:
            assert int(row[3]) == entry["current_offset"]
            assert int(row[5]) == entry["lag"] == log_ends[tp] - entry["current_offset"]


def test_describe_lag_is_log_end_minus_committed_for_every_partition(server: str) -> None:
    counts = [10, 0, 7, 3]
    produce_counts(server, "clicks", counts)
    log_ends = {TopicPartition("clicks", p): n for p, n in enumerate(counts)}

    # a group with a live member subscribed to the topic: every partition shows, '-' where nothing is committed
    with WireMember(server, "dashboards", ["clicks"], client_id="dash-1") as member:
        member.commit({TopicPartition("clicks", 0): 4, TopicPartition("clicks", 1): 0, TopicPartition("clicks", 2): 7})
        rows, as_json = describe(server, "dashboards")
        assert [(r[0], r[1], r[2]) for r in rows] == [("dashboards", "clicks", str(p)) for p in range(4)]
        check_lag(rows, as_json, log_ends)
        assert [r[3] for r in rows] == ["4", "0", "7", "-"]
        assert [r[5] for r in rows] == ["6", "0", "0", "-"]
        assert all(r[6:] == [member.member_id, "dash-1"] for r in rows)
        assert as_json["state"] == "Stable"
        assert [m["member_id"] for m in as_json["members"]] == [member.member_id]

        # the log end offset is read at describe time
        with Producer(bootstrap=server, acks="all") as producer:
            for _ in range(5):
                producer.send("clicks", b"more", partition=3)
        log_ends[TopicPartition("clicks", 3)] += 5
        member.commit({TopicPartition("clicks", 3): 1})
        rows, as_json = describe(server, "dashboards")
        check_lag(rows, as_json, log_ends)
        assert rows[3][3:6] == ["1", "8", "7"]

    # without members: the committed partitions, no owner
    rows, as_json = describe(server, "dashboards")
    assert [r[2] for r in rows] == ["0", "1", "2", "3"]
    check_lag(rows, as_json, log_ends)
    assert all(r[6:] == ["-", "-"] for r in rows)
    assert as_json["state"] == "Empty"
    assert as_json["members"] == []

    # offsets set by an admin, one of them past the end of the log: the lag is negative, as in Kafka's tool
    with Admin(bootstrap=server) as admin:
        admin.alter_group_offsets("replay", {TopicPartition("clicks", 0): 2, TopicPartition("clicks", 1): 5})
    rows, as_json = describe(server, "replay")
    check_lag(rows, as_json, log_ends)
    assert [r[5] for r in rows] == ["8", "-5"]


def test_list_and_delete(server: str) -> None:
    produce_counts(server, "listed", [1])
    with Admin(bootstrap=server) as admin:
        for group in ("list-a", "list-b"):
            admin.alter_group_offsets(group, {TopicPartition("listed", 0): 1})
    rows = table_rows(ok("groups", "list", "--bootstrap", server), ["GROUP", "STATE", "MEMBERS"])
    assert ["list-a", "Empty", "0"] in rows
    assert ["list-b", "Empty", "0"] in rows
    listed = json.loads(ok("groups", "list", "--output", "json", "--bootstrap", server).stdout)
    assert {"group": "list-a", "state": "Empty", "members": 0} in listed

    assert ok("groups", "delete", "list-a", "--bootstrap", server).stdout == b"Deleted group list-a.\n"
    listed = json.loads(ok("groups", "list", "--output", "json", "--bootstrap", server).stdout)
    assert [g["group"] for g in listed if g["group"].startswith("list-")] == ["list-b"]
    assert_one_line_error(raftkafka("groups", "delete", "list-a", "--bootstrap", server), "GROUP_ID_NOT_FOUND")
    assert_one_line_error(raftkafka("groups", "describe", "list-a", "--bootstrap", server), "GROUP_ID_NOT_FOUND")


def test_reset_to_latest_earliest_and_offset(server: str) -> None:
    produce_counts(server, "resets", [6, 2])
    p0, p1 = TopicPartition("resets", 0), TopicPartition("resets", 1)

    def committed() -> dict[TopicPartition, int]:
        with Admin(bootstrap=server) as admin:
            return admin.list_group_offsets("rewinders")

    def reset(*args: str) -> subprocess.CompletedProcess[bytes]:
        return ok("groups", "reset", "rewinders", "--topic", "resets", *args, "--bootstrap", server)

    latest = reset("--to-latest")  # a new group: the reset creates it
    assert table_rows(latest, ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]) == [
        ["rewinders", "resets", "0", "6"],
        ["rewinders", "resets", "1", "2"],
    ]
    assert committed() == {p0: 6, p1: 2}

    assert table_rows(reset("--to-earliest", "--partition", "0"), ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]) == [
        ["rewinders", "resets", "0", "0"]
    ]
    assert committed() == {p0: 0, p1: 2}

    moved = reset("--to-offset", "4", "--output", "json")
    assert json.loads(moved.stdout) == [
        {"group": "rewinders", "topic": "resets", "partition": 0, "new_offset": 4},
        {"group": "rewinders", "topic": "resets", "partition": 1, "new_offset": 2},
    ]
    assert "resets-1" in moved.stderr.decode()  # 4 is past partition 1's end: moved to it, with a warning
    assert committed() == {p0: 4, p1: 2}

    dry = reset("--to-earliest", "--dry-run")
    assert table_rows(dry, ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"])[0] == ["rewinders", "resets", "0", "0"]
    assert committed() == {p0: 4, p1: 2}


def test_reset_and_delete_are_refused_while_the_group_has_members(server: str) -> None:
    produce_counts(server, "busy", [3])
    with WireMember(server, "workers", ["busy"]) as member:
        member.commit({TopicPartition("busy", 0): 1})
        for command in (
            ["groups", "reset", "workers", "--topic", "busy", "--to-earliest"],
            ["groups", "reset", "workers", "--topic", "busy", "--to-offset", "0", "--dry-run"],
            ["groups", "delete", "workers"],
        ):
            result = raftkafka(*command, "--bootstrap", server)
            assert_one_line_error(result, "NON_EMPTY_GROUP", "group workers has active members; stop them first")
        with Admin(bootstrap=server) as admin:
            assert admin.list_group_offsets("workers") == {TopicPartition("busy", 0): 1}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--topic", "usage"], "exactly one of"),
        (["--topic", "usage", "--to-earliest", "--to-latest"], "exactly one of"),
        (["--topic", "no-such-topic", "--to-latest"], "UNKNOWN_TOPIC"),
        (["--topic", "usage", "--partition", "5", "--to-latest"], "no partition 5"),
        (["--topic", "bad/name", "--to-latest"], "INVALID_TOPIC"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_reset_errors_are_one_line(server: str, args: list[str], fragment: str) -> None:
    with Admin(bootstrap=server) as admin:
        if "usage" not in admin.list_topics():
            admin.create_topic("usage")
    started = time.monotonic()
    assert_one_line_error(raftkafka("groups", "reset", "g-usage", *args, "--bootstrap", server), fragment)
    assert time.monotonic() - started < 15
    with Admin(bootstrap=server) as admin:
        assert admin.list_group_offsets("g-usage") == {}


@pytest.mark.parametrize("command", [["groups", "list"], ["groups", "describe", "g"], ["groups", "delete", "g"]])
def test_unreachable_server_is_a_quick_one_line_error(command: list[str]) -> None:
    started = time.monotonic()
    assert_one_line_error(raftkafka(*command, "--bootstrap", f"127.0.0.1:{free_port()}"))
    assert time.monotonic() - started < 15


def test_lag_rows_and_table_layout() -> None:
    from raftkafka.cli.groups import DESCRIBE_COLUMNS, describe_partitions, lag_rows, table
    from raftkafka.structs import GroupDescription, MemberDescription

    t0, t1, u0 = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)
    member = MemberDescription("m-1", "client", ["t"], [t0, t1])
    description = GroupDescription("g", "Stable", "range", 3, [member], {t0: 5, u0: 2})
    partitions = describe_partitions(description, {"t": [0, 1]})
    assert partitions == [t0, t1, u0]
    rows = lag_rows(description, partitions, {t0: 9, t1: 4})  # u was deleted: no log end offset
    assert [(r.current_offset, r.log_end_offset, r.lag, r.consumer_id) for r in rows] == [
        (5, 9, 4, "m-1"),
        (None, 4, None, "m-1"),
        (2, None, None, None),
    ]
    lines = table(DESCRIBE_COLUMNS, [("g", *row) for row in rows])
    assert lines[0] == "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID CLIENT-ID"
    assert lines[1] == "g     t     0         5              9              4   m-1         client"
    assert lines[3] == "g     u     0         2              -              -   -           -"


def test_consume_with_a_group_commits_what_it_printed(server: str) -> None:
    counts = [10, 10, 10]
    produce_counts(server, "feed", counts)
    log_ends = {TopicPartition("feed", p): n for p, n in enumerate(counts)}
    group = ["--group", "readers", "--from-beginning", "--bootstrap", server]

    first = ok("consume", "feed", "--max-messages", "12", *group)
    assert len(first.stdout.splitlines()) == 12
    rows, as_json = describe(server, "readers")
    check_lag(rows, as_json, log_ends)
    assert sum(entry["current_offset"] for entry in as_json["partitions"]) == 12

    rest = ok("consume", "feed", "--max-messages", "18", "--timeout-ms", "5000", *group)
    everything = first.stdout.splitlines() + rest.stdout.splitlines()
    assert sorted(everything) == sorted(f"{p}-{i}".encode() for p, n in enumerate(counts) for i in range(n))

    rows, as_json = describe(server, "readers")
    check_lag(rows, as_json, log_ends)
    assert [(r[2], r[3], r[5]) for r in rows] == [("0", "10", "0"), ("1", "10", "0"), ("2", "10", "0")]


def test_a_running_consume_is_a_member_until_it_stops(server: str) -> None:
    produce_counts(server, "stream", [4, 4])
    proc = subprocess.Popen(
        [sys.executable, "-m", "raftkafka", "consume", "stream", "--group", "tailers", "--bootstrap", server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        with Admin(bootstrap=server) as admin:

            def joined() -> bool:
                try:
                    return admin.describe_group("tailers").state == "Stable"
                except RaftKafkaError:
                    return False

            wait_for(joined, 30, "the consume process to join its group")
        rows, as_json = describe(server, "tailers")
        [member] = as_json["members"]
        assert member["client_id"] == "raftkafka-console-consumer"
        assert [(r[1], r[2], r[6], r[7]) for r in rows] == [
            ("stream", "0", member["member_id"], "raftkafka-console-consumer"),
            ("stream", "1", member["member_id"], "raftkafka-console-consumer"),
        ]
        for command in (["delete", "tailers"], ["reset", "tailers", "--topic", "stream", "--to-earliest"]):
            assert_one_line_error(raftkafka("groups", *command, "--bootstrap", server), "active members")

        # the member starts at the end once it has its position: produce until a record comes through
        deadline = time.monotonic() + 30
        with Producer(bootstrap=server, acks="all") as producer:
            while True:
                producer.send("stream", b"new", partition=1).result()
                try:
                    assert lines.get(timeout=0.5) == b"new\n"
                    break
                except queue.Empty:
                    assert time.monotonic() < deadline, "the consume process printed nothing"
            producer.send("stream", b"last", partition=1).result()  # it has a position now: this one must arrive
        while lines.get(timeout=30) != b"last\n":
            pass
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        with Admin(bootstrap=server) as admin:
            assert admin.describe_group("tailers").members == []
            p1 = TopicPartition("stream", 1)
            assert admin.list_group_offsets("tailers")[p1] == admin.end_offsets([p1])[p1]  # committed on exit
        ok("groups", "delete", "tailers", "--bootstrap", server)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
