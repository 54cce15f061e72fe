"""Sans-I/O framing: length-prefixed msgpack frames, as pure functions over bytes.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack:
request ``[api_key, api_version, correlation_id, body]``, response ``[correlation_id, error_code, body]``.
Nothing here touches a socket, so the codec can be fuzzed on its own.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

LENGTH = struct.Struct(">I")
LENGTH_SIZE = LENGTH.size
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024


class FrameError(Exception):
    """A frame that cannot be read; ``correlation_id`` is set when it could still be answered."""

    def __init__(self, message: str, correlation_id: int | None = None) -> None:
        super().__init__(message)
        self.correlation_id = correlation_id


class FrameTooLargeError(FrameError):
    """A length prefix above the configured maximum: the stream cannot be trusted any further."""


_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def pack(obj: Any) -> bytes:
    """msgpack bytes of ``obj`` with a length prefix."""
    payload = _packer.pack(obj)
    return LENGTH.pack(len(payload)) + payload


def encode_request(api_key: int, api_version: int, correlation_id: int, body: Any) -> bytes:
    """One request frame."""
    return pack((api_key, api_version, correlation_id, body))


class BulkBody(dict[str, Any]):
    """A request or response body carrying large ``bytes`` values (record batches): the connection writes its
    frame in pieces (``encode_request_pieces``, ``encode_response_pieces``) so those values are not copied.
    Otherwise a plain dict; only worth it when a value reaches ``INLINE_LIMIT`` (small bodies pack faster whole)."""

    __slots__ = ()


INLINE_LIMIT = 16 * 1024
"""``bytes`` values at least this long are written by reference by ``encode_request_pieces``."""
_BIN16 = b"\xc5"  # msgpack's bin 16 and bin 32 headers, before a 2- and a 4-byte big-endian length
_BIN32 = b"\xc6"


def encode_request_pieces(api_key: int, api_version: int, correlation_id: int, body: Any) -> list[bytes]:
    """The frame ``encode_request`` makes, as buffers to write in order (``transport.writelines``, one
    ``writev``): each ``bytes`` value of at least ``INLINE_LIMIT`` bytes is one of the buffers itself, after its
    msgpack ``bin`` header, instead of being copied into msgpack's output and again behind the length prefix."""
    return _frame_pieces((api_key, api_version, correlation_id, body))


def encode_response_pieces(correlation_id: int, error_code: int, body: Any) -> list[bytes]:
    """The frame ``encode_response`` makes, as buffers to write in order (see ``encode_request_pieces``)."""
    return _frame_pieces((correlation_id, error_code, body))


def request_buffers(api_key: int, api_version: int, correlation_id: int, body: Any) -> list[bytes]:
    """The request frame as buffers to write in order: its pieces for a ``BulkBody``, else the whole frame."""
    if type(body) is BulkBody:
        return encode_request_pieces(api_key, api_version, correlation_id, body)
    return [encode_request(api_key, api_version, correlation_id, body)]


def response_buffers(correlation_id: int, error_code: int, body: Any) -> list[bytes]:
    """The response frame as buffers to write in order: its pieces for a ``BulkBody``, else the whole frame."""
    if type(body) is BulkBody:
        return encode_response_pieces(correlation_id, error_code, body)
    return [encode_response(correlation_id, error_code, body)]


def _frame_pieces(frame: tuple[Any, ...]) -> list[bytes]:
    packer = msgpack.Packer(use_bin_type=True, autoreset=False, buf_size=512)
    pieces = [b""]  # the length prefix, once the rest is known
    _pack_pieces(packer, pieces, frame)
    pieces.append(packer.bytes())
    pieces[0] = LENGTH.pack(sum(map(len, pieces)))
    return pieces


def _pack_pieces(packer: msgpack.Packer, pieces: list[bytes], obj: Any) -> None:
    """Pack ``obj`` as msgpack would (maps, arrays, leaves), moving large ``bytes`` out of ``packer`` into
    ``pieces``."""
    if type(obj) is bytes and len(obj) >= INLINE_LIMIT:
        pieces.append(packer.bytes())
        packer.reset()
        pieces.append(_BIN32 + LENGTH.pack(len(obj)) if len(obj) > 0xFFFF else _BIN16 + len(obj).to_bytes(2, "big"))
        pieces.append(obj)
    elif isinstance(obj, dict):
        packer.pack_map_header(len(obj))
        for key, value in obj.items():
            _pack_pieces(packer, pieces, key)
            _pack_pieces(packer, pieces, value)
    elif isinstance(obj, list | tuple):
        packer.pack_array_header(len(obj))
        for item in obj:
            _pack_pieces(packer, pieces, item)
    else:
        packer.pack(obj)


def encode_response(correlation_id: int, error_code: int, body: Any) -> bytes:
    """One response frame."""
    return pack((correlation_id, error_code, body))


def _unpack(payload: bytes | memoryview) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError, StackError and invalid UTF-8 all land here.
        raise FrameError(f"frame is not valid msgpack: {exc.__class__.__name__}") from None


def decode_request(payload: bytes | memoryview) -> tuple[int, int, int, Any]:
    """``(api_key, api_version, correlation_id, body)`` of a request frame's payload, or ``FrameError``."""
    frame = _unpack(payload)
    if not isinstance(frame, list) or len(frame) != 4:
        raise FrameError("request must be [api_key, api_version, correlation_id, body]")
    api_key, api_version, correlation_id, body = frame
    if type(correlation_id) is not int or not 0 <= correlation_id < 2**31:
        raise FrameError("correlation_id must be an int in [0, 2**31)")
    if type(api_key) is not int or type(api_version) is not int:
        raise FrameError("api_key and api_version must be ints", correlation_id)
    return api_key, api_version, correlation_id, body


def decode_response(payload: bytes | memoryview) -> tuple[int, int, Any]:
    """``(correlation_id, error_code, body)`` of a response frame's payload, or ``FrameError``."""
    frame = _unpack(payload)
    if not isinstance(frame, list) or len(frame) != 3:
        raise FrameError("response must be [correlation_id, error_code, body]")
    correlation_id, error_code, body = frame
    if type(correlation_id) is not int or type(error_code) is not int:
        raise FrameError("correlation_id and error_code must be ints")
    return correlation_id, error_code, body


class FrameDecoder:
    """Splits a byte stream into frame payloads, holding at most one frame's bytes.

    Feed it whatever the socket delivered; it returns the complete payloads. A length prefix above
    ``max_frame_bytes`` raises ``FrameTooLargeError`` before any of that frame is buffered.
    """

    __slots__ = ("_buffer", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Payloads of every frame completed by ``data``."""
        buf = self._buffer
        if not buf and len(data) >= LENGTH_SIZE:
            # Fast path: parse straight out of ``data`` without copying it into the buffer first.
            frames, rest = self._split(memoryview(data))
            buf += rest
            return frames
        buf += data
        frames, rest = self._split(memoryview(buf))
        consumed = len(buf) - len(rest)
        rest.release()
        if consumed:
            del buf[:consumed]
        return frames

    def _split(self, view: memoryview) -> tuple[list[bytes], memoryview]:
        frames: list[bytes] = []
        pos, end = 0, len(view)
        limit = self.max_frame_bytes
        while end - pos >= LENGTH_SIZE:
            (size,) = LENGTH.unpack_from(view, pos)
            if size > limit:
                raise FrameTooLargeError(f"frame of {size} bytes exceeds the limit of {limit} bytes")
            if end - pos - LENGTH_SIZE < size:
                break
            start = pos + LENGTH_SIZE
            frames.append(bytes(view[start : start + size]))
            pos = start + size
        return frames, view[pos:]
