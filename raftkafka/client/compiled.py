"""Which of the client's optional compiled parts this installation runs (``setup.py`` builds them when a C compiler
and Python's headers are there; without them the client is pure Python, and slower)."""

from __future__ import annotations

from raftkafka.client import accumulator, record_decoder


def compiled_parts() -> dict[str, bool]:
    """Each optional compiled part and whether it is in use: the producer's accumulator, and the consumer's
    record building (in C, out of the garbage collector's sight)."""
    return {"accumulator": accumulator.compiled(), "record_building": record_decoder.build_records is not None}
