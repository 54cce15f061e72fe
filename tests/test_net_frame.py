"""The sans-I/O frame codec on its own: round trips, splits at every byte, garbage and limits."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkafka.net.frame import (
    INLINE_LIMIT,
    LENGTH,
    FrameDecoder,
    FrameError,
    FrameTooLargeError,
    decode_request,
    decode_response,
    encode_request,
    encode_request_pieces,
    encode_response,
    encode_response_pieces,
)

bodies = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20) | st.binary(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 5), st.integers(0, 2**31 - 1), bodies), max_size=8),
       st.integers(1, 64))
def test_requests_survive_any_chunking(requests: list[tuple[int, int, int, object]], chunk: int) -> None:
    stream = b"".join(encode_request(*r) for r in requests)
    decoder = FrameDecoder()
    payloads: list[bytes] = []
    for start in range(0, len(stream), chunk):
        payloads.extend(decoder.feed(stream[start : start + chunk]))
    assert [decode_request(p) for p in payloads] == [tuple(r) for r in requests]
    assert decoder.buffered == 0


large = st.sampled_from([INLINE_LIMIT - 1, INLINE_LIMIT, 0xFFFF, 0x10000, 300_000]).map(lambda n: b"\x07" * n)
bodies_with_batches = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20) | st.binary(max_size=50) | large,
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@given(st.integers(0, 100), st.integers(0, 2**31 - 1), bodies_with_batches)
def test_frame_pieces_are_the_frame_with_large_bytes_by_reference(key: int, cid: int, body: object) -> None:
    """Written in order, the pieces are exactly ``encode_request``'s (``encode_response``'s) frame; every
    ``bytes`` value of at least INLINE_LIMIT bytes is one of the pieces itself (not a copy)."""
    large_values = [value for value in _bytes_in(body) if len(value) >= INLINE_LIMIT]
    for pieces, frame in (
        (encode_request_pieces(key, 0, cid, body), encode_request(key, 0, cid, body)),
        (encode_response_pieces(cid, key, body), encode_response(cid, key, body)),
    ):
        assert b"".join(pieces) == frame
        referenced = {id(piece) for piece in pieces}
        assert all(id(value) in referenced for value in large_values)


def _bytes_in(obj: object) -> list[bytes]:
    if isinstance(obj, bytes):
        return [obj]
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else ()
    return [found for item in items for found in _bytes_in(item)]


def test_response_round_trip() -> None:
    (payload,) = FrameDecoder().feed(encode_response(7, 3, {"message": "x"}))
    assert decode_response(payload) == (7, 3, {"message": "x"})


def test_oversized_prefix_is_refused_before_buffering() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(LENGTH.pack(2**31) + b"x" * 10)
    assert decoder.buffered == 0


@given(st.binary(max_size=200))
def test_garbage_payloads_raise_frame_error_only(payload: bytes) -> None:
    try:
        decode_request(payload)
    except FrameError:
        pass


@pytest.mark.parametrize(
    "frame",
    [
        [1, 0, "not-an-int", {}],
        [1, 0, -5, {}],
        [1, 0, 1],
        {"api": 1},
        [1.5, 0, 1, {}],
    ],
)
def test_malformed_request_shapes(frame: object) -> None:
    with pytest.raises(FrameError):
        decode_request(msgpack.packb(frame))


def test_bad_types_keep_the_correlation_id_for_an_answer() -> None:
    with pytest.raises(FrameError) as info:
        decode_request(msgpack.packb(["x", 0, 9, {}]))
    assert info.value.correlation_id == 9
