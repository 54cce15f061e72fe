"""LogConfig: Kafka names and defaults, parsing and validation."""

from __future__ import annotations

import pytest

from raftkafka.errors import InvalidConfigError
from raftkafka.storage.log_config import KNOWN_TOPIC_CONFIGS, NEVER, LogConfig


def test_kafka_defaults() -> None:
    config = LogConfig()
    assert config.segment_bytes == 1 << 30
    assert config.segment_ms == config.retention_ms == 604_800_000
    assert config.retention_bytes == -1
    assert config.index_interval_bytes == 4096
    assert config.max_message_bytes == 1048588
    assert config.flush_messages == config.flush_ms == NEVER
    assert config.cleanup_policy == "delete"


def test_parse_overrides_on_defaults() -> None:
    base = LogConfig(retention_ms=1000)
    config = LogConfig.from_topic_config(
        {"segment.bytes": "4096", "min.insync.replicas": "2", "unclean.leader.election.enable": "True"}, base
    )
    assert (config.segment_bytes, config.retention_ms) == (4096, 1000)
    assert config.min_insync_replicas == 2
    assert config.unclean_leader_election_enable is True
    assert LogConfig.from_topic_config(config.to_topic_config()) == config
    assert {"min.insync.replicas", "unclean.leader.election.enable", "retention.ms"} <= KNOWN_TOPIC_CONFIGS
    assert set(config.to_topic_config()) == KNOWN_TOPIC_CONFIGS


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"no.such.key": "1"}, "no.such.key"),
        ({"segment.bytes": "1k"}, "segment.bytes"),
        ({"segment.bytes": "10"}, "segment.bytes"),
        ({"segment.bytes": str(1 << 31)}, "segment.bytes"),
        ({"retention.ms": "-2"}, "retention.ms"),
        ({"retention.bytes": "x"}, "retention.bytes"),
        ({"flush.messages": "0"}, "flush.messages"),
        ({"cleanup.policy": "compact"}, "cleanup.policy"),
        ({"min.insync.replicas": "0"}, "min.insync.replicas"),
        ({"unclean.leader.election.enable": "yes"}, "unclean.leader.election.enable"),
    ],
)
def test_bad_values_name_the_key(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidConfigError, match=named.replace(".", r"\.")):
        LogConfig.from_topic_config(overrides)
