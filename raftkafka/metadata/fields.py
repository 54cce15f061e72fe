"""Typed readers for values decoded from metadata msgpack, and the one error they raise.

Metadata bytes (log entries, image snapshots) are decoded with ``unpack`` and then read field by field
with these checkers, so a malformed or hostile payload ends in ``MetadataDecodeError`` and never in
a stray ``TypeError``/``KeyError`` deep in the image code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack


class MetadataDecodeError(ValueError):
    """Bytes that are not a valid metadata record batch or image."""


Reader = Callable[[Any], Any]


def unpack(data: bytes | bytearray | memoryview) -> Any:
    """Decode msgpack ``data`` (maps keyed by str/bytes only, strings as UTF-8)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MetadataDecodeError(f"expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # ExtraData, FormatError, StackError, UnicodeDecodeError, ValueError, ...
        raise MetadataDecodeError(f"not valid msgpack: {exc.__class__.__name__}") from None


def read_int(value: Any) -> int:
    """An int (a bool is not an int here)."""
    if type(value) is not int:
        raise MetadataDecodeError(f"expected an int, got {type(value).__name__}")
    return value


def read_bool(value: Any) -> bool:
    """A bool."""
    if type(value) is not bool:
        raise MetadataDecodeError(f"expected a bool, got {type(value).__name__}")
    return value


def read_str(value: Any) -> str:
    """A str."""
    if type(value) is not str:
        raise MetadataDecodeError(f"expected a str, got {type(value).__name__}")
    return value


def read_optional_str(value: Any) -> str | None:
    """A str or nil."""
    return None if value is None else read_str(value)


def read_list(value: Any) -> list[Any]:
    """A msgpack array."""
    if type(value) is not list:
        raise MetadataDecodeError(f"expected an array, got {type(value).__name__}")
    return value


def read_int_tuple(value: Any) -> tuple[int, ...]:
    """An array of ints, as a tuple."""
    return tuple(read_int(item) for item in read_list(value))


def read_int_tuples(value: Any) -> tuple[tuple[int, ...], ...]:
    """An array of arrays of ints, as nested tuples."""
    return tuple(read_int_tuple(item) for item in read_list(value))


def read_str_tuple(value: Any) -> tuple[str, ...]:
    """An array of strs, as a tuple."""
    return tuple(read_str(item) for item in read_list(value))


def read_partition_offsets(value: Any) -> tuple[tuple[str, int, int], ...]:
    """An array of ``[topic, partition, offset]``."""
    return tuple(tuple(read_fields(item, (read_str, read_int, read_int))) for item in read_list(value))  # type: ignore[misc]


def read_str_dict(value: Any) -> dict[str, str]:
    """A map of str to str."""
    if type(value) is not dict:
        raise MetadataDecodeError(f"expected a map, got {type(value).__name__}")
    for key, item in value.items():
        read_str(key)
        read_str(item)
    return value


def read_fields(value: Any, readers: tuple[Reader, ...]) -> list[Any]:
    """An array of exactly ``len(readers)`` items, each read by its reader."""
    items = read_list(value)
    if len(items) != len(readers):
        raise MetadataDecodeError(f"expected {len(readers)} fields, got {len(items)}")
    return [reader(item) for reader, item in zip(readers, items, strict=True)]


READERS_BY_TYPE: dict[Any, Reader] = {
    int: read_int,
    bool: read_bool,
    str: read_str,
    tuple[int, ...]: read_int_tuple,
    tuple[tuple[int, ...], ...]: read_int_tuples,
    dict[str, str]: read_str_dict,
    tuple[str, ...]: read_str_tuple,
    tuple[tuple[str, int, int], ...]: read_partition_offsets,
}
"""The reader for each field type a metadata record may declare (add new types here)."""
