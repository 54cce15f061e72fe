"""The cluster secret: generated once, stored 0600, loaded on later starts, refused when unsafe."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from raftkafka.raftlog.cluster_secret import (
    ClusterSecretError,
    ensure_cluster_secret,
    read_cluster_secret,
    secret_path,
)


def test_generated_once_then_loaded(tmp_path: Path) -> None:
    directory = tmp_path / "meta"
    secret = ensure_cluster_secret(directory)
    assert len(secret) >= 32
    assert stat.S_IMODE(secret_path(directory).stat().st_mode) == 0o600
    assert ensure_cluster_secret(directory) == secret
    assert read_cluster_secret(directory) == secret
    assert [p.name for p in directory.iterdir()] == ["cluster.secret"]  # no temporary file left


def test_each_cluster_gets_its_own_secret(tmp_path: Path) -> None:
    assert ensure_cluster_secret(tmp_path / "a") != ensure_cluster_secret(tmp_path / "b")


def test_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_cluster_secret(tmp_path)


def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    ensure_cluster_secret(tmp_path)
    os.chmod(secret_path(tmp_path), 0o644)
    with pytest.raises(ClusterSecretError, match="0600"):
        ensure_cluster_secret(tmp_path)


@pytest.mark.parametrize("content", [b"short", b"\xff" * 40, b""])
def test_unusable_secret_is_refused(tmp_path: Path, content: bytes) -> None:
    path = secret_path(tmp_path)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(ClusterSecretError):
        read_cluster_secret(tmp_path)
