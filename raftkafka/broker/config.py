"""The broker's configuration: one dataclass, Kafka's key names, validated in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from raftkafka.errors import InvalidConfigError
from raftkafka.net.frame import DEFAULT_MAX_FRAME_BYTES
from raftkafka.net.idle_poll import validate_idle_poll_us
from raftkafka.storage.log_config import LogConfig


def parse_host_port(text: str, *, what: str = "address") -> tuple[str, int]:
    """``("host", port)`` of ``"host:port"`` (``[v6]:port`` too), or ``InvalidConfigError``."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InvalidConfigError(f"{what} must be HOST:PORT, not {text!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class BrokerConfig:
    """Settings of one broker process (``raftkafka broker`` or the broker half of ``raftkafka dev``)."""

    node_id: int
    data_dir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 9092
    advertised_host: str | None = None
    advertised_port: int | None = None
    log_defaults: LogConfig = field(default_factory=LogConfig)
    socket_request_max_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_in_flight_requests_per_connection: int = 128
    log_retention_check_interval_ms: int = 300_000
    log_flush_scheduler_interval_ms: int = 1_000
    fetch_max_wait_ms_limit: int = 30_000
    replica_lag_time_max_ms: int = 30_000
    """replica.lag.time.max.ms: a follower that has not caught up for this long leaves the ISR."""
    idle_poll_us: int = 0
    """After each request received, keep polling this many µs before sleeping (0: off; ``net/idle_poll.py``)."""

    @property
    def logs_dir(self) -> Path:
        """Where partition directories live."""
        return self.data_dir / "logs"

    @property
    def advertised(self) -> tuple[str, int]:
        """The address clients are told to use for this broker."""
        return (self.advertised_host or self.listen_host, self.advertised_port or self.listen_port)

    def validate(self) -> BrokerConfig:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.node_id < 0:
            raise InvalidConfigError(f"node.id must be >= 0, not {self.node_id}")
        if not 0 <= self.listen_port <= 65535:
            raise InvalidConfigError(f"listen port {self.listen_port} is out of range")
        if self.socket_request_max_bytes < 1024:
            raise InvalidConfigError("socket.request.max.bytes must be at least 1024")
        if self.max_in_flight_requests_per_connection < 1:
            raise InvalidConfigError("max in-flight requests per connection must be >= 1")
        if self.log_retention_check_interval_ms < 10 or self.log_flush_scheduler_interval_ms < 10:
            raise InvalidConfigError("background task intervals must be >= 10 ms")
        if self.replica_lag_time_max_ms < 10:
            raise InvalidConfigError(f"replica.lag.time.max.ms must be >= 10, not {self.replica_lag_time_max_ms}")
        validate_idle_poll_us(self.idle_poll_us)
        return self
