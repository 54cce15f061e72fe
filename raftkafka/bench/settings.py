"""The settings every benchmark workload shares, validated in one place."""

from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass
from typing import Any, Literal

from raftkafka.errors import InvalidConfigError

Acks = Literal["0", "1", "all"]
COMPRESSION_TYPES = ("none", "lz4", "zstd")


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """What to run: against which cluster, on which topic, how many records of which size, client tuning."""

    bootstrap: str
    topic: str
    records: int
    record_size: int
    partitions: int = 1
    replication_factor: int = 1
    acks: Acks = "1"
    linger_ms: int = 5
    batch_size: int = 256 * 1024
    compression: str = "none"
    warmup_records: int = 10_000

    def validate(self) -> BenchSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.records < 1:
            raise InvalidConfigError(f"--records must be >= 1, not {self.records}")
        if self.record_size < 0:
            raise InvalidConfigError(f"--record-size must be >= 0, not {self.record_size}")
        if self.partitions < 1:
            raise InvalidConfigError(f"--partitions must be >= 1, not {self.partitions}")
        if self.linger_ms < 0 or self.batch_size < 1 or self.warmup_records < 0:
            raise InvalidConfigError("--linger-ms and --warmup-records must be >= 0 and --batch-size >= 1")
        if self.compression not in COMPRESSION_TYPES:
            raise InvalidConfigError(f"--compression must be one of {', '.join(COMPRESSION_TYPES)}")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return asdict(self)


def make_payload(size: int, seed: int = 0) -> bytes:
    """``size`` bytes of random capital letters (compressible like text, not trivially), reproducible by seed."""
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_uppercase, k=size)).encode("ascii")
