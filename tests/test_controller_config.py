"""Controller settings: ``--voters`` parsing, ``ControllerConfig.validate`` and the cluster secret choice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftkafka.controller.config import ControllerConfig, parse_address, parse_voters
from raftkafka.raftlog.cluster_secret import (
    ClusterSecretError,
    ensure_cluster_secret,
    resolve_cluster_secret,
    secret_path,
)


def config(**overrides: object) -> ControllerConfig:
    settings: dict[str, object] = dict(
        node_id=1,
        listen_host="127.0.0.1",
        listen_port=0,
        raft_host="127.0.0.1",
        raft_port=7001,
        voters={1: ("127.0.0.1", 7001), 2: ("127.0.0.1", 7002), 3: ("127.0.0.1", 7003)},
        data_dir=Path("/tmp/unused"),
    )
    settings.update(overrides)
    return ControllerConfig(**settings)  # type: ignore[arg-type]


def test_parse_voters() -> None:
    assert parse_voters("1@127.0.0.1:7001, 2@localhost:7002,3@[::1]:7003") == {
        1: ("127.0.0.1", 7001),
        2: ("localhost", 7002),
        3: ("::1", 7003),
    }


@pytest.mark.parametrize("text", ["", "1@h", "x@h:1", "1@h:1,1@h:2", "h:1", "1@h:99999", "-1@h:1"])
def test_parse_voters_refuses_malformed_lists(text: str) -> None:
    with pytest.raises(ValueError):
        parse_voters(text)


def test_parse_address() -> None:
    assert parse_address("0.0.0.0:0", "--listen") == ("0.0.0.0", 0)
    with pytest.raises(ValueError, match="--listen"):
        parse_address("nope", "--listen")


def test_validate_accepts_a_consistent_config() -> None:
    checked = config().validate()
    assert checked.partner_addresses == ["127.0.0.1:7002", "127.0.0.1:7003"]
    assert checked.node_ids_by_raft_address["127.0.0.1:7003"] == 3
    assert checked.metadata_dir == Path("/tmp/unused/metadata")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"node_id": 9}, "not one of the voters"),
        ({"raft_port": 7002}, "differs from this node's voter entry"),
        ({"raft_port": 0, "voters": {1: ("127.0.0.1", 0)}}, "fixed port"),
        ({"voters": {1: ("127.0.0.1", 7001), 2: ("127.0.0.1", 7001)}}, "share one Raft address"),
        ({"broker_session_timeout_ms": 500}, "must exceed"),
        ({"listen_port": 70000}, "--listen port"),
    ],
)
def test_validate_refuses(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**overrides).validate()


def test_cluster_secret_sources(tmp_path: Path) -> None:
    shared = ensure_cluster_secret(tmp_path / "shared")
    voter_dir = tmp_path / "voter" / "metadata"
    from_file = resolve_cluster_secret(
        voter_dir, secret_file=secret_path(tmp_path / "shared"), secret_text=None, single_voter=False
    )
    assert from_file == shared
    assert resolve_cluster_secret(voter_dir, secret_file=None, secret_text="x" * 20, single_voter=False) == "x" * 20
    with pytest.raises(ClusterSecretError, match="--cluster-secret-file"):
        resolve_cluster_secret(voter_dir, secret_file=None, secret_text=None, single_voter=False)
    with pytest.raises(ClusterSecretError):
        resolve_cluster_secret(voter_dir, secret_file=None, secret_text="short", single_voter=False)
    generated = resolve_cluster_secret(voter_dir, secret_file=None, secret_text=None, single_voter=True)
    assert (os.stat(secret_path(voter_dir)).st_mode & 0o777) == 0o600
    assert resolve_cluster_secret(voter_dir, secret_file=None, secret_text=None, single_voter=False) == generated
