from typing import Any

def build(
    out: list[Any],
    record_type: type,
    topic: str,
    partition: int,
    base_offset: int,
    first_timestamp: int,
    deltas: tuple[int, ...],
    keys: tuple[bytes | None, ...] | None,
    values: tuple[bytes | None, ...],
    headers: tuple[Any, ...] | None,
) -> None: ...
