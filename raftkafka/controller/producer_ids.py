"""Producer ids for idempotent producers (Kafka's InitProducerId without a transactional id).

The active controller reserves ids in blocks committed to the metadata log (``ProducerIdsBlock``) and hands
them out from memory; a new active controller reserves its own block after the last committed one, so no
id is ever handed out twice, across failovers included (ids of a block not used up are skipped, never
reused). Every new id starts at producer epoch 0.

Pure: ``(image) -> (record, ids)``, like the other controller decisions.
"""

from __future__ import annotations

from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.records import ProducerIdsBlock

PRODUCER_ID_BLOCK_SIZE = 1000
"""Producer ids reserved per metadata commit."""
FIRST_PRODUCER_EPOCH = 0


def reserve_producer_ids(image: MetadataImage, size: int = PRODUCER_ID_BLOCK_SIZE) -> tuple[ProducerIdsBlock, range]:
    """The record reserving the next ``size`` producer ids after those ``image`` has reserved, and those ids."""
    if size < 1:
        raise ValueError("a producer id block needs at least one id")
    start = image.next_producer_id
    return ProducerIdsBlock(start + size), range(start, start + size)
