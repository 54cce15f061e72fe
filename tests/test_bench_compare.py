"""``raftkafka bench compare``: the table, ratios and JSON (pure), a real run whose peers point at missing server
binaries (raftkafka still runs, each peer is named with its install command), and a small real run of the peers
whose servers are installed here (skipped where none is). No speed is asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raftkafka.bench.comparison import CompareSettings, Comparison, SystemFigures, failed, missing
from raftkafka.bench.peers.nats_jetstream import NatsJetStream, server_config
from raftkafka.bench.peers.redis_streams import RedisStreams
from raftkafka.bench.peers.server_process import find_binary
from raftkafka.bench.stats import summarize_latencies
from raftkafka.errors import InvalidConfigError
from tests.processes import processes_mentioning

SMALL = ("--records", "2000", "--warmup-records", "100", "--e2e-records", "30", "--e2e-warmup-records", "5")


def compare(tmp_path: Path, *args: str) -> dict[str, object]:
    """Run the command with its temporary directories under ``tmp_path``; its JSON, after checking the cleanup."""
    result = subprocess.run(
        [sys.executable, "-m", "raftkafka", "bench", "compare", "--json", *SMALL, *args],
        capture_output=True, timeout=150, check=False, env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert not [path.name for path in tmp_path.glob("raftkafka-*")], "a data dir was left behind"
    assert not processes_mentioning(str(tmp_path)), "servers were left running"
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def systems(figures: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = figures["systems"]
    assert isinstance(rows, list)
    return {row["system"]: row for row in rows}


def assert_measured(row: dict[str, object]) -> None:
    assert row["status"] == "ok" and row["note"] is None, row
    assert row["produce_records_per_s"] > 0 and row["consume_records_per_s"] > 0  # type: ignore[operator]
    latency = row["e2e_ms"]
    assert isinstance(latency, dict) and latency["count"] == 30
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def test_the_table_gives_each_figure_and_its_ratio_to_raftkafka() -> None:
    settings = CompareSettings(records=1000, e2e_records=4, systems=("redis", "nats"))
    comparison = Comparison(
        settings,
        (
            SystemFigures("raftkafka", "ok", 200_000.0, 800_000.0, summarize_latencies([500_000, 1_000_000])),
            SystemFigures("redis", "ok", 100_000.0, 400_000.0, summarize_latencies([250_000, 2_000_000])),
            missing("nats", "nats-server is not installed: apt-get install nats-server"),
        ),
    )
    data = json.loads(json.dumps(comparison.as_dict()))
    assert data["baseline"] == "raftkafka" and data["settings"]["systems"] == ["raftkafka", "redis", "nats"]
    raftkafka, redis, nats = data["systems"]
    assert raftkafka["ratios"] == {
        "produce_records_per_s": 1.0, "consume_records_per_s": 1.0, "e2e_p50_ms": 1.0, "e2e_p99_ms": 1.0,
    }  # fmt: skip
    assert redis["produce_records_per_s"] == 100_000.0 and redis["e2e_p50_ms"] == 0.25
    assert redis["ratios"] == {
        "produce_records_per_s": 0.5, "consume_records_per_s": 0.5, "e2e_p50_ms": 0.5, "e2e_p99_ms": 2.0,
    }  # fmt: skip
    assert nats["status"] == "not installed" and nats["produce_records_per_s"] is None
    assert nats["ratios"]["produce_records_per_s"] is None and "apt-get install nats-server" in nats["note"]
    table = comparison.summary().splitlines()
    assert table[1].split() == ["system", "produce", "records/s", "consume", "records/s", "e2e", "p50", "ms", "e2e",
                                "p99", "ms"]  # fmt: skip
    assert table[2].startswith("raftkafka dev, acks=1") and "200,000" in table[2] and "(" not in table[2]
    assert "100,000 (0.50x)" in table[3] and "2.000 (2.00x)" in table[3]
    assert table[4].startswith("NATS JetStream R1") and "(not installed)" in table[4]
    assert table[-1] == "NATS JetStream R1, file: nats-server is not installed: apt-get install nats-server"
    assert failed("redis", RuntimeError("boom")).note == "RuntimeError: boom"


def test_settings_put_raftkafka_first_and_refuse_unknown_systems() -> None:
    assert CompareSettings(systems=("redis", "raftkafka", "nats")).ordered_systems() == ["raftkafka", "redis", "nats"]
    assert CompareSettings(systems=("nats-r3",)).ordered_systems() == ["raftkafka", "nats-r3"]
    with pytest.raises(InvalidConfigError, match="kafka"):
        CompareSettings(systems=("kafka",)).validate()
    with pytest.raises(InvalidConfigError):
        CompareSettings(records=0).validate()


def test_a_peer_is_missing_without_its_server_or_its_python_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = str(tmp_path / "nowhere" / "redis-server")
    assert find_binary("redis-server", absent) is None
    assert RedisStreams(absent).missing() == f"{absent} is not an executable file: apt-get install redis-server"
    assert find_binary("raftkafka-no-such-server") is None
    present = shutil.which("true")
    assert present is not None and find_binary("anything", present) == present
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    monkeypatch.setitem(sys.modules, "nats", None)
    install = "is not installed: pip install 'raftkafka[compare]'"
    assert RedisStreams(present).missing() == f"the Python client redis {install}"
    assert NatsJetStream(present).missing() == f"the Python client nats-py {install}"


def test_a_nats_cluster_member_routes_to_the_others(tmp_path: Path) -> None:
    config = server_config("n2", 4222, tmp_path / "n2", [("n1", 6001), ("n2", 6002), ("n3", 6003)])
    assert "server_name: n2" in config and "listen: 127.0.0.1:4222" in config
    assert "listen: 127.0.0.1:6002" in config
    assert "nats-route://127.0.0.1:6001, nats-route://127.0.0.1:6003" in config
    assert "cluster {" not in server_config("n1", 4222, tmp_path / "n1", None)


def test_raftkafka_runs_and_peers_without_their_servers_say_how_to_install_them(tmp_path: Path) -> None:
    missing_dir = tmp_path / "missing"
    figures = compare(
        tmp_path, "--systems", "redis,nats-r3",
        "--redis-server", str(missing_dir / "redis-server"), "--nats-server", str(missing_dir / "nats-server"),
    )  # fmt: skip
    rows = systems(figures)
    assert list(rows) == ["raftkafka", "redis", "nats-r3"]
    assert_measured(rows["raftkafka"])
    assert rows["redis"]["status"] == "not installed"
    redis_server = missing_dir / "redis-server"
    assert rows["redis"]["note"] == f"{redis_server} is not an executable file: apt-get install redis-server"
    assert rows["nats-r3"]["status"] == "not installed"
    assert "apt-get install nats-server" in str(rows["nats-r3"]["note"])


INSTALLED = [
    name
    for name, binary, peer in (("redis", "redis-server", RedisStreams()), ("nats", "nats-server", NatsJetStream()))
    if find_binary(binary) is not None and peer.missing() is None
]


@pytest.mark.skipif(not INSTALLED, reason="neither redis-server nor nats-server (with its Python client) is installed")
def test_the_installed_peers_run_the_same_workload(tmp_path: Path) -> None:
    names = [*INSTALLED, *(["nats-r3"] if "nats" in INSTALLED else [])]
    rows = systems(compare(tmp_path, "--systems", ",".join(names)))
    assert list(rows) == ["raftkafka", *names]
    for row in rows.values():
        assert_measured(row)
    for name in names:
        ratios = rows[name]["ratios"]
        assert isinstance(ratios, dict) and all(value > 0 for value in ratios.values())
