"""Shared fixtures: real ``raftkafka dev`` server processes on free loopback ports."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import DevServer

COMPILED_MODULES = {
    "raftkafka.client.accumulator": ("accumulator.py", "accumulator.pxd"),
    "raftkafka.client._records": ("_records.pyx",),
}
"""The modules setup.py compiles, and their sources."""


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test a compiled module older than its source (it would shadow the edited code)."""
    for name, sources in COMPILED_MODULES.items():
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or spec.origin.endswith(".py"):
            continue  # not compiled
        built = Path(spec.origin)
        if any(built.with_name(source).stat().st_mtime > built.stat().st_mtime for source in sources):
            pytest.exit(f"{built.name} is older than its source: rebuild it with `pip install -e .`", returncode=4)


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
