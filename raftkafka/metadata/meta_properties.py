"""A broker data dir's identity, as Kafka's ``meta.properties``: the cluster and node it belongs to, and
the broker process that used it last.

``meta.properties`` is written on the broker's first start with the cluster id of the metadata image
it joined and its node id; every later start compares, so a data dir is never served into another
cluster (``InconsistentClusterIdError``) or under another node id (``InvalidConfigError``).

``incarnation.id`` holds the incarnation id of the last broker process on the data dir. A process that
holds the data dir's lock (``storage.log_manager``) knows that process is gone; it names it when it
registers, and the controller lets it replace its dead predecessor at once instead of refusing it as a
duplicate until the predecessor's session expires.

Plain ``key=value`` text, parsed field by field (never evaluated); written atomically (temporary file,
fsync, rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from raftkafka.errors import InconsistentClusterIdError, InvalidConfigError

META_PROPERTIES_FILE = "meta.properties"
INCARNATION_FILE = "incarnation.id"
META_PROPERTIES_VERSION = 1
_MAX_FILE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class MetaProperties:
    """The cluster and node a broker data dir belongs to."""

    cluster_id: str
    node_id: int

    def to_text(self) -> str:
        """The file's contents."""
        return (
            "# raftkafka broker data dir identity: do not edit\n"
            f"version={META_PROPERTIES_VERSION}\ncluster.id={self.cluster_id}\nnode.id={self.node_id}\n"
        )

    @classmethod
    def from_text(cls, text: str, where: Path) -> MetaProperties:
        """Parse ``to_text``'s output; ``InvalidConfigError`` naming ``where`` if it is not that."""
        values: dict[str, str] = {}
        for raw_line in text.splitlines():
            line = raw_line.strip()
            if line and not line.startswith("#"):
                key, sep, value = line.partition("=")
                if not sep:
                    raise InvalidConfigError(f"{where}: malformed line {line!r}")
                values[key.strip()] = value.strip()
        version, cluster_id, node_id = (values.get(key, "") for key in ("version", "cluster.id", "node.id"))
        if version != str(META_PROPERTIES_VERSION) or not cluster_id or not node_id.isdigit():
            raise InvalidConfigError(f"{where}: needs version={META_PROPERTIES_VERSION}, cluster.id and node.id")
        return cls(cluster_id, int(node_id))


def _read_small(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(_MAX_FILE_BYTES)
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def read_meta_properties(data_dir: Path) -> MetaProperties | None:
    """The identity stored in ``data_dir``, or None before the first start."""
    path = data_dir / META_PROPERTIES_FILE
    text = _read_small(path)
    return None if text is None else MetaProperties.from_text(text, path)


def ensure_meta_properties(data_dir: Path, cluster_id: str, node_id: int) -> MetaProperties:
    """Store ``cluster_id`` and ``node_id`` on the first start; later, raise unless they are the stored ones."""
    stored = read_meta_properties(data_dir)
    if stored is None:
        stored = MetaProperties(cluster_id, node_id)
        _write_atomically(data_dir / META_PROPERTIES_FILE, stored.to_text())
        return stored
    if stored.cluster_id != cluster_id:
        raise InconsistentClusterIdError(
            f"data dir {data_dir} belongs to cluster {stored.cluster_id}, but the controllers serve cluster "
            f"{cluster_id}; point the broker at its own cluster or at an empty data dir"
        )
    if stored.node_id != node_id:
        raise InvalidConfigError(
            f"data dir {data_dir} belongs to node {stored.node_id}, not to node {node_id}; use its own --node-id"
        )
    return stored


def replace_incarnation(data_dir: Path, incarnation_id: str) -> str | None:
    """Record ``incarnation_id`` as the data dir's current broker process; the previous one, if any.

    Call only while holding the data dir's lock (the previous process is then known to be gone).
    """
    path = data_dir / INCARNATION_FILE
    previous = _read_small(path)
    _write_atomically(path, incarnation_id + "\n")
    previous = previous.strip() if previous is not None else ""
    return previous or None
