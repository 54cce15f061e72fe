"""The ``raftkafka`` console commands, run as real subprocesses against a real ``raftkafka dev`` server."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.processes import free_port

COMMAND_TIMEOUT_S = 60


def raftkafka(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m raftkafka ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "raftkafka", *args],
        input=stdin,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, **(env or {})},
        check=False,
    )


def ok(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run a command that must succeed."""
    result = raftkafka(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    """Non-zero exit, nothing on stdout, exactly one ``error: ...`` line on stderr (containing the fragments)."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode != 0, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    assert result.stdout == b""
    return lines[0]


HELP_COMMANDS = [
    [],
    ["topics"],
    ["topics", "create"],
    ["topics", "list"],
    ["topics", "describe"],
    ["topics", "delete"],
    ["produce"],
    ["consume"],
    ["bench"],
    ["bench", "produce"],
    ["bench", "consume"],
    ["bench", "e2e"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "raftkafka")
def test_every_command_has_help(command: list[str]) -> None:
    result = ok(*command, "--help")
    assert b"Usage:" in result.stdout


def test_round_trip_of_a_thousand_lines(dev_server: str) -> None:
    lines = [f"line {i} {'x' * (i % 17)}".encode() for i in range(1000)]
    created = ok(
        "topics", "create", "roundtrip", "--partitions", "1", "--replication-factor", "1", "--bootstrap", dev_server
    )
    assert created.stdout == b"Created topic roundtrip.\n"
    ok("produce", "roundtrip", "--bootstrap", dev_server, stdin=b"\n".join(lines) + b"\n")
    consumed = ok("consume", "roundtrip", "--from-beginning", "--max-messages", "1000", "--bootstrap", dev_server)
    assert consumed.stdout.split(b"\n")[:-1] == lines
    assert consumed.stderr.decode().splitlines()[-1] == "Processed a total of 1000 messages"


def test_keys_across_partitions_keep_their_order(dev_server: str) -> None:
    ok("topics", "create", "keyed", "--partitions", "3", "--bootstrap", dev_server)
    lines = [f"user-{i % 7}:event {i}:with:colons".encode() for i in range(300)]
    ok("produce", "keyed", "--key-separator", ":", "--acks", "all", "--bootstrap", dev_server, stdin=b"\n".join(lines))
    consumed = ok(
        "consume", "keyed", "--from-beginning", "--max-messages", "300", "--print-key", "--bootstrap", dev_server
    )
    out = consumed.stdout.split(b"\n")[:-1]
    expected = [line.replace(b":", b"\t", 1) for line in lines]
    assert sorted(out) == sorted(expected)
    for user in range(7):
        key = f"user-{user}\t".encode()
        assert [x for x in out if x.startswith(key)] == [x for x in expected if x.startswith(key)]


def test_consume_without_from_beginning_starts_at_the_end(dev_server: str) -> None:
    ok("topics", "create", "tail", "--bootstrap", dev_server)
    ok("produce", "tail", "--bootstrap", dev_server, stdin=b"old 1\nold 2\n")
    consumed = ok("consume", "tail", "--timeout-ms", "500", "--bootstrap", dev_server)
    assert consumed.stdout == b""
    assert consumed.stderr.decode().splitlines()[-1] == "Processed a total of 0 messages"


def test_consume_stops_cleanly_on_ctrl_c(dev_server: str) -> None:
    ok("topics", "create", "live", "--bootstrap", dev_server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "raftkafka", "consume", "live", "--bootstrap", dev_server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 30
        first = None
        while first is None and time.monotonic() < deadline:  # the consumer joins at the end: keep producing
            ok("produce", "live", "--bootstrap", dev_server, stdin=b"ping\n")
            try:
                first = lines.get(timeout=0.5)
            except queue.Empty:
                pass
        assert first == b"ping\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert proc.stderr.read().decode().splitlines()[-1].startswith("Processed a total of ")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_topics_list_describe_and_delete_with_json(dev_server: str) -> None:
    ok("topics", "create", "alpha", "--partitions", "2", "--config", "retention.ms=60000", "--bootstrap", dev_server)
    ok("topics", "create", "beta", "--bootstrap", dev_server)
    assert ok("topics", "list", "--bootstrap", dev_server).stdout == b"alpha\nbeta\n"
    assert json.loads(ok("topics", "list", "--output", "json", "--bootstrap", dev_server).stdout) == ["alpha", "beta"]

    table = ok("topics", "describe", "alpha", "--bootstrap", dev_server).stdout.decode().splitlines()
    assert table[0].startswith("Topic: alpha\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: ")
    assert "retention.ms=60000" in table[0]
    assert [line.split("\t")[2] for line in table[1:]] == ["Partition: 0", "Partition: 1"]
    assert all("Leader: " in line and "Replicas: " in line and "Isr: " in line for line in table[1:])

    described = json.loads(ok("topics", "describe", "--output", "json", "--bootstrap", dev_server).stdout)
    assert [t["topic"] for t in described] == ["alpha", "beta"]
    alpha = described[0]
    assert alpha["partition_count"] == 2 and alpha["configs"]["retention.ms"] == "60000"
    assert [p["partition"] for p in alpha["partitions"]] == [0, 1]
    assert all(p["leader"] >= 0 and p["isr"] for p in alpha["partitions"])

    altered = ok("topics", "alter", "alpha", "--partitions", "3", "--bootstrap", dev_server).stdout
    assert altered == b"Topic alpha now has 3 partitions.\n"
    table = ok("topics", "describe", "alpha", "--bootstrap", dev_server).stdout.decode().splitlines()
    assert table[0].startswith("Topic: alpha\tPartitionCount: 3\t")
    shrink = raftkafka("topics", "alter", "alpha", "--partitions", "2", "--bootstrap", dev_server)
    assert_one_line_error(shrink, "INVALID_PARTITIONS")

    assert ok("topics", "delete", "beta", "--bootstrap", dev_server).stdout == b"Deleted topic beta.\n"
    assert ok("topics", "list", "--bootstrap", dev_server).stdout == b"alpha\n"


def test_settings_from_a_toml_file(dev_server: str, tmp_path: Path) -> None:
    settings = tmp_path / "create.toml"
    settings.write_text(f'bootstrap = "{dev_server}"\npartitions = 3\n')
    ok("topics", "create", "from-toml", "--config", str(settings), "--config", "cleanup.policy=delete")
    listed = tmp_path / "list.toml"
    listed.write_text(f'bootstrap = "{dev_server}"\noutput = "json"\n')
    assert json.loads(ok("topics", "list", "--config", str(listed)).stdout) == ["from-toml"]
    described = json.loads(ok("topics", "describe", "from-toml", "--output", "json", "--bootstrap", dev_server).stdout)
    assert described[0]["partition_count"] == 3


def test_bootstrap_from_the_environment(dev_server: str) -> None:
    ok("topics", "create", "env-topic", "--bootstrap", dev_server)
    result = raftkafka("topics", "list", env={"RAFTKAFKA_BOOTSTRAP": dev_server})
    assert result.returncode == 0 and result.stdout == b"env-topic\n"


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "create", "bad/name"],
        ["topics", "create", ".."],
        ["topics", "describe", "white space"],
        ["topics", "delete", "x" * 250],
        ["produce", "semi;colon"],
        ["consume", "ünïcode", "--from-beginning"],
    ],
    ids=lambda c: " ".join(c)[:40],
)
def test_invalid_topic_names_are_one_line_errors(command: list[str], dev_server: str) -> None:
    assert_one_line_error(raftkafka(*command, "--bootstrap", dev_server), "INVALID_TOPIC")


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "describe", "nope"],
        ["topics", "delete", "nope"],
        ["topics", "alter", "nope", "--partitions", "2"],
        ["produce", "nope"],
        ["consume", "nope"],
    ],
    ids=" ".join,
)
def test_unknown_topics_are_one_line_errors(command: list[str], dev_server: str) -> None:
    started = time.monotonic()
    assert_one_line_error(raftkafka(*command, "--bootstrap", dev_server, stdin=b"a\n"), "UNKNOWN_TOPIC")
    assert time.monotonic() - started < 15


def test_existing_topic_is_a_one_line_error(dev_server: str) -> None:
    ok("topics", "create", "twice", "--bootstrap", dev_server)
    assert_one_line_error(raftkafka("topics", "create", "twice", "--bootstrap", dev_server), "TOPIC_ALREADY_EXISTS")


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "list"],
        ["topics", "create", "t"],
        ["produce", "t"],
        ["consume", "t"],
        ["bench", "produce", "--records", "10"],
    ],
    ids=" ".join,
)
def test_unreachable_server_is_a_quick_one_line_error(command: list[str]) -> None:
    started = time.monotonic()
    result = raftkafka(*command, "--bootstrap", f"127.0.0.1:{free_port()}", stdin=b"a\n")
    assert_one_line_error(result)
    assert time.monotonic() - started < 15


def test_consume_with_a_group_resumes_after_the_records_it_consumed(dev_server: str) -> None:
    ok("topics", "create", "grouped", "--partitions", "2", "--bootstrap", dev_server)
    ok("produce", "grouped", "--bootstrap", dev_server, stdin=b"".join(b"v%d\n" % i for i in range(10)))
    group = ["--group", "g1", "--from-beginning", "--bootstrap", dev_server]
    first = ok("consume", "grouped", "--max-messages", "10", *group)
    assert sorted(first.stdout.split()) == sorted(b"v%d" % i for i in range(10))
    ok("produce", "grouped", "--bootstrap", dev_server, stdin=b"late\n")
    assert ok("consume", "grouped", "--timeout-ms", "3000", *group).stdout == b"late\n"


def test_missing_key_separator_fails_the_produce(dev_server: str) -> None:
    ok("topics", "create", "sep", "--bootstrap", dev_server)
    result = raftkafka("produce", "sep", "--key-separator", "=", "--bootstrap", dev_server, stdin=b"k=v\nnovalue\n")
    assert_one_line_error(result, "line 2")
