"""The broker's copy of the metadata image, kept current by long-polling the active controller's log.

``MetadataFetcher`` is a ``MetadataSource``: it asks for the records after its image's offset
(``METADATA_LOG``), replays them (``replay_all``) or, when the controller no longer keeps them,
replaces its image with the controller's snapshot, and tells its listeners on the event loop, in log
order. Failures (no active controller, a lost connection) are logged and retried with a backoff; the
fetcher never stops on its own. ``wait_caught_up`` lets the broker serve only once its image holds
everything the controller had committed when the broker first asked.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from raftkafka.errors import RaftKafkaError
from raftkafka.metadata.fields import MetadataDecodeError
from raftkafka.metadata.image import EMPTY_IMAGE, MetadataImage, replay_all
from raftkafka.metadata.records import MetadataRecord, decode_records

from .broker import CommitListener

log = logging.getLogger(__name__)


class MetadataLogChannel(Protocol):
    """Where the metadata log is fetched from (``RemoteController``)."""

    async def fetch_metadata_log(self, offset: int, max_wait_ms: int, max_records: int) -> dict[str, Any]:
        """The METADATA_LOG response body for records from ``offset`` on."""
        ...


class MetadataFetcher:
    """A metadata source fed by the active controller's log. Start with ``start()``, end with ``stop()``."""

    def __init__(
        self,
        channel: MetadataLogChannel,
        *,
        image: MetadataImage = EMPTY_IMAGE,
        max_wait_ms: int = 1_000,
        max_records: int = 10_000,
        retry_backoff_s: float = 0.1,
        retry_backoff_max_s: float = 2.0,
    ) -> None:
        self._channel = channel
        self._image = image
        self._max_wait_ms = max_wait_ms
        self._max_records = max_records
        self._retry_backoff_s = retry_backoff_s
        self._retry_backoff_max_s = retry_backoff_max_s
        self._listeners: list[CommitListener] = []
        self._target_offset: int | None = None
        self._caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.high_offset = -1
        """The controller's last committed offset, as of the last answer."""

    @property
    def image(self) -> MetadataImage:
        """The latest image fetched."""
        return self._image

    def add_listener(self, listener: CommitListener) -> None:
        """Call ``listener(image, records, first_offset)`` on the event loop after each fetched batch."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start fetching in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="metadata-fetcher")

    async def wait_caught_up(self, timeout: float) -> bool:
        """Wait until the image reaches the controller's high offset seen at the first answer; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._caught_up.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop fetching."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = self._retry_backoff_s
        while True:
            try:
                answer = await self._channel.fetch_metadata_log(
                    self._image.offset + 1, self._max_wait_ms, self._max_records
                )
                self.handle(answer)
                backoff = self._retry_backoff_s
                continue
            except (RaftKafkaError, MetadataDecodeError) as exc:
                log.warning("metadata fetch from offset %d failed: %s", self._image.offset + 1, exc)
            except Exception:
                log.exception("metadata fetch from offset %d failed", self._image.offset + 1)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._retry_backoff_max_s)

    def handle(self, answer: dict[str, Any]) -> None:
        """Apply one METADATA_LOG answer (``MetadataDecodeError`` if it is malformed; the image is then unchanged)."""
        high_offset = answer.get("high_offset")
        snapshot = answer.get("snapshot")
        records = answer.get("records")
        first_offset = answer.get("first_offset")
        if type(high_offset) is not int:
            raise MetadataDecodeError("METADATA_LOG answer without an int high_offset")
        if snapshot is not None:
            if not isinstance(snapshot, bytes):
                raise MetadataDecodeError("METADATA_LOG snapshot must be bytes")
            image = MetadataImage.from_bytes(snapshot)
            log.info("metadata image replaced by the controller's snapshot at offset %d", image.offset)
            self._publish(image, (), image.offset + 1)
        if records:
            if not isinstance(records, bytes) or type(first_offset) is not int:
                raise MetadataDecodeError("METADATA_LOG records must be bytes with an int first_offset")
            decoded = decode_records(records)
            expected = self._image.offset + 1
            if first_offset != expected:
                log.warning("metadata records start at %d, expected %d; fetching again", first_offset, expected)
            elif decoded:
                self._publish(replay_all(self._image, decoded, first_offset), decoded, first_offset)
        self.high_offset = high_offset
        if self._target_offset is None:
            self._target_offset = high_offset
        if self._image.offset >= self._target_offset:
            self._caught_up.set()

    def _publish(self, image: MetadataImage, records: Sequence[MetadataRecord], first_offset: int) -> None:
        self._image = image
        for listener in list(self._listeners):
            try:
                listener(image, records, first_offset)
            except Exception:
                log.exception("metadata listener %r failed", listener)
