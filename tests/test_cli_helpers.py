"""The pure parts of the topics, produce and consume commands."""

from __future__ import annotations

import io

import pytest

from raftkafka.cli.consume import format_records
from raftkafka.cli.produce import MissingKeySeparatorError, read_records, split_line
from raftkafka.cli.topics import describe_json, describe_lines, parse_config_pairs, split_config_values
from raftkafka.structs import PartitionInfo, Record, TopicDescription


def _record(key: bytes | None, value: bytes | None) -> Record:
    return Record("t", 0, 0, 0, key, value, [])


def test_split_line_without_separator_keeps_the_whole_line_as_value() -> None:
    assert split_line(b"a:b", None) == (None, b"a:b")


def test_split_line_splits_at_the_first_separator_only() -> None:
    assert split_line(b"user-1:x:y", b":") == (b"user-1", b"x:y")
    assert split_line(b":v", b":") == (b"", b"v")
    with pytest.raises(MissingKeySeparatorError):
        split_line(b"novalue", b":")


def test_read_records_strips_only_the_newline() -> None:
    stream = io.BytesIO(b"  one \r\n\ntwo\tx\nlast-without-newline")
    assert list(read_records(stream, None)) == [
        (None, b"  one \r"),
        (None, b""),
        (None, b"two\tx"),
        (None, b"last-without-newline"),
    ]


def test_read_records_names_the_line_without_separator() -> None:
    with pytest.raises(MissingKeySeparatorError, match="line 2"):
        list(read_records(io.BytesIO(b"k=v\nbad\n"), b"="))


def test_format_records_values_and_keys() -> None:
    records = [_record(b"k1", b"v1"), _record(None, b"v2"), _record(b"k3", None)]
    assert format_records(records, print_key=False) == b"v1\nv2\nnull\n"
    assert format_records(records, print_key=True) == b"k1\tv1\nnull\tv2\nk3\tnull\n"
    assert format_records([], print_key=True) == b""


def test_config_values_split_into_topic_entries_and_toml_files() -> None:
    files, entries = split_config_values(("retention.ms=1000", "settings.toml", "./a=b.toml", "cleanup.policy=delete"))
    assert files == ["settings.toml", "./a=b.toml"]
    assert parse_config_pairs(entries) == {"retention.ms": "1000", "cleanup.policy": "delete"}
    assert parse_config_pairs(("a=x=y", "a=z")) == {"a": "z"}


DESCRIPTION = TopicDescription(
    "events",
    [PartitionInfo(1, -1, [2, 1], [2]), PartitionInfo(0, 1, [1, 2], [1, 2])],
    {"segment.bytes": "1024", "retention.ms": "60000"},
)


def test_describe_lines_follow_kafka_topics_describe() -> None:
    assert describe_lines(DESCRIPTION) == [
        "Topic: events\tPartitionCount: 2\tReplicationFactor: 2\tConfigs: retention.ms=60000,segment.bytes=1024",
        "\tTopic: events\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1,2",
        "\tTopic: events\tPartition: 1\tLeader: none\tReplicas: 2,1\tIsr: 2",
    ]


def test_describe_json_has_every_partition_in_order() -> None:
    assert describe_json(DESCRIPTION) == {
        "topic": "events",
        "partition_count": 2,
        "replication_factor": 2,
        "configs": {"retention.ms": "60000", "segment.bytes": "1024"},
        "partitions": [
            {"partition": 0, "leader": 1, "replicas": [1, 2], "isr": [1, 2]},
            {"partition": 1, "leader": -1, "replicas": [2, 1], "isr": [2]},
        ],
    }
