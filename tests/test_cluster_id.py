"""The cluster id: committed once by the controllers, served by every broker from its image, pinned in each
broker data dir's meta.properties (a data dir of another cluster is refused); ``raftkafka dev`` the same way."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkafka.errors import InconsistentClusterIdError, InvalidConfigError
from raftkafka.metadata.meta_properties import (
    META_PROPERTIES_FILE,
    MetaProperties,
    ensure_meta_properties,
    read_meta_properties,
    replace_incarnation,
)
from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, Node, running
from tests.processes import DevServer, free_port, request

pytestmark = pytest.mark.timeout(90)


def cluster_id_of(address: str) -> str:
    error, body = request(address, ApiKey.METADATA, {"topics": []})
    assert error == 0
    return str(body["cluster_id"])


# -- meta.properties -----------------------------------------------------------------------------


def test_meta_properties_are_written_once_then_compared(tmp_path: Path) -> None:
    assert read_meta_properties(tmp_path) is None
    assert ensure_meta_properties(tmp_path, "c1", 3) == MetaProperties("c1", 3)
    assert read_meta_properties(tmp_path) == MetaProperties("c1", 3)
    assert ensure_meta_properties(tmp_path, "c1", 3) == MetaProperties("c1", 3)
    with pytest.raises(InconsistentClusterIdError, match="belongs to cluster c1"):
        ensure_meta_properties(tmp_path, "c2", 3)
    with pytest.raises(InvalidConfigError, match="belongs to node 3"):
        ensure_meta_properties(tmp_path, "c1", 4)


@pytest.mark.parametrize("text", ["garbage", "version=1\nnode.id=1\n", "version=2\ncluster.id=c\nnode.id=1\n",
                                  "version=1\ncluster.id=c\nnode.id=x\n"])  # fmt: skip
def test_malformed_meta_properties_are_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / META_PROPERTIES_FILE).write_text(text)
    with pytest.raises(InvalidConfigError, match=META_PROPERTIES_FILE):
        read_meta_properties(tmp_path)


def test_replace_incarnation_returns_the_previous_one(tmp_path: Path) -> None:
    assert replace_incarnation(tmp_path, "a") is None
    assert replace_incarnation(tmp_path, "b") == "a"
    assert replace_incarnation(tmp_path, "c") == "b"


# -- real processes ------------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(tmp_path / "cluster", controllers=1, brokers=2))


def test_every_broker_reports_the_one_cluster_id_and_pins_it(cluster: LocalCluster) -> None:
    ids = {cluster_id_of(broker.address) for broker in cluster.brokers}
    assert len(ids) == 1
    (cluster_id,) = ids
    assert len(cluster_id) == 22  # Kafka's shape: a UUID in unpadded URL-safe base64
    for broker in cluster.brokers:
        assert read_meta_properties(broker.data_dir) == MetaProperties(cluster_id, broker.node_id)
    # a full restart keeps it: it lives in the metadata log
    for node in cluster.nodes:
        node.kill9()
    cluster.start()
    assert {cluster_id_of(broker.address) for broker in cluster.brokers} == {cluster_id}


def test_a_data_dir_of_another_cluster_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    ensure_meta_properties(foreign, "another-cluster", 3)
    port = free_port()
    controllers = ",".join(node.address for node in cluster.controllers)
    stranger = Node("broker", 3, foreign, ["broker", "--node-id", "3", "--listen", f"127.0.0.1:{port}",
                                           "--controllers", controllers, "--data-dir", str(foreign)], port).start()
    try:
        assert stranger.proc is not None
        assert stranger.proc.wait(timeout=30) != 0
        assert "INCONSISTENT_CLUSTER_ID" in stranger.log() and "another-cluster" in stranger.log()
    finally:
        stranger.stop(signal.SIGKILL)
    assert read_meta_properties(foreign) == MetaProperties("another-cluster", 3)


def test_dev_takes_the_cluster_id_from_its_image(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "dev").start()
    try:
        cluster_id = cluster_id_of(server.bootstrap)
        assert read_meta_properties(tmp_path / "dev") == MetaProperties(cluster_id, 1)
        assert not (tmp_path / "dev" / "cluster.id").exists()
        server.stop()
        server.start()
        assert cluster_id_of(server.bootstrap) == cluster_id
    finally:
        server.stop()
