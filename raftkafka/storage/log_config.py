"""Per-topic log configuration, with Kafka's key names and defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from raftkafka.errors import InvalidConfigError
from raftkafka.storage.record_batch import HEADER_SIZE

NEVER = 2**63 - 1
"""Kafka's ``Long.MAX_VALUE``: the default of ``flush.messages`` and ``flush.ms`` (leave it to the OS)."""
MAX_SEGMENT_BYTES = 2**31 - 1
"""Index entries hold 32-bit file positions, so a segment stays below 2 GiB (Kafka's int limit)."""
CLEANUP_POLICIES = frozenset({"delete"})


@dataclass(frozen=True, slots=True)
class LogConfig:
    """One partition log's settings; ``from_topic_config`` reads them from Kafka-named string keys."""

    segment_bytes: int = 1024**3
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1048588
    flush_messages: int = NEVER
    flush_ms: int = NEVER
    cleanup_policy: str = "delete"
    min_insync_replicas: int = 1
    unclean_leader_election_enable: bool = False

    @classmethod
    def from_topic_config(cls, overrides: Mapping[str, str], defaults: LogConfig | None = None) -> LogConfig:
        """``defaults`` (Kafka's own if None) with the Kafka-named string ``overrides`` applied.

        Raises ``InvalidConfigError`` naming the key for an unknown key or a bad value.
        """
        changes: dict[str, object] = {}
        for key, raw in overrides.items():
            field = _FIELDS_BY_KEY.get(key)
            if field is None:
                raise InvalidConfigError(f"unknown topic config {key!r}")
            changes[field.name] = _parse(key, raw, str(field.type))
        config = dataclasses.replace(defaults or cls(), **changes)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``InvalidConfigError`` naming the first key whose value is out of range."""
        _at_least("segment.bytes", self.segment_bytes, HEADER_SIZE)
        if self.segment_bytes > MAX_SEGMENT_BYTES:
            raise InvalidConfigError(f"segment.bytes={self.segment_bytes} exceeds {MAX_SEGMENT_BYTES}")
        _at_least("segment.ms", self.segment_ms, 1)
        _at_least("retention.ms", self.retention_ms, -1)
        _at_least("retention.bytes", self.retention_bytes, -1)
        _at_least("index.interval.bytes", self.index_interval_bytes, 0)
        _at_least("max.message.bytes", self.max_message_bytes, HEADER_SIZE)
        _at_least("flush.messages", self.flush_messages, 1)
        _at_least("flush.ms", self.flush_ms, 0)
        _at_least("min.insync.replicas", self.min_insync_replicas, 1)
        if self.cleanup_policy not in CLEANUP_POLICIES:
            raise InvalidConfigError(
                f"cleanup.policy={self.cleanup_policy!r} is not supported; use one of {sorted(CLEANUP_POLICIES)}"
            )

    def to_topic_config(self) -> dict[str, str]:
        """Every setting as Kafka-named string keys (the inverse of ``from_topic_config``)."""
        return {key: _format(getattr(self, field.name)) for key, field in _FIELDS_BY_KEY.items()}


def _key(field_name: str) -> str:
    return field_name.replace("_", ".")


_FIELDS_BY_KEY = {_key(f.name): f for f in dataclasses.fields(LogConfig)}
KNOWN_TOPIC_CONFIGS: frozenset[str] = frozenset(_FIELDS_BY_KEY)
"""Every topic config key a topic may set (validate admin requests against it)."""


def _parse(key: str, raw: str, kind: str) -> object:
    """``raw`` as the field type named ``kind`` (annotations are strings here: "int", "bool", "str")."""
    if not isinstance(raw, str):
        raise InvalidConfigError(f"{key} must be given as a string, not {type(raw).__name__}")
    text = raw.strip()
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise InvalidConfigError(f"{key}={raw!r} is not a boolean (true or false)")
        return text.lower() == "true"
    if kind == "int":
        try:
            return int(text, 10)
        except ValueError:
            raise InvalidConfigError(f"{key}={raw!r} is not an integer") from None
    return text


def _format(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise InvalidConfigError(f"{key}={value} is below the minimum of {minimum}")
