"""What ``raftkafka bench compare`` runs and what it found: settings, each system's figures, their ratios against
raftkafka's own, the table and the JSON object. Pure (no clocks, no I/O)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from raftkafka.bench.stats import LatencySummary
from raftkafka.errors import InvalidConfigError

BASELINE = "raftkafka"
SYSTEMS = {
    "raftkafka": "raftkafka dev, acks=1",
    "raftkafka-3x3": "raftkafka 3x3, RF=3, acks=all",
    "redis": "Redis Streams, appendonly",
    "nats": "NATS JetStream R1, file",
    "nats-r3": "NATS JetStream R3, file",
}
"""Every system ``compare`` knows, by the name ``--systems`` takes, with the title its row gets."""
DEFAULT_SYSTEMS = ("raftkafka", "redis", "nats", "nats-r3")
Status = Literal["ok", "not installed", "failed"]


@dataclass(frozen=True, slots=True)
class CompareSettings:
    """The one workload every system runs: ``records`` records of ``record_size`` bytes produced (after
    ``warmup_records`` untimed ones) and then consumed from the beginning, and ``e2e_records`` one-at-a-time round
    trips (after ``e2e_warmup_records``). ``redis_server``/``nats_server`` name the server binaries (default: found
    on the machine). The baseline, raftkafka, always runs first."""

    records: int = 200_000
    record_size: int = 100
    warmup_records: int = 10_000
    e2e_records: int = 5_000
    e2e_warmup_records: int = 500
    systems: tuple[str, ...] = DEFAULT_SYSTEMS
    redis_server: str | None = None
    nats_server: str | None = None

    def validate(self) -> CompareSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.records < 1 or self.e2e_records < 1:
            raise InvalidConfigError("--records and --e2e-records must be >= 1")
        if self.record_size < 0 or self.warmup_records < 0 or self.e2e_warmup_records < 0:
            raise InvalidConfigError("--record-size and the warm-ups must be >= 0")
        unknown = [name for name in self.systems if name not in SYSTEMS]
        if unknown:
            raise InvalidConfigError(f"unknown system {unknown[0]!r}: --systems takes {', '.join(SYSTEMS)}")
        return self

    def ordered_systems(self) -> list[str]:
        """The systems to run, the baseline first (added if missing), each once."""
        return list(dict.fromkeys([BASELINE, *self.systems]))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "systems": self.ordered_systems()}


@dataclass(frozen=True, slots=True)
class SystemFigures:
    """One system's figures (None where not measured), or why it was not measured (``note``)."""

    system: str
    status: Status
    produce_per_s: float | None = None
    consume_per_s: float | None = None
    e2e: LatencySummary | None = None
    note: str | None = None

    @property
    def title(self) -> str:
        return SYSTEMS[self.system]

    def figures(self) -> dict[str, float | None]:
        """The compared figures by name (the e2e percentiles in ms)."""
        return {
            "produce_records_per_s": self.produce_per_s,
            "consume_records_per_s": self.consume_per_s,
            "e2e_p50_ms": None if self.e2e is None else self.e2e.p50_ms,
            "e2e_p99_ms": None if self.e2e is None else self.e2e.p99_ms,
        }


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline`` when both were measured (and the baseline is not 0)."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


COLUMNS = (
    ("produce_records_per_s", "produce records/s", ",.0f"),
    ("consume_records_per_s", "consume records/s", ",.0f"),
    ("e2e_p50_ms", "e2e p50 ms", ".3f"),
    ("e2e_p99_ms", "e2e p99 ms", ".3f"),
)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every system's figures, the baseline (raftkafka) first."""

    settings: CompareSettings
    systems: tuple[SystemFigures, ...]

    @property
    def baseline(self) -> SystemFigures:
        return self.systems[0]

    def ratios(self, system: SystemFigures) -> dict[str, float | None]:
        """Each figure of ``system`` divided by the baseline's (> 1: more records/s, or a longer latency)."""
        base = self.baseline.figures()
        return {name: ratio(value, base[name]) for name, value in system.figures().items()}

    def as_dict(self) -> dict[str, Any]:
        """The JSON object: settings, and per system its status, figures, ratios and note."""
        rows = []
        for system in self.systems:
            row: dict[str, Any] = {"system": system.system, "title": system.title, "status": system.status}
            row.update({name: rounded(value) for name, value in system.figures().items()})
            row["e2e_ms"] = None if system.e2e is None else {k: round(v, 4) for k, v in asdict(system.e2e).items()}
            row["ratios"] = {name: rounded(value) for name, value in self.ratios(system).items()}
            row["note"] = system.note
            rows.append(row)
        return {"workload": "compare", "baseline": BASELINE, "settings": self.settings.as_dict(), "systems": rows}

    def summary(self) -> str:
        """The table: one row per system, each figure with its ratio to raftkafka's; then the notes."""
        settings = self.settings
        header = ["system", *(label for _, label, _ in COLUMNS)]
        rows = [header]
        notes = []
        for system in self.systems:
            if system.status != "ok":
                rows.append([system.title, f"({system.status})", "", "", ""])
                notes.append(f"{system.title}: {system.note}")
                continue
            cells = [system.title]
            ratios = self.ratios(system)
            for name, _, spec in COLUMNS:
                value = system.figures()[name]
                cell = "-" if value is None else f"{value:{spec}}"
                if value is not None and system is not self.baseline and ratios[name] is not None:
                    cell += f" ({ratios[name]:.2f}x)"
                cells.append(cell)
            rows.append(cells)
        widths = [max(len(row[index]) for row in rows) for index in range(len(header))]
        lines = [
            f"compare: {settings.records:,} records of {settings.record_size} bytes produced then consumed, "
            f"{settings.e2e_records:,} e2e round trips one at a time; one client process each "
            f"(ratios: the figure / {self.baseline.title}'s)",
            *("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows),
        ]
        return "\n".join([*lines, *notes])


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def missing(system: str, note: str) -> SystemFigures:
    """A system that cannot run here, and the reason (with the install command)."""
    return SystemFigures(system, "not installed", note=note)


def failed(system: str, error: BaseException) -> SystemFigures:
    """A system that started but failed to run the workload."""
    return SystemFigures(system, "failed", note=f"{type(error).__name__}: {error}")
