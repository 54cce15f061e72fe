"""Shared fixtures: real ``raftkafka dev`` server processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import DevServer


@pytest.fixture
def dev_process(tmp_path: Path) -> Iterator[DevServer]:
    """A running ``raftkafka dev`` process (restartable, killable) on its own data dir."""
    server = DevServer(tmp_path / "dev-data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dev_server(dev_process: DevServer) -> str:
    """The bootstrap address ("127.0.0.1:PORT") of a running ``raftkafka dev`` process."""
    return dev_process.bootstrap
