"""Parsing of bootstrap addresses: ``"host:port[,host:port...]"`` or a list of ``"host:port"`` strings."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_PORT = 9092


def parse_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``"host:port"``, ``"[v6addr]:port"`` or a bare host (port 9092)."""
    text = address.strip()
    if not text:
        raise ValueError("empty bootstrap address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad bootstrap address {address!r}: unclosed '['")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"bad bootstrap address {address!r}: no host")
    if not port_text:
        return host, DEFAULT_PORT
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad bootstrap address {address!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad bootstrap address {address!r}: port {port} out of range")
    return host, port


def parse_bootstrap(bootstrap: str | Sequence[str]) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs of a bootstrap string or list, in order, without duplicates."""
    parts = bootstrap.split(",") if isinstance(bootstrap, str) else [p for item in bootstrap for p in item.split(",")]
    addresses: list[tuple[str, int]] = []
    for part in parts:
        if part.strip():
            address = parse_address(part)
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise ValueError("no bootstrap address given")
    return addresses
